"""Wall-clock timing of GPU or CPU work: the GPU's queue drained before and after each measurement."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def synchronised(device: torch.device, work: Callable[[], object]) -> float:
    """Seconds `work()` takes, the GPU's queue drained before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def best_of(runs: int, work: Callable[[], object], device: torch.device) -> float:
    """The fastest of `runs` synchronised timings of `work()`."""
    return min(synchronised(device, work) for _ in range(runs))
