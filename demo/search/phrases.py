"""Short queries against the short phrases inside each prompt: compare like with like.

A prompt's pooled vector describes the whole scene, and a short query's vector carries the defaults its encoder
fills in for everything the query leaves out (a size, a place, a background). So "노란 별" ranked yellow stars
that happen to share those defaults first and other shapes that share them next, before the rest of the yellow
stars. Each prompt therefore also keeps the vectors of its word spans (2 to `LONGEST` words), and a query of n
words is scored against the whole prompt and against its spans of at least n words: the best of these is its
score. A span shorter than the query cannot hold all it asks for, so it never counts; a query longer than
`LONGEST` words is scored on the whole prompt alone. docs/measurements/search_quality.md has the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHORTEST = 2  # a one-word span is a single attribute, never a description
LONGEST = 4  # the longest span kept; longer queries compare with whole prompts
MOST = 64  # spans kept per prompt, from its start (the subject of a long prompt comes first)


def words(text: str) -> list[str]:
    return text.split()


def spans(prompt: str) -> list[str]:
    """The prompt's distinct word spans of `SHORTEST` to `LONGEST` words, by position, at most `MOST`."""
    tokens = words(prompt)
    found: dict[str, None] = {}
    for start in range(len(tokens)):
        for length in range(SHORTEST, LONGEST + 1):
            if start + length <= len(tokens):
                found.setdefault(" ".join(tokens[start : start + length]))
    return list(found)[:MOST]


@dataclass(frozen=True)
class Phrases:
    """A prompt's span vectors.

    Args:
        vectors: (n, d) L2-normalised span vectors (float16 as stored).
        lengths: (n,) each span's length in words.
    """

    vectors: np.ndarray
    lengths: np.ndarray

    @classmethod
    def of(cls, texts: list[str], vectors: np.ndarray) -> Phrases:
        return cls(vectors.astype(np.float16), np.array([len(words(t)) for t in texts], dtype=np.uint8))

    def best(self, query: np.ndarray, query_words: int) -> float:
        """The best cosine similarity of a query of `query_words` words with a span at least as long (-1: none)."""
        usable = self.vectors[self.lengths >= max(query_words, SHORTEST)]
        return float((usable.astype(np.float32) @ query).max()) if len(usable) else -1.0


def is_short(query: str) -> bool:
    """Whether a query is short enough for spans to score it."""
    return len(words(query)) <= LONGEST
