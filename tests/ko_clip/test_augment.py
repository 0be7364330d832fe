"""ko_clip.augment: the augmentations made from a corpus alone (word alignment, variants, affixes)."""

from __future__ import annotations

import random

from ko_clip.augment import INGREDIENTS, Aligner, AugmentConfig, _affixed, variants
from ko_clip.dataset import Pair
from miniworld.korean import korean_captions
from miniworld.world import all_scenes, english_caption


def miniworld_pairs(count: int = 600) -> list[Pair]:
    rng = random.Random(0)
    scenes = rng.sample(all_scenes(), count // 2)
    return [Pair(ko, english_caption(s)) for s in scenes for ko in korean_captions(s, 2, rng)]


def test_dice_alignment_links_korean_words_to_english_without_a_word_list():
    aligner = Aligner(miniworld_pairs())
    assert aligner.english("빨간") == ("red", "") and aligner.english("큰") == ("large", "")
    assert aligner.english("있다") is None  # co-occurs with everything, means none of it


def test_alignment_ties_go_to_the_content_word_whatever_the_set_order():
    pairs = [Pair(f"{colour} 원이 가운데에 있다", f"a {english} circle in the center") for colour, english in
             [("빨간", "red"), ("파란", "blue"), ("노란", "yellow")] * 2]  # fmt: skip
    pairs += [Pair("빨간 원이 왼쪽에 있다", "a red circle on the left")] * 4
    assert Aligner(pairs).english("가운데에") == ("center", "")  # 'in' co-occurs exactly as often


def test_variants_are_seeded_and_each_ingredient_can_be_left_out():
    pairs = miniworld_pairs(200)
    config = AugmentConfig(variants=3, affix=0.2)
    kept, pool = variants(pairs, config, seed=1)
    assert (kept, pool) == variants(pairs, config, seed=1)
    assert len(pool) == 3 * len(pairs) and all(k[0] == p.ko for k, p in zip(kept, pairs))
    assert any(" " not in text for text in pool) and any(any(c.isascii() and c.isalpha() for c in t) for t in pool)
    for ingredient in INGREDIENTS:
        dropped, same_pool = variants(pairs, AugmentConfig(variants=3, affix=0.2, drop=[ingredient]), seed=1)
        assert same_pool == pool and sum(map(len, dropped)) < sum(map(len, kept))
    assert variants(pairs, AugmentConfig(variants=0)) == ([[p.ko] for p in pairs], [])


def test_an_affix_keeps_the_stem_of_the_word():
    syllables = ["새", "편", "정"]
    forms = {_affixed("왼쪽에", syllables, random.Random(seed)) for seed in range(100)}
    assert forms == {"새왼쪽에", "편왼쪽에", "정왼쪽에", "왼새에", "왼편에", "왼정에", "왼쪽새", "왼쪽편", "왼쪽정"}
    assert _affixed("red", syllables, random.Random(0)) == "red"
