"""Generate images from a Korean prompt on the command line.

    python -m demo.generate "바닷가에서 뛰노는 강아지" --out out.png [--seed N] [--steps N] [--no-refiner]
                            [--init-image IN.png --strength 0.6] [--config NAME|PATH]

The PNG's text metadata holds the prompt and every generation parameter.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from demo.generation.config import config_help, load_config
from demo.generation.images import ImageError, open_upload, write_png
from demo.generation.pipeline import ImageGenerator
from demo.generation.request import GenerationError, Request


def output_paths(out: Path, count: int) -> list[Path]:
    """`out` itself for one image; out-1.png, out-2.png, … for several."""
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i}{out.suffix or '.png'}") for i in range(1, count + 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo.generate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("prompt", help="the prompt, in Korean")
    parser.add_argument("--out", type=Path, default=Path("out.png"))
    parser.add_argument("--negative", default="", help="negative prompt")
    parser.add_argument("--seed", type=int, help="random when not given; printed")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--guidance", type=float)
    parser.add_argument("--num-images", type=int, default=1)
    parser.add_argument(
        "--refiner",
        action=argparse.BooleanOptionalAction,
        help="run the SDXL refiner after the base (default: the config's refiner_default)",
    )
    parser.add_argument("--refiner-strength", type=float)
    parser.add_argument("--init-image", type=Path, help="image→image: start from this image")
    parser.add_argument("--strength", type=float, help="image→image strength (default from the config)")
    parser.add_argument("--config", default="embedded", help=config_help())
    args = parser.parse_args(argv)
    try:
        init_image = open_upload(args.init_image.read_bytes()) if args.init_image else None
        config = load_config(args.config)
        request = Request(
            prompt=args.prompt,
            negative_prompt=args.negative,
            seed=args.seed,
            steps=args.steps,
            guidance=args.guidance,
            num_images=args.num_images,
            refiner=args.refiner,
            refiner_strength=args.refiner_strength,
            init_image=init_image,
            strength=args.strength,
        )
        generator = ImageGenerator(config)
        with tqdm(desc="generating", unit="step") as bar:

            def progress(step: int, total: int) -> None:
                bar.total = total
                bar.update(step - bar.n)

            result = generator(request, progress)
    except (GenerationError, ImageError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    for path, image, parameters in zip(output_paths(args.out, len(result.images)), result.images, result.parameters):
        write_png(image, path, parameters)
        print(f"{path}  seed={parameters['seed']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
