"""The object pipelines use: Korean prompts in, `prompt_embeds` / `pooled_prompt_embeds` out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ko_clip.modeling import KoreanStudent, backbone_path


@dataclass
class PromptEmbeds:
    """What a diffusers pipeline accepts: `prompt_embeds` (B, 77, d) and, for SDXL-type targets,
    `pooled_prompt_embeds` (B, p)."""

    prompt_embeds: torch.Tensor
    pooled_prompt_embeds: torch.Tensor | None = None


class KoreanPromptEncoder:
    """A trained `KoreanStudent` with its tokenizer, saved and loaded as one directory.

    With a `backbone_source` the tokenizer, like the backbone, comes from that source and is not saved. With
    `normalize: kiwi` in the model's config, prompts are re-spaced by kiwipiepy's `Kiwi().space()` first: a second
    line of defence for unspaced typing (`pip install kiwipiepy`), not a substitute for an encoder that reads it.

    Args:
        model: The student; moved to `device` and `dtype`, in eval mode.
        tokenizer: Its backbone's tokenizer.
        device: Where it runs.
        dtype: The dtype of its weights and of the embeddings it returns.
    """

    def __init__(
        self,
        model: KoreanStudent,
        tokenizer: PreTrainedTokenizerBase,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.model = model.to(device=device, dtype=dtype).eval()  # type: ignore[call-arg]  # transformers' wrapped `to` reads as unbound to mypy
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.dtype = dtype
        self.space = _kiwi_spacer() if model.config.normalize == "kiwi" else None

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> KoreanPromptEncoder:
        """From an encoder directory, or a hub id (downloaded once by `huggingface_hub`, read from its cache after)."""
        path = encoder_directory(path)
        model = KoreanStudent.from_pretrained(path)
        tokenizer_dir = backbone_path(model.config) if model.config.backbone_source else path
        return cls(model, AutoTokenizer.from_pretrained(tokenizer_dir), device, dtype)

    def save_pretrained(self, path: str | Path) -> None:
        write_student(self.model, self.tokenizer, path)

    @property
    def targets(self) -> list[str]:
        return list(self.model.heads)

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        if self.space:
            prompts = [self.space(p) for p in prompts]
        batch = self.tokenizer(prompts, padding=True, truncation=True, return_tensors="pt")
        return {"input_ids": batch.input_ids.to(self.device), "attention_mask": batch.attention_mask.to(self.device)}

    def encode(self, prompts: str | list[str], target: str) -> PromptEmbeds:
        """Embeddings for the pipeline whose text encoder `target` names (e.g. 'base' or 'refiner')."""
        return self.encode_all([prompts] if isinstance(prompts, str) else prompts, [target])[target]

    @torch.no_grad()
    def encode_all(self, prompts: list[str], targets: list[str] | None = None) -> dict[str, PromptEmbeds]:
        """Embeddings for every target (default: all heads) from one backbone pass over the batch.

        An empty prompt gets the teacher's own empty-prompt embedding, the unconditional input the diffusion
        model was trained with for classifier-free guidance.
        """
        targets = self.targets if targets is None else targets
        if missing := [t for t in targets if t not in self.model.heads]:
            raise KeyError(f"this encoder has no head {missing[0]!r}; it has {', '.join(self.targets)}")
        prompts = list(prompts)
        written = [i for i, p in enumerate(prompts) if p.strip()]  # only these go through the model
        outputs = self.model(**self.tokenize([prompts[i] for i in written]), targets=targets) if written else {}
        rows = torch.tensor(written, dtype=torch.long, device=self.device)
        embeds = {}
        for target in targets:
            head = self.model.heads[target]
            tokens = head.null_tokens.to(self.dtype).expand(len(prompts), -1, -1).clone()
            pooled = head.null_pooled.to(self.dtype).expand(len(prompts), -1).clone() if head.pooled else None
            if written:
                tokens[rows], computed_pooled = outputs[target]
                if pooled is not None:
                    pooled[rows] = computed_pooled
            embeds[target] = PromptEmbeds(tokens, pooled)
        return embeds


def encoder_directory(path: str | Path) -> Path:
    """`path` if it is a directory, else the hub repository it names, as a local snapshot."""
    if Path(path).is_dir():
        return Path(path)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=str(path)))
    except Exception as error:  # offline, unknown repository, not a valid id: each is its own type
        raise FileNotFoundError(
            f"{path}: not an encoder directory here, and not fetched from the Hugging Face hub "
            f"({type(error).__name__}: {error}). Download it where the hub is reachable "
            f"(`hf download {path} --local-dir DIR`) and pass DIR, or set HF_HUB_CACHE to a cache that holds it."
        ) from error


def _kiwi_spacer() -> Callable[[str], str]:
    from kiwipiepy import Kiwi  # LGPL-3.0, only for encoders configured with `normalize: kiwi`

    return Kiwi().space


def write_student(
    model: KoreanStudent, tokenizer: PreTrainedTokenizerBase, path: str | Path, state_dict: dict | None = None
) -> None:
    """Write a student directory: its weights (`state_dict`, default the model's own), and its tokenizer unless
    the backbone's source provides it."""
    model.save_pretrained(path, state_dict=state_dict)
    if not model.config.backbone_source:
        tokenizer.save_pretrained(path)
