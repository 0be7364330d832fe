"""The sentence head: a second view of a whole prompt, for ranking prompts against sentence queries.

The pooled vector (`demo.search.embeddings`) was distilled onto CLIP's pooled space, which weighs some of what a
sentence says (a shape's place, most of all) lightly, so a five-attribute query ranked prompts that differ in those
first. The Korean encoder's token states of the same head carry them (the diffusion model reads its scenes from
them), so this head pools those 77 states by learned attention into a small vector, trained on translation pairs to
find a sentence's translation among others (`demo.search.train_head`). A long query's score is the mean of the
two cosines, pooled and head (`demo.search.views`).
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class SentenceHead(ModelMixin, ConfigMixin):  # type: ignore[misc]  # diffusers' own pair of bases
    """Token states (B, 77, width) of one Korean-encoder head → L2-normalised sentence vectors (B, size).

    Args:
        width: The token states' width (the encoder head's hidden size).
        size: The sentence vectors' size.
        target: The encoder head whose states it reads (checked against the search's when loaded).
    """

    @register_to_config
    def __init__(self, width: int, size: int = 128, target: str = "") -> None:
        super().__init__()
        self.width, self.size, self.target = width, size, target
        self.attention = nn.Linear(width, 1)
        self.project = nn.Linear(width, size)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        weights = self.attention(states).squeeze(-1).softmax(-1)
        pooled = (weights.unsqueeze(-1) * states).sum(1)
        return nn.functional.normalize(self.project(pooled), dim=-1)
