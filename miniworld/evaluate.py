"""Generate an image for every prompt of a CSV and score it with the miniworld evaluator.

    python -m miniworld.evaluate PROMPTS.csv [--encoder teacher] [--refiner/--no-refiner] [--seeds N] [--json]

PROMPTS.csv has the columns prompt,color,shape,size,position,background (attribute values in English; the
prompt in any language the encoder reads). Prints per-attribute accuracy, the all-attributes-correct rate and
the mean CLIP image–text score; `--json` prints one object with the keys all_correct, per_attribute,
clip_score and n.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLImg2ImgPipeline
from diffusers.utils import logging as diffusers_logging
from PIL import Image
from tqdm import tqdm

from miniworld.paths import BASE_DIR, KOREAN_ENCODER_DIR, REFINER_DIR
from miniworld.scoring import Report, SceneScorer
from miniworld.world import ATTRIBUTES, Scene

COLUMNS = ("prompt", *ATTRIBUTES)


@dataclass
class Settings:
    steps: int = 25
    guidance: float = 5.0
    refiner_strength: float = 0.3
    refiner_guidance: float = 1.0  # at the base's 5 the refiner drifts colours; see the README
    batch_size: int = 50


def read_prompts(path: Path) -> tuple[list[str], list[Scene]]:
    """Prompts and the scenes they describe; a clear error for a missing column or an unknown value."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read as CSV ({error})") from error
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}")
    if table.empty:
        raise ValueError(f"{path}: no prompts")
    scenes = []
    for row_number, row in enumerate(table.itertuples(index=False), start=2):
        try:
            scenes.append(Scene(**{name: getattr(row, name).strip() for name in ATTRIBUTES}))
        except ValueError as error:
            raise ValueError(f"{path}, line {row_number}: {error}") from error
    return table["prompt"].tolist(), scenes


class PromptEncoder(Protocol):
    """Anything that turns prompts into pipeline embeddings for a target ('base' or 'refiner'), e.g. ko_clip's."""

    def encode(self, prompts: list[str], target: str) -> Any: ...


class MiniworldGenerator:
    """The embedded base pipeline, optionally followed by the refiner, on batches of prompts.

    Without an `encoder` the pipelines read the prompts with their own (English CLIP) text encoders; with one,
    they get its `prompt_embeds` (and the refiner its pooled embeddings), the empty prompt as the negative.
    """

    def __init__(self, refiner: bool, settings: Settings = Settings(), encoder: PromptEncoder | None = None) -> None:
        diffusers_logging.disable_progress_bar()
        self.settings = settings
        self.encoder = encoder
        self.base = StableDiffusionPipeline.from_pretrained(BASE_DIR)
        self.base.set_progress_bar_config(disable=True)
        self.refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(REFINER_DIR) if refiner else None
        if self.refiner:
            self.refiner.set_progress_bar_config(disable=True)

    def _text(self, prompts: list[str], target: str) -> dict[str, Any]:
        if self.encoder is None:
            return {"prompt": prompts}
        cond, uncond = self.encoder.encode(prompts, target), self.encoder.encode([""] * len(prompts), target)
        text = {"prompt_embeds": cond.prompt_embeds, "negative_prompt_embeds": uncond.prompt_embeds}
        if target == "refiner":
            text |= {"pooled_prompt_embeds": cond.pooled_prompt_embeds, "negative_pooled_prompt_embeds": uncond.pooled_prompt_embeds}
        return text

    @torch.no_grad()
    def __call__(self, prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        s = self.settings
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        latents = self.base(
            **self._text(prompts, "base"),
            num_inference_steps=s.steps,
            guidance_scale=s.guidance,
            generator=generators,
            output_type="latent" if self.refiner else "pil",
        ).images
        if not self.refiner:
            return latents
        return self.refiner(
            **self._text(prompts, "refiner"),
            image=latents,
            strength=s.refiner_strength,
            num_inference_steps=s.steps,
            guidance_scale=s.refiner_guidance,
            generator=generators,
        ).images


def load_encoder(name: str) -> PromptEncoder | None:
    if name == "teacher":
        return None
    # The one place miniworld reaches into ko_clip: the shipped student is evaluated by the same command.
    from ko_clip import KoreanPromptEncoder

    return KoreanPromptEncoder.from_pretrained(KOREAN_ENCODER_DIR)


def evaluate(prompts: list[str], scenes: list[Scene], generator: MiniworldGenerator, seeds: int = 1) -> Report:
    """Generate `seeds` images per prompt (seed k·1000+i for prompt i) and score them all."""
    images, targets = [], []
    jobs = [(k * 1000 + i, prompt, scene) for k in range(seeds) for i, (prompt, scene) in enumerate(zip(prompts, scenes))]
    size = generator.settings.batch_size
    for start in tqdm(range(0, len(jobs), size), desc="generating", file=sys.stderr):
        chunk = jobs[start : start + size]
        images += generator([p for _, p, _ in chunk], [seed for seed, _, _ in chunk])
        targets += [scene for _, _, scene in chunk]
    return SceneScorer().score(images, targets)


def format_report(report: Report) -> str:
    lines = [f"{name:<12}{accuracy:7.1%}" for name, accuracy in report.per_attribute.items()]
    lines += [f"{'all correct':<12}{report.all_correct:7.1%}", f"{'clip score':<12}{report.clip_score:7.2f}", f"{'images':<12}{report.n:7d}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompts", type=Path, help="CSV with columns " + ",".join(COLUMNS))
    parser.add_argument(
        "--encoder", choices=["teacher", "korean"], default="teacher",
        help="teacher: the pipelines' English CLIP; korean: the shipped ko_clip student",
    )
    parser.add_argument("--refiner", action=argparse.BooleanOptionalAction, default=True, help="run the refiner")
    parser.add_argument("--seeds", type=int, default=1, help="images per prompt")
    parser.add_argument("--steps", type=int, default=Settings.steps)
    parser.add_argument("--guidance", type=float, default=Settings.guidance)
    parser.add_argument("--refiner-strength", type=float, default=Settings.refiner_strength, help="share of the schedule the refiner redoes")
    parser.add_argument("--refiner-guidance", type=float, default=Settings.refiner_guidance)
    parser.add_argument("--limit", type=int, help="only the first N prompts")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    try:
        prompts, scenes = read_prompts(args.prompts)
    except ValueError as error:
        parser.error(str(error))
    if args.limit:
        prompts, scenes = prompts[: args.limit], scenes[: args.limit]
    generator = MiniworldGenerator(args.refiner, Settings(args.steps, args.guidance, args.refiner_strength, args.refiner_guidance), load_encoder(args.encoder))
    report = evaluate(prompts, scenes, generator, args.seeds)
    print(json.dumps(report.as_dict()) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
