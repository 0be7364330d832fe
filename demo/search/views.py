"""A record's views besides its prompt's pooled vector, and how a text query is scored with them.

- **Word spans, for short queries.** A prompt's pooled vector describes the whole scene, and a short query's
  vector carries the defaults its encoder fills in for everything the query leaves out (a size, a place, a
  background). So "노란 별" ranked yellow stars that happen to share those defaults first and other shapes that
  share them next, before the rest of the yellow stars. Each prompt therefore also keeps the vectors of its word
  spans (`SHORTEST` to `LONGEST` words), and a query of n words is scored against the whole prompt and its spans of
  at least n words: the best of these is its score. A span shorter than the query cannot hold all it asks for, so
  it never counts.
- **The sentence vector, for longer queries.** The sentence head (`demo.search.sentence_head`) reads what the
  pooled vector weighs lightly (where a shape is, most of all); a query longer than `LONGEST` words scores the mean
  of the two cosines, pooled and sentence.

docs/measurements/search_quality.md has the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHORTEST = 2  # a one-word span is a single attribute, never a description
LONGEST = 4  # the longest span kept; longer queries compare with whole prompts
MOST = 64  # spans kept per prompt, from its start (the subject of a long prompt comes first)


def words(text: str) -> list[str]:
    return text.split()


def is_short(query: str) -> bool:
    """Whether a query is short enough for spans to score it."""
    return len(words(query)) <= LONGEST


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


@dataclass(frozen=True)
class RecordViews:
    """What a record keeps for re-scoring text queries.

    Args:
        phrases: Its prompt's span vectors.
        sentence: Its prompt's sentence vector (float16); None without a sentence head.
    """

    phrases: Phrases
    sentence: np.ndarray | None


def short_query_score(pooled: float, views: RecordViews, query: np.ndarray, query_words: int) -> float:
    """The best of the whole prompt's cosine and its long-enough spans'."""
    return max(pooled, views.phrases.best(query, query_words))


def sentence_score(pooled: float, views: RecordViews, query_sentence: np.ndarray) -> float:
    """The mean of the pooled and the sentence cosines."""
    assert views.sentence is not None  # sentence queries are re-scored only with a sentence head
    return (pooled + float(views.sentence.astype(np.float32) @ query_sentence)) / 2
