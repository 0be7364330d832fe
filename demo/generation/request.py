"""What a caller asks the image generator for and what it gets back, without the model libraries.

Kept apart from `demo.generation.pipeline` so the web app's forms, views and job queue can build and check
requests without importing torch.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from PIL import Image

from demo.generation.config import GeneratorConfig
from demo.generation.errors import UserError
from demo.generation.images import ImageError, fit, to_rgb

Progress = Callable[[int, int], None]  # (step, total) after every denoising step


class GenerationError(UserError):
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


def validate(config: GeneratorConfig, request: Request) -> Request:
    """The request with defaults filled in, or a `GenerationError` that says what is wrong.

    Needs the config only, not the loaded models: a web front without a GPU validates what its workers will run.
    """
    c, limits = config, config.limits
    prompt = (request.prompt or "").strip()
    if not prompt:
        raise GenerationError("the prompt is empty")
    if len(prompt) > limits.max_prompt_chars or len(request.negative_prompt or "") > limits.max_prompt_chars:
        raise GenerationError(f"prompts may be at most {limits.max_prompt_chars} characters")
    filled = replace(
        request,
        prompt=prompt,
        negative_prompt=(request.negative_prompt or "").strip(),
        seed=secrets.randbelow(2**31) if request.seed is None else request.seed,
        refiner=c.refiner_default and c.refiner is not None if request.refiner is None else request.refiner,
        steps=c.steps if request.steps is None else request.steps,
        guidance=c.guidance if request.guidance is None else request.guidance,
        size=c.size if request.size is None else request.size,
        refiner_strength=c.refiner_strength if request.refiner_strength is None else request.refiner_strength,
        strength=c.img2img_strength if request.strength is None else request.strength,
    )
    checks = [
        (0 <= filled.seed < 2**32, "seed must be between 0 and 4294967295"),
        (1 <= filled.steps <= limits.max_steps, f"steps must be between 1 and {limits.max_steps}"),
        (0 <= filled.guidance <= limits.max_guidance, f"guidance must be between 0 and {limits.max_guidance}"),
        (filled.size in c.sizes, f"size must be one of {', '.join(map(str, c.sizes))}"),
        (1 <= filled.num_images <= limits.max_images, f"number of images must be between 1 and {limits.max_images}"),
        (0 < filled.refiner_strength <= 1, "refiner strength must be in (0, 1]"),
        (0 < filled.strength <= 1, "strength must be in (0, 1]"),
    ]
    for ok, message in checks:
        if not ok:
            raise GenerationError(message)
    if filled.init_image is not None and int(filled.steps * filled.strength) == 0:
        raise GenerationError(
            f"image→image runs int(steps × strength) steps: {filled.steps} × {filled.strength} is none; raise either"
        )
    if filled.refiner and c.refiner is None:
        raise GenerationError(f"the {c.name} configuration has no refiner")
    if filled.refiner and int(filled.steps * filled.refiner_strength) < 1:
        # the refiner would run no step at all and return no image
        raise GenerationError("with the refiner, steps × refiner strength must be at least 1")
    if filled.init_image is not None:
        try:
            filled.init_image = fit(to_rgb(filled.init_image), filled.size)
        except ImageError as error:
            raise GenerationError(str(error)) from error
    return filled


def total_steps(request: Request) -> int:
    """Denoising steps a validated request runs (what `progress` counts to): base or img2img, then refiner."""
    base_steps = request.steps if request.init_image is None else int(request.steps * request.strength)
    refiner_steps = int(request.steps * request.refiner_strength) if request.refiner else 0
    return max(1, base_steps) + refiner_steps
