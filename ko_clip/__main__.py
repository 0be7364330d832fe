"""ko_clip command line.

    python -m ko_clip train --config embedded [--set steps=500 loss.pooled=0 ...]
    python -m ko_clip evaluate --config embedded [--model DIR] [--pairs FILE_OR_DIR ...]
                               [--prompts PROMPTS.csv ...] [--seeds N] [--json]
    python -m ko_clip card DIR --probe PROBE.json

`train` writes a model card (README.md) into the encoder directory it saves; `card` adds the probe table of a
`python -m miniworld.evaluate --probe DIR --json` report to it.

`evaluate` prints token MSE / cosine, pooled cosine and Korean→English recall@1/@5 on held-out pairs (the
config's validation split unless --pairs is given). With --prompts (miniworld prompt files with a Korean
`prompt` and its English `en`), it also generates both with the same seeds through the product's generator
(`demo`, the embedded config; English through the pipelines' own text encoders) and scores them with the
miniworld evaluator.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ko_clip.config import load_config, shipped_configs
from ko_clip.dataset import CorpusError, Pair, read_pairs, split_pairs


def _train(args: argparse.Namespace) -> int:
    from ko_clip.train import main

    progress = main(load_config(args.config, args.set))
    print(json.dumps(progress["history"][-1] if progress["history"] else {}, indent=1))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from ko_clip.encoder import KoreanPromptEncoder
    from ko_clip.evaluation import embedding_metrics, format_metrics
    from ko_clip.teacher import Teacher
    from ko_clip.train import corpus_sources, teacher_outputs

    config = load_config(args.config, args.set)
    model_dir = Path(args.model or config.export_dir or Path(config.out_dir) / "best")
    if not (model_dir / "config.json").exists():
        raise ValueError(f"no trained encoder in {model_dir}; train one first or pass --model")
    encoder = KoreanPromptEncoder.from_pretrained(model_dir)
    if args.pairs:
        pairs = list(read_pairs(args.pairs, config.max_chars))
    else:
        pairs = split_pairs(corpus_sources(config.corpus), config.validation_fraction, config.max_chars)[1]
    teacher = teacher_outputs([Teacher(spec) for spec in config.teachers], {})
    torch.set_num_threads(config.threads)
    result: dict = {"pairs": {"n": len(pairs), **embedding_metrics(encoder.model, encoder.tokenize, pairs, teacher)}}
    if not args.json:
        print(f"held-out pairs: {len(pairs)}\n{format_metrics({k: v for k, v in result['pairs'].items() if k != 'n'})}")
    if args.prompts:
        # A CLI entry that measures through the product's generation path (the one place ko_clip reaches demo).
        from dataclasses import replace

        from demo.generation.config import load_config as load_generator_config
        from demo.generation.evaluation import comparison, evaluate
        from demo.generation.pipeline import ImageGenerator
        from miniworld.prompts import read_prompts
        from miniworld.scoring import SceneScorer

        generator_config = replace(load_generator_config("embedded"), korean_encoder=str(model_dir))
        generators = {name: ImageGenerator(generator_config, name) for name in ("korean", "english")}
        scorer = SceneScorer()
    for path in args.prompts:
        korean, scenes = read_prompts(path)
        english = read_prompts(path, "en")[0]
        held = [Pair(k, e) for k, e in zip(korean, english)]
        per_file = {"embeddings": embedding_metrics(encoder.model, encoder.tokenize, held, teacher)}
        reports = [
            evaluate(generators[name], prompts, scenes, args.seeds, args.refiner, scorer)
            for name, prompts in (("korean", korean), ("english", english))
        ]
        per_file |= comparison(*reports)
        result[str(path)] = per_file
        if not args.json:
            print(
                f"\n{path}: all-attributes-correct Korean {per_file['korean']['all_correct']:.1%} vs English "
                f"{per_file['english']['all_correct']:.1%} (ratio {per_file['ratio']:.1%})"
            )
            print(format_metrics(per_file["embeddings"]))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    return 0


def _card(args: argparse.Namespace) -> int:
    from ko_clip.card import SUMMARY, add_probe

    if not (args.model / SUMMARY).exists():
        raise ValueError(f"{args.model}: no {SUMMARY}; only directories written by `ko_clip train` have a card")
    add_probe(args.model, json.loads(args.probe.read_text(encoding="utf-8")))
    print(f"wrote {args.model / 'README.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ko_clip", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, run in (("train", _train), ("evaluate", _evaluate)):
        command = commands.add_parser(name)
        command.set_defaults(run=run)
        command.add_argument(
            "--config", default="embedded", help=f"YAML path or a shipped config name ({', '.join(shipped_configs())})"
        )
        command.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config values")
    card = commands.add_parser("card", help="add a probe table to an encoder directory's model card")
    card.set_defaults(run=_card)
    card.add_argument("model", type=Path, help="encoder directory written by `ko_clip train`")
    card.add_argument(
        "--probe", type=Path, required=True, help="`python -m miniworld.evaluate --probe DIR --json` output"
    )
    evaluate = commands.choices["evaluate"]
    evaluate.add_argument("--model", help="trained encoder directory (default: the config's export or best)")
    evaluate.add_argument("--pairs", nargs="*", help="corpus files or folders of held-out pairs")
    evaluate.add_argument(
        "--prompts", nargs="*", default=[], type=Path, help="miniworld prompt CSVs (prompt, en, attributes)"
    )
    evaluate.add_argument("--seeds", type=int, default=1)
    evaluate.add_argument(
        "--refiner",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the refiner (default: the generator config's refiner_default, as in the app)",
    )
    evaluate.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, CorpusError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
