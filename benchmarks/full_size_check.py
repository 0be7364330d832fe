"""Full-size check of every Stable Diffusion family the product drives: the published architectures, random
weights, the product's own generator.

Builds (`benchmarks.random_pipelines`, from the configs in `benchmarks/architectures/`, copied from the published
checkpoints; nothing is downloaded) SD 1.5, SD 2.1 (768), SDXL base 1.0 and the SDXL refiner 1.0 as pipeline
directories, and one Korean student whose heads cover every tower they read: `clip-vit-l-14:last` and
`clip-vit-l-14:penultimate` (768), `openclip-vit-h-14:last` (1024), `openclip-vit-bigg-14:penultimate` (1280 + pooled
1280), on a multilingual-e5-large-shaped backbone (XLM-R large; `--backbone klue-roberta-large` for the other).
Each family then runs through `demo.generation.pipeline.ImageGenerator` with a config of its own (`family:` set):
SDXL base + refiner, SD 1.5 alone, SD2 + refiner. In the same run the Korean encoding (the family's heads, prompt and
negative, one pass) is timed against the English towers it replaces (`EnglishPromptEncoder.from_reads` with the
generator's reads), same device and dtype.

On a CUDA GPU (float16, each family's native size, 25 steps) it prints per family the seconds per image eager,
compiled (`compile: true`, after a first call that compiles) and with `cpu_offload`, each with its peak GPU memory,
and each against its goal (H100/H200):

- SDXL base + refiner, 1024²: ≤ 2.0 s eager, ≤ 1.5 s compiled
- SD 1.5, 512²: ≤ 0.35 s compiled
- SD2 + refiner, 768²: ≤ 1.0 s eager, ≤ 0.8 s compiled
- the Korean encoding ≤ the English towers it replaces

On a CPU it checks the shapes at a reduced size instead: bfloat16, a quarter of each family's size, 4 steps, eager,
one call per mode, no goals judged. On the 2-core VM that took 6 minutes with light load and 23 minutes with the
cores shared by training runs, 14 GB of memory and 19 GB of temporary disk for the 9.5 B random parameters
(docs/measurements/full_size_check.md).

    python -m benchmarks.full_size_check [--families sdxl sd15 sd2] [--backbone multilingual-e5-large]
        [--size N] [--steps 25] [--runs 3] [--variants eager compiled offload] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import gc
import resource
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.random_pipelines import (
    BACKBONES,
    REFINER,
    build_pipelines,
    build_student,
    generator_config,
    native_size,
    published,
    student_targets,
)
from benchmarks.timing import best_of, synchronised
from demo.generation.config import Limits
from demo.generation.families import TowerRead
from demo.generation.pipeline import ImageGenerator
from demo.generation.prompt_encoders import EnglishPromptEncoder
from demo.generation.request import Request
from ko_clip import KoreanPromptEncoder

PROMPT = "바닷가에서 뛰노는 강아지"
ENGLISH = "a puppy playing on the beach"
FAMILIES = {"sdxl": True, "sd15": False, "sd2": True}  # the families checked, and whether each runs the refiner
VARIANTS = {"eager": {}, "compiled": {"compile": True}, "offload": {"cpu_offload": True}}
GOALS = {  # seconds per image at the family's native size, float16, 25 steps, on an H100/H200
    ("sdxl", "base+refiner", "eager"): 2.0,
    ("sdxl", "base+refiner", "compiled"): 1.5,
    ("sd15", "base", "compiled"): 0.35,
    ("sd2", "base+refiner", "eager"): 1.0,
    ("sd2", "base+refiner", "compiled"): 0.8,
}


def millions(count: int) -> str:
    return f"{count / 1e6:,.0f} M"


def peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB GPU"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB process RSS"


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def judged(family: str, mode: str, variant: str, seconds: float, native: bool) -> str:
    """The goal a timing is held to, where the run is the one the goal speaks of (GPU, native size, 25 steps)."""
    goal = GOALS.get((family, mode, variant))
    if goal is None or not native:
        return ""
    return f"; goal ≤ {goal} s: {'met' if seconds <= goal else 'MISSED'}"


def check_shapes(family: str, generator: ImageGenerator) -> None:
    """What each pipeline is handed: the heads' token states side by side at the UNet's cross-attention width."""
    with torch.inference_mode():
        text, _ = generator.encode_prompts([PROMPT], [""], list(generator.heads))
    for role, pipeline in (("base", generator.base), ("refiner", generator.refiner)):
        if pipeline is None:
            continue
        tokens, pooled = text[role]["prompt_embeds"], text[role].get("pooled_prompt_embeds")
        width = pipeline.unet.config.cross_attention_dim
        if tokens.shape[-1] != width:
            raise AssertionError(f"{family} {role}: prompt_embeds {tuple(tokens.shape)}, the UNet reads width {width}")
        print(
            f"{family} {role}: {' + '.join(generator.heads[role])} → prompt_embeds {tuple(tokens.shape)} "
            f"{tokens.dtype} (UNet cross_attention_dim {width})"
            + ("" if pooled is None else f", pooled {tuple(pooled.shape)}"),
            flush=True,
        )


def measure(family: str, generator: ImageGenerator, variant: str, args: argparse.Namespace) -> dict[str, float]:
    """Seconds per image for base (and base + refiner): the best of `args.runs` after a first call that compiles,
    or with `--runs 0` the first call alone."""
    size, native = generator.config.size, generator.config.size == native_size(Path(generator.config.base))
    on_goal = native and generator.device.type == "cuda" and args.steps == 25
    seconds = {}
    for mode, refiner in (("base", False), ("base+refiner", True))[: 2 if generator.refiner else 1]:
        if generator.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(generator.device)
        images = []

        def generate(seed: int, refiner: bool = refiner, images: list = images) -> None:
            images.extend(generator(Request(PROMPT, seed=seed, refiner=refiner)).images)

        first = synchronised(generator.device, lambda: generate(0))
        times = [synchronised(generator.device, lambda s=run: generate(s)) for run in range(args.runs)] or [first]
        if {image.size for image in images} != {(size, size)}:
            raise AssertionError(f"{family} {mode}: images are not {size}×{size}")
        seconds[mode] = min(times)
        runs = f"best of {args.runs}; first call {first:.1f} s" if args.runs else "first call"
        print(
            f"{family:<5} {variant:<9} {mode:<13} {size}², {args.steps} steps: {seconds[mode]:.2f} s/image ({runs}), "
            f"peak {peak_memory(generator.device)}{judged(family, mode, variant, seconds[mode], on_goal)}",
            flush=True,
        )
    return seconds


def text_encoders(
    family: str,
    korean: KoreanPromptEncoder,
    heads: list[str],
    sources: list[tuple[str, TowerRead]],
    image_seconds: float,
    runs: int,
) -> None:
    """The Korean encoding (the family's heads, one pass) against the English towers it replaces, same dtype."""
    device, dtype = korean.device, korean.dtype
    english = EnglishPromptEncoder.from_reads(sources, device, dtype)

    def best(work) -> float:
        work()  # warm-up
        return best_of(runs, work, device)

    with torch.inference_mode():
        ours = best(lambda: korean.encode_all([PROMPT, ""], heads))
        towers = {t: best(lambda t=t: english.encode_all([ENGLISH, ""], [t])) for t in english.targets}
    theirs = sum(towers.values())
    goal = f" (goal ≤ 1.0: {'met' if ours <= theirs else 'MISSED'})" if device.type == "cuda" else ""
    shapes = {t: english.teachers[t].model.config for t in towers}
    parts = " + ".join(
        f"{t} {shapes[t].num_hidden_layers}×{shapes[t].hidden_size} {towers[t] * 1e3:.1f} ms" for t in towers
    )
    print(
        f"{family} text encoding, prompt + negative, {dtype}: Korean (heads: {len(heads)}, one pass) "
        f"{ours * 1e3:.1f} ms; English {parts} = {theirs * 1e3:.1f} ms; ratio {ours / theirs:.2f}{goal}, "
        f"Korean {ours / image_seconds:.1%} of an image",
        flush=True,
    )


def check_family(family: str, root: Path, args: argparse.Namespace, dtype: torch.dtype, device: torch.device) -> None:
    native = native_size(root / family)
    settings = generator_config(
        root,
        family,
        refiner=FAMILIES[family],
        size=args.size or (native if device.type == "cuda" else native // 4),
        dtype=str(dtype).removeprefix("torch."),
        device=str(device),
        steps=args.steps,
        guidance=7.5,
        limits=Limits(max_steps=100),
    )
    for variant in args.variants:
        generator = None
        try:
            started = time.perf_counter()
            generator = ImageGenerator(replace(settings, **VARIANTS[variant]))
            print(
                f"{family} {variant}: loaded in {time.perf_counter() - started:.0f} s; {generator.family.name}, "
                f"dtype {generator.dtype}, attention {generator.attention}",
                flush=True,
            )
            if variant == args.variants[0]:
                check_shapes(family, generator)
            seconds = measure(family, generator, variant, args)
            if variant == "eager":
                korean, sources = generator.encoder, generator.tower_sources()
                heads = sorted({head for role_heads in generator.heads.values() for head in role_heads or []})
                generator = None  # the English towers load in the pipelines' place
                release(device)
                text_encoders(family, korean, heads, sources, max(seconds.values()), 10 if device.type == "cuda" else 3)
        except Exception:  # noqa: BLE001 - one variant's failure must not cost the others' numbers
            traceback.print_exc()
        generator = None
        release(device)


def main(argv: list[str] | None = None) -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    parser.add_argument("--backbone", choices=BACKBONES, default=BACKBONES[0], help="the Korean student's backbone")
    parser.add_argument("--size", type=int, help="image size for every family (default: each family's own; CPU: ¼)")
    parser.add_argument("--steps", type=int, default=25 if cuda else 4)
    parser.add_argument("--runs", type=int, default=3 if cuda else 0, help="timed calls after the first; 0: the first")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        default=list(VARIANTS) if cuda else ["eager"],
        help="compiled and offload need a CUDA device",
    )
    parser.add_argument("--workdir", type=Path, help="keep the built directories here (default: a temporary folder)")
    args = parser.parse_args(argv)
    dtype, device = (torch.float16, torch.device("cuda")) if cuda else (torch.bfloat16, torch.device("cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or Path(tmp)
        started = time.perf_counter()
        arch = published(args.backbone)
        built = list(args.families) + ([REFINER] if any(FAMILIES[f] for f in args.families) else [])
        counts = build_pipelines(built, arch, root, dtype, device)
        counts[f"korean encoder ({args.backbone})"] = build_student(
            arch, student_targets(arch), root / "ko-clip", dtype, device
        )
        release(device)
        parts = ", ".join(f"{name} {millions(count)}" for name, count in counts.items())
        print(f"built and saved in {time.perf_counter() - started:.0f} s: {parts}", flush=True)
        print(
            "GPU: float16, native sizes; goals judged at 25 steps"
            if cuda
            else "CPU: shapes at a reduced size, bfloat16, eager; no goals judged",
            flush=True,
        )
        for family in args.families:
            check_family(family, root, args, dtype, device)
    print(f"done in {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
