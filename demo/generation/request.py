"""What a caller asks the image generator for and what it gets back, without the model libraries.

Kept apart from `demo.generation.pipeline` so the web app's forms, views and job queue can build and check
requests without importing torch.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from PIL import Image

from demo.generation.config import GeneratorConfig
from demo.generation.errors import N_, UserError
from demo.generation.images import ImageError, fit, to_rgb
from demo.generation.text import TextError, clean_text

Progress = Callable[[int, int], None]  # (step, total) after every denoising step
T = TypeVar("T")


class GenerationError(UserError):
    """A request that cannot be generated, with a message meant for the person who sent it."""


class Cancelled(Exception):
    """Raised from the step callback when a caller asks to stop."""


@dataclass
class Request:
    """One generation request, as callers send it; `validate` fills in the defaults (None) from the config.

    Args:
        prompt: The Korean (or any) prompt.
        negative_prompt: What to steer away from; empty for none.
        seed: The first image's seed, the next images' counting up from it (modulo 2**32); None: a random one,
            reported in the result.
        steps: Denoising steps of the base; None: the config's `steps`.
        guidance: Classifier-free guidance scale; None: the config's `guidance`.
        size: Width and height in pixels, one of the config's `sizes`; None: the config's `size`.
        num_images: Images to make from this prompt.
        refiner: Whether the SDXL refiner runs after the base; None: the config's `refiner_default`.
        refiner_strength: How much of the schedule the refiner redoes, in (0, 1]; None: the config's.
        init_image: The uploaded image for image→image; None for text→image.
        strength: Image→image: how far from the uploaded image, in (0, 1]; None: the config's `img2img_strength`.
    """

    prompt: str
    negative_prompt: str = ""
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    size: int | None = None
    num_images: int = 1
    refiner: bool | None = None
    refiner_strength: float | None = None
    init_image: Image.Image | None = None
    strength: float | None = None


@dataclass
class Result:
    """What a generation returns.

    Args:
        images: The images, in request order.
        seeds: Each image's seed.
        parameters: Each image's settings, as its PNG records them (`ImageGenerator.parameters`).
        notes: What the loaded models could not do for this request (e.g. a LoRA's text-encoder part left out).
        seconds: Wall time, waiting for the generator included.
    """

    images: list[Image.Image]
    seeds: list[int]
    parameters: list[dict]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


LABELS = {"num_images": "number of images", "refiner_strength": "refiner strength"}  # how errors name our fields
TRUE = {"1", "true", "on", "yes"}
FALSE = {"0", "false", "off", "no", ""}


class RequestError(GenerationError):
    """A field of a request that cannot be read or is out of its limits."""


def read_number(fields: Mapping[str, Any], name: str, kind: type = int, label: str | None = None) -> Any:
    """`fields[name]` as `kind` (int or float), from JSON numbers or form text; None when absent or blank."""
    label = label or name
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    whole = kind is int
    wrong = RequestError(
        N_("%(field)s must be a whole number") if whole else N_("%(field)s must be a number"),
        code="not_a_whole_number" if whole else "not_a_number",
        params={"field": label},
        field=name,
    )
    if isinstance(value, bool) or (whole and isinstance(value, float)) or not isinstance(value, (str, int, float)):
        raise wrong
    try:
        return kind(value)  # text of more than 4,300 digits is a ValueError too
    except (TypeError, ValueError, OverflowError):
        raise wrong from None


def read_flag(fields: Mapping[str, Any], name: str, label: str | None = None) -> bool | None:
    value = fields.get(name)
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int)) else "?"
    if text not in TRUE | FALSE:
        raise RequestError(
            N_("%(field)s must be true or false"), code="not_a_flag", params={"field": label or name}, field=name
        )
    return text in TRUE


def read_text(fields: Mapping[str, Any], name: str, label: str | None = None) -> str:
    """Text as the pipeline and the gallery take it: valid Unicode, control characters removed (`clean_text`)."""
    value = fields.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RequestError(N_("%(field)s must be text"), code="not_text", params={"field": label or name}, field=name)
    try:
        return clean_text(value, label or name)
    except TextError as error:
        raise RequestError(error.template, code=error.code, params=error.params, field=name) from None


def parse_request(
    fields: Mapping[str, Any],
    config: GeneratorConfig,
    *,
    labels: Mapping[str, str] | None = None,
    image: Callable[[int], Image.Image] | None = None,
) -> Request:
    """The one parser of a generation request, whichever API it came through: `fields` under our names (each API
    maps its own onto them: A1111's `cfg_scale` is `guidance`, OpenAI's `n` is `num_images`), `labels` the names
    its errors use for them, and `image(side)` the image→image upload decoded to a `side`×`side` square, called
    once every other field is valid. A validated request, or a `GenerationError` with a code and a reason."""
    labels = LABELS | dict(labels or {})
    name = lambda key: labels.get(key, key)  # noqa: E731
    num_images = read_number(fields, "num_images", int, name("num_images"))
    request = Request(
        prompt=read_text(fields, "prompt", name("prompt")),
        negative_prompt=read_text(fields, "negative_prompt", name("negative_prompt")),
        seed=read_number(fields, "seed", int, name("seed")),
        steps=read_number(fields, "steps", int, name("steps")),
        guidance=read_number(fields, "guidance", float, name("guidance")),
        size=read_number(fields, "size", int, name("size")),
        num_images=1 if num_images is None else num_images,
        refiner=read_flag(fields, "refiner", name("refiner")),
        refiner_strength=read_number(fields, "refiner_strength", float, name("refiner_strength")),
        strength=read_number(fields, "strength", float, name("strength")),
    )
    filled = validate(config, request, labels=labels, img2img=image is not None)
    if image is not None:
        try:
            filled.init_image = image(validated(filled.size))
        except ImageError as error:
            raise _image_error(error) from error
    return filled


def _image_error(error: ImageError) -> RequestError:
    return RequestError(error.template, code=error.code, params=error.params, field="init_image")


def _out_of_range(field: str, label: str, template: str, **params: Any) -> RequestError:
    return RequestError(template, code=f"{field}_out_of_range", params={"field": label, **params}, field=field)


def validate(
    config: GeneratorConfig, request: Request, *, labels: Mapping[str, str] | None = None, img2img: bool = False
) -> Request:
    """The request with defaults filled in, or a `GenerationError` that says what is wrong (`labels`: the names the
    caller's API uses for our fields; `img2img`: check as image→image before its upload is decoded).

    Needs the config only, not the loaded models: a web front without a GPU validates what its workers will run.
    """
    c, limits = config, config.limits
    labels = LABELS | dict(labels or {})
    prompt = (request.prompt or "").strip()
    if not prompt:
        raise RequestError(N_("the prompt is empty"), code="prompt_empty", field="prompt")
    if len(prompt) > limits.max_prompt_chars or len(request.negative_prompt or "") > limits.max_prompt_chars:
        raise RequestError(
            N_("prompts may be at most %(limit)d characters"),
            code="prompt_too_long",
            params={"limit": limits.max_prompt_chars},
            field="prompt" if len(prompt) > limits.max_prompt_chars else "negative_prompt",
        )
    # the defaults, filled in as typed locals: the checks below read these, not the Optional fields
    seed = secrets.randbelow(2**31) if request.seed is None else request.seed
    refiner = c.refiner_default and c.refiner is not None if request.refiner is None else request.refiner
    steps = c.steps if request.steps is None else request.steps
    guidance = c.guidance if request.guidance is None else request.guidance
    size = c.size if request.size is None else request.size
    refiner_strength = c.refiner_strength if request.refiner_strength is None else request.refiner_strength
    strength = c.img2img_strength if request.strength is None else request.strength
    filled = replace(
        request,
        prompt=prompt,
        negative_prompt=(request.negative_prompt or "").strip(),
        seed=seed,
        refiner=refiner,
        steps=steps,
        guidance=guidance,
        size=size,
        refiner_strength=refiner_strength,
        strength=strength,
    )
    between = N_("%(field)s must be between %(low)s and %(high)s")
    checks: list[tuple[bool, str, str, dict[str, Any]]] = [
        (0 <= seed < 2**32, "seed", between, {"low": 0, "high": 2**32 - 1}),
        (1 <= steps <= limits.max_steps, "steps", between, {"low": 1, "high": limits.max_steps}),
        (0 <= guidance <= limits.max_guidance, "guidance", between, {"low": 0, "high": limits.max_guidance}),
        (
            size in c.sizes,
            "size",
            N_("%(field)s must be one of %(sizes)s"),
            {"sizes": ", ".join(map(str, c.sizes))},
        ),
        (1 <= filled.num_images <= limits.max_images, "num_images", between, {"low": 1, "high": limits.max_images}),
        (0 < refiner_strength <= 1, "refiner_strength", N_("%(field)s must be in (0, 1]"), {}),
        (0 < strength <= 1, "strength", N_("%(field)s must be in (0, 1]"), {}),
    ]
    for ok, key, template, params in checks:
        if not ok:
            raise _out_of_range(key, labels.get(key, key), template, **params)
    if (img2img or filled.init_image is not None) and int(steps * strength) == 0:
        raise RequestError(
            N_("image→image runs int(steps × strength) steps: %(steps)s × %(strength)s is none; raise either"),
            code="img2img_no_steps",
            params={"steps": steps, "strength": strength},
            field="strength",
        )
    if refiner and c.refiner is None:
        raise RequestError(
            N_("the %(config)s configuration has no refiner"),
            code="no_refiner",
            params={"config": c.name},
            field="refiner",
        )
    if refiner and int(steps * refiner_strength) < 1:
        # the refiner would run no step at all and return no image
        raise RequestError(
            N_("with the refiner, steps × refiner strength must be at least 1"),
            code="refiner_no_steps",
            field="refiner",
        )
    if filled.init_image is not None:
        try:
            filled.init_image = fit(to_rgb(filled.init_image), size)
        except ImageError as error:
            raise _image_error(error) from error
    return filled


def validated(value: T | None) -> T:
    """A field of a validated request, typed without the None (“the config's default”) that `validate` fills."""
    if value is None:
        raise TypeError("the request was not validated: a field is still None")
    return value


def total_steps(request: Request) -> int:
    """Denoising steps a validated request runs (what `progress` counts to): base or img2img, then refiner."""
    steps = validated(request.steps)
    base_steps = steps if request.init_image is None else int(steps * validated(request.strength))
    refiner_steps = int(steps * validated(request.refiner_strength)) if request.refiner else 0
    return max(1, base_steps) + refiner_steps
