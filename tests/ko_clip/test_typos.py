"""The typo model: slips of the 두벌식 keyboard and of spelling by sound, from rules alone."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ko_clip import typos
from ko_clip.augment import _misspelled
from ko_clip.hangul import is_syllable

SYLLABLE = st.integers(0xAC00, 0xD7A3).map(chr)
WORD = st.lists(SYLLABLE, min_size=1, max_size=6, unique=True).map("".join)


def slip(name: str, word: str, i: int = 0) -> str | None:
    """`word` after the slip `name` at syllable `i`, or None when that slip cannot apply there."""
    s = typos.split(word)
    if not getattr(typos, name)(s, i, random.Random(0)):
        return None
    return typos.join(s)


def test_neighbouring_keys_follow_the_two_set_layout():
    assert set(typos.NEIGHBOURS["ㅜ"]) == {"ㅗ", "ㅓ", "ㅠ", "ㅡ"}  # n: h j above, b m beside
    assert set(typos.NEIGHBOURS["ㄴ"]) == {"ㅈ", "ㄷ", "ㅁ", "ㅇ", "ㅋ", "ㅌ"}
    assert all(k not in typos.NEIGHBOURS["ㅗ"] for k in "ㅅㅎㅍ")  # the other hand's keys would break the syllable


def test_each_slip_is_one_a_typist_makes():
    assert slip("_liaison", "검은") == "거믄"  # spelled as it sounds
    assert slip("_liaison", "강이") is None  # ㅇ is not carried over
    assert slip("_sai_siot", "위쪽") == "윗쪽"
    assert slip("_sai_siot", "왼쪽") is None
    assert slip("_shift", "쪽", 0) in {"쪾", "족"}
    assert slip("_double_press", "큰") == "큰ㄴ"
    assert slip("_drop_coda", "왼쪽") == "외쪽"
    assert slip("_vowel_by_sound", "색") == "섹"
    assert slip("_drop_syllable", "위쪽") is None  # a two-syllable word keeps both


def test_a_neighbouring_key_replaces_one_jamo_of_the_syllable():
    # 운 = ㅇ ㅜ ㄴ: ㅇ's neighbours ㄷㄱㄴㄹㅌㅊ, ㅜ's ㅗㅓㅠㅡ, ㄴ's ㅈㄷㅁㅇㅋㅌ
    expected = set("둔군눈룬툰춘온언윤은웆욷움웅웈웉")
    seen = set()
    for seed in range(200):
        s = typos.split("가운데")
        assert typos._neighbour_key(s, 1, random.Random(seed))
        seen.add(typos.join(s)[1])
    assert seen == expected


@settings(max_examples=300, deadline=None)
@given(word=WORD, seed=st.integers(0, 2**16))
def test_a_typo_changes_the_word_and_leaves_only_hangul(word, seed):
    out = typos.typo(word, random.Random(seed))
    assert out != word
    assert all(is_syllable(c) or 0x3131 <= ord(c) <= 0x3163 for c in out)
    assert typos.typo(word, random.Random(seed)) == out  # seeded


def test_a_word_without_hangul_is_left_alone():
    assert typos.typo("red", random.Random(0)) == "red"


def test_a_typo_that_spells_another_corpus_word_is_not_used():
    unchecked = {typos.typo("삼각형이", random.Random(seed)) for seed in range(300)}
    assert "사각형이" in unchecked  # a dropped final consonant turns the triangle into a square
    checked = {_misspelled("삼각형이", {"사각형이"}, random.Random(seed)) for seed in range(300)}
    assert "사각형이" not in checked and len(checked) > 20
