"""Frozen backbone states, computed once per sentence and kept on disk.

With the backbone frozen (`frozen_layers`), its output for a sentence never changes, so recomputing it every
step is most of a step's cost. `StateCache` runs the frozen part once over every training text (each corpus
sentence, its augmented variants, and the English sentences) and serves padded batches from memory.

One file per frozen part (backbone and depth) holds every text computed so far; a run that needs new texts
(another augmentation recipe, a larger pool of variants) computes only those and adds them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import cast

import torch
from tqdm import tqdm

from durable import save_atomically
from ko_clip.modeling import KoreanStudent


class StateCache:
    def __init__(self, texts: list[str], states: torch.Tensor, offsets: torch.Tensor) -> None:
        self.texts = texts
        self.row = {text: i for i, text in enumerate(texts)}
        self.states = states  # (total tokens, width) float16, every text's tokens one after another
        self.offsets = offsets  # (len(texts) + 1,) start of each text's tokens

    def lookup(self, texts: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(states (B, T, width) float32 zero-padded, attention mask (B, T)) for texts of the cache."""
        spans = [(int(self.offsets[i]), int(self.offsets[i + 1])) for i in (self.row[t] for t in texts)]
        length = max(end - start for start, end in spans)
        states = torch.zeros(len(texts), length, self.states.shape[1])
        mask = torch.zeros(len(texts), length, dtype=torch.long)
        for b, (start, end) in enumerate(spans):
            states[b, : end - start] = self.states[start:end].float()
            mask[b, : end - start] = 1
        return states.to(device), mask.to(device)

    @staticmethod
    def key(model: KoreanStudent) -> str:
        """The pretrained backbone (its source or path) and the frozen depth name the file."""
        config = model.config
        backbone = config.backbone_source or config.backbone.get("_name_or_path", "")
        return hashlib.sha256(json.dumps([backbone, config.frozen_layers]).encode()).hexdigest()[:16]

    @classmethod
    def load(cls, path: Path) -> StateCache:
        if not path.exists():
            return cls([], torch.zeros(0, 0, dtype=torch.float16), torch.zeros(1, dtype=torch.long))
        saved = torch.load(path)
        return cls(saved["texts"], saved["states"], saved["offsets"])

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        model: KoreanStudent,
        tokenize: Callable[[list[str]], dict],
        texts: list[str],
        root: Path,
        batch_size: int = 64,
    ) -> StateCache:
        """The cache of `model`'s frozen part from `root`, with the states of any of `texts` it lacks computed
        and saved (written to a temporary file, then renamed: a kill never leaves a partial cache)."""
        path = root / f"states-{cls.key(model)}.pt"
        cache = cls.load(path)
        missing = sorted(set(texts) - set(cache.row))
        if not missing:
            return cache
        was_training = model.training
        model.eval()
        order = sorted(range(len(missing)), key=lambda i: len(missing[i]))  # similar lengths pad little
        pieces: list[torch.Tensor | None] = [None] * len(missing)
        for start in tqdm(range(0, len(order), batch_size), desc="frozen backbone states"):
            chunk = order[start : start + batch_size]
            batch = tokenize([missing[i] for i in chunk])
            states = model.frozen_states(batch["input_ids"], batch["attention_mask"]).half().cpu()
            for row, i in enumerate(chunk):
                pieces[i] = states[row, : int(batch["attention_mask"][row].sum())]
        model.train(was_training)
        filled = cast(list[torch.Tensor], pieces)  # every piece is set by now
        lengths = torch.tensor([len(p) for p in filled])
        offsets = torch.cat([cache.offsets, cache.offsets[-1] + lengths.cumsum(0)])
        states = torch.cat(([cache.states] if cache.texts else []) + filled)
        merged = cls(cache.texts + missing, states, offsets)
        saved = {"texts": merged.texts, "states": merged.states, "offsets": merged.offsets}
        save_atomically(lambda tmp: torch.save(saved, tmp), path)  # runs sharing the cache never share a temporary
        return merged
