"""The prompt index: nearest record ids for a vector, by exact search or Annoy plus an exact buffer.

Below `exact_below` vectors every vector sits in an exact numpy buffer; above it an Annoy (angular) index,
memory-mapped once, answers for the vectors it was built from and the buffer for the ones added since. Annoy
cannot add items to a built index, so a full buffer means a rebuild (the caller runs it, usually in a background
thread); the new index replaces the old one by an atomic switch of the manifest that names it, so a rebuild that
dies half-way leaves the old index answering.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from demo.generation.errors import N_, UserError
from durable import TEMPORARY_PREFIX, sync_to_disk, write_text_atomically

log = logging.getLogger(__name__)

MANIFEST = "index.json"
Batches = Iterable[tuple[np.ndarray, np.ndarray]]  # (record ids, vectors) a batch at a time


class SearchError(UserError):
    """A search that cannot be answered, with a message meant for the person who asked (an English template and
    its params: the web app shows it in the reader's language)."""

    default_code = "search_invalid"


@dataclass
class IndexSettings:
    """How the prompt index searches and rebuilds; the numbers come from benchmarks/search_benchmark.py.

    Args:
        exact_below: Exact search below this many vectors, Annoy above: the crossover at 512-d (≈ 900 at 128-d).
        trees: Annoy trees per build.
        search_k: Annoy nodes inspected for k=10, scaled with k: recall@10 ≥ 0.977 from 2k to 1M vectors.
        rebuild_after: Buffered vectors that start a background rebuild.
        build_jobs: Threads building trees: leave the other cores to the generator.
    """

    exact_below: int = 4_000
    trees: int = 32
    search_k: int = 2_560
    rebuild_after: int = 1_000
    build_jobs: int = 1


def exact_top_k(vectors: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and cosine scores of the `k` rows most similar to `query`, best first (all L2-normalised)."""
    scores = vectors @ query
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    order = top[np.argsort(-scores[top], kind="stable")]
    return order, scores[order]


def angular_to_cosine(distances: np.ndarray) -> np.ndarray:
    """Annoy's angular distance is sqrt(2 - 2·cos)."""
    return 1.0 - np.square(distances) / 2.0


@dataclass(frozen=True)
class Hit:
    """One nearest neighbour.

    Args:
        id: The record's id.
        score: Its cosine similarity to the query.
    """

    id: int
    score: float


@dataclass(frozen=True)
class BuiltIndex:
    """One built Annoy index.

    Args:
        annoy: The index, memory-mapped from its file.
        ids: The record id of each item, by item number.
        last_id: The newest record id it covers; newer ones belong in the buffer.
    """

    annoy: AnnoyIndex
    ids: np.ndarray
    last_id: int


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """One builder per index directory, across threads and processes."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class PromptIndex:
    """Nearest record ids for a vector: a built Annoy index (when there is one) plus an exact buffer of newer vectors.

    Files under `directory`: `index.json` names the current build's `prompts-<stamp>.ann` and
    `prompts-<stamp>.ids.npy`. Builds are never modified; switching the manifest (`os.replace`) is the only
    step that changes which one is current, so a reader sees the old index or the new one, never a mix.

    Args:
        directory: Where the builds and the manifest live; created if missing.
        dim: The vectors' dimension.
        settings: How it searches and rebuilds; None: the defaults.

    Raises:
        SearchError: The current build holds vectors of another dimension (other models built it).
    """

    def __init__(self, directory: str | Path, dim: int, settings: IndexSettings | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self.settings = settings or IndexSettings()
        self._lock = threading.Lock()  # guards the built index and the buffer
        self._built: BuiltIndex | None = self._load()
        self._buffer = np.zeros((0, dim), dtype=np.float32)
        self._buffer_ids = np.zeros(0, dtype=np.int64)
        self._buffered = 0
        self._rebuild: threading.Thread | None = None
        self.last_error: BaseException | None = None  # of the last background rebuild, if it failed

    def _manifest(self) -> dict | None:
        path = self.directory / MANIFEST
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def _load(self) -> BuiltIndex | None:
        manifest = self._manifest()
        if manifest is None:
            return None
        if manifest["dim"] != self.dim:
            raise SearchError(
                f"the index in {self.directory} holds {manifest['dim']}-d vectors but the embedder gives {self.dim}-d: "
                "it was built with other models; use another data directory"
            )
        annoy = AnnoyIndex(self.dim, "angular")
        annoy.load(str(self.directory / manifest["annoy"]))  # memory-mapped, not read
        return BuiltIndex(annoy, np.load(self.directory / manifest["ids"]), manifest["last_id"])

    @property
    def last_id(self) -> int:
        """The newest record id inside the built Annoy index (0 without one): newer ones belong in the buffer."""
        return self._built.last_id if self._built else 0

    @property
    def buffered(self) -> int:
        return self._buffered

    @property
    def built(self) -> int:
        return len(self._built.ids) if self._built else 0

    def __len__(self) -> int:
        return self.built + self._buffered

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Make vectors searchable now (exact buffer); ids already in the built Annoy index are skipped."""
        ids, vectors = np.asarray(ids, dtype=np.int64), np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), self.dim):
            raise SearchError(
                f"expected {len(ids)} vectors of {self.dim} dimensions, got an array of shape {vectors.shape}"
            )
        with self._lock:
            keep = ids > self.last_id
            ids, vectors = ids[keep], vectors[keep]
            size = self._buffered + len(ids)
            if size > len(self._buffer):  # grow by doubling; earlier snapshots keep their own arrays
                capacity = max(size, 2 * len(self._buffer), 64)
                self._buffer = np.concatenate(
                    [self._buffer[: self._buffered], np.zeros((capacity - self._buffered, self.dim), np.float32)]
                )
                self._buffer_ids = np.concatenate(
                    [self._buffer_ids[: self._buffered], np.zeros(capacity - self._buffered, np.int64)]
                )
            self._buffer[self._buffered : size] = vectors
            self._buffer_ids[self._buffered : size] = ids
            self._buffered = size

    def search(self, vector: np.ndarray, k: int, min_score: float | None = None) -> list[Hit]:
        """The `k` nearest records by cosine similarity, best first; none below `min_score`."""
        if k < 1:
            raise SearchError("k must be at least 1")
        with self._lock:
            built, buffer, buffer_ids = self._built, self._buffer[: self._buffered], self._buffer_ids[: self._buffered]
        if built is None and len(buffer) == 0:
            raise SearchError(N_("the gallery is empty: there is nothing to search yet"), code="gallery_empty")
        vector = np.asarray(vector, dtype=np.float32)
        hits: list[Hit] = []
        if built is not None:
            search_k = self.settings.search_k * math.ceil(k / 10)
            positions, distances = built.annoy.get_nns_by_vector(
                vector.tolist(), k, search_k=search_k, include_distances=True
            )
            scores = angular_to_cosine(np.asarray(distances))
            hits += [
                Hit(int(i), float(s))
                for i, s in zip(built.ids[np.asarray(positions, dtype=np.int64)], scores, strict=True)
            ]
        if len(buffer):
            rows, scores = exact_top_k(buffer, vector, k)
            hits += [Hit(int(i), float(s)) for i, s in zip(buffer_ids[rows], scores, strict=True)]
        hits.sort(key=lambda hit: -hit.score)
        return [hit for hit in hits[:k] if min_score is None or hit.score >= min_score]

    def needs_rebuild(self) -> bool:
        """Past the crossover with nothing built yet, or with a full buffer."""
        if self._buffered == 0 or len(self) < self.settings.exact_below:
            return False
        return self._built is None or self._buffered >= self.settings.rebuild_after

    def rebuild(self, batches: Batches) -> None:
        """Build a new Annoy index from every vector (`batches`, in id order) and switch to it.

        Vectors added meanwhile stay in the buffer; the buffered ones the new index covers leave it.
        """
        with _exclusive(self.directory / ".lock"):
            self._collect_garbage()
            stamp = f"{time.time_ns():x}"
            ann_name, ids_name = f"prompts-{stamp}.ann", f"prompts-{stamp}.ids.npy"
            annoy = AnnoyIndex(self.dim, "angular")
            annoy.on_disk_build(str(self.directory / ann_name))
            all_ids, count = [], 0
            for ids, vectors in batches:
                for vector in vectors:
                    annoy.add_item(count, vector.tolist())
                    count += 1
                all_ids.append(np.asarray(ids, dtype=np.int64))
            if count == 0:
                raise SearchError("there is nothing to index")
            annoy.build(self.settings.trees, n_jobs=self.settings.build_jobs)
            annoy.unload()
            ids = np.concatenate(all_ids)
            np.save(self.directory / ids_name, ids)
            for name in (ann_name, ids_name):
                sync_to_disk(self.directory / name)
            manifest = {
                "annoy": ann_name,
                "ids": ids_name,
                "dim": self.dim,
                "trees": self.settings.trees,
                "count": len(ids),
                "last_id": int(ids.max()),
            }
            write_text_atomically(self.directory / MANIFEST, json.dumps(manifest))
            built = self._load()
            assert built is not None  # the manifest was just written
            self._switch(built)
            self._collect_garbage()

    def _switch(self, built: BuiltIndex) -> None:
        with self._lock:
            keep = self._buffer_ids[: self._buffered] > built.last_id
            self._buffer, self._buffer_ids = (
                self._buffer[: self._buffered][keep],
                self._buffer_ids[: self._buffered][keep],
            )
            self._buffered = len(self._buffer_ids)
            self._built = built  # in-flight searches keep the old one mapped until they finish

    def _collect_garbage(self) -> None:
        """Remove what no manifest names: earlier builds and the remains of a build that died."""
        manifest = self._manifest() or {}
        current = {manifest.get("annoy"), manifest.get("ids")}
        for path in self.directory.iterdir():
            if path.name.startswith(("prompts-", f".{MANIFEST}", TEMPORARY_PREFIX)) and path.name not in current:
                path.unlink(missing_ok=True)

    def rebuild_in_background(self, batches: Callable[[], Batches]) -> bool:
        """Start a rebuild thread unless one is running; `batches` is called in the thread."""
        with self._lock:
            if self._rebuild is not None and self._rebuild.is_alive():
                return False
            self._rebuild = threading.Thread(
                target=self._rebuild_quietly, args=(batches,), name="prompt-index-rebuild", daemon=True
            )
            self._rebuild.start()
            return True

    def _rebuild_quietly(self, batches: Callable[[], Batches]) -> None:
        try:
            self.rebuild(batches())
            self.last_error = None
        except Exception as error:  # noqa: BLE001 - a failed rebuild must not take the app down
            self.last_error = error
            log.exception("rebuilding the prompt index failed; the previous index stays in use")

    def wait(self) -> None:
        """Until the background rebuild (if any) has finished."""
        if self._rebuild is not None:
            self._rebuild.join()
