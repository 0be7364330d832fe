"""Write the miniworld Korean–English parallel corpus in the AI Hub file formats.

The real corpus (AI Hub 한국어-영어 번역 말뭉치) ships xlsx files with `원문`/`번역문` columns (plus `ID`, `대분류`,
…) and csv/json files with `ko`/`en`; the embedded corpus uses the same layouts so the same loader reads both.

    python -m miniworld.corpus OUT_DIR

writes `train/` (training templates, spread over xlsx, csv and json files), `heldout_seen.csv` (new sentences
from the training templates) and `heldout_unseen.csv` (templates never used in training) and `prompts_en.csv` (the
same scenes in English), the last three with the scene attributes as columns: `miniworld.evaluate` prompt files.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import pandas as pd

from durable import save_atomically, write_text_atomically
from miniworld.korean import HELDOUT_TEMPLATES, TRAIN_TEMPLATES, korean_caption, korean_captions
from miniworld.world import ATTRIBUTES, all_scenes, english_caption

CAPTIONS_PER_SCENE = 8


def training_pairs(seed: int = 0) -> list[dict[str, str]]:
    """Several Korean captions for every scene, all from the training templates."""
    rng = random.Random(seed)
    return [
        {"ko": ko, "en": english_caption(scene)}
        for scene in all_scenes()
        for ko in korean_captions(scene, CAPTIONS_PER_SCENE, rng)
    ]


def heldout_prompts(unseen_templates: bool, exclude: set[str], seed: int) -> pd.DataFrame:
    """One Korean prompt per scene, never a sentence of `exclude`, with the scene's attributes."""
    rng = random.Random(seed)
    templates = HELDOUT_TEMPLATES if unseen_templates else TRAIN_TEMPLATES
    rows = []
    for scene in all_scenes():
        while (ko := korean_caption(scene, rng.choice(templates), rng)) in exclude:
            pass
        rows.append({"prompt": ko, "en": english_caption(scene), **scene.as_dict()})
    return pd.DataFrame(rows, columns=["prompt", "en", *ATTRIBUTES])


def write_corpus(out: Path, seed: int = 0) -> dict[str, int]:
    """Write every corpus file under `out`; returns the row count per file."""
    pairs = training_pairs(seed)
    random.Random(seed).shuffle(pairs)
    third = len(pairs) // 3
    xlsx = pd.DataFrame(
        {
            "ID": [f"MW-{i:06d}" for i in range(third)],
            "대분류": "미니월드",
            "소분류": "도형",
            "원문": [p["ko"] for p in pairs[:third]],
            "번역문": [p["en"] for p in pairs[:third]],
        }
    )
    csv = pd.DataFrame(pairs[third : 2 * third])
    records = [{"sn": f"MW-{i:06d}", **p} for i, p in enumerate(pairs[2 * third :], start=2 * third)]
    train = out / "train"
    train.mkdir(parents=True, exist_ok=True)
    save_atomically(lambda p: xlsx.to_excel(p, index=False), train / "miniworld_1.xlsx")
    save_atomically(lambda p: csv.to_csv(p, index=False), train / "miniworld_2.csv")
    write_text_atomically(train / "miniworld_3.json", json.dumps({"data": records}, ensure_ascii=False, indent=1))
    seen_sentences = {p["ko"] for p in pairs}
    seen = heldout_prompts(False, seen_sentences, seed + 1)
    unseen = heldout_prompts(True, seen_sentences, seed + 2)
    save_atomically(lambda p: seen.to_csv(p, index=False), out / "heldout_seen.csv")
    save_atomically(lambda p: unseen.to_csv(p, index=False), out / "heldout_unseen.csv")
    english = seen.drop(columns=["prompt"]).rename(columns={"en": "prompt"})
    save_atomically(lambda p: english.to_csv(p, index=False), out / "prompts_en.csv")
    return {
        "train/miniworld_1.xlsx": len(xlsx),
        "train/miniworld_2.csv": len(csv),
        "train/miniworld_3.json": len(records),
        "heldout_seen.csv": len(seen),
        "heldout_unseen.csv": len(unseen),
        "prompts_en.csv": len(english),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="directory to write the corpus into")
    args = parser.parse_args()
    for name, rows in write_corpus(args.out).items():
        print(f"{args.out / name}: {rows} rows")
