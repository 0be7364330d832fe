"""Files in the shapes people download, written from the embedded models: a single-file checkpoint and a LoRA.

Fine-tunes are shared as one `.safetensors` file in the original Stable Diffusion (LDM) key layout
(`model.diffusion_model.*` for the UNet, `first_stage_model.*` for the VAE), and styles as small LoRA files. The
project has no such downloads offline, so it writes its own from the embedded pipelines, and the product loads
them through diffusers' `from_single_file` and `load_lora_weights` exactly as it would a real one.

    python -m miniworld.exports single-file miniworld/weights/sdxl-base out/miniworld-sdxl.safetensors
    python -m miniworld.exports lora miniworld/weights/sdxl-base out/lora.safetensors [--text-encoder]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING, LDM_UNET_KEY
from peft import LoraConfig, inject_adapter_in_model
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file

LDM_VAE_KEY = "first_stage_model."
UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
               "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}  # fmt: skip


def _rename(key: str, prefixes: dict[str, str], inner: dict[str, str] | None = None) -> str | None:
    """`key` with the first matching diffusers prefix replaced by its LDM one (and inner names renamed)."""
    for new, old in prefixes.items():
        if key.startswith(new + "."):
            rest = key[len(new) + 1 :]
            for name, ldm in (inner or {}).items():
                if rest.startswith(name + "."):
                    rest = ldm + rest[len(name) :]
            return f"{old}.{rest}"
    return None


def unet_to_ldm(unet: UNet2DConditionModel) -> dict[str, torch.Tensor]:
    """The UNet's weights under the original Stable Diffusion keys (the inverse of diffusers' converter)."""
    config, layers = unet.config, unet.config.layers_per_block
    static = {**DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"]}
    if config.addition_embed_type == "text_time":
        static |= DIFFUSERS_TO_LDM_MAPPING["unet"]["addition_embed_type"]
    resnets, attentions = {}, {}
    for block in range(len(config.block_out_channels)):
        for layer in range(layers):
            index = 1 + block * (layers + 1) + layer
            resnets[f"down_blocks.{block}.resnets.{layer}"] = f"input_blocks.{index}.0"
            attentions[f"down_blocks.{block}.attentions.{layer}"] = f"input_blocks.{index}.1"
        attentions[f"down_blocks.{block}.downsamplers.0.conv"] = (
            f"input_blocks.{1 + block * (layers + 1) + layers}.0.op"
        )
        has_attention = hasattr(unet.up_blocks[block], "attentions")
        for layer in range(layers + 1):
            index = block * (layers + 1) + layer
            resnets[f"up_blocks.{block}.resnets.{layer}"] = f"output_blocks.{index}.0"
            attentions[f"up_blocks.{block}.attentions.{layer}"] = f"output_blocks.{index}.1"
        upsampler = f"output_blocks.{block * (layers + 1) + layers}.{2 if has_attention else 1}.conv"
        attentions[f"up_blocks.{block}.upsamplers.0.conv"] = upsampler
    resnets |= {"mid_block.resnets.0": "middle_block.0", "mid_block.resnets.1": "middle_block.2"}
    attentions |= {"mid_block.attentions.0": "middle_block.1"}
    out = {}
    for key, value in unet.state_dict().items():
        ldm = static.get(key) or _rename(key, resnets, UNET_RESNET) or _rename(key, attentions)
        if ldm is None:
            raise ValueError(f"no original-layout name for the UNet weight {key}")
        out[LDM_UNET_KEY + ldm] = value
    return out


def vae_to_ldm(vae: AutoencoderKL) -> dict[str, torch.Tensor]:
    """The VAE's weights under the original keys (no mid-block attention: the embedded VAE has none)."""
    static = DIFFUSERS_TO_LDM_MAPPING["vae"]
    levels = len(vae.config.block_out_channels)
    blocks = {
        f"{part}.mid_block.resnets.{i}": f"{part}.mid.block_{i + 1}" for part in ("encoder", "decoder") for i in (0, 1)
    }
    for i in range(levels):
        blocks[f"encoder.down_blocks.{i}.resnets"] = f"encoder.down.{i}.block"
        blocks[f"encoder.down_blocks.{i}.downsamplers.0"] = f"encoder.down.{i}.downsample"
        blocks[f"decoder.up_blocks.{i}.resnets"] = f"decoder.up.{levels - 1 - i}.block"
        blocks[f"decoder.up_blocks.{i}.upsamplers.0"] = f"decoder.up.{levels - 1 - i}.upsample"
    out = {}
    for key, value in vae.state_dict().items():
        ldm = static.get(key) or _rename(key, blocks)
        if ldm is None or "attentions" in key:
            raise ValueError(f"no original-layout name for the VAE weight {key}")
        out[LDM_VAE_KEY + ldm.replace("conv_shortcut", "nin_shortcut")] = value
    return out


def export_single_file(pipeline_dir: str | Path, out: str | Path) -> Path:
    """The pipeline's UNet and VAE as one original-layout `.safetensors` file (text towers left out: the Korean
    encoder replaces them, and `from_single_file` is given `text_encoder=None`)."""
    pipeline = DiffusionPipeline.from_pretrained(pipeline_dir)
    state = unet_to_ldm(pipeline.unet) | vae_to_ldm(pipeline.vae)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, out)
    return out


def build_lora(
    pipeline_dir: str | Path, out: str | Path, rank: int = 4, seed: int = 0, text_encoder: bool = False
) -> Path:
    """A LoRA on the UNet's attention projections (peft), with random non-zero up-projections so it visibly changes
    the output; `text_encoder` also adds one on the first text encoder, as some shared LoRAs carry."""
    pipeline = DiffusionPipeline.from_pretrained(pipeline_dir)
    torch.manual_seed(seed)
    targets = ["to_q", "to_k", "to_v", "to_out.0"]
    pipeline.unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=targets, init_lora_weights=False))
    layers = {"unet_lora_layers": get_peft_model_state_dict(pipeline.unet)}
    if text_encoder:  # peft directly: transformers' own adapter API asks for a newer peft than PyPI has
        config = LoraConfig(r=rank, lora_alpha=rank, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        tower = inject_adapter_in_model(config, pipeline.text_encoder)
        layers["text_encoder_lora_layers"] = get_peft_model_state_dict(tower)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pipeline.save_lora_weights(out.parent, weight_name=out.name, **layers)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["single-file", "lora"])
    parser.add_argument("pipeline", help="an embedded pipeline directory, e.g. miniworld/weights/sd-base")
    parser.add_argument("out", help="the .safetensors file to write")
    parser.add_argument("--text-encoder", action="store_true", help="lora: also a LoRA on the first text encoder")
    args = parser.parse_args()
    if args.kind == "single-file":
        print(export_single_file(args.pipeline, args.out))
    else:
        print(build_lora(args.pipeline, args.out, text_encoder=args.text_encoder))
