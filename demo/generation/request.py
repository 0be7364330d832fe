"""What a caller asks the image generator for and what it gets back, without the model libraries.

Kept apart from `demo.generation.pipeline` so the web app's forms, views and job queue can build and check
requests without importing torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

Progress = Callable[[int, int], None]  # (step, total) after every denoising step


class GenerationError(ValueError):
    """A request that cannot be generated, with a message meant for the person who sent it."""


class Cancelled(Exception):
    """Raised from the step callback when a caller asks to stop."""


@dataclass
class Request:
    prompt: str
    negative_prompt: str = ""
    seed: int | None = None  # None: a random seed, reported in the result
    steps: int | None = None
    guidance: float | None = None
    size: int | None = None
    num_images: int = 1
    refiner: bool | None = None  # None: the config's `refiner_default`
    refiner_strength: float | None = None
    init_image: Image.Image | None = None  # set for image→image
    strength: float | None = None  # image→image: how far from the uploaded image


@dataclass
class Result:
    images: list[Image.Image]
    seeds: list[int]
    parameters: list[dict]  # one per image, written into its PNG
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
