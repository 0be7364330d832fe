"""Full-size architecture check: the real SD2 (768) and SDXL-refiner architectures, random weights, real code path.

Builds every component from the configs in `benchmarks/architectures/` (copied from the published checkpoints;
nothing is downloaded), a Korean student with a klue/roberta-large-sized backbone and heads for both
(1024-d tokens; 1280-d tokens + 1280-d pooled), saves them as pipeline directories, loads them through
`demo.generation.pipeline.ImageGenerator` exactly as the `sd2-sdxl` config does, and generates. Prints shapes, dtypes, config
keys, seconds per image and peak memory. On a CUDA GPU it measures the real thing (fp16, 768×768, 25 base
steps + refiner); on a CPU it runs at a reduced size and step count (bfloat16 weights to fit in memory).

    python -m benchmarks.full_size_check [--size 768] [--steps 25] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
    UNet2DConditionModel,
)

from demo.generation.config import GeneratorConfig, Limits
from demo.generation.pipeline import ImageGenerator
from demo.generation.request import Request
from ko_clip import KoreanPromptEncoder, Target
from ko_clip.modeling import KoreanTextEncoder, KoreanTextEncoderConfig
from ko_clip.student import train_wordpiece
from miniworld.corpus import training_pairs
from miniworld.paths import CLIP_DIR
from transformers import CLIPTokenizer

ARCH = Path(__file__).resolve().parent / "architectures"
PROMPT = "바닷가에서 뛰노는 강아지"


def config(name: str) -> dict:
    return json.loads((ARCH / f"{name}.json").read_text())


def parameters(module: torch.nn.Module) -> str:
    return f"{sum(p.numel() for p in module.parameters()) / 1e6:,.0f} M"


def build(workdir: Path, dtype: torch.dtype) -> dict[str, str]:
    """Write the three component directories; returns what was built, for the report."""
    # The English tokenizers are never used (prompts go through the Korean encoder); a stand-in fills the slot.
    tokenizer = CLIPTokenizer.from_pretrained(CLIP_DIR)
    report = {}
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(config("sd2-unet")).to(dtype)
    vae = AutoencoderKL.from_config(config("sd-vae")).to(dtype)
    report["sd2 unet"], report["sd2 vae"] = parameters(unet), parameters(vae)
    base = StableDiffusionPipeline(
        vae=vae, text_encoder=None, tokenizer=tokenizer, unet=unet, scheduler=DDIMScheduler.from_config(config("sd2-scheduler")),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    base.save_pretrained(workdir / "sd2")
    del base, unet, vae
    unet = UNet2DConditionModel.from_config(config("sdxl-refiner-unet")).to(dtype)
    vae = AutoencoderKL.from_config(config("sdxl-vae")).to(dtype)
    report["refiner unet"], report["refiner vae"] = parameters(unet), parameters(vae)
    refiner = StableDiffusionXLImg2ImgPipeline(
        vae=vae, text_encoder=None, text_encoder_2=None, tokenizer=None, tokenizer_2=tokenizer, unet=unet,
        scheduler=EulerDiscreteScheduler.from_config(config("sdxl-refiner-scheduler")),
        requires_aesthetics_score=True, force_zeros_for_empty_prompt=False,
    )
    refiner.save_pretrained(workdir / "refiner")
    del refiner, unet, vae
    student_tokenizer = train_wordpiece((p["ko"] for p in training_pairs()), vocab_size=2000)
    targets = [Target("base", 1024), Target("refiner", 1280, pooled_size=1280)]
    student = KoreanTextEncoder(
        KoreanTextEncoderConfig(backbone=config("klue-roberta-large"), targets=[vars(t) for t in targets], head_heads=16)
    ).to(dtype)
    report["korean encoder"] = parameters(student)
    KoreanPromptEncoder(student, student_tokenizer, dtype=dtype).save_pretrained(workdir / "ko-clip")
    return report


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=768 if cuda else 256)
    parser.add_argument("--steps", type=int, default=25 if cuda else 4)
    parser.add_argument("--runs", type=int, default=3 if cuda else 1)
    parser.add_argument("--workdir", type=Path, help="keep the built directories here (default: a temporary folder)")
    args = parser.parse_args()
    dtype = torch.float16 if cuda else torch.bfloat16
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        started = time.perf_counter()
        built = build(workdir, dtype)
        print(f"built and saved in {time.perf_counter() - started:.0f} s: " + ", ".join(f"{k} {v}" for k, v in built.items()))
        generator = ImageGenerator(
            GeneratorConfig(
                name="full-size-check", base=str(workdir / "sd2"), refiner=str(workdir / "refiner"),
                korean_encoder=str(workdir / "ko-clip"), dtype=str(dtype).removeprefix("torch."),
                size=args.size, sizes=[args.size], steps=args.steps, guidance=7.5, limits=Limits(max_steps=100),
            )
        )
        base_embeds = generator.encoder.encode([PROMPT], "base")
        refiner_embeds = generator.encoder.encode([PROMPT], "refiner")
        print(f"device {generator.device}, dtype {generator.dtype}, attention {generator.attention}")
        print(f"prompt_embeds base {tuple(base_embeds.prompt_embeds.shape)} {base_embeds.prompt_embeds.dtype}; "
              f"refiner {tuple(refiner_embeds.prompt_embeds.shape)} + pooled {tuple(refiner_embeds.pooled_prompt_embeds.shape)}")
        unet = generator.refiner.unet.config
        print(f"refiner unet: addition_embed_type={unet.addition_embed_type}, time ids "
              f"{(unet.projection_class_embeddings_input_dim - 1280) // unet.addition_time_embed_dim}, "
              f"cross_attention_dim={unet.cross_attention_dim}; base unet cross_attention_dim={generator.base.unet.config.cross_attention_dim}, "
              f"prediction_type={generator.base.scheduler.config.prediction_type}")
        for mode, refiner in (("base", False), ("base+refiner", True)):
            generator(Request(PROMPT, seed=0, steps=args.steps, refiner=refiner))  # warm-up
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            times = []
            for run in range(args.runs):
                result = generator(Request(PROMPT, seed=run, steps=args.steps, refiner=refiner))
                times.append(result.seconds)
            image = result.images[0]
            peak = (
                f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB GPU"
                if cuda
                else f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS"
            )
            print(f"{mode:<13} {args.size}×{args.size}, {args.steps} steps: {min(times):.2f} s/image "
                  f"(best of {args.runs}), peak {peak}, output {image.size} {image.mode}")


if __name__ == "__main__":
    main()
