"""The embedded world: one coloured shape on a plain background, drawn deterministically at 64×64.

Every scene is fully described by five attributes, so a generated image can be scored by reading the
attributes back (`miniworld.scoring.SceneScorer`, whose classifier `miniworld.training.evaluator` trains).
Small random jitter in position, size and rotation keeps the models from memorising a fixed set of pixels.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from PIL import Image, ImageDraw

IMAGE_SIZE = 64
_SUPERSAMPLE = 4

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 140, 20),
    "yellow": (240, 220, 30),
    "green": (30, 170, 50),
    "blue": (30, 80, 225),
    "purple": (140, 40, 190),
}
SHAPES = ("circle", "square", "triangle", "star", "diamond")
SIZES = ("small", "large")
POSITIONS = ("left", "right", "top", "bottom", "center")
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
}

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "color": tuple(COLORS),
    "shape": SHAPES,
    "size": SIZES,
    "position": POSITIONS,
    "background": tuple(BACKGROUNDS),
}

_CENTERS = {"left": (16, 32), "right": (48, 32), "top": (32, 16), "bottom": (32, 48), "center": (32, 32)}
_RADII = {"small": 7.0, "large": 13.0}
_WHERE = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "center": "in the center",
}


@dataclass(frozen=True)
class Scene:
    """The five attributes that define a scene (values are the English words of `ATTRIBUTES`)."""

    color: str
    shape: str
    size: str
    position: str
    background: str

    def __post_init__(self) -> None:
        for name, allowed in ATTRIBUTES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}")

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def english_caption(scene: Scene) -> str:
    """The canonical English caption, e.g. 'a large red circle on the left on a white background'."""
    return f"a {scene.size} {scene.color} {scene.shape} {_WHERE[scene.position]} on a {scene.background} background"


def all_scenes() -> list[Scene]:
    """Every attribute combination, in a fixed order."""
    scenes: list[Scene] = []
    for color in ATTRIBUTES["color"]:
        for shape in SHAPES:
            for size in SIZES:
                for position in POSITIONS:
                    for background in BACKGROUNDS:
                        scenes.append(Scene(color, shape, size, position, background))
    return scenes


def random_scene(rng: random.Random) -> Scene:
    return Scene(**{name: rng.choice(values) for name, values in ATTRIBUTES.items()})


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        corners = [(45 + 90 * k, r * 1.05) for k in range(4)]
    elif shape == "diamond":
        corners = [(90 * k, r * 1.2) for k in range(4)]
    elif shape == "triangle":
        corners = [(-90 + 120 * k, r * 1.2) for k in range(3)]
    elif shape == "star":
        corners = [(-90 + 36 * k, r * 1.2 if k % 2 == 0 else r * 0.5) for k in range(10)]
    else:
        raise ValueError(f"not a polygon shape: {shape}")
    return [
        (cx + rad * math.cos(math.radians(deg + angle)), cy + rad * math.sin(math.radians(deg + angle)))
        for deg, rad in corners
    ]


def render(scene: Scene, seed: int) -> Image.Image:
    """Draw `scene` as a 64×64 RGB image; the same (scene, seed) always gives the same pixels."""
    rng = random.Random(seed)
    s = _SUPERSAMPLE
    image = Image.new("RGB", (IMAGE_SIZE * s, IMAGE_SIZE * s), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(image)
    cx, cy = map(float, _CENTERS[scene.position])
    cx += rng.uniform(-3, 3)
    cy += rng.uniform(-3, 3)
    r = _RADII[scene.size] * rng.uniform(0.88, 1.12)
    angle = rng.uniform(-10, 10)
    fill = COLORS[scene.color]
    if scene.shape == "circle":
        draw.ellipse([(cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s], fill=fill)
    else:
        draw.polygon([(x * s, y * s) for x, y in _polygon(scene.shape, cx, cy, r, angle)], fill=fill)
    return image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)


def sample(count: int, seed: int) -> Iterator[tuple[Scene, Image.Image]]:
    """`count` random scenes with their images, reproducible from `seed`."""
    rng = random.Random(seed)
    for _ in range(count):
        scene = random_scene(rng)
        yield scene, render(scene, rng.randrange(2**31))
