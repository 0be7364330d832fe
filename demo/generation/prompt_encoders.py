"""Prompt encoders the `ImageGenerator` reads prompts with: the Korean student, or the pipelines' own English encoders.

Both answer the same protocol, so an English prompt through the teacher and a Korean one through the student
run exactly the same generation code, and the quality numbers compare the two encoders and nothing else.
"""

from __future__ import annotations

from typing import Protocol

import torch

from demo.generation.families import TowerRead
from ko_clip import PromptEmbeds
from ko_clip.teacher import Teacher, TeacherSpec


class PromptEncoder(Protocol):
    """Prompts in, the `prompt_embeds` (and pooled embeddings) of each head out; a head imitates one text tower
    at one layer and is named `"<tower>:<layer>"` (`demo.generation.families`)."""

    @property
    def targets(self) -> list[str]: ...

    def encode(self, prompts: str | list[str], target: str) -> PromptEmbeds: ...

    def encode_all(self, prompts: list[str], targets: list[str] | None = None) -> dict[str, PromptEmbeds]: ...


class EnglishPromptEncoder:
    """The English CLIP text encoders of the pipelines themselves, read exactly as each pipeline reads them.

    SD 1.x/2.x: the last layer of `text_encoder`; SDXL: the penultimate layers of `text_encoder` and
    `text_encoder_2`, plus the second one's projected pooled embedding; the SDXL refiner: that second tower alone.
    The empty prompt is encoded like any other, which is what the pipelines do for an empty negative prompt.
    These are the teachers the Korean student was distilled onto (`ko_clip.teacher`), keyed by the same head names.
    """

    def __init__(self, teachers: list[Teacher], dtype: torch.dtype = torch.float32) -> None:
        self.teachers = {teacher.spec.name: teacher for teacher in teachers}
        self.dtype = dtype

    @classmethod
    def from_reads(
        cls,
        reads: list[tuple[str, TowerRead]],
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> EnglishPromptEncoder:
        """One teacher per distinct head, from (pipeline directory or hub id, how that pipeline reads a tower)."""
        specs = {
            read.head: TeacherSpec(read.head, location, read.subfolder, read.tokenizer, read.layer, read.pooled)
            for location, read in reversed(reads)  # the first pipeline that reads a tower provides it
        }
        return cls([Teacher(spec, device, dtype) for spec in specs.values()], dtype)

    @property
    def targets(self) -> list[str]:
        return list(self.teachers)

    def encode(self, prompts: str | list[str], target: str) -> PromptEmbeds:
        return self.encode_all([prompts] if isinstance(prompts, str) else prompts, [target])[target]

    def encode_all(self, prompts: list[str], targets: list[str] | None = None) -> dict[str, PromptEmbeds]:
        """One forward of each target's own text tower."""
        embeds = {}
        for target in self.targets if targets is None else targets:
            if target not in self.teachers:
                raise KeyError(f"no English text encoder for {target!r}; there is one for {', '.join(self.targets)}")
            tokens, pooled = self.teachers[target](list(prompts))
            embeds[target] = PromptEmbeds(tokens.to(self.dtype), None if pooled is None else pooled.to(self.dtype))
        return embeds
