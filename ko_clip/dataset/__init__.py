"""Corpus loading for ko_clip: parallel pairs in any supported format, and English-only prompt collections."""

from ko_clip.dataset.corpus import CorpusError, Pair, corpus_files, normalize, read_pairs, split_pairs
from ko_clip.dataset.english import read_english

__all__ = ["CorpusError", "Pair", "corpus_files", "normalize", "read_english", "read_pairs", "split_pairs"]
