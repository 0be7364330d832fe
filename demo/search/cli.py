"""Similar-prompt search over the gallery on the command line (`python -m demo.vector_search`, the documented name).

python -m demo.vector_search query "TEXT" [--k 5] [--json] [--min-score S] [--data-dir instance]
python -m demo.vector_search query-image IMAGE [--k 5] [--json] [--min-score S] [--data-dir instance]
python -m demo.vector_search build PROMPTS.csv|.parquet [--prompt-column prompt] [--image-column image_name]
                                   [--images-dir DIR] [--limit N]
python -m demo.vector_search seed-gallery [--count 24] [--steps 10] [--config NAME|PATH]
python -m demo.vector_search train-head [--corpus FILE_OR_DIR ...] [--korean-encoder DIR] [--out DIR] [--steps 600]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from urllib.parse import quote

from demo.generation.config import config_help
from demo.generation.images import ImageError
from demo.generation.text import escape_c1, without_controls
from demo.search.importers import import_prompts
from demo.search.index import SearchError
from demo.search.seeding import seed_gallery
from demo.search.service import (
    DEFAULT_DATA_DIR,
    SearchResult,
    SearchService,
    load_search_config,
)
from demo.search.store import GalleryError
from demo.search.train_head import HeadTraining, train
from ko_clip.dataset import CorpusError

# Where `python -m demo` serves a gallery image (demo.web.views.gallery). The CLI runs outside the app, so it
# cannot ask `url_for`; the web app's own answers do.
GALLERY_IMAGES = "/images/"


def served_at(name: str) -> str:
    return GALLERY_IMAGES + quote(name)


def _print_results(results: list[SearchResult], as_json: bool) -> None:
    if as_json:
        print(escape_c1(json.dumps([r.as_json(served_at) for r in results], ensure_ascii=False, indent=2)))
        return
    for rank, result in enumerate(results, start=1):  # prompts from imported tables may hold terminal escapes
        prompt = without_controls(result.record.prompt)
        print(f"{rank:>3}  {result.score:6.3f}  {prompt}  {served_at(result.record.image)}")
    if not results:
        print("no results above the minimum score")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the app's data directory (default: instance/)"
    )
    common.add_argument("--search-config", type=Path, help="YAML of SearchConfig keys (default: the embedded models)")
    parser = argparse.ArgumentParser(
        prog="python -m demo.vector_search", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, target, what in (
        ("query", "text", "the text to search for, Korean or English"),
        ("query-image", "image", "an image file"),
    ):
        command = commands.add_parser(name, parents=[common], help=f"search by {target}")
        command.add_argument(target, type=str if target == "text" else Path, help=what)
        command.add_argument("--k", type=int, default=5, help="how many results (default 5)")
        command.add_argument(
            "--min-score", type=float, help="leave out results below this score (-1 to 1; docs/search.md)"
        )
        command.add_argument("--json", action="store_true", help="a JSON list of {prompt, score, image, ...}")
    build = commands.add_parser(
        "build", parents=[common], help="add a prompt dataset (csv/parquet of prompts and image paths) and index it"
    )
    build.add_argument("prompts", type=Path)
    build.add_argument("--prompt-column", default="prompt")
    build.add_argument(
        "--image-column",
        default="image_name",
        help="image paths relative to --images-dir, or bare file names found anywhere under it (DiffusionDB)",
    )
    build.add_argument("--images-dir", type=Path, help="default: the dataset file's folder")
    build.add_argument("--limit", type=int, help="only the first N rows")
    seed = commands.add_parser("seed-gallery", parents=[common], help="generate a first gallery of miniworld prompts")
    seed.add_argument("--count", type=int, default=24)
    seed.add_argument("--seed", type=int, default=0)
    seed.add_argument("--steps", type=int, default=10, help="denoising steps (default 10)")
    seed.add_argument("--config", default="embedded", help=config_help())
    head = commands.add_parser(
        "train-head", help="train the sentence head on translation pairs (demo.search.train_head)"
    )
    defaults = HeadTraining()
    head.add_argument(
        "--corpus",
        nargs="+",
        default=defaults.corpus,
        help="pair files or folders in any format ko_clip reads; miniworld:DIR writes the embedded corpus there",
    )
    head.add_argument("--korean-encoder", default=defaults.korean_encoder)
    head.add_argument("--target", help="the encoder head to read (default: its first with a pooled output)")
    head.add_argument(
        "--out", help="where to write the head (default: <korean-encoder>/sentence-head, which search uses)"
    )
    for name in ("steps", "batch", "size", "max_pairs", "seed"):
        head.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("lr", "temperature"):
        head.add_argument(f"--{name}", type=float, default=getattr(defaults, name))
    return parser


def train_head(args: argparse.Namespace) -> int:
    """`train-head`: train, write, and print the validation curve."""
    given = {field.name: getattr(args, field.name) for field in fields(HeadTraining) if hasattr(args, field.name)}
    settings = HeadTraining(**given)  # the options it has; the rest (validation, eval_every) keep their defaults
    summary = train(settings)
    for point in summary["curve"]:
        found = "–" if point["accuracy"] is None else f"{point['accuracy']:.3f}"
        print(f"step {point['step']:>5}  loss {point['loss']:.4f}  held-out translations found {found}")
    print(f"wrote {summary['out']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "train-head":
            return train_head(args)
        service = SearchService.open(args.data_dir, load_search_config(args.search_config))
        try:
            return _run(service, args)
        finally:
            service.close()
    except (SearchError, GalleryError, ImageError, CorpusError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(service: SearchService, args: argparse.Namespace) -> int:
    if args.command == "query":
        _print_results(service.search_text(args.text, args.k, args.min_score), args.json)
    elif args.command == "query-image":
        _print_results(service.search_image(args.image.read_bytes(), args.k, args.min_score), args.json)
    elif args.command == "build":
        counts = import_prompts(
            service, args.prompts, args.prompt_column, args.image_column, args.images_dir, args.limit
        )
        print(", ".join(f"{name}: {n}" for name, n in counts.items()) + f"; the gallery holds {len(service)} images")
    else:
        from demo.generation.config import load_config
        from demo.generation.pipeline import ImageGenerator

        records = seed_gallery(service, ImageGenerator(load_config(args.config)), args.count, args.seed, args.steps)
        print(f"added {len(records)} images; the gallery holds {len(service)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
