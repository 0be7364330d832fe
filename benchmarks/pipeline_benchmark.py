"""Embedded-pipeline speed: seconds per image (base, base+refiner) and what the Korean encoder costs.

Beside the Korean encoder's time (one pass for every head, prompt and negative together, as the ImageGenerator reads
them) it measures, in the same run, device and dtype, the English text encoders it replaces (the pipelines' own,
through `EnglishPromptEncoder`) on the English translation. GPU work is synchronised before every clock read.

    python -m benchmarks.pipeline_benchmark [--runs 5] [--steps 25] [--config embedded]
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.timing import best_of
from demo.generation.config import load_config
from demo.generation.pipeline import ImageGenerator
from demo.generation.request import Request

KOREAN = "흰 배경 왼쪽에 있는 큰 빨간 원"
ENGLISH = "a large red circle on the left on a white background"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--config", default="embedded")
    args = parser.parse_args()
    generator = ImageGenerator(load_config(args.config))
    c, device = generator.config, generator.device
    english = generator.load_prompt_encoder("english")  # the English towers the Korean heads stand in for
    print(f"device {device}, dtype {generator.dtype}, threads {torch.get_num_threads()}, best of {args.runs}")
    encoding = {}
    with torch.inference_mode():
        for refiner in (False, True) if c.refiner else (False,):
            roles = ["base", "refiner"] if refiner else ["base"]
            targets = sorted({head for role in roles for head in generator.heads[role] or []})
            english_targets = [read.head for role in roles for read in generator.reads[role]]
            korean = best_of(args.runs * 10, lambda t=targets: generator.encoder.encode_all([KOREAN, ""], t), device)
            teacher = best_of(args.runs * 10, lambda t=english_targets: english.encode_all([ENGLISH, ""], t), device)
            encoding[refiner] = korean
            print(
                f"text encoding for {' + '.join(targets)} (prompt + negative): Korean encoder {korean * 1e3:.2f} ms, "
                f"English text encoders {teacher * 1e3:.2f} ms (ratio {korean / teacher:.2f})"
            )
    for refiner, korean in encoding.items():
        request = Request(KOREAN, seed=0, steps=args.steps, refiner=refiner)
        generator(request)  # warm-up
        seconds = best_of(args.runs, lambda r=request: generator(r), device)
        print(
            f"{'base+refiner' if refiner else 'base':<13} {seconds:.3f} s/image; "
            f"Korean encoding {korean / seconds:.1%} of it"
        )


if __name__ == "__main__":
    main()
