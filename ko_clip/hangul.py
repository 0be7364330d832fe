"""Hangul spelling helpers that need no word list: syllable (de)composition and a rule-based English→Hangul
transliterator.

Why a transliterator: Korean writers borrow English words in Hangul (레드, 서클, 라지 …). Any parallel corpus has the
English words; spelling them the way Korean loanwords are spelled gives the student loanword-like forms of every
aligned word, whatever the corpus. The rules follow the usual loanword conventions (final stops after a short
vowel become a coda, other lone consonants get 으, a vowel-consonant-e word has a long vowel, r after a vowel is
silent); they are approximate on purpose: the backbone's subword knowledge bridges the rest.
"""

from __future__ import annotations

import re

ONSETS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
VOWELS = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"
CODAS = ("", *"ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ")
FIRST, LAST = 0xAC00, 0xAC00 + 11171


def is_syllable(char: str) -> bool:
    return FIRST <= ord(char) <= LAST


def decompose(char: str) -> tuple[str, str, str]:
    """A precomposed syllable → (onset, vowel, coda) compatibility jamo; coda '' when there is none."""
    code = ord(char) - FIRST
    return ONSETS[code // 588], VOWELS[code % 588 // 28], CODAS[code % 28]


def compose(onset: str, vowel: str, coda: str = "") -> str:
    return chr(FIRST + ONSETS.index(onset) * 588 + VOWELS.index(vowel) * 28 + CODAS.index(coda))


# English spelling → rough phonemes. Consonants first (longest match), then vowels.
_CONSONANTS = [
    ("tch", "ch"), ("sch", "sk"), ("sh", "sh"), ("ch", "ch"), ("ph", "f"), ("th", "th"), ("wh", "hw"), ("ck", "k"),
    ("qu", "kw"), ("gh", ""), ("dg", "j"), ("ng", "ng"), ("x", "ks"), ("b", "b"), ("d", "d"), ("f", "f"),
    ("h", "h"), ("j", "j"), ("k", "k"), ("l", "l"), ("m", "m"), ("n", "n"), ("p", "p"), ("r", "r"), ("s", "s"),
    ("t", "t"), ("v", "b"), ("z", "z"),
]  # fmt: skip
_VOWEL_TEAMS = [
    ("igh", "ai"), ("ee", "i"), ("ea", "i"), ("oo", "u"), ("ou", "au"), ("oa", "o"), ("ai", "ei"), ("ay", "ei"),
    ("ey", "ei"), ("ie", "i"), ("ue", "u"), ("ew", "yu"), ("aw", "o"), ("oi", "oi"), ("oy", "oi"),
]  # fmt: skip
_ONSET = {
    "p": "ㅍ", "b": "ㅂ", "t": "ㅌ", "d": "ㄷ", "k": "ㅋ", "g": "ㄱ", "f": "ㅍ", "s": "ㅅ", "z": "ㅈ", "sh": "ㅅ",
    "ch": "ㅊ", "j": "ㅈ", "m": "ㅁ", "n": "ㄴ", "l": "ㄹ", "r": "ㄹ", "h": "ㅎ", "th": "ㅅ", "ng": "ㅇ",
}  # fmt: skip
_CODA = {"p": "ㅂ", "t": "ㅅ", "k": "ㄱ", "m": "ㅁ", "n": "ㄴ", "ng": "ㅇ", "l": "ㄹ"}
_VOWEL = {"a": "ㅏ", "ae": "ㅐ", "e": "ㅔ", "i": "ㅣ", "o": "ㅗ", "u": "ㅜ", "eo": "ㅓ", "eu": "ㅡ"}
_GLIDE = {
    ("w", "a"): "ㅘ",
    ("w", "ae"): "ㅙ",
    ("w", "e"): "ㅞ",
    ("w", "i"): "ㅟ",
    ("w", "o"): "ㅝ",
    ("w", "eo"): "ㅝ",
    ("y", "a"): "ㅑ",
    ("y", "e"): "ㅖ",
    ("y", "o"): "ㅛ",
    ("y", "u"): "ㅠ",
    ("y", "eo"): "ㅕ",
    ("y", "ae"): "ㅒ",
}
_DIPHTHONG = {"ai": ("a", "i"), "ei": ("e", "i"), "au": ("a", "u"), "oi": ("o", "i"), "ou": ("o", "u"), "yu": ("yu",)}
_LETTER_VOWELS = set("aeiouy")


_R_ENDINGS = {"are": ["e", "eo"], "ere": ["i", "eo"], "ire": ["ai", "eo"], "ore": ["o"], "ure": ["u", "eo"]}


def _phonemes(word: str, american: bool = False) -> list[str]:
    """Letters → a list of phoneme symbols: consonants as in `_ONSET` plus 'w'/'y' glides, vowels as in `_VOWEL`."""
    out: list[str] = []
    i, n = 0, len(word)
    while i < n:
        rest = word[i:]
        if rest in _R_ENDINGS and i:
            out += _R_ENDINGS[rest]
            break
        if rest == "e" and out and i > 1:  # silent final e
            break
        if rest in ("ge", "dge"):
            out.append("j")
            break
        if rest == "le" and out and out[-1] not in _VOWEL:
            out.append("l")
            break
        team = next((t for t in _VOWEL_TEAMS if rest.startswith(t[0])), None)
        if team:
            out.append(team[1])
            i += len(team[0])
            continue
        letter, following = word[i], word[i + 1 :]
        if letter in "wy" and following[:1] in _LETTER_VOWELS:
            out.append(letter)
            i += 1
        elif letter == "y":
            out.append("i")
            i += 1
        elif letter in "aeiou":
            out.append(_vowel(word, i, american))
            i += 1
            if word[i : i + 1] == "r" and word[i + 1 : i + 2] not in _LETTER_VOWELS:
                i += 1  # the r of ar/er/ir/or/ur is not pronounced as a consonant
        elif letter == "c":
            out.append("s" if following[:1] in ("e", "i", "y") else "k")
            i += 1
        elif letter == "g":
            out.append("j" if following[:1] in ("e", "i") and following[1:2] not in ("", "t") else "g")
            i += 1
        elif rest.startswith("ng") and (rest[2:3] in ("e", "i", "y", "l")):
            out += ["ng", "g"] if rest[2:3] == "l" else ["n"]
            i += 2 if rest[2:3] == "l" else 1
        else:
            i += _consonant(rest, out)
    return out


def _consonant(rest: str, out: list[str]) -> int:
    """Append the sounds of the consonant letters `rest` starts with; returns how many letters they took."""
    letters, sounds = next((c for c in _CONSONANTS if rest.startswith(c[0])), (rest[0], ""))
    split = {"kw": ["k", "w"], "hw": ["h", "w"], "ks": ["k", "s"], "sk": ["s", "k"]}
    for sound in split.get(sounds, [sounds] if sounds else []):
        if not (out and out[-1] == sound):  # a doubled letter is one sound
            out.append(sound)
    return len(letters)


def _vowel(word: str, i: int, american: bool = False) -> str:
    """One vowel letter's sound from its surroundings: r-coloured, magic e, before another vowel, open or closed.

    `american`: the spelling casual writing often follows, a stressed short o as ㅏ (top → 탑, box → 박스) and an
    unstressed vowel before a final consonant as ㅓ (bottom → 바텀), a final ow as 오우 (yellow → 옐로우).
    """
    letter, after = word[i], word[i + 1 :]
    first = not any(c in _LETTER_VOWELS for c in word[:i])
    closed = re.match(r"[^aeiouy]{2}|[^aeiouy]$", after) is not None
    if american and letter == "o" and after == "w":
        return "ou"
    if american and letter == "o" and first and closed:
        return "a"
    if american and letter in "aeo" and not first and re.fullmatch(r"[^aeiouyrw]", after):
        return "eo"
    if after[:1] == "r" and after[1:2] not in _LETTER_VOWELS:
        return {"a": "a", "o": "o"}.get(letter, "eo")
    if letter == "a" and after[:2] in ("ll", "l") and after[2:3] not in _LETTER_VOWELS:
        return "o"
    magic = re.match(r"[^aeiouy]e$", after) is not None
    if letter == "i" and (magic or after[:1] in ("a", "o")):
        return "ai"
    if letter == "a" and magic:
        return "ei"
    if letter == "u":
        return "u" if (magic or not after or after[:1] in _LETTER_VOWELS) else "eo"
    if letter == "a":
        return "ae" if closed else "a"
    return {"e": "e", "i": "i", "o": "o"}[letter]


def transliterate(word: str, american: bool = False) -> str:
    """A Latin word in Hangul as a Korean loanword might spell it ('red' → '레드', 'circle' → '서클'); '' if the
    word has no Latin letters. `american`: the other spelling casual writing often uses ('top' → '탑')."""
    syllables: list[list[str]] = []  # [onset, vowel, coda, "short" or ""]
    pending: list[str] = []  # consonants waiting for a vowel
    glide = ""

    def place_consonants(final: bool) -> None:
        """Lone consonants: a coda on the syllable before when Korean allows it, else their own syllable + 으/이."""
        for k, c in enumerate(pending):
            open_before = bool(syllables) and syllables[-1][2] == ""
            after = pending[k + 1] if k + 1 < len(pending) else ("" if final else "v")
            stop_coda = syllables and syllables[-1][3] and (after == "" or after not in ("l", "r", "v"))
            if open_before and c in _CODA and (c not in "ptk" or stop_coda) and (k == 0 or c == "l"):
                syllables[-1][2] = _CODA[c]
            elif c == "ng":
                syllables.append(["ㅇ", "ㅡ", "ㅇ", ""])
            else:
                syllables.append([_ONSET[c], "ㅣ" if c in ("j", "ch") else "ㅡ", "", ""])
        pending.clear()

    for unit in _phonemes(re.sub(r"[^a-z]", "", word.lower()), american):
        if unit in ("w", "y"):
            glide = unit
            continue
        if unit not in _VOWEL and unit not in _DIPHTHONG:
            pending.append(unit)
            continue
        parts = _DIPHTHONG.get(unit, (unit,))
        onset_sound = pending.pop() if pending else ""
        if onset_sound == "l" and pending:  # a consonant + l cluster (bl, cl, gl): the l doubles as a coda
            pending.append("l")
        place_consonants(final=False)
        if onset_sound == "l" and syllables and syllables[-1][2] == "":
            syllables[-1][2] = "ㄹ"  # l between vowels is written ㄹㄹ (yellow → 옐로)
        if parts[0] == "yu":
            vowel = "ㅠ"
        else:
            vowel = _GLIDE.get((glide, parts[0]), _VOWEL[parts[0]])
        onset = "ㅇ" if onset_sound in ("", "ng") else _ONSET[onset_sound]
        if onset_sound == "sh" and vowel in "ㅏㅓㅗㅜ":
            vowel = {"ㅏ": "ㅑ", "ㅓ": "ㅕ", "ㅗ": "ㅛ", "ㅜ": "ㅠ"}[vowel]
        syllables.append([onset, vowel, "", "short" if len(parts) == 1 and parts[0] != "yu" else ""])
        syllables += [["ㅇ", _VOWEL[extra], "", ""] for extra in parts[1:]]
        glide = ""
    place_consonants(final=True)
    return "".join(compose(*s[:3]) for s in syllables)
