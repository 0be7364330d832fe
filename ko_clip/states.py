"""Frozen backbone states, computed once per sentence and kept on disk.

With the backbone frozen (`frozen_layers`), its output for a sentence never changes, so recomputing it every
step is most of a step's cost. `StateCache` runs the frozen part once over every training text (each corpus
sentence, its augmented variants, and the English sentences) and serves padded batches from memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from ko_clip.modeling import KoreanStudent


class StateCache:
    def __init__(self, texts: list[str], states: torch.Tensor, offsets: torch.Tensor) -> None:
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
    def key(model: KoreanStudent, texts: list[str]) -> str:
        """The pretrained backbone (its source or path), the frozen depth and the texts name the states."""
        config = model.config
        backbone = config.backbone_source or config.backbone.get("_name_or_path", "")
        described = [backbone, config.frozen_layers, texts]
        return hashlib.sha256(json.dumps(described, ensure_ascii=False).encode()).hexdigest()[:16]

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
        """Load the cache for (`model`'s frozen part, `texts`) from `root`, computing and saving it if missing."""
        texts = sorted(set(texts))
        path = root / f"states-{cls.key(model, texts)}.pt"
        if path.exists():
            saved = torch.load(path)
            return cls(texts, saved["states"], saved["offsets"])
        was_training = model.training
        model.eval()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad little
        pieces: list[torch.Tensor | None] = [None] * len(texts)
        for start in tqdm(range(0, len(order), batch_size), desc="frozen backbone states"):
            chunk = order[start : start + batch_size]
            batch = tokenize([texts[i] for i in chunk])
            states = model.frozen_states(batch["input_ids"], batch["attention_mask"]).half().cpu()
            for row, i in enumerate(chunk):
                pieces[i] = states[row, : int(batch["attention_mask"][row].sum())]
        model.train(was_training)
        offsets = torch.tensor([0] + [len(p) for p in pieces]).cumsum(0)
        states = torch.cat(pieces)
        root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"states": states, "offsets": offsets}, tmp)
        tmp.rename(path)
        return cls(texts, states, offsets)
