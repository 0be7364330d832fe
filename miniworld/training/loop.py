"""What every training script shares: seeding, the learning-rate schedule, and resumable checkpoints."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from durable import save_atomically

RUNS = Path("runs/miniworld")


def setup(seed: int, threads: int = 2) -> torch.Generator:
    """Fix every seed and the thread count; returns a generator for batch sampling."""
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def learning_rate(step: int, max_lr: float, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of `max_lr`."""
    if step < warmup:
        return max_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return max_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def save_checkpoint(path: Path, **state: Any) -> None:
    """Write atomically, so a kill mid-write leaves the previous checkpoint intact."""
    save_atomically(lambda tmp: torch.save(state, tmp), path)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    return torch.load(path, weights_only=False) if path.exists() else None
