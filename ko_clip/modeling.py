"""The Korean student: any `transformers` backbone plus one head per target (teacher) text encoder.

A head reproduces what its teacher hands a diffusion pipeline: the 77×d token hidden-state sequence and, for
targets that have one (the SDXL refiner's `text_encoder_2`), the pooled projected embedding. Korean and English
token counts differ, so the default head is a small transformer decoder whose 77 learned position queries
cross-attend to the Korean token states (`cross_attention`); `positional` is the GlueGen-style alternative
(a per-position MLP over the Korean states padded to 77) kept for the ablation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel


@dataclass(frozen=True)
class Target:
    """One teacher text encoder as a pipeline consumes it."""

    name: str
    hidden_size: int
    pooled_size: int = 0  # 0: the target has no pooled embedding
    length: int = 77


class KoreanTextEncoderConfig(PretrainedConfig):
    model_type = "ko_clip"

    def __init__(
        self,
        backbone: dict | None = None,
        targets: list[dict] | None = None,
        head: str = "cross_attention",
        head_layers: int = 2,
        head_heads: int = 4,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.backbone = backbone or {}
        self.targets = targets or []
        self.head = head
        self.head_layers = head_layers
        self.head_heads = head_heads

    @property
    def target_specs(self) -> list[Target]:
        return [Target(**t) for t in self.targets]

    def backbone_config(self) -> PretrainedConfig:
        settings = dict(self.backbone)
        return AutoConfig.for_model(settings.pop("model_type"), **settings)


class TargetHead(nn.Module):
    """Holds the teacher's output for the empty prompt: pipelines use it as the unconditional embedding."""

    def __init__(self, target: Target) -> None:
        super().__init__()
        self.target = target
        self.register_buffer("null_tokens", torch.zeros(target.length, target.hidden_size))
        self.register_buffer("null_pooled", torch.zeros(target.pooled_size))


class CrossAttentionHead(TargetHead):
    """Learned queries (77 positions + 1 pooled) attend to the student's token states through a small decoder."""

    def __init__(self, width: int, target: Target, layers: int, heads: int) -> None:
        super().__init__(target)
        self.queries = nn.Parameter(torch.randn(target.length + 1, width) * 0.02)
        layer = nn.TransformerDecoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.norm = nn.LayerNorm(width)
        self.tokens = nn.Linear(width, target.hidden_size)
        self.pooled = nn.Linear(width, target.pooled_size) if target.pooled_size else None

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        queries = self.queries.unsqueeze(0).expand(states.shape[0], -1, -1)
        out = self.norm(self.decoder(queries, states, memory_key_padding_mask=~mask.bool()))
        tokens = self.tokens(out[:, : self.target.length])
        return tokens, self.pooled(out[:, -1]) if self.pooled else None


class PositionalHead(TargetHead):
    """GlueGen-style: position i of the output comes from position i of the (77-padded) student states."""

    def __init__(self, width: int, target: Target, layers: int, heads: int) -> None:
        super().__init__(target)
        self.tokens = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, target.hidden_size))
        self.pooled = nn.Linear(width, target.pooled_size) if target.pooled_size else None

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        length = self.target.length
        states = nn.functional.pad(states, (0, 0, 0, max(0, length - states.shape[1])))[:, :length]
        mean = (states[:, : mask.shape[1]] * mask[:, :length, None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return self.tokens(states), self.pooled(mean) if self.pooled else None


HEADS = {"cross_attention": CrossAttentionHead, "positional": PositionalHead}


class KoreanTextEncoder(PreTrainedModel):
    """Backbone + heads; `forward` returns {target name: (token states, pooled or None)}."""

    config_class = KoreanTextEncoderConfig
    base_model_prefix = "ko_clip"

    def __init__(self, config: KoreanTextEncoderConfig) -> None:
        super().__init__(config)
        if config.head not in HEADS:
            raise ValueError(f"unknown head {config.head!r}; expected one of {', '.join(HEADS)}")
        self.backbone = AutoModel.from_config(config.backbone_config(), add_pooling_layer=False)
        width = self.backbone.config.hidden_size
        self.heads = nn.ModuleDict(
            {t.name: HEADS[config.head](width, t, config.head_layers, config.head_heads) for t in config.target_specs}
        )
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Nothing to do: the backbone initialised itself when built, and the heads keep PyTorch's defaults."""

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, targets: list[str] | None = None
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        states = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        names = targets or list(self.heads)
        return {name: self.heads[name](states, attention_mask) for name in names}
