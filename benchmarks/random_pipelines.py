"""Random-weight pipelines of every Stable Diffusion family, and a Korean student with a head for each text tower
they read, written as directories the product loads like any checkpoint.

`full_size_check` builds them from the published architectures in `architectures/` (`published()`); the tests from
`tiny()` ones in a second, so both exercise the same building and the same `ImageGenerator` path. Only the
English tokenizer is a stand-in (the embedded CLIP's, with 77 positions): these pipelines are for shapes and speed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import diffusers
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from demo.generation.config import GeneratorConfig
from demo.generation.families import CLIP_L, FAMILIES, OPENCLIP_BIGG, OPENCLIP_H, Family
from ko_clip import KoreanPromptEncoder, Target
from ko_clip.modeling import KoreanStudent, KoreanStudentConfig
from ko_clip.student import train_wordpiece
from miniworld.paths import CLIP_DIR

ARCHITECTURES = Path(__file__).resolve().parent / "architectures"
REFINER = "sdxl-refiner"
BACKBONES = ("multilingual-e5-large", "klue-roberta-large")  # Korean student backbones with a published config here
STUDENT_VOCAB = 200  # the stand-in Korean tokenizer's: its ids fit every backbone's vocabulary


@dataclass(frozen=True)
class Architectures:
    """The configs to build from: a UNet, VAE and scheduler per family, a text model per tower, and the Korean
    student's backbone (a `transformers` config with its `model_type`) and trunk heads."""

    unet: dict[str, dict]
    vae: dict[str, dict]
    scheduler: dict[str, dict]
    tower: dict[str, dict]
    backbone: dict
    trunk_heads: int


def architecture(name: str) -> dict:
    return json.loads((ARCHITECTURES / f"{name}.json").read_text(encoding="utf-8"))


def published(backbone: str = BACKBONES[0]) -> Architectures:
    """The real checkpoints' architectures: SD 1.5, SD 2.1 (768), SDXL base 1.0 and refiner 1.0.

    SD 1.5's VAE is SD2's but for `sample_size` (512, a tiling default), and the SDXL base's second tower is the
    refiner's bigG, so neither has a file of its own."""
    return Architectures(
        unet={name: architecture(f"{name}-unet") for name in ("sd15", "sd2", "sdxl", REFINER)},
        vae={"sd15": architecture("sd-vae"), "sd2": architecture("sd-vae")}
        | dict.fromkeys(("sdxl", REFINER), architecture("sdxl-vae")),
        scheduler=schedulers(),
        tower={
            CLIP_L: architecture("clip-vit-l-14-text-encoder"),
            OPENCLIP_H: architecture("sd2-text-encoder"),
            OPENCLIP_BIGG: architecture("sdxl-refiner-text-encoder-2"),
        },
        backbone=architecture(backbone),
        trunk_heads=16,
    )


def schedulers() -> dict[str, dict]:
    """Each family's published scheduler: no size to scale, so the tiny pipelines use them too."""
    return {name: architecture(f"{name}-scheduler") for name in ("sd15", "sd2", "sdxl", REFINER)}


def tiny(tokenizer: CLIPTokenizer) -> Architectures:
    """Each family's layout at a few million parameters, in the style of diffusers' `get_dummy_components`.

    CLIP-L and OpenCLIP-H keep their real widths (768, 1024: what tells an SD 1.x layout from a 2.x one) on one
    narrow layer pair; bigG is 32 wide with a 20-wide projection, so every width says whose states went where. Each
    family's native size (UNet sample size × VAE scale 2) is its real one / 16: 32, 48, 64."""

    def unet(sample_size: int, cross: int, xl_time_ids: int = 0) -> dict:
        blocks = ("DownBlock2D", "CrossAttnDownBlock2D") if xl_time_ids else ("CrossAttnDownBlock2D", "DownBlock2D")
        ups = ("CrossAttnUpBlock2D", "UpBlock2D") if xl_time_ids else ("UpBlock2D", "CrossAttnUpBlock2D")
        conditioning = {
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 8,
            "projection_class_embeddings_input_dim": 8 * xl_time_ids + 20,
        }
        return {
            "sample_size": sample_size,
            "block_out_channels": [32, 64],
            "layers_per_block": 1,
            "down_block_types": blocks,
            "up_block_types": ups,
            "attention_head_dim": 2,
            "cross_attention_dim": cross,
            "use_linear_projection": True,
        } | (conditioning if xl_time_ids else {})

    def tower(width: int) -> dict:
        return {
            "hidden_size": width,
            "intermediate_size": 64,
            "num_hidden_layers": 2,  # the SDXL pipelines read the penultimate layer
            "num_attention_heads": 2,
            "projection_dim": 20,
            "vocab_size": len(tokenizer),
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }

    vae = {
        "block_out_channels": [8, 16],
        "down_block_types": ["DownEncoderBlock2D"] * 2,
        "up_block_types": ["UpDecoderBlock2D"] * 2,
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "latent_channels": 4,
        "mid_block_add_attention": False,
    }
    return Architectures(
        unet={"sd15": unet(16, 768), "sd2": unet(24, 1024), "sdxl": unet(32, 768 + 32, 6), REFINER: unet(32, 32, 5)},
        vae=dict.fromkeys(("sd15", "sd2", "sdxl", REFINER), vae),
        scheduler=schedulers(),
        tower={CLIP_L: tower(768), OPENCLIP_H: tower(1024), OPENCLIP_BIGG: tower(32)},
        backbone={
            "model_type": "bert",
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 128,
            "vocab_size": STUDENT_VOCAB,
        },
        trunk_heads=2,
    )


@contextmanager
def _initialised(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """New modules' weights made on `device` in `dtype`: a GPU initialises billions of parameters in a moment, and a
    CPU that makes them in float32 first needs twice the memory for the cast."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with device:
            yield
    finally:
        torch.set_default_dtype(previous)


def english_tokenizer() -> CLIPTokenizer:
    return CLIPTokenizer.from_pretrained(CLIP_DIR, model_max_length=77)


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_pipelines(
    families: list[str],
    arch: Architectures,
    out: Path,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> dict[str, int]:
    """Write `out/<family>` for each family (`sdxl-refiner` among them for the refiner); returns the parameter
    count of each component written, e.g. {"sdxl unet": 2_567_463_684}.

    The text towers are built once and shared by the families that read them (the SDXL base and refiner: bigG)."""
    torch.manual_seed(0)
    device, tokenizer, towers, counts = torch.device(device), english_tokenizer(), {}, {}
    for name in families:
        family = FAMILIES[name]
        with _initialised(device, dtype):
            unet = UNet2DConditionModel.from_config(arch.unet[name])
            vae = AutoencoderKL.from_config(arch.vae[name])
            for read in family.tower_reads():
                if (read.tower, read.pooled) not in towers:
                    model = CLIPTextModelWithProjection if read.pooled else CLIPTextModel
                    towers[read.tower, read.pooled] = model(CLIPTextConfig(**arch.tower[read.tower]))
        scheduler = getattr(diffusers, arch.scheduler[name]["_class_name"]).from_config(arch.scheduler[name])
        components = {"unet": unet, "vae": vae, "scheduler": scheduler} | _text_components(family, towers, tokenizer)
        pipeline = family.img2img(**components) if name == REFINER else family.text2img(**components)
        pipeline.save_pretrained(out / name)
        counts |= {f"{name} {key}": parameters(m) for key, m in components.items() if isinstance(m, torch.nn.Module)}
        del pipeline, components, unet, vae
    return counts


def _text_components(family: Family, towers: dict, tokenizer: CLIPTokenizer) -> dict:
    """The family's text encoders and tokenizers, the XL pipelines' unread ones None, and no safety checker."""
    xl = family.name.startswith("sdxl")
    components = (
        dict.fromkeys(("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"))
        if xl
        else {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    )
    for read in family.tower_reads():
        components |= {read.subfolder: towers[read.tower, read.pooled], read.tokenizer: tokenizer}
    return components | ({"requires_aesthetics_score": True} if family.name == REFINER else {})


def student_targets(arch: Architectures, families: list[str] | None = None) -> list[Target]:
    """One head per tower and layer that `families` (default: all) read, named as the generator looks them up;
    the SDXL base and refiner share the bigG one."""
    reads = {r.head: r for name in families or list(FAMILIES) for r in FAMILIES[name].tower_reads()}
    tower = arch.tower
    return [
        Target(head, tower[r.tower]["hidden_size"], tower[r.tower]["projection_dim"] if r.pooled else 0)
        for head, r in reads.items()
    ]


def build_student(arch: Architectures, targets: list[Target], out: Path, dtype: torch.dtype, device) -> int:
    """A random Korean student with `targets`' heads, saved with a WordPiece tokenizer trained on a few sentences;
    returns its parameter count."""
    tokenizer = train_wordpiece(SENTENCES, vocab_size=STUDENT_VOCAB)
    backbone = arch.backbone | {"pad_token_id": tokenizer.pad_token_id}  # the tokenizer's padding, for positions
    config = KoreanStudentConfig(backbone=backbone, targets=[vars(t) for t in targets], trunk_heads=arch.trunk_heads)
    torch.manual_seed(0)
    with _initialised(torch.device(device), dtype):
        student = KoreanStudent(config)
    KoreanPromptEncoder(student, tokenizer, device=device, dtype=dtype).save_pretrained(out)
    return parameters(student)


SENTENCES = ["바닷가에서 뛰노는 강아지", "흰 배경 왼쪽에 있는 큰 빨간 원", "노을 지는 도시의 야경", "a red circle"]


def native_size(directory: Path) -> int:
    """The pipeline's own image size, as diffusers defaults it: the UNet's sample size × the VAE's scale factor."""
    unet = json.loads((directory / "unet" / "config.json").read_text(encoding="utf-8"))
    vae = json.loads((directory / "vae" / "config.json").read_text(encoding="utf-8"))
    return unet["sample_size"] * 2 ** (len(vae["block_out_channels"]) - 1)


def generator_config(
    root: Path, family: str, refiner: bool, korean_encoder: str = "ko-clip", size: int | None = None, **settings
) -> GeneratorConfig:
    """The `ImageGenerator` config of `root/<family>` (+ `root/sdxl-refiner`), at its native size unless told."""
    size = size or native_size(root / family)
    return GeneratorConfig(
        name=f"random-{family}",
        family=family,
        base=str(root / family),
        refiner=str(root / REFINER) if refiner else None,
        korean_encoder=str(root / korean_encoder),
        size=size,
        sizes=[size],
        **settings,
    )
