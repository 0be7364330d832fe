"""Parallel-corpus loading for ko_clip."""

from ko_clip.dataset.corpus import CorpusError, Pair, corpus_files, normalize, read_pairs, split_pairs

__all__ = ["CorpusError", "Pair", "corpus_files", "normalize", "read_pairs", "split_pairs"]
