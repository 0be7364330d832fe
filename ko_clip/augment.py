"""Korean as people type it, made from any parallel corpus: no word lists, only the pairs themselves.

- spacing: all spaces dropped, or some neighbouring words merged;
- typos: the slips of the 두벌식 keyboard and of spelling by sound (`ko_clip.typos`);
- code-switching: a Korean word replaced by the English word it aligns to (Dice co-occurrence over the corpus);
- loanwords: the same aligned English word spelled in Hangul by `ko_clip.hangul.transliterate`, in its standard
  spelling or the one casual writing often uses (톱 or 탑);
- wrappers: a polite or verbose frame around the whole request, sometimes a filler word inside it;
- affixes (off unless set): a syllable of the corpus put before a word, or one of the word's later syllables
  replaced by one, so the student reads a word by its stem as derived words and synonyms share it (빨간 → 새빨간,
  왼쪽 → 왼편, 중앙 → 정중앙).

`AugmentConfig` switches each on or off; `variants` pre-generates a fixed list per sentence (seeded), so a
training run can cache the frozen backbone's states for each variant and resume exactly.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ko_clip.dataset import Pair
from ko_clip.hangul import is_syllable, transliterate
from ko_clip.typos import typo


@dataclass
class AugmentConfig:
    variants: int = 0  # augmented variants per Korean sentence (0: train on the corpus sentences only)
    no_space: float = 0.25  # probability, per variant, of each ingredient
    merge_space: float = 0.25
    typo: float = 0.25
    code_switch: float = 0.3
    loanword: float = 0.3
    wrapper: float = 0.15
    affix: float = 0.0
    min_dice: float = 0.1  # alignment threshold (with a precision of 0.8, see Aligner)
    # Ingredients to leave out (the ablation): variants that used one are not trained on. The pool of variants
    # stays the same, so runs that differ only here share their cached backbone states.
    drop: list[str] = field(default_factory=list)


INGREDIENTS = ("no_space", "merge_space", "typo", "code_switch", "loanword", "wrapper", "affix")


_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_LATIN = re.compile(r"^[a-z]+$")

# Frames around a request and fillers inside it. They carry no content words, only the politeness and chatter
# people add around and between what they ask for.
PREFIXES = ("", "안녕하세요. ", "혹시 ", "저기요, ", "부탁 하나 드려도 될까요? ", "음... ", "이번에는 ",
            "그림 부탁해요: ", "제가 보고 싶은 그림은요, ", "오늘은 이런 걸 그려 보고 싶어요. ",
            "바쁘시겠지만 ", "다름이 아니라 ", "이런 이미지가 필요해요: ", "생각해 둔 장면이 있는데요, ",
            "간단한 그림 하나만요. ")  # fmt: skip
SUFFIXES = ("", " 그려 주세요", " 그려주실 수 있나요?", " 부탁드립니다", " 만들어 줘", " 보여 주실래요?",
            " 감사합니다!", " 이렇게요", " 이런 느낌으로 부탁해요.", " 가능할까요?", " 정도로 그려 주시면 돼요",
            " 잘 부탁드려요~", " 미리 감사드려요!", " 이면 좋겠어요", " 인 그림이요")  # fmt: skip
FILLERS = ("음", "그러니까", "아", "뭐랄까", "있잖아요", "그리고", "어")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class Aligner:
    """Korean word → English word by the Dice coefficient of their sentence co-occurrence over the corpus.

    A link also needs the English word in at least `min_precision` of the Korean word's sentences, so a word that
    merely co-occurs often (a verb, a particle) is not linked. Words in more than `max_share` of the sentences on
    either side are left out: they co-occur with everything (articles, 'background' in a one-background-per-
    caption corpus) and Dice cannot place them.
    """

    def __init__(
        self, pairs: Iterable[Pair], min_dice: float = 0.1, min_precision: float = 0.8, max_share: float = 0.6
    ) -> None:
        korean: Counter[str] = Counter()
        english: Counter[str] = Counter()
        both: Counter[tuple[str, str]] = Counter()
        n = 0
        for pair in pairs:
            ko_words, en_words = set(pair.ko.split()), {w for w in words(pair.en) if _LATIN.match(w)}
            korean.update(ko_words)
            english.update(en_words)
            both.update((a, b) for a in ko_words for b in en_words)
            n += 1
        english_kept = {w for w, c in english.items() if c <= max_share * n}
        # ties (words that always appear together, as 'in' and 'center' in 'in the center') go to the longer
        # English word, the content word, and then alphabetically: the table never depends on set order
        best: dict[str, tuple[float, int, str]] = {}
        for (k, e), c in both.items():
            if e not in english_kept or korean[k] > max_share * n or korean[k] < 3:
                continue
            dice = 2 * c / (korean[k] + english[e])
            rank = (dice, len(e), e)
            if c / korean[k] >= min_precision and dice >= min_dice and rank > best.get(k, (0.0, 0, ""))[:3]:
                best[k] = rank
        self.table = {k: e for k, (_, _, e) in best.items()}
        self.vocabulary = set(korean)  # every Korean word of the corpus, as written
        self.syllables = sorted({c for word in korean for c in word if is_syllable(c)})

    def english(self, korean_word: str) -> tuple[str, str] | None:
        """(English word, Korean ending kept after it) for a Korean word, or None if it aligns to nothing.

        A word whose stem (the word less its last syllable) aligns to the same English word keeps that last
        syllable as an ending (원이 → circle이), which is how particles are attached to English words in Korean.
        """
        if korean_word not in self.table:
            return None
        english = self.table[korean_word]
        stem, ending = korean_word[:-1], korean_word[-1:]
        return (english, ending) if self.table.get(stem) == english else (english, "")


def _misspelled(word: str, vocabulary: set[str], rng: random.Random) -> str:
    """A typo of `word` that is not itself a word of the corpus: 삼각형 → 사각형 would teach the wrong shape."""
    for _ in range(5):
        out = typo(word, rng)
        if out not in vocabulary:
            return out
    return word


def _affixed(word: str, syllables: list[str], rng: random.Random) -> str:
    """`word` with a syllable put before it or, half the time, one of its later syllables replaced."""
    if not is_syllable(word[:1]):
        return word
    later = [i for i, c in enumerate(word) if i and is_syllable(c)]
    if later and rng.random() < 0.5:
        i = rng.choice(later)
        return word[:i] + rng.choice(syllables) + word[i + 1 :]
    return rng.choice(syllables) + word


def _change_some(tokens: list[str], change: Callable[[str], str], rng: random.Random) -> None:
    """`change` a quarter of the words (at least one), in place."""
    for j in rng.sample(range(len(tokens)), max(1, len(tokens) // 4)):
        tokens[j] = change(tokens[j])


def augment(text: str, aligner: Aligner, config: AugmentConfig, rng: random.Random) -> tuple[str, set[str]]:
    """One augmented variant of a Korean sentence and the ingredients it used (drawn independently; at least one
    changes the text, unless none can)."""
    for _ in range(10):
        tokens, used = text.split(), set()
        if rng.random() < config.code_switch or rng.random() < config.loanword:
            switch = rng.random() < config.code_switch / max(config.code_switch + config.loanword, 1e-9)
            for j, token in enumerate(tokens):
                found = aligner.english(token)
                if found and rng.random() < 0.5:
                    english, ending = found
                    spelled = english if switch else transliterate(english, american=rng.random() < 0.5)
                    tokens[j] = spelled + (ending if rng.random() < 0.5 else "")
                    used.add("code_switch" if switch else "loanword")
        if rng.random() < config.typo:
            _change_some(tokens, lambda word: _misspelled(word, aligner.vocabulary, rng), rng)
            used.add("typo")
        if config.affix and rng.random() < config.affix:  # drawn only when on: pools without it stay as they were
            _change_some(tokens, lambda word: _affixed(word, aligner.syllables, rng), rng)
            used.add("affix")
        out = " ".join(tokens)
        if rng.random() < config.wrapper:
            if len(tokens) > 2 and rng.random() < 0.5:
                tokens.insert(rng.randrange(1, len(tokens)), rng.choice(FILLERS) + rng.choice(("", ",", "...")))
            out = rng.choice(PREFIXES) + " ".join(tokens) + rng.choice(SUFFIXES)
            used.add("wrapper")
        if rng.random() < config.no_space:
            out = out.replace(" ", "")
            used.add("no_space")
        elif rng.random() < config.merge_space:
            out = re.sub(" ", lambda m: "" if rng.random() < 0.5 else " ", out)
            used.add("merge_space")
        if out != text:
            break
    return out, used


def variants(pairs: list[Pair], config: AugmentConfig, seed: int = 0) -> tuple[list[list[str]], list[str]]:
    """(for each pair: its Korean sentence and the augmented variants whose ingredients are not dropped,
    every variant of the pool): `config.variants` per pair, fixed by `seed`."""
    unknown = set(config.drop) - set(INGREDIENTS)
    if unknown:
        raise ValueError(f"augment.drop: unknown ingredient(s) {', '.join(sorted(unknown))}; expected {INGREDIENTS}")
    if not config.variants:
        return [[p.ko] for p in pairs], []
    aligner = Aligner(pairs, config.min_dice)
    rng = random.Random(seed)
    kept, pool = [], []
    for pair in pairs:
        made = [augment(pair.ko, aligner, config, rng) for _ in range(config.variants)]
        pool += [text for text, _ in made]
        kept.append([pair.ko] + [text for text, used in made if not used & set(config.drop)])
    return kept, pool
