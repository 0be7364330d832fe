"""How well similar-prompt search finds what a query means, in Korean and in English.

    python -m benchmarks.search_quality [--count 300] [--json]

Builds a seeded gallery as the app does on first start (`demo.search.seeding.seed_scenes`: distinct miniworld
scenes captioned in English and Korean by turns; each image drawn by `miniworld.world.render`, which is what the
prompt says, since search ranks prompts), then runs the hand-written held-out queries of
`benchmarks.search_queries` through the product's `SearchService`:

- short queries (a colour and a shape): precision@5, the share of the top 5 with that colour and shape;
- full sentences (all five attributes): the attributes the top 5 share with the query, over the most that any 5
  gallery images could share;
- image queries (scenes drawn with unseen seeds): precision@5 of colour and shape;
- out-of-world queries (things the embedded models never saw): their best score, beside the in-world queries'
  fifth-best, which is what a score floor has to separate;
- the median time of a short query's and of a sentence's search (embedding included), in milliseconds.

Rows: `english: clip` on its own gallery; then one student gallery searched as the app does (word spans for short
queries, the sentence head for longer ones: `demo.search.views`), without the sentence head, and with whole prompts
only (`rerank_candidates: 0`): the baselines, in the same run. `later_*` are queries written after the span scoring
(short) and before the sentence head's first measurement (sentences), `third_*` short queries written after the
sentence head shipped; each set chose nothing and was measured once (`benchmarks.search_queries`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.search_queries import (
    IMAGES,
    OUT_OF_WORLD,
    SENTENCE_EN,
    SENTENCE_EN_LATER,
    SENTENCE_KO,
    SENTENCE_KO_LATER,
    SHORT_EN,
    SHORT_EN_LATER,
    SHORT_EN_THIRD,
    SHORT_KO,
    SHORT_KO_LATER,
    SHORT_KO_THIRD,
)
from demo.search.embeddings import PromptEmbedder
from demo.search.seeding import seed_scenes
from demo.search.service import SearchConfig, SearchService, sentence_head_path
from miniworld.paths import CLIP_DIR, KOREAN_ENCODER_DIR
from miniworld.world import ATTRIBUTES, Scene, render

K = 5


def build_gallery(data_dir: Path, embedder: PromptEmbedder, count: int) -> tuple[SearchService, dict[int, Scene]]:
    """A gallery of `count` seeded scenes stored through the product's `SearchService.add`."""
    service = SearchService.open(data_dir, SearchConfig(english=embedder.english), embedder=embedder)
    scenes = {}
    for i, (scene, prompt) in enumerate(seed_scenes(count)):
        scenes[service.add(render(scene, i), prompt).id] = scene
    return service, scenes


def _shares(scene: Scene, wanted: dict[str, str]) -> int:
    return sum(getattr(scene, name) == value for name, value in wanted.items())


def measure(service: SearchService, scenes: dict[int, Scene]) -> dict[str, float]:
    """Every metric of the module docstring for one gallery."""
    report: dict[str, float] = {}
    shorts = (
        ("short_ko", SHORT_KO),
        ("short_en", SHORT_EN),
        ("later_ko", SHORT_KO_LATER),
        ("later_en", SHORT_EN_LATER),
        ("third_ko", SHORT_KO_THIRD),
        ("third_en", SHORT_EN_THIRD),
    )
    seconds = []
    for name, queries in shorts:
        precision = []
        for query, colour, shape in queries:
            start = time.perf_counter()
            results = service.search_text(query, K)
            seconds.append(time.perf_counter() - start)
            top = [scenes[r.record.id] for r in results]
            precision.append(np.mean([s.color == colour and s.shape == shape for s in top]))
        report[f"{name}_p@5"] = float(np.mean(precision))
    report["short_query_ms_median"] = 1000 * float(np.median(seconds))
    sentences = {
        "sentence_ko": SENTENCE_KO,
        "sentence_en": SENTENCE_EN,
        "later_sentence_ko": SENTENCE_KO_LATER,
        "later_sentence_en": SENTENCE_EN_LATER,
    }
    seconds = []
    for name, queries in sentences.items():
        overlap = []
        for query, *values in queries:
            wanted = dict(zip(ATTRIBUTES, values, strict=True))
            best = sum(sorted((_shares(s, wanted) for s in scenes.values()), reverse=True)[:K])
            start = time.perf_counter()
            results = service.search_text(query, K)
            seconds.append(time.perf_counter() - start)
            top = [scenes[r.record.id] for r in results]
            overlap.append(sum(_shares(s, wanted) for s in top) / best)
        report[f"{name}_overlap"] = float(np.mean(overlap))
    report["sentence_query_ms_median"] = 1000 * float(np.median(seconds))
    precision = []
    for *values, seed in IMAGES:
        scene = Scene(*values)
        top = [scenes[r.record.id] for r in service.search_image(render(scene, seed), K)]
        precision.append(np.mean([s.color == scene.color and s.shape == scene.shape for s in top]))
    report["image_p@5"] = float(np.mean(precision))
    in_world = [q for q, *_ in SHORT_KO + SHORT_EN + SENTENCE_KO + SENTENCE_EN]
    fifth = [service.search_text(q, K)[-1].score for q in in_world]
    first_out = [service.search_text(q, 1)[0].score for q in OUT_OF_WORLD]
    report |= {
        "in_world_5th_score_min": float(min(fifth)),
        "in_world_5th_score_p05": float(np.percentile(fifth, 5)),
        "out_of_world_1st_score_max": float(max(first_out)),
        "out_of_world_1st_score_median": float(np.median(first_out)),
    }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="gallery size (seeded scenes)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    head = sentence_head_path(SearchConfig())  # what the app loads: the head the shipped encoder carries
    student = PromptEmbedder.from_pretrained(CLIP_DIR, KOREAN_ENCODER_DIR, english="student", sentence_head=head)
    clip, no_head = (  # the same loaded models: English read by CLIP's text tower; no sentence head
        PromptEmbedder(
            student.clip,
            student.tokenizer,
            student.processor,
            student.korean,
            student.target,
            english=english,
            sentence_head=student.sentence_head if english == "clip" else None,
        )
        for english in ("clip", "student")
    )
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        service, scenes = build_gallery(Path(tmp) / "clip", clip, args.count)
        rows["english: clip (English through CLIP's text tower)"] = measure(service, scenes)
        service.close()
        service, scenes = build_gallery(Path(tmp) / "student", student, args.count)
        rows["student: spans for short queries, sentence head for longer ones (default)"] = measure(service, scenes)
        service.embedder = no_head
        rows["student: spans only (sentence_head: '')"] = measure(service, scenes)
        service.config.rerank_candidates = 0
        rows["student: whole prompts only (rerank_candidates: 0)"] = measure(service, scenes)
        service.close()
    if args.json:
        json.dump({"count": args.count, "k": K, "results": rows}, sys.stdout, indent=2)
        print()
        return 0
    columns = list(next(iter(rows.values())))
    print("| setting | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
