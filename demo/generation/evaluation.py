"""Quality measured on the product: miniworld prompts through the app's `ImageGenerator`, scored by miniworld.

    python -m miniworld.evaluate PROMPTS.csv [--encoder teacher|korean] [--refiner/--no-refiner] [--seeds N] [--json]
    python -m miniworld.evaluate --probe DIR [--json] [--english-from EARLIER.json]

The English teacher is one more prompt encoder of the same `ImageGenerator` (`prompt_encoder="english"`), so Korean
and English prompts run identical code: the pixel hand-off to the refiner, the config's settings and defaults,
`refiner_default` included. `--probe DIR` scores every `*.csv` category file of DIR through the Korean encoder
and, on the same scenes and seeds, through the English teacher (the file's `english` column, else the scene's
canonical English caption), and reports both per category with their ratio. The English half depends only on
the settings, so `--english-from` reuses it from an earlier `--probe --json` of the same DIR and settings (checked).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from demo.generation.config import GeneratorConfig, config_help, load_config
from demo.generation.pipeline import ImageGenerator
from demo.generation.request import Request
from miniworld.prompts import COLUMNS, has_column, read_prompts
from miniworld.scoring import Report, SceneScorer
from miniworld.world import ATTRIBUTES, Scene, english_caption

BATCH_SIZE = 50
ENCODERS = {"teacher": "english", "korean": "korean"}  # the CLI's names for the ImageGenerator's prompt encoders


def generate(
    generator: ImageGenerator,
    prompts: list[str],
    seeds: list[int],
    refiner: bool | None = None,
    batch_size: int = BATCH_SIZE,
) -> list[Image.Image]:
    """One image per (prompt, seed), `batch_size` prompts per pipeline call."""
    images = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="generating", file=sys.stderr, leave=False):
        chunk = range(start, min(start + batch_size, len(prompts)))
        images += generator.generate_batch([Request(prompts[i], seed=seeds[i], refiner=refiner) for i in chunk]).images
    return images


def evaluate(
    generator: ImageGenerator,
    prompts: list[str],
    scenes: list[Scene],
    seeds: int = 1,
    refiner: bool | None = None,
    scorer: SceneScorer | None = None,
) -> Report:
    """Generate `seeds` images per prompt (seed k·1000+i for prompt i) and score them all."""
    jobs = [(k * 1000 + i, i) for k in range(seeds) for i in range(len(prompts))]
    images = generate(generator, [prompts[i] for _, i in jobs], [seed for seed, _ in jobs], refiner)
    return (scorer or SceneScorer()).score(images, [scenes[i] for _, i in jobs])


def combine(reports: list[Report]) -> Report:
    """The report of all images together (every score is a mean over images)."""
    n = sum(r.n for r in reports)

    def mean(values: list[float]) -> float:
        return sum(v * r.n for v, r in zip(values, reports)) / n

    return Report(
        n,
        mean([r.all_correct for r in reports]),
        {a: mean([r.per_attribute[a] for r in reports]) for a in ATTRIBUTES},
        mean([r.clip_score for r in reports]),
    )


def comparison(korean: Report, english: Report) -> dict:
    return {
        "korean": korean.as_dict(),
        "english": english.as_dict(),
        "ratio": korean.all_correct / max(english.all_correct, 1e-9),
    }


def probe(
    korean: ImageGenerator,
    english: ImageGenerator | dict[str, Report],
    directory: Path,
    seeds: int = 1,
    refiner: bool | None = None,
    limit: int | None = None,
) -> dict:
    """Per category file of `directory` (and over all of them): Korean vs English on the same scenes and seeds.

    `english` is the generator with the English teacher, or the English reports of an earlier run by category."""
    files = sorted(Path(directory).glob("*.csv"))
    if not files:
        raise ValueError(f"{directory}: no *.csv category files")
    scorer = SceneScorer()
    categories, reports = {}, []
    for path in files:
        prompts, scenes = read_prompts(path)
        translations = read_prompts(path, "english")[0] if has_column(path, "english") else None
        prompts, scenes = prompts[:limit], scenes[:limit]
        translations = (translations or [english_caption(s) for s in scenes])[:limit]
        if isinstance(english, dict):
            images = len(prompts) * seeds
            if path.stem not in english or english[path.stem].n != images:
                raise ValueError(f"the earlier English reports do not cover {path.name} ({images} images)")
            english_report = english[path.stem]
        else:
            english_report = evaluate(english, translations, scenes, seeds, refiner, scorer)
        pair = (evaluate(korean, prompts, scenes, seeds, refiner, scorer), english_report)
        categories[path.stem] = comparison(*pair)
        reports.append(pair)
    return {"categories": categories, "all": comparison(*(combine(list(r)) for r in zip(*reports)))}


def format_report(report: Report) -> str:
    lines = [f"{name:<12}{accuracy:7.1%}" for name, accuracy in report.per_attribute.items()]
    lines += [
        f"{'all correct':<12}{report.all_correct:7.1%}",
        f"{'clip score':<12}{report.clip_score:7.2f}",
        f"{'images':<12}{report.n:7d}",
    ]
    return "\n".join(lines)


def format_probe(result: dict) -> str:
    header = f"{'category':<20}{'korean':>8}{'english':>9}{'ratio':>7}" + "".join(f"{a:>11}" for a in ATTRIBUTES)
    rows = [header, "(per-attribute columns: Korean / English)"]
    for name, c in {**result["categories"], "all": result["all"]}.items():
        k, e = c["korean"], c["english"]
        attributes = "".join(f"{k['per_attribute'][a]:>6.0%}/{e['per_attribute'][a]:<4.0%}" for a in ATTRIBUTES)
        rows.append(f"{name:<20}{k['all_correct']:>8.1%}{e['all_correct']:>9.1%}{c['ratio']:>7.0%} {attributes}")
    return "\n".join(rows)


def probe_settings(config: GeneratorConfig, args: argparse.Namespace) -> dict:
    """Everything but the Korean encoder that decides a probe's images: what `--english-from` must match."""
    refiner = config.refiner_default if args.refiner is None else args.refiner
    fields = ("steps", "guidance", "refiner_strength", "refiner_guidance")
    return {"config": args.config, "refiner": refiner, "seeds": args.seeds, "limit": args.limit} | {
        name: getattr(config, name) for name in fields
    }


def earlier_english(path: Path, settings: dict) -> dict[str, Report]:
    """The English reports by category of an earlier `--probe --json` output made with the same settings."""
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
        if earlier.get("settings") != settings:
            raise ValueError(f"{path} was made with other settings ({earlier.get('settings')}, now {settings})")
        return {name: Report(**c["english"]) for name, c in earlier["categories"].items()}
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a --probe --json output ({error})") from error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m miniworld.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("prompts", type=Path, nargs="?", help="CSV with columns " + ",".join(COLUMNS))
    parser.add_argument("--probe", type=Path, metavar="DIR", help="score every *.csv of DIR, Korean against English")
    parser.add_argument(
        "--encoder",
        choices=list(ENCODERS),
        default="teacher",
        help="teacher: the pipelines' English CLIP; korean: the config's ko_clip student",
    )
    parser.add_argument("--config", default="embedded", help=config_help())
    parser.add_argument("--korean-encoder", help="a ko_clip encoder directory instead of the config's")
    parser.add_argument(
        "--refiner",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the refiner (default: the config's refiner_default, as in the app)",
    )
    parser.add_argument("--seeds", type=int, default=1, help="images per prompt")
    parser.add_argument("--steps", type=int, help="default: the config's")
    parser.add_argument("--guidance", type=float, help="default: the config's")
    parser.add_argument("--refiner-strength", type=float, help="share of the schedule the refiner redoes")
    parser.add_argument("--refiner-guidance", type=float, help="default: the config's")
    parser.add_argument("--limit", type=int, help="only the first N prompts (of each file)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--english-from",
        type=Path,
        metavar="EARLIER.json",
        help="with --probe: reuse the English half of an earlier --probe --json run with the same DIR and settings",
    )
    args = parser.parse_args(argv)
    if (args.prompts is None) == (args.probe is None):
        parser.error("give either PROMPTS.csv or --probe DIR")
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    try:
        config = load_config(args.config)
        settings = {
            "steps": args.steps,
            "guidance": args.guidance,
            "refiner_strength": args.refiner_strength,
            "refiner_guidance": args.refiner_guidance,
            "korean_encoder": args.korean_encoder,
        }
        config = replace(config, **{key: value for key, value in settings.items() if value is not None})
        if args.probe is not None:
            used = probe_settings(config, args)
            if args.english_from:
                english: dict[str, Report] | ImageGenerator = earlier_english(args.english_from, used)
            else:
                english = ImageGenerator(config, "english")
            result = probe(ImageGenerator(config, "korean"), english, args.probe, args.seeds, args.refiner, args.limit)
            result["settings"] = used
            print(json.dumps(result) if args.json else format_probe(result))
            return 0
        prompts, scenes = read_prompts(args.prompts)
    except ValueError as error:
        parser.error(str(error))
    prompts, scenes = prompts[: args.limit], scenes[: args.limit]
    report = evaluate(ImageGenerator(config, ENCODERS[args.encoder]), prompts, scenes, args.seeds, args.refiner)
    print(json.dumps(report.as_dict()) if args.json else format_report(report))
    return 0
