"""The Korean student: any `transformers` backbone, a trunk that maps Korean tokens to CLIP's 77 positions, and one
head per target (teacher) text encoder.

A head reproduces what its teacher hands a diffusion pipeline: the 77×d token hidden-state sequence and, for
targets that have one (the SDXL refiner's `text_encoder_2`), the pooled projected embedding. Korean and English
token counts differ, so the default trunk is a small transformer decoder whose 77 learned position queries (and
one pooled query) cross-attend to the Korean token states (`cross_attention`). Every CLIP text encoder the
pipelines use has the same 77 positions, so the trunk is shared and each head is a projection to its teacher's
width. `positional` is the GlueGen-style alternative kept for the ablation: position i comes from Korean token i
(states padded to 77) through a per-target MLP.
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
        length: int = 77,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.backbone = backbone or {}
        self.targets = targets or []
        self.head = head
        self.head_layers = head_layers
        self.head_heads = head_heads
        self.length = length

    @property
    def target_specs(self) -> list[Target]:
        return [Target(**t) for t in self.targets]

    def backbone_config(self) -> PretrainedConfig:
        settings = dict(self.backbone)
        return AutoConfig.for_model(settings.pop("model_type"), **settings)


class QueryTrunk(nn.Module):
    """77 position queries + 1 pooled query attend to the Korean token states through a small decoder."""

    def __init__(self, width: int, length: int, layers: int, heads: int) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(length + 1, width) * 0.02)
        layer = nn.TransformerDecoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.norm = nn.LayerNorm(width)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        queries = self.queries.unsqueeze(0).expand(states.shape[0], -1, -1)
        return self.norm(self.decoder(queries, states, memory_key_padding_mask=~mask.bool()))


class PositionalTrunk(nn.Module):
    """GlueGen-style: the Korean states padded (or cut) to 77 positions, plus their masked mean for pooling."""

    def __init__(self, width: int, length: int, layers: int, heads: int) -> None:
        super().__init__()
        self.length = length

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask[..., None].to(states.dtype)
        mean = (states * weights).sum(1) / weights.sum(1).clamp(min=1)
        padded = nn.functional.pad(states, (0, 0, 0, max(0, self.length - states.shape[1])))[:, : self.length]
        return torch.cat([padded, mean[:, None]], dim=1)


class TargetHead(nn.Module):
    """Trunk output (B, 78, width) → the teacher's token states (B, 77, d) and pooled embedding (B, p).

    Also holds the teacher's output for the empty prompt, which pipelines use as the unconditional embedding.
    """

    def __init__(self, width: int, target: Target, mlp: bool) -> None:
        super().__init__()
        self.target = target
        d = target.hidden_size
        self.tokens = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, d)) if mlp else nn.Linear(width, d)
        self.pooled = nn.Linear(width, target.pooled_size) if target.pooled_size else None
        self.register_buffer("null_tokens", torch.zeros(target.length, d))
        self.register_buffer("null_pooled", torch.zeros(target.pooled_size))

    def forward(self, trunk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        tokens = self.tokens(trunk[:, : self.target.length])
        return tokens, self.pooled(trunk[:, -1]) if self.pooled else None


TRUNKS = {"cross_attention": QueryTrunk, "positional": PositionalTrunk}


class KoreanTextEncoder(PreTrainedModel):
    """Backbone + trunk + heads; `forward` returns {target name: (token states, pooled or None)}."""

    config_class = KoreanTextEncoderConfig
    base_model_prefix = "ko_clip"

    def __init__(self, config: KoreanTextEncoderConfig) -> None:
        super().__init__(config)
        if config.head not in TRUNKS:
            raise ValueError(f"unknown head {config.head!r}; expected one of {', '.join(TRUNKS)}")
        if any(t.length != config.length for t in config.target_specs):
            raise ValueError(f"every target must have {config.length} positions")
        self.backbone = AutoModel.from_config(config.backbone_config(), add_pooling_layer=False)
        width = self.backbone.config.hidden_size
        self.trunk = TRUNKS[config.head](width, config.length, config.head_layers, config.head_heads)
        mlp = config.head == "positional"
        self.heads = nn.ModuleDict({t.name: TargetHead(width, t, mlp) for t in config.target_specs})
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Nothing to do: the backbone initialised itself when built, and the rest keeps PyTorch's defaults."""

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, targets: list[str] | None = None
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        states = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        trunk = self.trunk(states, attention_mask)
        return {name: self.heads[name](trunk) for name in targets or list(self.heads)}


# Known to the Auto classes, so AutoConfig / AutoModel / AutoTokenizer read an encoder directory like any other.
AutoConfig.register(KoreanTextEncoderConfig.model_type, KoreanTextEncoderConfig)
AutoModel.register(KoreanTextEncoderConfig, KoreanTextEncoder)
