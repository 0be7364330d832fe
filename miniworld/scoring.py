"""Score generated images against the scene their prompt describes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import CLIPModel, CLIPTokenizer

from miniworld.components import AttributeClassifier
from miniworld.paths import CLIP_DIR, EVALUATOR_DIR
from miniworld.tokenizer import MAX_LENGTH
from miniworld.world import ATTRIBUTES, Scene, english_caption


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """PIL images → (B, 3, H, W) floats in [-1, 1]."""
    arrays = np.stack([np.asarray(image.convert("RGB"), dtype=np.float32) for image in images])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2) / 127.5 - 1.0


@dataclass
class Report:
    n: int
    all_correct: float
    per_attribute: dict[str, float]
    clip_score: float

    def as_dict(self) -> dict:
        return {
            "all_correct": self.all_correct,
            "per_attribute": self.per_attribute,
            "clip_score": self.clip_score,
            "n": self.n,
        }


class SceneScorer:
    """Reads attributes with the miniworld classifier and measures CLIP image–text agreement.

    The CLIP score (100 × cosine, floored at 0, as in the usual CLIPScore) compares each image with the
    canonical English caption of its scene, so Korean and English prompts are scored on the same scale.
    """

    def __init__(self, evaluator_dir: Path = EVALUATOR_DIR, clip_dir: Path = CLIP_DIR) -> None:
        self.classifier = AttributeClassifier.from_pretrained(evaluator_dir).eval()
        self.clip = CLIPModel.from_pretrained(clip_dir).eval()
        self.tokenizer = CLIPTokenizer.from_pretrained(clip_dir)

    @torch.no_grad()
    def read(self, images: list[Image.Image]) -> list[dict[str, str]]:
        return self.classifier.predict(to_tensor(images))

    @torch.no_grad()
    def clip_scores(self, images: list[Image.Image], scenes: list[Scene]) -> torch.Tensor:
        ids = self.tokenizer(
            [english_caption(s) for s in scenes], padding="max_length", max_length=MAX_LENGTH, return_tensors="pt"
        ).input_ids
        text = F.normalize(self.clip.get_text_features(input_ids=ids).pooler_output, dim=-1)
        image = F.normalize(self.clip.get_image_features(pixel_values=to_tensor(images)).pooler_output, dim=-1)
        return 100 * (text * image).sum(-1).clamp(min=0)

    def score(self, images: list[Image.Image], scenes: list[Scene]) -> Report:
        if not images or len(images) != len(scenes):
            raise ValueError(f"need one scene per image, got {len(images)} images and {len(scenes)} scenes")
        read = self.read(images)
        hits = {name: [r[name] == getattr(s, name) for r, s in zip(read, scenes)] for name in ATTRIBUTES}
        all_correct = [all(hits[name][i] for name in ATTRIBUTES) for i in range(len(images))]
        return Report(
            n=len(images),
            all_correct=float(np.mean(all_correct)),
            per_attribute={name: float(np.mean(h)) for name, h in hits.items()},
            clip_score=float(self.clip_scores(images, scenes).mean()),
        )
