"""Frozen English teachers: each is a pipeline's text encoder, read the way that pipeline reads it.

SD2 feeds its UNet the last layer (after the final layer norm); SDXL (and its refiner) the penultimate layer
plus the projected pooled embedding. A `TeacherCache` stores their outputs for every distinct English sentence
on disk (float16, memory-mapped), so a long run computes each sentence once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoTokenizer, CLIPTextModel, CLIPTextModelWithProjection
from transformers.utils import logging as transformers_logging

from durable import save_directory_atomically
from ko_clip.modeling import Target


@contextmanager
def quiet_loading() -> Iterator[None]:
    level = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(level)


@dataclass(frozen=True)
class TeacherSpec:
    name: str
    path: str
    subfolder: str = "text_encoder"
    tokenizer_subfolder: str = "tokenizer"
    layer: str = "last"  # "last" (SD2) or "penultimate" (SDXL)
    pooled: bool = False  # whether the pipeline also takes the projected pooled embedding

    def __post_init__(self) -> None:
        if self.layer not in ("last", "penultimate"):
            raise ValueError(f"teacher {self.name}: layer must be 'last' or 'penultimate', not {self.layer!r}")


class Teacher:
    def __init__(
        self, spec: TeacherSpec, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> None:
        self.spec = spec
        self.device = torch.device(device)
        model_class = CLIPTextModelWithProjection if spec.pooled else CLIPTextModel
        with quiet_loading():  # a full CLIPModel checkpoint has vision weights the text model rightly skips
            model = model_class.from_pretrained(spec.path, subfolder=spec.subfolder, dtype=dtype)
        self.model = model.to(self.device).eval()  # type: ignore[arg-type]  # transformers' wrapped `to` reads as unbound to mypy
        self.tokenizer = AutoTokenizer.from_pretrained(spec.path, subfolder=spec.tokenizer_subfolder)
        self.model.requires_grad_(False)

    @property
    def target(self) -> Target:
        config = self.model.config
        return Target(
            name=self.spec.name,
            hidden_size=config.hidden_size,
            pooled_size=config.projection_dim if self.spec.pooled else 0,
            length=self.tokenizer.model_max_length,
        )

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token states (B, 77, d) and, for pooled teachers, the projected pooled embedding (B, p)."""
        ids = self.tokenizer(
            texts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.device)
        out = self.model(ids, output_hidden_states=self.spec.layer == "penultimate")
        tokens = out.last_hidden_state if self.spec.layer == "last" else out.hidden_states[-2]
        return tokens.float(), out.text_embeds.float() if self.spec.pooled else None


class TeacherCache:
    """Teacher outputs for a fixed list of sentences, as float16 arrays memory-mapped from `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.sentences: list[str] = json.loads((directory / "sentences.json").read_text(encoding="utf-8"))
        self.row = {s: i for i, s in enumerate(self.sentences)}
        self.tokens = np.load(directory / "tokens.npy", mmap_mode="r")
        pooled = directory / "pooled.npy"
        self.pooled = np.load(pooled, mmap_mode="r") if pooled.exists() else None

    def lookup(self, sentences: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        rows = np.array([self.row[s] for s in sentences])
        order = np.argsort(rows)  # memory maps read fastest in order
        inverse = np.argsort(order)
        tokens = torch.from_numpy(np.asarray(self.tokens[rows[order]])[inverse]).float()
        pooled = (
            None if self.pooled is None else torch.from_numpy(np.asarray(self.pooled[rows[order]])[inverse]).float()
        )
        return tokens, pooled

    @staticmethod
    def key(spec: TeacherSpec, sentences: list[str]) -> str:
        digest = hashlib.sha256(json.dumps([asdict(spec), sentences], ensure_ascii=False).encode())
        return f"{spec.name}-{digest.hexdigest()[:16]}"

    @classmethod
    def build(cls, teacher: Teacher, sentences: list[str], root: Path, batch_size: int = 256) -> TeacherCache:
        """Compute (or reuse) the cache for `sentences`; written to a temporary folder, then renamed.

        One writer at a time: under several processes the trainer lets the main process build it first.
        """
        directory = root / cls.key(teacher.spec, sentences)
        if (directory / "sentences.json").exists():
            return cls(directory)
        save_directory_atomically(lambda tmp: cls._write(teacher, sentences, batch_size, tmp), directory)
        return cls(directory)

    @staticmethod
    def _write(teacher: Teacher, sentences: list[str], batch_size: int, tmp: Path) -> None:
        target = teacher.target
        tokens = np.lib.format.open_memmap(
            tmp / "tokens.npy", mode="w+", dtype=np.float16, shape=(len(sentences), target.length, target.hidden_size)
        )
        pooled = (
            np.lib.format.open_memmap(
                tmp / "pooled.npy", mode="w+", dtype=np.float16, shape=(len(sentences), target.pooled_size)
            )
            if target.pooled_size
            else None
        )
        for start in tqdm(range(0, len(sentences), batch_size), desc=f"teacher {teacher.spec.name}"):
            t, p = teacher(sentences[start : start + batch_size])
            tokens[start : start + len(t)] = t.cpu().numpy()
            if pooled is not None:
                assert p is not None  # the target has a pooled output
                pooled[start : start + len(p)] = p.cpu().numpy()
        tokens.flush()
        if pooled is not None:
            pooled.flush()
        (tmp / "sentences.json").write_text(json.dumps(sentences, ensure_ascii=False), encoding="utf-8")
