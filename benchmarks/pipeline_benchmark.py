"""Embedded-pipeline speed: seconds per image (base, base+refiner) and what the Korean encoder costs.

Beside the Korean encoder's time it measures, in the same run, the English teacher text encoder encoding the
English translation: the baseline the Korean encoder replaces.

    python -m benchmarks.pipeline_benchmark [--runs 5] [--steps 25] [--config embedded]
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import CLIPTextModel, CLIPTokenizer

from demo.generation.config import load_config, resolve
from demo.generation.pipeline import ImageGenerator
from demo.generation.request import Request

KOREAN = "흰 배경 왼쪽에 있는 큰 빨간 원"
ENGLISH = "a large red circle on the left on a white background"


def best_of(runs: int, work) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--config", default="embedded")
    args = parser.parse_args()
    generator = ImageGenerator(load_config(args.config))
    teacher_dir = resolve(generator.config.base)
    teacher = CLIPTextModel.from_pretrained(teacher_dir, subfolder="text_encoder").to(generator.device).eval()
    tokenizer = CLIPTokenizer.from_pretrained(teacher_dir, subfolder="tokenizer")
    print(f"device {generator.device}, dtype {generator.dtype}, threads {torch.get_num_threads()}, best of {args.runs}")
    with torch.inference_mode():
        korean = best_of(args.runs * 10, lambda: generator.encoder.encode([KOREAN, ""], "base"))
        ids = tokenizer([ENGLISH, ""], padding="max_length", max_length=77, return_tensors="pt").input_ids.to(generator.device)
        english = best_of(args.runs * 10, lambda: teacher(ids))
    print(f"text encoding (prompt + negative): Korean encoder {korean * 1e3:.2f} ms, English teacher {english * 1e3:.2f} ms")
    for refiner in (False, True):
        request = Request(KOREAN, seed=0, steps=args.steps, refiner=refiner)
        generator(request)  # warm-up
        seconds = best_of(args.runs, lambda: generator(request))
        encodes = 2 if refiner else 1  # the refiner has its own head
        print(f"{'base+refiner' if refiner else 'base':<13} {seconds:.3f} s/image; Korean encoding {encodes * korean / seconds:.1%} of it")


if __name__ == "__main__":
    main()
