"""ko_clip.hangul: syllables taken apart and put back, English spelled as Korean loanwords."""

from __future__ import annotations

from ko_clip.hangul import compose, decompose, transliterate


def test_hangul_composition_round_trips():
    for code in range(0xAC00, 0xD7A4, 97):
        assert compose(*decompose(chr(code))) == chr(code)


def test_transliteration_spells_english_as_korean_loanwords():
    expected = {
        "red": "레드", "blue": "블루", "circle": "서클", "square": "스퀘어", "triangle": "트라이앵글",
        "star": "스타", "small": "스몰", "large": "라지", "left": "레프트", "right": "라이트", "top": "톱",
        "center": "센터", "white": "화이트", "black": "블랙", "gray": "그레이", "green": "그린",
        "background": "백그라운드",
    }  # fmt: skip
    assert {word: transliterate(word) for word in expected} == expected
    assert transliterate("42") == ""
    casual = {"top": "탑", "bottom": "바텀", "yellow": "옐로우", "box": "박스", "red": "레드", "circle": "서클"}
    assert {word: transliterate(word, american=True) for word in casual} == casual
