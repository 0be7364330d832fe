"""A first gallery, so search has something to find on first start: miniworld scenes in English and Korean."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from tqdm import tqdm

from demo.generation.request import Request
from demo.search.service import SearchService
from demo.search.store import Record
from miniworld.korean import korean_captions
from miniworld.world import Scene, all_scenes, english_caption

if TYPE_CHECKING:  # the generator's model libraries load only where it is built
    from demo.generation.pipeline import ImageGenerator


def seed_scenes(count: int, seed: int = 0) -> list[tuple[Scene, str]]:
    """Distinct miniworld scenes with their prompts, captioned in English and Korean by turns, so either language
    finds the other (the search benchmark scores results against the scenes)."""
    rng = random.Random(seed)
    scenes = rng.sample(all_scenes(), min(count, len(all_scenes())))
    return [(s, english_caption(s) if i % 2 == 0 else korean_captions(s, 1, rng)[0]) for i, s in enumerate(scenes)]


def seed_prompts(count: int, seed: int = 0) -> list[str]:
    """The prompts of `seed_scenes`."""
    return [prompt for _, prompt in seed_scenes(count, seed)]


def seed_gallery(
    service: SearchService, generator: ImageGenerator, count: int = 24, seed: int = 0, steps: int = 10
) -> list[Record]:
    """A first gallery from `generator`: few steps and no refiner keep it to seconds on a CPU with the embedded
    models. Each image has a fixed name, so an interrupted seeding run again makes only the images still missing,
    up to `count`."""
    records = []
    for i, prompt in enumerate(tqdm(seed_prompts(count, seed), desc="seeding the gallery", unit="image")):
        name = f"seed/{seed}-{i}.png"
        if existing := service.store.find(name):
            records.append(existing)
            continue
        result = generator(Request(prompt, seed=seed + i, steps=steps, refiner=False))
        records.append(service.add(result.images[0], prompt, result.parameters[0], name=name))
    return records
