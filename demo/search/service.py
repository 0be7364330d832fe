"""The search service: the gallery store, its prompt index and the embedder, as one app-scoped object.

Every record's prompt embedding (see `demo.search.embeddings`) goes into a `PromptIndex` (see `demo.search.index`):
exact search while the gallery is small, Annoy plus an exact buffer for new records above the crossover that
benchmarks/search_benchmark.py measured. A full buffer starts a rebuild in a background thread, so a new image
is searchable at once and the app never waits for Annoy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml
from PIL import Image
from tqdm import tqdm

from demo.generation.config import REPO, resolve
from demo.generation.errors import N_
from demo.generation.images import ImageError, fit, open_upload
from demo.search import views
from demo.search.index import Batches, IndexSettings, PromptIndex, SearchError
from demo.search.store import GalleryStore, Record

if TYPE_CHECKING:  # the model libraries load only where models do, so the index alone starts fast
    import torch

    from demo.generation.pipeline import ImageGenerator
    from demo.search.embeddings import PromptEmbedder

DEFAULT_DATA_DIR = REPO / "instance"  # the Flask app's instance folder
ImageUrl = Callable[[str], str]  # a gallery image name → the URL it is served at
SENTENCE_HEAD_DIR = "sentence-head"  # where an encoder directory carries the sentence head trained for it


@dataclass
class SearchConfig:
    """The search's models and limits: the keys of the app's `SEARCH_CONFIG` YAML.

    Args:
        clip: A CLIPModel whose text tower is the refiner's (a directory or hub id); real:
            laion/CLIP-ViT-bigG-14-laion2B-39B-b160k.
        korean_encoder: The ko_clip encoder that embeds Korean queries and prompts.
        target: Its head whose pooled output lives in that CLIP's space; None: its first head with a pooled output.
        english: What reads text without Hangul: "student" (the Korean encoder, one encoder for all) or "clip".
        index: How the prompt index searches and rebuilds.
        max_k: The most results one search may ask for.
        max_query_chars: The longest text query, in characters.
        page_min_score: The search page hides text results below this score (benchmarks/search_quality.py).
        rerank_candidates: A text query re-scores this many nearest records with their views
            (`demo.search.views`): a short one against their prompts' word spans, a longer one with the sentence
            head; 0 turns both off.
        sentence_head: A `SentenceHead` directory; None: the one the Korean encoder carries
            (`<korean_encoder>/sentence-head`, if it has one); "": none.
    """

    clip: str = "miniworld/weights/clip"
    korean_encoder: str = "miniworld/weights/ko-clip"
    target: str | None = None
    english: str = "student"
    index: IndexSettings = field(default_factory=IndexSettings)
    max_k: int = 100
    max_query_chars: int = 300
    page_min_score: float = 0.2
    rerank_candidates: int = 100
    sentence_head: str | None = None


def sentence_head_path(config: SearchConfig) -> str | None:
    """The sentence head a config names, or the one its Korean encoder carries, or None."""
    if config.sentence_head is not None:
        return resolve(config.sentence_head) if config.sentence_head else None
    from ko_clip.encoder import encoder_directory

    carried = encoder_directory(resolve(config.korean_encoder)) / SENTENCE_HEAD_DIR
    return str(carried) if (carried / "config.json").is_file() else None


def load_search_config(path: str | Path | None = None) -> SearchConfig:
    """The defaults (the embedded models), or those overridden by a YAML file of `SearchConfig` keys."""
    if path is None:
        return SearchConfig()
    values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    index = values.pop("index", {})
    for cls, given in ((SearchConfig, values), (IndexSettings, index)):
        if unknown := set(given) - {f.name for f in dataclasses.fields(cls)}:
            raise SearchError(f"{path}: unknown search setting(s) {', '.join(sorted(unknown))}")
    return SearchConfig(**values, index=IndexSettings(**index))


@dataclass(frozen=True)
class SearchResult:
    """One search answer.

    Args:
        record: The gallery record found.
        score: How close it is to the query, in [-1, 1]: the cosine similarity, or for a re-scored text query
            the best cosine of its prompt and spans, or the mean of its pooled and sentence cosines
            (`demo.search.views`).
    """

    record: Record
    score: float

    def as_json(self, image_url: ImageUrl) -> dict:
        return {"prompt": self.record.prompt, "score": round(self.score, 4)} | record_json(self.record, image_url)


def record_json(record: Record, image_url: ImageUrl) -> dict:
    """A gallery record as the API and the CLI answer it; `image_url` says where its image is served."""
    return {
        "prompt": record.prompt,
        "image": image_url(record.image),
        "id": record.id,
        "negative_prompt": record.negative_prompt,
        "parameters": record.parameters,
        "created": record.created,
    }


class SearchService:
    """The gallery store, its prompt index and the embedder, as one app-scoped object.

    On creation the index takes in the records newer than its last build, and a rebuild starts in the background
    if one is due. Most callers use `SearchService.open`.

    Args:
        store: The gallery's records and images.
        index: The prompt index over the records' embeddings.
        embedder: Turns queries (text or images) and prompts into vectors in the index's space.
        config: Limits on queries (`max_k`, `max_query_chars`).
    """

    def __init__(self, store: GalleryStore, index: PromptIndex, embedder: PromptEmbedder, config: SearchConfig) -> None:
        self.store = store
        self.index = index
        self.embedder = embedder
        self.config = config
        self._catch_up()
        self._rebuild_if_due()

    @classmethod
    def open(
        cls,
        data_dir: str | Path = DEFAULT_DATA_DIR,
        config: SearchConfig | None = None,
        embedder: PromptEmbedder | None = None,
        device: str | torch.device = "cpu",
        generator: ImageGenerator | None = None,
    ) -> SearchService:
        """Open (or create) the gallery in `data_dir`; the embedder is loaded from `config` unless given.

        Beside a `generator` it loads on the generator's device in its dtype and shares its Korean encoder when
        both name the same one: no second encoder, no float32 CLIP beside a float16 pipeline on the GPU. Without
        one (a Redis front) it loads on `device`.
        """
        config = config or SearchConfig()
        if embedder is None:
            from demo.search.embeddings import PromptEmbedder
            from ko_clip import KoreanPromptEncoder

            korean: str | KoreanPromptEncoder = resolve(config.korean_encoder)
            placement: dict[str, Any] = {"device": device}
            if generator is not None:
                placement = {"device": generator.device, "dtype": generator.dtype}
                shared = generator.encoder
                if korean == resolve(generator.config.korean_encoder) and isinstance(shared, KoreanPromptEncoder):
                    korean = shared
            embedder = PromptEmbedder.from_pretrained(
                resolve(config.clip),
                korean,
                config.target,
                english=config.english,
                sentence_head=sentence_head_path(config),
                **placement,
            )
        store = GalleryStore(data_dir)
        return cls(store, PromptIndex(Path(data_dir) / "index", embedder.dim, config.index), embedder, config)

    def close(self) -> None:
        self.index.wait()
        self.store.close()

    def __len__(self) -> int:
        return len(self.index)

    def add(
        self,
        image: Image.Image,
        prompt: str,
        parameters: dict | None = None,
        negative_prompt: str = "",
        name: str | None = None,
    ) -> Record:
        """Store a generated image and make it searchable at once; `name` as in `GalleryStore.add` (idempotent)."""
        if name and (existing := self.store.find(name)):
            return existing
        record = self.store.add(image, prompt, self.embedder.embed_text(prompt), parameters, negative_prompt, name)
        self.index_records([record])
        self._rebuild_if_due()
        return record

    def index_records(self, records: list[Record]) -> None:
        """Make records already in the store searchable (the importers' way in), with their span vectors."""
        if records:
            self.index.add(np.array([r.id for r in records]), np.stack([r.embedding for r in records]))
            if self.config.rerank_candidates:
                self.store.add_views(self._make_views(records))

    def _catch_up(self) -> None:
        """At start-up: buffer the records newer than the built index (all of them, below the crossover)."""
        for ids, vectors in self.store.embeddings(after=self.index.last_id):
            self.index.add(ids, vectors)

    def _rebuild_if_due(self) -> None:
        if self.index.needs_rebuild():
            self.index.rebuild_in_background(self._all_embeddings)

    def _all_embeddings(self) -> Batches:
        return self.store.embeddings(upto=self.store.last_id())

    def search_text(self, query: str, k: int = 5, min_score: float | None = None) -> list[SearchResult]:
        query = (query or "").strip()
        if not query:
            raise SearchError(N_("the query is empty"), code="query_empty")
        if len(query) > self.config.max_query_chars:
            raise SearchError(
                N_("the query is too long: at most %(count)d characters"),
                code="query_too_long",
                params={"count": self.config.max_query_chars},
            )
        self._check(k, min_score)
        short = views.is_short(query)
        if not self.config.rerank_candidates or not (short or self.embedder.sentence_size):
            return self._results(self.embedder.embed_text(query), k, min_score)
        if short:
            vector, length = self.embedder.embed_text(query), len(views.words(query))
            return self._reranked(vector, k, min_score, lambda s, v: views.short_query_score(s, v, vector, length))
        vectors, sentences = self.embedder.embed_with_sentences([query])
        return self._reranked(vectors[0], k, min_score, lambda s, v: views.sentence_score(s, v, sentences[0]))

    def _reranked(
        self,
        vector: np.ndarray,
        k: int,
        min_score: float | None,
        score: Callable[[float, views.RecordViews], float],
    ) -> list[SearchResult]:
        """The `rerank_candidates` nearest records re-scored by `score(cosine, their views)`, best first."""
        hits = self.index.search(vector, max(k, self.config.rerank_candidates))
        records = self.store.get_many([hit.id for hit in hits])
        found = self._views([records[hit.id] for hit in hits if hit.id in records])
        scored = [(score(hit.score, found[hit.id]), hit.id) for hit in hits if hit.id in records]
        scored.sort(key=lambda pair: -pair[0])  # stable: ties keep the index's order
        return [SearchResult(records[i], s) for s, i in scored if min_score is None or s >= min_score][:k]

    def _views(self, records: list[Record]) -> dict[int, views.RecordViews]:
        """The records' views: stored, or made now and kept (galleries written before views, another head)."""
        found = self.store.views([r.id for r in records], self.embedder.dim, self.embedder.sentence_size)
        wants_sentence = bool(self.embedder.sentence_size)
        complete = {i: v for i, v in found.items() if v.sentence is not None or not wants_sentence}
        if missing := [r for r in records if r.id not in complete]:
            made = self._make_views(missing)
            self.store.add_views(made)
            complete |= made
        return complete

    def _make_views(self, records: list[Record]) -> dict[int, views.RecordViews]:
        texts = [views.spans(r.prompt) for r in records]
        flat = [text for group in texts for text in group]
        vectors = self.embedder.embed_texts(flat) if flat else np.zeros((0, self.embedder.dim), np.float32)
        sentences = self.embedder.embed_sentences([r.prompt for r in records]) if self.embedder.sentence_size else None
        made, start = {}, 0
        for row, (record, group) in enumerate(zip(records, texts, strict=True)):
            phrases = views.Phrases.of(group, vectors[start : start + len(group)])
            sentence = None if sentences is None else sentences[row].astype(np.float16)
            made[record.id] = views.RecordViews(phrases, sentence)
            start += len(group)
        return made

    @property
    def image_side(self) -> int:
        """The square CLIP looks at: an uploaded query image is cut down to it before anything else."""
        crop = self.embedder.processor.crop_size  # type: ignore[attr-defined]  # every CLIP image processor has one
        return max(crop["height"], crop["width"])

    def search_image(
        self, image: Image.Image | bytes, k: int = 5, min_score: float | None = None
    ) -> list[SearchResult]:
        """Records whose prompt matches an image (e.g. an upload), by CLIP image–text similarity."""
        self._check(k, min_score)
        try:
            image = open_upload(image) if isinstance(image, bytes) else image
        except ImageError as error:
            raise SearchError(error.template, code=error.code, params=error.params, field="image") from error
        # CLIP's processor resizes the short side first: 16×1,048,576 px would become 224×14.7M. Cropping the
        # centre square first (what the processor keeps anyway) bounds its memory and time for any upload.
        image = fit(image, self.image_side)
        return self._results(self.embedder.embed_images([image])[0], k, min_score)

    def _check(self, k: int, min_score: float | None) -> None:
        if not isinstance(k, int) or not 1 <= k <= self.config.max_k:
            raise SearchError(
                N_("k must be a whole number between 1 and %(most)d"),
                code="k_invalid",
                params={"most": self.config.max_k},
            )
        if min_score is not None and not -1.0 <= min_score <= 1.0:
            raise SearchError(N_("the minimum score must be between -1 and 1"), code="min_score_invalid")

    def _results(self, vector: np.ndarray, k: int, min_score: float | None) -> list[SearchResult]:
        hits = self.index.search(vector, k, min_score)
        records = self.store.get_many([hit.id for hit in hits])
        return [SearchResult(records[hit.id], hit.score) for hit in hits if hit.id in records]

    def reindex(self) -> None:
        """Rebuild the Annoy index now if it is due (the CLI's way; the app rebuilds in the background)."""
        self.index.wait()
        if self.index.needs_rebuild():
            batches = tqdm(
                self._all_embeddings(),
                total=math.ceil(self.store.count() / 10_000),
                desc="building the Annoy index",
                unit="batch",
            )
            self.index.rebuild(batches)
