"""One vector space for prompts in Korean, prompts in English and images: the pooled CLIP embedding.

The ko_clip student's pooled head (e.g. `miniworld-clip:penultimate`, `openclip-vit-bigg-14:penultimate`; `refiner`
in encoders written before heads were keyed by tower) was distilled onto the projected pooled output of that CLIP
text tower, from Korean sentences and from their English originals, so text in either language through the student
lands in that CLIP's space; CLIP's image tower projects images into it as well. Every vector is L2-normalised
float32, so a dot product is the cosine similarity.

Text in both languages goes through the student by default (`english="student"`): one encoder for every query
scores Korean and English alike, where English through the CLIP text tower itself ranked short English queries
far worse (docs/measurements/search_quality.md). `english="clip"` keeps the earlier split.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoImageProcessor, BaseImageProcessor, CLIPModel, CLIPTokenizer

from demo.search.sentence_head import SentenceHead
from ko_clip import KoreanPromptEncoder, PromptEmbeds

ENGLISH_ENCODERS = ("student", "clip")  # what reads text without Hangul: the Korean student, or CLIP's text tower
HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")


def is_korean(text: str) -> bool:
    """Any Hangul at all: mixed prompts ("빨간 circle") read best through the Korean student."""
    return HANGUL.search(text) is not None


def search_target(korean: KoreanPromptEncoder, target: str | None) -> str:
    """The named head of the Korean encoder, or (None) its first head with a pooled output.

    Raises:
        ValueError: It has no such head.
    """
    if target is None:
        pooled = [spec.name for spec in korean.model.config.target_specs if spec.pooled_size]
        target = pooled[0] if pooled else "(none with a pooled output)"
    if target not in korean.targets:
        raise ValueError(f"the Korean encoder has no {target!r} head (it has {', '.join(korean.targets)})")
    return target


def _pooled(batch: PromptEmbeds) -> np.ndarray:
    """The Korean encoder's pooled vectors, normalised."""
    assert batch.pooled_prompt_embeds is not None  # the search reads a head with a pooled output
    return normalised(batch.pooled_prompt_embeds)


def normalised(vectors: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(vectors.float(), dim=-1).cpu().numpy().astype(np.float32)


class PromptEmbedder:
    """Text (Korean or English) and images → pooled CLIP-space vectors, L2-normalised.

    Args:
        clip: The CLIP whose space the vectors live in (its text tower is the refiner's); its device and dtype
            are the embedder's.
        tokenizer: That CLIP's tokenizer.
        processor: That CLIP's image processor.
        korean: The Korean encoder; its `target` head's pooled output lives in the CLIP's space.
        target: That head's name.
        batch_size: Texts embedded per forward pass.
        english: What reads text without Hangul: "student" (the Korean encoder) or "clip".
        sentence_head: Reads the Korean encoder's token states into sentence vectors (`embed_sentences`), or None.

    Raises:
        ValueError: `english` is unknown, the head's pooled size is not the CLIP's projection size, or the sentence
            head reads a head the encoder lacks, or states of another width.
    """

    def __init__(
        self,
        clip: CLIPModel,
        tokenizer: CLIPTokenizer,
        processor: BaseImageProcessor,
        korean: KoreanPromptEncoder,
        target: str = "refiner",
        batch_size: int = 64,
        english: str = "student",
        sentence_head: SentenceHead | None = None,
    ) -> None:
        if english not in ENGLISH_ENCODERS:
            raise ValueError(f"english must be one of {', '.join(ENGLISH_ENCODERS)}, not {english!r}")
        self.clip = clip.eval()
        self.tokenizer = tokenizer
        self.processor = processor
        self.korean = korean
        self.target = target
        self.batch_size = batch_size
        self.english = english
        self.device = next(clip.parameters()).device
        self.dtype = next(clip.parameters()).dtype
        pooled = korean.model.config.target_specs[korean.targets.index(target)].pooled_size
        if pooled != self.dim:
            raise ValueError(
                f"the Korean encoder's {target!r} head gives {pooled}-d pooled vectors, the CLIP {self.dim}-d"
            )
        self.sentence_head = sentence_head
        if sentence_head is not None:
            read, width = sentence_head.target, sentence_head.width
            specs = {spec.name: spec for spec in korean.model.config.target_specs}
            if read not in specs or specs[read].hidden_size != width:
                raise ValueError(
                    f"the sentence head reads {width}-d states of the {read!r} head, which the Korean encoder lacks"
                )
            sentence_head.requires_grad_(False).eval()
            self.sentence_head = sentence_head.to(self.device)  # type: ignore[arg-type]  # diffusers' wrapped `to` reads as unbound to mypy

    @classmethod
    def from_pretrained(
        cls,
        clip: str | Path,
        korean_encoder: str | Path | KoreanPromptEncoder,
        target: str | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        english: str = "student",
        sentence_head: str | Path | None = None,
    ) -> PromptEmbedder:
        """`clip`: a CLIPModel directory or hub id whose text tower is the refiner's text encoder;
        `korean_encoder`: a directory, or a loaded encoder to share (the generator's); `target`: its head with the
        pooled output in that CLIP's space (None: its first head with a pooled output); `english`: what reads text
        without Hangul ("student" or "clip"); `sentence_head`: a `SentenceHead` directory, or None."""
        model = CLIPModel.from_pretrained(clip, dtype=dtype).to(device)  # type: ignore[arg-type]  # transformers' wrapped `to` reads as unbound to mypy
        korean = korean_encoder
        if not isinstance(korean, KoreanPromptEncoder):
            korean = KoreanPromptEncoder.from_pretrained(korean, device, dtype)
        target = search_target(korean, target)
        tokenizer, processor = CLIPTokenizer.from_pretrained(clip), AutoImageProcessor.from_pretrained(clip)
        head = None if sentence_head is None else SentenceHead.from_pretrained(sentence_head)
        return cls(model, tokenizer, processor, korean, target, english=english, sentence_head=head)

    @property
    def dim(self) -> int:
        return self.clip.config.projection_dim

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim): every text through the student, or with `english="clip"` the texts without Hangul
        through the CLIP text tower."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        by_clip = self.english == "clip"
        korean = [i for i, t in enumerate(texts) if not by_clip or is_korean(t)]
        english = [i for i, t in enumerate(texts) if by_clip and not is_korean(t)]
        for rows, encode in ((korean, self._korean), (english, self._english)):
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start : start + self.batch_size]
                out[chunk] = encode([texts[i] for i in chunk])
        return out

    def embed_text(self, text: str) -> np.ndarray:
        return self.embed_texts([text])[0]

    @property
    def sentence_size(self) -> int:
        """The sentence vectors' size; 0 without a sentence head."""
        return 0 if self.sentence_head is None else self.sentence_head.size

    @torch.no_grad()
    def embed_with_sentences(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """`embed_texts` and `embed_sentences` of the same texts, from one pass of the Korean encoder when the
        sentence head reads the pooled head's states and the student reads every text."""
        assert self.sentence_head is not None  # callers check `sentence_size` first
        if self.sentence_head.target != self.target or self.english == "clip":
            return self.embed_texts(texts), self.embed_sentences(texts)
        batches = list(self._encoded(texts, self.target))
        return np.concatenate([_pooled(b) for b in batches]), np.concatenate([self._sentences(b) for b in batches])

    def embed_sentences(self, texts: list[str]) -> np.ndarray:
        """(len(texts), sentence_size): every text through the Korean encoder and the sentence head."""
        assert self.sentence_head is not None  # callers check `sentence_size` first
        out = [self._sentences(batch) for batch in self._encoded(texts, self.sentence_head.target)]
        return np.concatenate(out) if out else np.zeros((0, self.sentence_size), dtype=np.float32)

    @torch.no_grad()
    def _encoded(self, texts: list[str], target: str) -> Iterator[PromptEmbeds]:
        """The Korean encoder's output for `target`, a batch at a time."""
        for start in range(0, len(texts), self.batch_size):
            yield self.korean.encode(texts[start : start + self.batch_size], target)

    @torch.no_grad()
    def _sentences(self, batch: PromptEmbeds) -> np.ndarray:
        assert self.sentence_head is not None  # callers check `sentence_size` first
        return self.sentence_head(batch.prompt_embeds.float()).cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def _korean(self, texts: list[str]) -> np.ndarray:
        return _pooled(self.korean.encode(texts, self.target))

    @torch.no_grad()
    def _english(self, texts: list[str]) -> np.ndarray:
        # Pipelines pad to 77; padding to the longest prompt only gives the same vectors (the text tower's attention
        # is causal, so the pooled end-of-text token never sees padding) at a fraction of the cost.
        ids = self.tokenizer(texts, padding="longest", max_length=77, truncation=True, return_tensors="pt").input_ids
        return normalised(self.clip.get_text_features(input_ids=ids.to(self.device)).pooler_output)

    @torch.no_grad()
    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        pixels = self.processor(images=[image.convert("RGB") for image in images], return_tensors="pt").pixel_values
        return normalised(self.clip.get_image_features(pixel_values=pixels.to(self.device, self.dtype)).pooler_output)
