import json

import pandas as pd

from miniworld.korean import HELDOUT_TEMPLATES
from miniworld.world import ATTRIBUTES, Scene, english_caption


def test_corpus_is_written_in_each_ai_hub_format(corpus_dir):
    xlsx = pd.read_excel(corpus_dir / "train" / "miniworld_1.xlsx")
    assert {"원문", "번역문", "대분류"} <= set(xlsx.columns)
    csv = pd.read_csv(corpus_dir / "train" / "miniworld_2.csv")
    assert list(csv.columns) == ["ko", "en"]
    records = json.loads((corpus_dir / "train" / "miniworld_3.json").read_text(encoding="utf-8"))["data"]
    assert {"ko", "en"} <= set(records[0])
    assert len(xlsx) > 1000 and len(csv) > 1000 and len(records) > 1000
    english = set(xlsx["번역문"]) | set(csv["en"]) | {r["en"] for r in records}
    assert english == {english_caption(s) for s in _all()}


def test_heldout_sentences_never_appear_in_training(corpus_dir):
    train_ko = set(pd.read_excel(corpus_dir / "train" / "miniworld_1.xlsx")["원문"])
    train_ko |= set(pd.read_csv(corpus_dir / "train" / "miniworld_2.csv")["ko"])
    for name in ("heldout_seen.csv", "heldout_unseen.csv"):
        heldout = pd.read_csv(corpus_dir / name)
        assert list(heldout.columns) == ["prompt", "en", *ATTRIBUTES]
        assert not set(heldout["prompt"]) & train_ko
        for row in heldout.itertuples():
            assert row.en == english_caption(Scene(**{a: getattr(row, a) for a in ATTRIBUTES}))


def test_unseen_file_uses_only_heldout_phrasing(corpus_dir):
    unseen = pd.read_csv(corpus_dir / "heldout_unseen.csv")["prompt"]
    markers = ("보면", "화면의", "그려 주세요", "보이는", "그리고")
    assert all(any(m in p for m in markers) for p in unseen)
    assert len(markers) == len(HELDOUT_TEMPLATES)


def test_english_prompt_file_matches_the_scenes(corpus_dir):
    english = pd.read_csv(corpus_dir / "prompts_en.csv")
    assert list(english.columns) == ["prompt", *ATTRIBUTES]
    assert len(english) == len(_all())


def _all():
    from miniworld.world import all_scenes

    return all_scenes()
