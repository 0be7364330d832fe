"""A CLIP-format BPE tokenizer trained on the miniworld English captions."""

from __future__ import annotations

import json
import string
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import CLIPTokenizer

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 77


def train_clip_tokenizer(texts: Iterable[str], vocab_size: int = 320) -> CLIPTokenizer:
    """Train byte-pair merges with the end-of-word suffix CLIP uses, and wrap them as a `CLIPTokenizer`.

    Every lowercase letter and digit is in the alphabet, so unseen English words still tokenize.
    """
    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    bpe.normalizer = normalizers.Lowercase()
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    alphabet = list(string.ascii_lowercase + string.digits + string.punctuation)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS],
        initial_alphabet=alphabet,
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    state = json.loads(bpe.to_str())["model"]
    vocab: dict[str, int] = dict(state["vocab"])
    for char in alphabet:  # CLIP splits the last character of a word off with the suffix attached
        vocab.setdefault(char + "</w>", len(vocab))
    merges = [" ".join(m) if isinstance(m, list) else m for m in state["merges"]]
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file, merges_file = Path(tmp, "vocab.json"), Path(tmp, "merges.txt")
        vocab_file.write_text(json.dumps(vocab, ensure_ascii=False))
        merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
        return CLIPTokenizer(vocab=str(vocab_file), merges=str(merges_file), model_max_length=MAX_LENGTH)
