"""Full-size architecture check: the real SD2 (768) and SDXL-refiner architectures, random weights, real code path.

Builds every component from the configs in `benchmarks/architectures/` (copied from the published checkpoints;
nothing is downloaded), a Korean student with a klue/roberta-large-sized backbone and heads for both
(1024-d tokens; 1280-d tokens + 1280-d pooled), and the English text towers it replaces (SD2's 23×1024
OpenCLIP-H `text_encoder`, the refiner's 32×1280 bigG `text_encoder_2`), saves them as pipeline directories,
loads them through `demo.generation.pipeline.ImageGenerator` exactly as the `sd2-sdxl` config does, and generates.

On a CUDA GPU (fp16, 768×768, 25 steps) it prints in one run: base and base+refiner seconds per image eager,
compiled (`compile: true`, with the first call's compile warm-up) and with `cpu_offload`, each with its peak GPU
memory; and the Korean encoding (both heads, prompt + negative, one pass) against the two English towers, same
dtype, synchronised. On a CPU it runs eager only, at a reduced size and step count (bfloat16 weights to fit).

    python -m benchmarks.full_size_check [--size 768] [--steps 25] [--variants eager compiled offload] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import tempfile
import time
import traceback
from dataclasses import replace
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
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from benchmarks.timing import best_of, synchronised
from demo.generation.config import GeneratorConfig, Limits
from demo.generation.pipeline import ImageGenerator
from demo.generation.prompt_encoders import EnglishPromptEncoder
from demo.generation.request import Request
from ko_clip import KoreanPromptEncoder, Target
from ko_clip.modeling import KoreanStudent, KoreanStudentConfig
from ko_clip.student import train_wordpiece
from miniworld.corpus import training_pairs
from miniworld.paths import CLIP_DIR

ARCH = Path(__file__).resolve().parent / "architectures"
PROMPT = "바닷가에서 뛰노는 강아지"
ENGLISH = "a puppy playing on the beach"
VARIANTS = {"eager": {}, "compiled": {"compile": True}, "offload": {"cpu_offload": True}}
GOALS = (
    "goals (H100/H200, fp16, 768², 25 steps): base+refiner ≤ 1.0 s eager, ≤ 0.8 s compiled; "
    "Korean/English ≤ 1.0 and ≤ 2% of an image"
)


def config(name: str) -> dict:
    return json.loads((ARCH / f"{name}.json").read_text())


def parameters(module: torch.nn.Module) -> str:
    return f"{sum(p.numel() for p in module.parameters()) / 1e6:,.0f} M"


def build(workdir: Path, dtype: torch.dtype, device: torch.device) -> dict[str, str]:
    """Write the three component directories; returns what was built, for the report.

    Weights are initialised on `device` (a GPU initialises billions of parameters in a moment, a CPU in minutes).
    """
    # The English tokenizers only feed the English towers of the comparison: a stand-in with 77 positions.
    tokenizer = CLIPTokenizer.from_pretrained(CLIP_DIR, model_max_length=77)
    report = {}
    torch.manual_seed(0)
    with device:
        unet = UNet2DConditionModel.from_config(config("sd2-unet")).to(dtype)
        vae = AutoencoderKL.from_config(config("sd-vae")).to(dtype)
        text_encoder = CLIPTextModel(CLIPTextConfig(**config("sd2-text-encoder"))).to(dtype)
    report["sd2 unet"], report["sd2 vae"], report["sd2 text encoder"] = map(parameters, (unet, vae, text_encoder))
    base = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler.from_config(config("sd2-scheduler")),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    base.save_pretrained(workdir / "sd2")
    del base, unet, vae, text_encoder
    with device:
        unet = UNet2DConditionModel.from_config(config("sdxl-refiner-unet")).to(dtype)
        vae = AutoencoderKL.from_config(config("sdxl-vae")).to(dtype)
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**config("sdxl-refiner-text-encoder-2"))).to(dtype)
    report["refiner unet"], report["refiner vae"] = parameters(unet), parameters(vae)
    report["refiner text encoder 2"] = parameters(text_encoder_2)
    refiner = StableDiffusionXLImg2ImgPipeline(
        vae=vae,
        text_encoder=None,
        text_encoder_2=text_encoder_2,
        tokenizer=None,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler.from_config(config("sdxl-refiner-scheduler")),
        requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False,
    )
    refiner.save_pretrained(workdir / "refiner")
    del refiner, unet, vae, text_encoder_2
    student_tokenizer = train_wordpiece((p["ko"] for p in training_pairs()), vocab_size=2000)
    targets = [Target("base", 1024), Target("refiner", 1280, pooled_size=1280)]
    with device:
        student = KoreanStudent(
            KoreanStudentConfig(
                backbone=config("klue-roberta-large"), targets=[vars(t) for t in targets], head_heads=16
            )
        ).to(dtype)
    report["korean encoder"] = parameters(student)
    KoreanPromptEncoder(student, student_tokenizer, device=device, dtype=dtype).save_pretrained(workdir / "ko-clip")
    return report


def peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB GPU"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS"


def measure(generator: ImageGenerator, variant: str, args: argparse.Namespace) -> dict[str, float]:
    """Seconds per image for base and base+refiner (best of `args.runs`, after a first call that compiles)."""
    seconds = {}
    for mode, refiner in (("base", False), ("base+refiner", True)):
        if generator.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(generator.device)
        first = synchronised(generator.device, lambda r=refiner: generator(Request(PROMPT, seed=0, refiner=r)))
        times = [
            synchronised(generator.device, lambda s=run, r=refiner: generator(Request(PROMPT, seed=s, refiner=r)))
            for run in range(args.runs)
        ]
        seconds[mode] = min(times)
        print(
            f"{variant:<9} {mode:<13} {args.size}×{args.size}, {args.steps} steps: {min(times):.2f} s/image "
            f"(best of {args.runs}; first call {first:.1f} s), peak {peak_memory(generator.device)}",
            flush=True,
        )
    return seconds


def text_encoders(
    generator: ImageGenerator, english: EnglishPromptEncoder, image_seconds: float | None, runs: int
) -> None:
    """Korean encoding (one pass, both heads, prompt + negative) against the English towers it replaces."""
    device = generator.device

    def best(work) -> float:
        work()  # warm-up
        return best_of(runs, work, device)

    with torch.inference_mode():
        korean = best(lambda: generator.encoder.encode_all([PROMPT, ""], ["base", "refiner"]))
        towers = {t: best(lambda t=t: english.encode_all([ENGLISH, ""], [t])) for t in ("base", "refiner")}
    both = sum(towers.values())
    share = f", {korean / image_seconds:.1%} of a base+refiner image" if image_seconds else ""
    print(
        f"text encoding, prompt + negative, {generator.dtype}: Korean encoder (both heads, one pass) "
        f"{korean * 1e3:.2f} ms; English SD2 23×1024 tower {towers['base'] * 1e3:.2f} ms + refiner 32×1280 bigG "
        f"tower {towers['refiner'] * 1e3:.2f} ms = {both * 1e3:.2f} ms; ratio {korean / both:.2f}{share}",
        flush=True,
    )


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=768 if cuda else 256)
    parser.add_argument("--steps", type=int, default=25 if cuda else 4)
    parser.add_argument("--runs", type=int, default=3 if cuda else 1)
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        default=list(VARIANTS) if cuda else ["eager"],
        help="compiled and offload need a CUDA device",
    )
    parser.add_argument("--workdir", type=Path, help="keep the built directories here (default: a temporary folder)")
    args = parser.parse_args()
    dtype, device = (torch.float16, torch.device("cuda")) if cuda else (torch.bfloat16, torch.device("cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        started = time.perf_counter()
        built = build(workdir, dtype, device)
        release(device)
        parts = ", ".join(f"{k} {v}" for k, v in built.items())
        print(f"built and saved in {time.perf_counter() - started:.0f} s: {parts}", flush=True)
        print(GOALS if cuda else "CPU: eager only, reduced size and steps")
        settings = GeneratorConfig(
            name="full-size-check",
            base=str(workdir / "sd2"),
            refiner=str(workdir / "refiner"),
            korean_encoder=str(workdir / "ko-clip"),
            dtype=str(dtype).removeprefix("torch."),
            device=str(device),
            size=args.size,
            sizes=[args.size],
            steps=args.steps,
            guidance=7.5,
            limits=Limits(max_steps=100),
        )
        for variant in args.variants:
            try:
                started = time.perf_counter()
                generator = ImageGenerator(replace(settings, **VARIANTS[variant]))
                print(
                    f"{variant}: loaded in {time.perf_counter() - started:.0f} s; device {generator.device}, "
                    f"dtype {generator.dtype}, attention {generator.attention}",
                    flush=True,
                )
                if variant == args.variants[0]:
                    describe(generator)
                seconds = measure(generator, variant, args)
                if variant == "eager":
                    english = EnglishPromptEncoder.from_pipelines(settings.base, settings.refiner, device, dtype)
                    text_encoders(generator, english, seconds["base+refiner"], max(args.runs, 10))
                    del english
            except Exception:  # noqa: BLE001 - one variant's failure must not cost the others' numbers
                traceback.print_exc()
            generator = None
            release(device)


def describe(generator: ImageGenerator) -> None:
    base_embeds = generator.encoder.encode([PROMPT], "base")
    refiner_embeds = generator.encoder.encode([PROMPT], "refiner")
    print(
        f"prompt_embeds base {tuple(base_embeds.prompt_embeds.shape)} {base_embeds.prompt_embeds.dtype}; refiner "
        f"{tuple(refiner_embeds.prompt_embeds.shape)} + pooled {tuple(refiner_embeds.pooled_prompt_embeds.shape)}"
    )
    unet = generator.refiner.unet.config
    print(
        f"refiner unet: addition_embed_type={unet.addition_embed_type}, time ids "
        f"{(unet.projection_class_embeddings_input_dim - 1280) // unet.addition_time_embed_dim}, "
        f"cross_attention_dim={unet.cross_attention_dim}; base unet cross_attention_dim="
        f"{generator.base.unet.config.cross_attention_dim}, "
        f"prediction_type={generator.base.scheduler.config.prediction_type}"
    )


if __name__ == "__main__":
    main()
