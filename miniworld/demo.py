"""Generate a few miniworld images with the embedded models and write them as PNG files.

    python -m miniworld.demo [--out outputs] [--seed 0] [PROMPT ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from miniworld.evaluate import MiniworldGenerator

DEFAULT_PROMPTS = (
    "a large red circle on the left on a white background",
    "a small blue star at the top on a black background",
    "a large yellow triangle in the center on a gray background",
    "a small green diamond on the right on a white background",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompts", nargs="*", default=list(DEFAULT_PROMPTS))
    parser.add_argument("--out", type=Path, default=Path("outputs"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    generator = MiniworldGenerator(refiner=True)
    images = generator(args.prompts, [args.seed + i for i in range(len(args.prompts))])
    for i, (prompt, image) in enumerate(zip(args.prompts, images)):
        path = args.out / f"{i:02d}-{'-'.join(prompt.split()[:4])}.png"
        image.resize((256, 256)).save(path)
        print(f"{path}: {prompt}")


if __name__ == "__main__":
    main()
