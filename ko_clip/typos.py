"""How Korean gets mistyped, from the keyboard and from the sound of the words: rules, no word list.

Korean is typed jamo by jamo on the 두벌식 (two-set) layout, consonants under the left hand and vowels under the
right, and the input method assembles the syllables. The slips that follow:

- a neighbouring key for one jamo (가운데 → 가온데, 보라 → 보리, 작은 → 쟉은);
- Shift held or missed (쪽 → 쪾, 개 → 걔);
- a key pressed twice, so the last jamo stands alone after the syllable (큰 → 큰ㄴ), or a final consonant left out
  (왼쪽 → 외쪽);
- spelling by sound: a final consonant carried over to a following ㅇ (검은 → 거믄), vowels that sound alike
  (ㅐ/ㅔ, ㅚ/ㅙ/ㅞ), a 사이시옷 written before a tense consonant (위쪽 → 윗쪽);
- a syllable doubled, dropped (from a longer word), or swapped with its neighbour.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ko_clip.hangul import CODAS, ONSETS, VOWELS, compose, decompose, is_syllable

# The 두벌식 layout, row by row, and how far each row is shifted right on a staggered keyboard.
_ROWS = ("ㅂㅈㄷㄱㅅㅛㅕㅑㅐㅔ", "ㅁㄴㅇㄹㅎㅗㅓㅏㅣ", "ㅋㅌㅊㅍㅠㅜㅡ")
_STAGGER = (0.0, 0.25, 0.75)
_SHIFTED = {"ㄱ": "ㄲ", "ㄷ": "ㄸ", "ㅂ": "ㅃ", "ㅅ": "ㅆ", "ㅈ": "ㅉ", "ㅐ": "ㅒ", "ㅔ": "ㅖ"}
_SHIFT = {**_SHIFTED, **{shifted: plain for plain, shifted in _SHIFTED.items()}}
_SOUNDS_ALIKE = ("ㅐㅔ", "ㅒㅖ", "ㅚㅙㅞ", "ㅢㅣ")
_TENSE_AFTER_SAI_SIOT = set("ㄱㄷㅂㅅㅈㄲㄸㅃㅆㅉ")
_VOWEL_KEYS = set("ㅛㅕㅑㅐㅔㅗㅓㅏㅣㅠㅜㅡ")


def _neighbours() -> dict[str, list[str]]:
    """Keys next to each key (same row, or the row above or below within three quarters of a key)."""
    where = {key: (x + _STAGGER[y], y) for y, row in enumerate(_ROWS) for x, key in enumerate(row)}
    near: dict[str, list[str]] = {}
    for key, (x, y) in where.items():
        near[key] = [
            other
            for other, (ox, oy) in where.items()
            if other != key
            and (key in _VOWEL_KEYS) == (other in _VOWEL_KEYS)  # a slip into the other hand breaks the syllable
            and ((oy == y and abs(ox - x) == 1) or (abs(oy - y) == 1 and abs(ox - x) <= 0.75))
        ]
    return near


NEIGHBOURS = _neighbours()
Syllables = list[list[str]]  # a word as [onset, vowel, coda] per syllable; other characters as [char]


def _neighbour_key(s: Syllables, i: int, rng: random.Random) -> bool:
    slots = [(0, ONSETS), (1, VOWELS)] + ([(2, CODAS)] if s[i][2] else [])
    slot, allowed = rng.choice(slots)
    options = [k for k in NEIGHBOURS.get(s[i][slot], []) if k in allowed]
    if not options:
        return False
    s[i][slot] = rng.choice(options)
    return True


def _shift(s: Syllables, i: int, rng: random.Random) -> bool:
    slots = [slot for slot in range(3) if s[i][slot] in _SHIFT and (slot != 2 or _SHIFT[s[i][slot]] in CODAS)]
    if not slots:
        return False
    slot = rng.choice(slots)
    s[i][slot] = _SHIFT[s[i][slot]]
    return True


def _drop_coda(s: Syllables, i: int, rng: random.Random) -> bool:
    if not s[i][2]:
        return False
    s[i][2] = ""
    return True


def _liaison(s: Syllables, i: int, rng: random.Random) -> bool:
    coda = s[i][2]
    if i + 1 >= len(s) or len(s[i + 1]) != 3 or s[i + 1][0] != "ㅇ" or coda not in ONSETS or coda == "ㅇ":
        return False
    s[i][2], s[i + 1][0] = "", coda
    return True


def _vowel_by_sound(s: Syllables, i: int, rng: random.Random) -> bool:
    group = next((g for g in _SOUNDS_ALIKE if s[i][1] in g), "")
    if not group:
        return False
    s[i][1] = rng.choice([v for v in group if v != s[i][1]])
    return True


def _sai_siot(s: Syllables, i: int, rng: random.Random) -> bool:
    if s[i][2] or i + 1 >= len(s) or len(s[i + 1]) != 3 or s[i + 1][0] not in _TENSE_AFTER_SAI_SIOT:
        return False
    s[i][2] = "ㅅ"
    return True


def _double_press(s: Syllables, i: int, rng: random.Random) -> bool:
    s.insert(i + 1, [s[i][2] or s[i][1]])
    return True


def _double_syllable(s: Syllables, i: int, rng: random.Random) -> bool:
    s.insert(i, list(s[i]))
    return True


def _drop_syllable(s: Syllables, i: int, rng: random.Random) -> bool:
    if len(s) < 3:  # a short word without one of its syllables is another word
        return False
    del s[i]
    return True


def _swap_syllables(s: Syllables, i: int, rng: random.Random) -> bool:
    if i + 1 >= len(s):
        return False
    s[i], s[i + 1] = s[i + 1], s[i]
    return True


# Each slip and how often it is drawn, relative to the others (a slip that cannot apply to the word is redrawn).
SLIPS: tuple[tuple[Callable[[Syllables, int, random.Random], bool], float], ...] = (
    (_neighbour_key, 3.0),
    (_shift, 1.0),
    (_double_press, 1.0),
    (_drop_coda, 1.0),
    (_liaison, 1.0),
    (_vowel_by_sound, 1.0),
    (_sai_siot, 0.5),
    (_double_syllable, 0.5),
    (_drop_syllable, 0.5),
    (_swap_syllables, 0.5),
)


_SLIPS, _WEIGHTS = zip(*SLIPS)


def split(word: str) -> Syllables:
    """`word` as the jamo of each syllable, [onset, vowel, coda], and any other character alone."""
    return [list(decompose(c)) if is_syllable(c) else [c] for c in word]


def join(s: Syllables) -> str:
    """The word `split` took apart, after any slips."""
    return "".join(compose(*parts) if len(parts) == 3 else parts[0] for parts in s)


def typo(word: str, rng: random.Random) -> str:
    """`word` with one slip in one of its Hangul syllables (unchanged if it has none)."""
    s = split(word)
    syllables = [i for i, parts in enumerate(s) if len(parts) == 3]
    if not syllables:
        return word
    for _ in range(20):
        i = rng.choice(syllables)
        if rng.choices(_SLIPS, _WEIGHTS)[0](s, i, rng):
            break
    return join(s)
