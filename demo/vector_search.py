"""Similar-prompt search over the gallery, in Korean or English, or by image.

    python -m demo.vector_search query "TEXT" [--k 5] [--json] [--min-score S] [--data-dir instance]
    python -m demo.vector_search query-image IMAGE [--k 5] [--json] [--min-score S] [--data-dir instance]
    python -m demo.vector_search build PROMPTS.csv|.parquet [--prompt-column prompt] [--image-column image_name]
                                       [--images-dir DIR] [--limit N]
    python -m demo.vector_search seed-gallery [--count 24] [--steps 10] [--config embedded]

Every record's prompt embedding (see `demo.embeddings`) goes into a `PromptIndex` (see `demo.prompt_index`):
exact search while the gallery is small, Annoy plus an exact buffer for new records above the crossover that
benchmarks/search_benchmark.py measured. A full buffer starts a rebuild in a background thread, so a new image
is searchable at once and the app never waits for Annoy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import numpy as np
import pandas as pd
import yaml
from PIL import Image
from tqdm import tqdm

from demo.config import REPO, resolve
from demo.gallery import GalleryError, GalleryStore, NewRecord, Record
from demo.images import ImageError, open_upload
from demo.prompt_index import Batches, IndexSettings, PromptIndex, SearchError
from miniworld.korean import korean_captions
from miniworld.world import all_scenes, english_caption

if TYPE_CHECKING:  # the model libraries load only where models do, so the index alone starts fast
    from demo.embeddings import PromptEmbedder
    from demo.pipeline import Generator

DEFAULT_DATA_DIR = REPO / "instance"  # the Flask app's instance folder


@dataclass
class SearchConfig:
    clip: str = "miniworld/weights/clip"  # CLIPModel whose text tower is the refiner's; real: laion/CLIP-ViT-bigG-14-laion2B-39B-b160k
    korean_encoder: str = "miniworld/weights/ko-clip"
    target: str = "refiner"  # the ko_clip head whose pooled output lives in that CLIP's space
    index: IndexSettings = field(default_factory=IndexSettings)
    max_k: int = 100
    max_query_chars: int = 300



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
    record: Record
    score: float

    @property
    def image_url(self) -> str:
        return image_url(self.record.image)

    def as_json(self) -> dict:
        return {"prompt": self.record.prompt, "score": round(self.score, 4)} | record_json(self.record)


def record_json(record: Record) -> dict:
    """A gallery record as the API and the CLI answer it."""
    return {"prompt": record.prompt, "image": image_url(record.image), "id": record.id,
            "negative_prompt": record.negative_prompt, "parameters": record.parameters, "created": record.created}


def image_url(name: str) -> str:
    """Where the web app serves a gallery image."""
    return "/images/" + quote(name)


class SearchService:
    """The gallery store, its prompt index and the embedder, as one app-scoped object."""

    def __init__(self, store: GalleryStore, index: PromptIndex, embedder: "PromptEmbedder", config: SearchConfig) -> None:
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
        embedder: "PromptEmbedder | None" = None,
        generator: "Generator | None" = None,
    ) -> "SearchService":
        """Open (or create) the gallery in `data_dir`; the embedder is loaded from `config` unless given.

        Beside a `generator` it loads on the generator's device in its dtype and shares its Korean encoder when
        both name the same one: no second encoder, no float32 CLIP beside a float16 pipeline on the GPU.
        """
        config = config or SearchConfig()
        if embedder is None:
            from demo.embeddings import PromptEmbedder
            from ko_clip import KoreanPromptEncoder

            korean = resolve(config.korean_encoder)
            placement = {}
            if generator is not None:
                placement = {"device": generator.device, "dtype": generator.dtype}
                shared = generator.encoder
                if korean == resolve(generator.config.korean_encoder) and isinstance(shared, KoreanPromptEncoder):
                    korean = shared
            embedder = PromptEmbedder.from_pretrained(resolve(config.clip), korean, config.target, **placement)
        store = GalleryStore(data_dir)
        return cls(store, PromptIndex(Path(data_dir) / "index", embedder.dim, config.index), embedder, config)

    def close(self) -> None:
        self.index.wait()
        self.store.close()

    def __len__(self) -> int:
        return len(self.index)

    def add(self, image: Image.Image, prompt: str, parameters: dict | None = None, negative_prompt: str = "") -> Record:
        """Store a generated image and make it searchable at once."""
        record = self.store.add(image, prompt, self.embedder.embed_text(prompt), parameters, negative_prompt)
        self._index([record])
        self._rebuild_if_due()
        return record

    def _index(self, records: list[Record]) -> None:
        if records:
            self.index.add(np.array([r.id for r in records]), np.stack([r.embedding for r in records]))

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
            raise SearchError("the query is empty")
        if len(query) > self.config.max_query_chars:
            raise SearchError(f"the query is too long: at most {self.config.max_query_chars} characters")
        self._check(k, min_score)
        return self._results(self.embedder.embed_text(query), k, min_score)

    def search_image(self, image: Image.Image | bytes, k: int = 5, min_score: float | None = None) -> list[SearchResult]:
        """Records whose prompt matches an image (e.g. an upload), by CLIP image–text similarity."""
        self._check(k, min_score)
        try:
            image = open_upload(image) if isinstance(image, bytes) else image
        except ImageError as error:
            raise SearchError(str(error)) from error
        return self._results(self.embedder.embed_images([image])[0], k, min_score)

    def _check(self, k: int, min_score: float | None) -> None:
        if not isinstance(k, int) or not 1 <= k <= self.config.max_k:
            raise SearchError(f"k must be a whole number between 1 and {self.config.max_k}")
        if min_score is not None and not -1.0 <= min_score <= 1.0:
            raise SearchError("the minimum score must be between -1 and 1")

    def _results(self, vector: np.ndarray, k: int, min_score: float | None) -> list[SearchResult]:
        hits = self.index.search(vector, k, min_score)
        records = self.store.get_many([hit.id for hit in hits])
        return [SearchResult(records[hit.id], hit.score) for hit in hits if hit.id in records]

    def import_prompts(
        self,
        path: Path,
        prompt_column: str = "prompt",
        image_column: str = "image_name",
        images_dir: Path | None = None,
        limit: int | None = None,
        batch_size: int = 256,
    ) -> dict[str, int]:
        """Add a prompt dataset (csv/parquet: a prompt and an image path per row; the other columns become the
        parameters), then index it; an interrupted import can simply run again. Returns counts for a summary."""
        frame = read_prompts(path, [prompt_column, image_column])
        frame = frame.head(limit) if limit else frame
        find = ImageFinder(images_dir or path.parent)
        counts = {"rows": len(frame), "added": 0, "no prompt": 0, "missing image": 0}
        with tqdm(total=len(frame), desc=f"importing {path.name}", unit="prompt") as bar:
            for start in range(0, len(frame), batch_size):
                chunk = frame.iloc[start : start + batch_size]
                prompts = chunk[prompt_column].fillna("").astype(str).str.strip().tolist()
                sources = [find(name) for name in chunk[image_column].fillna("").astype(str)]
                parameters = json.loads(chunk.drop(columns=[prompt_column, image_column]).to_json(orient="records", force_ascii=False))
                keep = [i for i, (prompt, source) in enumerate(zip(prompts, sources)) if prompt and source]
                counts["no prompt"] += prompts.count("")
                counts["missing image"] += sum(1 for prompt, source in zip(prompts, sources) if prompt and source is None)
                vectors = self.embedder.embed_texts([prompts[i] for i in keep])
                items = [
                    NewRecord(sources[i], prompts[i], vector, {k: v for k, v in parameters[i].items() if v is not None}, f"{path.stem}/{find.relative(sources[i])}")
                    for i, vector in zip(keep, vectors)
                ]
                records = list(self.store.import_files(items, batch_size))
                self._index(records)
                counts["added"] += len(records)
                bar.update(len(chunk))
        self.reindex()
        return counts

    def reindex(self) -> None:
        """Rebuild the Annoy index now if it is due (the CLI's way; the app rebuilds in the background)."""
        self.index.wait()
        if self.index.needs_rebuild():
            batches = self._all_embeddings()
            self.index.rebuild(tqdm(batches, total=math.ceil(self.store.count() / 10_000), desc="building the Annoy index", unit="batch"))


def read_prompts(path: Path, columns: list[str]) -> pd.DataFrame:
    """A csv or parquet prompt table that has `columns`."""
    if not path.is_file():
        raise SearchError(f"no such file: {path}")
    if path.suffix == ".csv":
        frame = pd.read_csv(path)
    elif path.suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except ImportError as error:
            raise SearchError("reading parquet needs pyarrow: pip install pyarrow") from error
    else:
        raise SearchError(f"{path.name}: expected a .csv or .parquet file")
    if missing := [c for c in columns if c not in frame.columns]:
        raise SearchError(f"{path.name} has no column {', '.join(missing)}; its columns: {', '.join(map(str, frame.columns))}")
    return frame


class ImageFinder:
    """Image files under a folder, by the path a prompt table gives or else by file name alone: DiffusionDB's
    metadata names `f3501e05….png`, which its zips unpack into `part-000001/` folders."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._by_name: dict[str, Path] | None = None

    def __call__(self, name: str) -> Path | None:
        """The file, if one inside the folder answers to `name`."""
        if not name or "\0" in name:
            return None
        path = (self.root / name).resolve()
        if path.is_relative_to(self.root) and path.is_file():
            return path
        if self._by_name is None:  # walked once, on the first name not found as given
            self._by_name = {p.name: p for p in sorted(self.root.rglob("*")) if p.is_file()}
        return self._by_name.get(Path(name).name)

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def seed_prompts(count: int, seed: int = 0) -> list[str]:
    """Miniworld scenes, captioned in English and Korean by turns, so either language finds the other."""
    rng = random.Random(seed)
    scenes = rng.sample(all_scenes(), min(count, len(all_scenes())))
    return [english_caption(s) if i % 2 == 0 else korean_captions(s, 1, rng)[0] for i, s in enumerate(scenes)]


def seed_gallery(service: SearchService, generator: "Generator", count: int = 24, seed: int = 0, steps: int = 10) -> list[Record]:
    """A first gallery from `generator`, so search has something to find on first start: few steps and no
    refiner keep it to seconds on a CPU with the embedded models."""
    from demo.pipeline import Request

    records = []
    for i, prompt in enumerate(tqdm(seed_prompts(count, seed), desc="seeding the gallery", unit="image")):
        result = generator(Request(prompt, seed=seed + i, steps=steps, refiner=False))
        records.append(service.add(result.images[0], prompt, result.parameters[0]))
    return records


def _print_results(results: list[SearchResult], as_json: bool) -> None:
    if as_json:
        print(json.dumps([r.as_json() for r in results], ensure_ascii=False, indent=2))
        return
    for rank, result in enumerate(results, start=1):
        print(f"{rank:>3}  {result.score:6.3f}  {result.record.prompt}  {result.image_url}")
    if not results:
        print("no results above the minimum score")


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the app's data directory (default: instance/)")
    common.add_argument("--search-config", type=Path, help="YAML of SearchConfig keys (default: the embedded models)")
    parser = argparse.ArgumentParser(prog="python -m demo.vector_search", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, target, what in (("query", "text", "the text to search for, Korean or English"), ("query-image", "image", "an image file")):
        command = commands.add_parser(name, parents=[common], help=f"search by {target}")
        command.add_argument(target, type=str if target == "text" else Path, help=what)
        command.add_argument("--k", type=int, default=5, help="how many results (default 5)")
        command.add_argument("--min-score", type=float, help="leave out results below this cosine similarity")
        command.add_argument("--json", action="store_true", help="a JSON list of {prompt, score, image, ...}")
    build = commands.add_parser("build", parents=[common], help="add a prompt dataset (csv/parquet of prompts and image paths) and index it")
    build.add_argument("prompts", type=Path)
    build.add_argument("--prompt-column", default="prompt")
    build.add_argument("--image-column", default="image_name", help="image paths relative to --images-dir, or bare file names found anywhere under it (DiffusionDB)")
    build.add_argument("--images-dir", type=Path, help="default: the dataset file's folder")
    build.add_argument("--limit", type=int, help="only the first N rows")
    seed = commands.add_parser("seed-gallery", parents=[common], help="generate a first gallery of miniworld prompts")
    seed.add_argument("--count", type=int, default=24)
    seed.add_argument("--seed", type=int, default=0)
    seed.add_argument("--steps", type=int, default=10, help="denoising steps (default 10)")
    seed.add_argument("--config", default="embedded", help="generator config: a YAML path or embedded / sd2-sdxl")
    args = parser.parse_args(argv)
    try:
        service = SearchService.open(args.data_dir, load_search_config(args.search_config))
        try:
            return _run(service, args)
        finally:
            service.close()
    except (SearchError, GalleryError, ImageError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(service: SearchService, args: argparse.Namespace) -> int:
    if args.command == "query":
        _print_results(service.search_text(args.text, args.k, args.min_score), args.json)
    elif args.command == "query-image":
        _print_results(service.search_image(args.image.read_bytes(), args.k, args.min_score), args.json)
    elif args.command == "build":
        counts = service.import_prompts(args.prompts, args.prompt_column, args.image_column, args.images_dir, args.limit)
        print(", ".join(f"{name}: {n}" for name, n in counts.items()) + f"; the gallery holds {len(service)} images")
    else:
        from demo.config import load_config
        from demo.pipeline import Generator

        records = seed_gallery(service, Generator(load_config(args.config)), args.count, args.seed, args.steps)
        print(f"added {len(records)} images; the gallery holds {len(service)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
