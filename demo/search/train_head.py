"""Train the sentence head (`demo.search.sentence_head`) on translation pairs.

    python -m demo.vector_search train-head [--corpus miniworld:runs/miniworld-corpus ...] [--out DIR] [--steps 600]

Every pair's Korean and English go through the Korean encoder once (the token states of the search's head, kept in
memory as float16, at most `max_pairs` pairs). Sentences that share a translation form a group: an English
sentence and its Korean ones. Each step draws `batch` groups and two sentences of each, and teaches the head to find
each sentence's partner among the batch (a symmetric InfoNCE loss at `temperature`), so the head learns what tells
one sentence's meaning from another's, in either language. A share of the groups (`validation`, by digest) is held
out: every `eval_every` steps, how often a held-out Korean sentence finds its own English among them (top-1).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from demo.generation.config import resolve
from demo.search.embeddings import search_target
from demo.search.sentence_head import SentenceHead
from demo.search.service import SENTENCE_HEAD_DIR
from durable import save_directory_atomically
from ko_clip import KoreanPromptEncoder
from ko_clip.dataset import read_pairs
from ko_clip.train import corpus_sources

TRAINING_FILE = "training.json"


@dataclass
class HeadTraining:
    """How the sentence head is trained; the keys of `train-head`'s options.

    Args:
        corpus: Pair files or folders in any format `ko_clip` reads (`miniworld:DIR` writes the embedded corpus).
        korean_encoder: The encoder whose token states the head reads (a directory, relative to the repository
            when it is there, or a hub id).
        target: Its head to read (None: its first head with a pooled output, as the search picks).
        out: Where the trained head is written (atomically); None: `<korean_encoder>/sentence-head`, where search
            finds it by default (a local encoder directory only).
        steps: Optimiser steps.
        batch: Groups per step.
        lr: AdamW learning rate.
        temperature: The InfoNCE temperature.
        size: The sentence vectors' size.
        max_pairs: Pairs read at most (their states are held in memory).
        validation: The share of groups held out.
        eval_every: Steps between validations.
        seed: Seeds the draws and the head's initial weights.
    """

    corpus: list[str] = field(default_factory=lambda: ["miniworld:runs/miniworld-corpus"])
    korean_encoder: str = "miniworld/weights/ko-clip"
    target: str | None = None
    out: str | None = None
    steps: int = 600
    batch: int = 256
    lr: float = 1e-3
    temperature: float = 0.05
    size: int = 128
    max_pairs: int = 20_000
    validation: float = 0.1
    eval_every: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        wrong = [
            message
            for bad, message in (
                (self.steps < 1, f"steps must be at least 1, not {self.steps}"),
                (
                    self.batch < 2,
                    f"batch must be at least 2 (a sentence is told from the others), not {self.batch}",
                ),
                (self.size < 1, f"size must be at least 1, not {self.size}"),
                (self.max_pairs < 2, f"max_pairs must be at least 2, not {self.max_pairs}"),
                (not self.lr > 0, f"lr must be above 0, not {self.lr}"),
                (not self.temperature > 0, f"temperature must be above 0, not {self.temperature}"),
                (not 0 <= self.validation < 1, f"validation must be a share from 0 up to 1, not {self.validation}"),
                (self.eval_every < 1, f"eval_every must be at least 1, not {self.eval_every}"),
            )
            if bad
        ]
        if wrong:
            raise ValueError("; ".join(wrong))


@dataclass
class Sentences:
    """Every sentence's token states, its group, whether it is Korean, and whether its group is held out."""

    states: torch.Tensor  # (n, 77, width) float16
    groups: torch.Tensor  # (n,) group index
    korean: torch.Tensor  # (n,) bool
    held_out: torch.Tensor  # (n,) bool

    def subset(self, keep: torch.Tensor) -> Sentences:
        _, groups = torch.unique(self.groups[keep], return_inverse=True)
        return Sentences(self.states[keep], groups, self.korean[keep], self.held_out[keep])


def group_pairs(settings: HeadTraining) -> dict[str, list[str]]:
    """Each English sentence of the corpus with its Korean ones (read before any model loads, so a bad corpus
    fails fast)."""
    by_english: dict[str, list[str]] = defaultdict(list)
    for count, pair in enumerate(read_pairs(corpus_sources(settings.corpus))):
        if count == settings.max_pairs:
            break
        by_english[pair.en].append(pair.ko)
    if len(by_english) < 2:
        raise ValueError(f"the corpus has {len(by_english)} distinct English sentence(s); the head needs at least 2")
    return by_english


def encode_groups(
    by_english: dict[str, list[str]], encoder: KoreanPromptEncoder, target: str, validation: float
) -> Sentences:
    """Every sentence encoded once; a group is held out by its English's digest, so a run never reshuffles them."""
    texts, groups, korean, held = [], [], [], []
    for group, (english, koreans) in enumerate(by_english.items()):
        digest = int.from_bytes(hashlib.sha256(english.encode()).digest()[:8], "big")
        for text, is_korean in [(english, False)] + [(ko, True) for ko in koreans]:
            texts.append(text)
            groups.append(group)
            korean.append(is_korean)
            held.append(digest % 10_000 < validation * 10_000)
    states = []
    for start in tqdm(range(0, len(texts), 256), desc="encoding the corpus", unit="batch"):
        with torch.no_grad():
            states.append(encoder.encode(texts[start : start + 256], target).prompt_embeds.to(torch.float16))
    return Sentences(torch.cat(states), torch.tensor(groups), torch.tensor(korean), torch.tensor(held))


def draw_pairs(members: list[np.ndarray], batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two different sentences from each of `batch` different groups (fewer if there are fewer groups)."""
    groups = rng.choice(len(members), size=min(batch, len(members)), replace=False)
    chosen = np.stack([rng.choice(members[g], size=2, replace=False) for g in groups])
    return chosen[:, 0], chosen[:, 1]


def contrastive_loss(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE: row i of `a` should pick row i of `b`, and the other way round."""
    logits = a @ b.T / temperature
    labels = torch.arange(len(a))
    return (nn.functional.cross_entropy(logits, labels) + nn.functional.cross_entropy(logits.T, labels)) / 2


@torch.no_grad()
def translation_accuracy(head: SentenceHead, sentences: Sentences) -> float | None:
    """How often a Korean sentence's nearest English sentence (among these) is its own group's; None: no pairs."""
    english = (~sentences.korean).nonzero().squeeze(-1)
    korean = sentences.korean.nonzero().squeeze(-1)
    if not len(korean) or not len(english):
        return None
    vectors = torch.cat([head(chunk.float()) for chunk in sentences.states.split(512)])
    nearest = english[(vectors[korean] @ vectors[english].T).argmax(-1)]
    return float((sentences.groups[nearest] == sentences.groups[korean]).float().mean())


def output_directory(settings: HeadTraining) -> Path:
    """`settings.out`, or the encoder directory's `sentence-head` (never inside a hub cache's snapshot)."""
    if settings.out is not None:
        return Path(settings.out)
    encoder_dir = Path(resolve(settings.korean_encoder))
    if not encoder_dir.is_dir():
        raise ValueError(f"{settings.korean_encoder} is not a local encoder directory: pass --out DIR")
    return encoder_dir / SENTENCE_HEAD_DIR


def train(settings: HeadTraining) -> dict:
    """Train, write the head and its `training.json` to `output_directory(settings)`, and return that summary
    (with `out`, the directory written)."""
    out = output_directory(settings)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    by_english = group_pairs(settings)
    encoder = KoreanPromptEncoder.from_pretrained(resolve(settings.korean_encoder))
    target = search_target(encoder, settings.target)
    sentences = encode_groups(by_english, encoder, target, settings.validation)
    train_set, check_set = sentences.subset(~sentences.held_out), sentences.subset(sentences.held_out)
    members = [np.flatnonzero(train_set.groups.numpy() == g) for g in range(int(train_set.groups.max()) + 1)]
    members = [m for m in members if len(m) >= 2]
    if len(members) < 2:
        raise ValueError("too few training groups with two sentences (a Korean one and its English)")
    head = SentenceHead(width=sentences.states.shape[-1], size=settings.size, target=target)
    optimizer = torch.optim.AdamW(head.parameters(), lr=settings.lr)
    curve = []
    started = time.monotonic()
    for step in tqdm(range(1, settings.steps + 1), desc="training the sentence head", unit="step"):
        first, second = draw_pairs(members, settings.batch, rng)
        loss = contrastive_loss(
            head(train_set.states[first].float()), head(train_set.states[second].float()), settings.temperature
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % settings.eval_every == 0 or step == settings.steps:
            curve.append(
                {"step": step, "loss": round(loss.item(), 4), "accuracy": translation_accuracy(head, check_set)}
            )
    summary = {
        "settings": asdict(settings),
        "target": target,
        "sentences": {"train": len(train_set.groups), "validation": len(check_set.groups)},
        "curve": curve,
        "seconds": round(time.monotonic() - started, 1),
        "out": str(out),
    }

    def save(directory: Path) -> None:
        head.save_pretrained(directory)
        (directory / TRAINING_FILE).write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")

    save_directory_atomically(save, out)
    return summary
