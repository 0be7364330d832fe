"""An English-only prompt set for the embedded world, written apart from the miniworld corpus.

The miniworld corpus has one English sentence per scene, always "a {size} {color} {shape} {where} on a {background}
background". These prompts describe the same scenes the way prompt collections such as DiffusionDB read: other
word orders, comma lists, style tags, and some other words for the same values (big, tiny, grey, middle, upper
…). No Korean anywhere. Written as a parquet `prompt` column, as DiffusionDB's `metadata.parquet` has it:

    python -m benchmarks.english_prompts runs/english-prompts/prompts.parquet [--per-scene 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import pandas as pd

from miniworld.world import Scene, all_scenes

SIZE = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}
WHERE = {
    "left": ("on the left", "on the left side", "to the left", "at the left edge"),
    "right": ("on the right", "on the right side", "to the right", "at the right edge"),
    "top": ("at the top", "near the top", "in the upper part", "up top"),
    "bottom": ("at the bottom", "near the bottom", "in the lower part", "down low"),
    "center": ("in the center", "in the middle", "centered", "right in the middle"),
}
BACKGROUND = {"white": ("white",), "black": ("black",), "gray": ("gray", "grey")}
STYLE = ("flat design", "minimal", "vector art", "simple icon", "digital art", "clean", "high contrast")
TEMPLATES = (
    "{color} {shape}, {size}, {where}, {background} background",
    "{style} of a {size} {color} {shape} placed {where}, plain {background} background",
    "{background} background with a {color} {shape} {where}, {size}",
    "a {color} {shape} ({size}) {where} over {background}, {style}",
    "{size} {shape} in {color}, {where}, {background} backdrop",
    "there is a {size} {color} {shape} {where} and the background is {background}",
    "{style}: {color} {shape} {where} on {background}, {size} size",
    "one {size} {color} {shape}, {background} background, {where}",
)


def english_prompt(scene: Scene, rng: random.Random) -> str:
    return rng.choice(TEMPLATES).format(
        color=scene.color,
        shape=scene.shape,
        size=rng.choice(SIZE[scene.size]),
        where=rng.choice(WHERE[scene.position]),
        background=rng.choice(BACKGROUND[scene.background]),
        style=rng.choice(STYLE),
    )


def english_prompts(per_scene: int = 4, seed: int = 0) -> pd.DataFrame:
    """`per_scene` distinct prompts for every scene, with the scene's attributes."""
    rng = random.Random(seed)
    rows = []
    for scene in all_scenes():
        written: set[str] = set()
        while len(written) < per_scene:
            written.add(english_prompt(scene, rng))
        rows += [{"prompt": prompt, **scene.as_dict()} for prompt in sorted(written)]
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-scene", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    prompts = english_prompts(args.per_scene, args.seed)
    prompts.to_parquet(args.out, index=False)
    print(f"{len(prompts)} English prompts → {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
