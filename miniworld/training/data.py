"""Rendered training scenes, cached on disk so every training stage reads the same pixels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from durable import save_atomically
from miniworld.world import ATTRIBUTES, Scene, english_caption, sample


@dataclass
class SceneSet:
    images: torch.Tensor  # uint8, (N, 3, 64, 64)
    labels: torch.Tensor  # int64, (N, 5): index of each attribute value, in ATTRIBUTES order

    def __len__(self) -> int:
        return self.images.shape[0]

    def scene(self, i: int) -> Scene:
        return Scene(**{name: ATTRIBUTES[name][int(k)] for name, k in zip(ATTRIBUTES, self.labels[i])})

    def captions(self) -> list[str]:
        return [english_caption(self.scene(i)) for i in range(len(self))]

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        """Images of `index` as floats in [-1, 1]."""
        return self.images[index].float() / 127.5 - 1.0


def render_set(count: int, seed: int) -> SceneSet:
    images = np.empty((count, 3, 64, 64), dtype=np.uint8)
    labels = np.empty((count, len(ATTRIBUTES)), dtype=np.int64)
    for i, (scene, image) in enumerate(tqdm(sample(count, seed), total=count, desc="rendering scenes")):
        images[i] = np.asarray(image).transpose(2, 0, 1)
        labels[i] = [ATTRIBUTES[name].index(getattr(scene, name)) for name in ATTRIBUTES]
    return SceneSet(torch.from_numpy(images), torch.from_numpy(labels))


def load_scenes(cache_dir: Path, count: int = 24000, seed: int = 0) -> SceneSet:
    """The training scenes, rendered once and then read from `cache_dir`."""
    path = cache_dir / f"scenes-{count}-{seed}.pt"
    if path.exists():
        return SceneSet(**torch.load(path))
    scenes = render_set(count, seed)
    save_atomically(lambda tmp: torch.save({"images": scenes.images, "labels": scenes.labels}, tmp), path)
    return scenes
