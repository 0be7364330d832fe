"""Prompt datasets into the gallery: csv or parquet tables of prompts and image paths, DiffusionDB's included."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from demo.search.index import SearchError
from demo.search.service import SearchService
from demo.search.store import NewRecord


def import_prompts(
    service: SearchService,
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
            others = chunk.drop(columns=[prompt_column, image_column])
            parameters = json.loads(others.to_json(orient="records", force_ascii=False))
            keep = [
                (i, source)
                for i, (prompt, source) in enumerate(zip(prompts, sources, strict=True))
                if prompt and source
            ]
            counts["no prompt"] += prompts.count("")
            counts["missing image"] += sum(
                1 for prompt, source in zip(prompts, sources, strict=True) if prompt and source is None
            )
            vectors = service.embedder.embed_texts([prompts[i] for i, _ in keep])
            items = [
                NewRecord(
                    source,
                    prompts[i],
                    vector,
                    {k: v for k, v in parameters[i].items() if v is not None},
                    f"{path.stem}/{find.relative(source)}",
                )
                for (i, source), vector in zip(keep, vectors, strict=True)
            ]
            records = list(service.store.import_files(items, batch_size))
            service.index_records(records)
            counts["added"] += len(records)
            bar.update(len(chunk))
    service.reindex()
    return counts


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
        raise SearchError(
            f"{path.name} has no column {', '.join(missing)}; its columns: {', '.join(map(str, frame.columns))}"
        )
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
