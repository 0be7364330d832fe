"""Image generator configuration: a YAML file (shipped: `embedded`, `embedded-sdxl`, `sd2-sdxl`, `sdxl`, `sd15`) read
once into a typed dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
REPO = Path(__file__).resolve().parents[2]


def resolve(value: str) -> str:
    """A model location from a config: relative local paths are relative to the repository; hub ids stay as they are."""
    local = REPO / value
    return str(local) if not Path(value).is_absolute() and local.exists() else value


@dataclass
class Limits:
    max_steps: int = 100
    max_images: int = 4
    max_prompt_chars: int = 300
    max_guidance: float = 20.0


@dataclass
class Lora:
    path: str  # a LoRA .safetensors file (diffusers, kohya or PEFT layout) or a directory holding one
    weight: float = 1.0


@dataclass
class Guide:
    """What the form tells a newcomer about the model: prompts to start from, and the world it knows."""

    examples: list[str] = field(default_factory=list)  # shown as one-click prompts on the forms
    world: str | None = None  # "miniworld": the embedded models, whose vocabulary the form lists; None: no note


@dataclass
class GeneratorConfig:
    name: str
    base: str  # a pipeline directory or hub id (SD 1.x, 2.x or XL), or a single-file checkpoint (.safetensors)
    korean_encoder: str  # ko_clip encoder directory or hub id
    refiner: str | None = None  # StableDiffusionXLImg2ImgPipeline directory or hub id
    family: str | None = None  # sd15, sd2, sdxl; None: detected from the base's model_index.json
    base_config: str | None = None  # single-file base: the family's pipeline layout (directory or hub id)
    base_towers: list[str] | None = None  # names of the base's text towers (head names); None: the family's own
    refiner_towers: list[str] | None = None  # likewise for the refiner
    loras: list[Lora] = field(default_factory=list)  # loaded into the base's UNet, each at its weight
    variant: str | None = None  # e.g. "fp16" for the hub checkpoints
    device: str = "auto"  # auto: cuda when available, else cpu
    dtype: str = "auto"  # auto: float16 on cuda, float32 on cpu
    size: int = 64  # default width and height
    sizes: list[int] = field(default_factory=lambda: [64])
    steps: int = 25
    guidance: float = 5.0
    refiner_strength: float = 0.3
    refiner_default: bool = True  # whether a request that does not say runs the refiner
    refiner_guidance: float | None = None  # the refiner's own guidance scale; None: the request's guidance
    img2img_strength: float = 0.6
    attention: str = "auto"  # auto: xformers when installed on cuda, else PyTorch SDPA
    compile: bool = False  # torch.compile the UNets
    cpu_offload: bool = False  # enable_model_cpu_offload, for small GPUs
    limits: Limits = field(default_factory=Limits)
    guide: Guide = field(default_factory=Guide)


def shipped_configs() -> list[str]:
    """The names `load_config` takes besides a path: the files of `configs/`."""
    return sorted(path.stem for path in CONFIG_DIR.glob("*.yaml"))


def config_help() -> str:
    """The `--config` help of every command that builds a generator."""
    return f"generator config: a YAML path, or one of {', '.join(shipped_configs())}"


def load_config(name_or_path: str | Path) -> GeneratorConfig:
    path = Path(name_or_path)
    if not path.exists():
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        shipped = ", ".join(shipped_configs())
        raise ValueError(f"no generator config {name_or_path!r} (a YAML path, or one of: {shipped})")
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    known = {f.name for f in dataclasses.fields(GeneratorConfig)}
    if unknown := set(values) - known:
        raise ValueError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    try:
        values["limits"] = Limits(**values.get("limits", {}))
        loras = values.get("loras") or []
        values["guide"] = Guide(**values.get("guide", {}))
        values["loras"] = [Lora(path=item) if isinstance(item, str) else Lora(**item) for item in loras]
        return GeneratorConfig(**values)
    except TypeError as error:
        raise ValueError(f"{path}: {error}") from error
