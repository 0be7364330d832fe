"""Stable Diffusion families: the pipeline classes a checkpoint needs and the text towers each pipeline reads.

Every family the product drives reads one or two of three CLIP text towers, each at a fixed layer:

| family | pipeline | reads |
|---|---|---|
| `sd15` | `StableDiffusionPipeline` | CLIP ViT-L/14, last layer |
| `sd2` | `StableDiffusionPipeline` | OpenCLIP ViT-H/14, last layer |
| `sdxl` | `StableDiffusionXLPipeline` | CLIP ViT-L/14 + OpenCLIP ViT-bigG/14, penultimate, side by side; bigG pooled |
| `sdxl-refiner` | `StableDiffusionXLImg2ImgPipeline` | OpenCLIP ViT-bigG/14, penultimate layer + pooled |

A Korean encoder has one head per tower and layer, named `"<tower>:<layer>"` (`openclip-vit-bigg-14:penultimate`),
so one encoder drives every family whose towers it was distilled onto, and the SDXL base and refiner share a head.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffusers import (
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLPipeline,
)

# What each real text tower is called in head names, and how wide its states are (how the sd family tells 1.x
# from 2.x: both read `text_encoder`'s last layer).
CLIP_L, OPENCLIP_H, OPENCLIP_BIGG = "clip-vit-l-14", "openclip-vit-h-14", "openclip-vit-bigg-14"
TOWER_BY_WIDTH = {768: CLIP_L, 1024: OPENCLIP_H}

# A diffusers pipeline: its classes and their LoRA, offload and component mixins carry no usable type hints, so the
# generator holds them as this name rather than as `DiffusionPipeline` (which declares none of those methods).
Pipeline = Any


@dataclass(frozen=True)
class TowerRead:
    """One text encoder of a pipeline, read the way that pipeline reads it."""

    subfolder: str  # the pipeline component: text_encoder or text_encoder_2
    tokenizer: str  # its tokenizer component
    layer: str  # "last" or "penultimate"
    pooled: bool  # whether the pipeline also takes this tower's projected pooled embedding
    tower: str  # the tower's name, e.g. clip-vit-l-14

    @property
    def head(self) -> str:
        """The Korean encoder head that imitates this read."""
        return f"{self.tower}:{self.layer}"


@dataclass(frozen=True)
class Family:
    name: str
    # DiffusionPipeline classes; `type[Pipeline]`: diffusers' pipelines and their mixins carry no usable type hints
    text2img: type[Pipeline]
    img2img: type[Pipeline]
    reads: tuple[tuple[str, str, str, bool], ...]  # (subfolder, tokenizer, layer, pooled) per text encoder
    towers: tuple[str, ...]  # the real checkpoints' tower names, in `reads` order

    def tower_reads(self, towers: list[str] | None = None) -> list[TowerRead]:
        """The reads with tower names: `towers` (a config's, e.g. the embedded models') or the real ones."""
        names = list(towers or self.towers)
        if len(names) != len(self.reads):
            raise ValueError(f"the {self.name} family reads {len(self.reads)} text tower(s), not {len(names)}")
        return [TowerRead(*read, tower=name) for read, name in zip(self.reads, names)]

    @property
    def text_encoders(self) -> list[str]:
        return [read[0] for read in self.reads]


_SD = (("text_encoder", "tokenizer", "last", False),)
_XL = (("text_encoder", "tokenizer", "penultimate", False), ("text_encoder_2", "tokenizer_2", "penultimate", True))
_REFINER = (("text_encoder_2", "tokenizer_2", "penultimate", True),)
SD_PIPES = (StableDiffusionPipeline, StableDiffusionImg2ImgPipeline)
XL_PIPES = (StableDiffusionXLPipeline, StableDiffusionXLImg2ImgPipeline)
FAMILIES = {
    "sd15": Family("sd15", *SD_PIPES, _SD, (CLIP_L,)),
    "sd2": Family("sd2", *SD_PIPES, _SD, (OPENCLIP_H,)),
    "sdxl": Family("sdxl", *XL_PIPES, _XL, (CLIP_L, OPENCLIP_BIGG)),
    "sdxl-refiner": Family("sdxl-refiner", StableDiffusionXLImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline,
                           _REFINER, (OPENCLIP_BIGG,)),
}  # fmt: skip


def _read_json(location: str, name: str) -> dict:
    """A JSON file of a local pipeline directory, or of a hub repository (from the local hub cache when offline)."""
    local = Path(location) / name
    if local.is_file():
        return json.loads(local.read_text(encoding="utf-8"))
    from huggingface_hub import hf_hub_download  # only for hub ids

    return json.loads(Path(hf_hub_download(location, name)).read_text(encoding="utf-8"))


def detect_family(location: str) -> Family:
    """The family of a diffusers pipeline directory or hub id, from its `model_index.json`."""
    try:
        index = _read_json(location, "model_index.json")
    except Exception as error:  # a missing file, an unknown repository, no network: say which
        raise ValueError(f"cannot read the pipeline layout of {location!r} (model_index.json): {error}") from error
    pipeline = index.get("_class_name", "")
    if "XL" in pipeline:
        has_first_tower = (index.get("text_encoder") or [None])[0] is not None
        return FAMILIES["sdxl" if has_first_tower and "Img2Img" not in pipeline else "sdxl-refiner"]
    if pipeline.startswith("StableDiffusion"):
        width: Any = _read_json(location, "text_encoder/config.json").get("hidden_size")
        return FAMILIES["sd2" if TOWER_BY_WIDTH.get(width) == OPENCLIP_H else "sd15"]
    raise ValueError(f"{location!r} is a {pipeline or 'unknown'} pipeline, not Stable Diffusion 1.x, 2.x or XL")


def family_of(name: str | None, location: str) -> Family:
    """The family a config names (`family: sdxl`), else the one detected from the checkpoint's layout."""
    if name is None:
        return detect_family(location)
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; expected one of {', '.join(FAMILIES)}")
    return FAMILIES[name]
