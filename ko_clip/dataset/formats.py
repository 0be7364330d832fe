"""Corpus file formats, detected from the file: tables (xlsx, csv, json/jsonl, parquet, arrow, a `datasets` dataset)
read in column batches, and the line- and unit-based translation formats (Moses pairs, TMX).

Everything streams: openpyxl read-only, pandas chunks, JSON Lines line by line, parquet and arrow record batches,
Moses files line by line, TMX by `iterparse` (each unit cleared once read), `datasets` memory-mapped. A plain
JSON document (the AI Hub layout, one object holding a list of records) is the one format read whole.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

import pandas as pd

BATCH_ROWS = 10_000
HF_PREFIX = "hf:"
SUFFIXES = {
    ".xlsx": "xlsx",
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".tmx": "tmx",
    ".ko": "moses",
    ".en": "moses",
    ".txt": "text",
}
_MAGIC = ((b"PAR1", "parquet"), (b"ARROW1", "arrow"), (b"\xff\xff\xff\xff", "arrow"), (b"PK\x03\x04", "xlsx"))
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


class CorpusError(ValueError):
    """A corpus file that cannot be read as parallel pairs; the message names the file and what is wrong."""


def detect(path: Path) -> str | None:
    """The format of `path`: its suffix, else its first bytes (parquet, arrow, xlsx, TMX, JSON); None if unknown."""
    if path.suffix.lower() in SUFFIXES:
        return SUFFIXES[path.suffix.lower()]
    with path.open("rb") as file:
        head = file.read(1024)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    text = head.decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
    if text.startswith("<") and "<tmx" in text:
        return "tmx"
    return "json" if text[:1] in ("{", "[") else None


def moses_sibling(path: Path) -> Path:
    """The other file of a Moses pair: NAME.ko ↔ NAME.en."""
    return path.with_suffix(".en" if path.suffix.lower() == ".ko" else ".ko")


@dataclass
class Table:
    """A table's column names and a reader of the chosen columns, one {column: values} batch at a time."""

    names: list[str]
    batches: Callable[[list[str]], Iterator[dict[str, list]]]


def open_table(source: Path | str, kind: str) -> Table:
    try:
        return _OPENERS[kind](source)
    except CorpusError:
        raise
    except Exception as error:  # each library raises its own types for a damaged file
        raise unreadable(source, kind, error) from error


def unreadable(source: Path | str, kind: str, error: Exception) -> CorpusError:
    if kind == "hf":
        return CorpusError(f"{source}: cannot load with datasets ({type(error).__name__}: {error})")
    what = {"csv": "UTF-8 csv", "json": "UTF-8 JSON", "jsonl": "UTF-8 JSON Lines"}.get(kind, kind)
    return CorpusError(f"{source}: not a readable {what} file ({type(error).__name__}: {error})")


def _xlsx(path: Path) -> Table:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    header = next(workbook.worksheets[0].iter_rows(values_only=True), None)
    if header is None:
        workbook.close()
        raise CorpusError(f"{path}: the first sheet is empty")
    names = [str(c).strip() if c is not None else "" for c in header]

    def batches(columns: list[str]) -> Iterator[dict[str, list]]:
        index = [names.index(c) for c in columns]
        try:
            rows = workbook.worksheets[0].iter_rows(values_only=True)
            next(rows)
            batch: dict[str, list] = {c: [] for c in columns}
            for row in rows:
                for column, i in zip(columns, index):
                    batch[column].append(row[i] if i < len(row) else None)
                if len(batch[columns[0]]) == BATCH_ROWS:
                    yield batch
                    batch = {c: [] for c in columns}
            yield batch
        finally:
            workbook.close()

    return Table([n for n in names if n], batches)


def _csv(path: Path) -> Table:
    def read(**options) -> pd.DataFrame:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", **options)

    names = list(read(nrows=0).columns)

    def batches(columns: list[str]) -> Iterator[dict[str, list]]:
        try:
            for chunk in read(usecols=columns, chunksize=BATCH_ROWS):
                yield {c: chunk[c].tolist() for c in columns}
        except (pd.errors.ParserError, UnicodeDecodeError) as error:
            raise unreadable(path, "csv", error) from error

    return Table(names, batches)


def _json_lines(path: Path) -> bool:
    """JSON Lines (one record a line, whatever the suffix: `datasets` exports `.json` so) or one JSON document."""
    if path.suffix.lower() == ".jsonl":
        return True
    with path.open(encoding="utf-8-sig") as file:
        first = file.readline()
    try:
        record = json.loads(first)
    except json.JSONDecodeError:
        return False
    # a record holds text (or a translation object); the AI Hub wrapper holds its list of records
    values = record.values() if isinstance(record, dict) else ()
    return any(isinstance(v, str | dict) for v in values) and not any(isinstance(v, list) for v in values)


def _records(path: Path) -> Iterator[object]:
    try:
        if _json_lines(path):
            with path.open(encoding="utf-8-sig") as file:
                for number, line in enumerate(file, 1):
                    if line.strip():
                        try:
                            yield json.loads(line)
                        except json.JSONDecodeError as error:
                            raise CorpusError(f"{path}: line {number} is not valid JSON ({error})") from error
            return
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CorpusError(f"{path}: not valid UTF-8 JSON ({error})") from error
    if isinstance(data, dict):  # AI Hub wraps the records: {"data": [...]}
        data = next((v for v in data.values() if isinstance(v, list)), None)
    if not isinstance(data, list):
        raise CorpusError(f"{path}: expected a list of records or an object holding one")
    yield from data


def _json(path: Path) -> Table:
    records = _records(path)
    first = next(records, None)
    if first is None:
        return Table([], lambda columns: iter(()))
    if not isinstance(first, dict):
        raise CorpusError(f"{path}: records are {type(first).__name__}, expected objects with ko/en fields")

    def batches(columns: list[str]) -> Iterator[dict[str, list]]:
        batch: list[dict] = [first]
        for record in records:
            batch.append(record if isinstance(record, dict) else {})
            if len(batch) == BATCH_ROWS:
                yield {c: [r.get(c) for r in batch] for c in columns}
                batch = []
        yield {c: [r.get(c) for r in batch] for c in columns}

    return Table(list(first), batches)


def _parquet(path: Path) -> Table:
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    return Table(
        file.schema_arrow.names,
        lambda columns: (b.to_pydict() for b in file.iter_batches(batch_size=BATCH_ROWS, columns=columns)),
    )


def _arrow(path: Path) -> Table:
    """The Arrow IPC file format (feather v2), or the stream format that `datasets` writes (`data-*.arrow`)."""
    import pyarrow as pa

    source = pa.memory_map(str(path))
    try:
        reader = pa.ipc.open_file(source)
        pieces = (reader.get_batch(i) for i in range(reader.num_record_batches))
    except pa.ArrowInvalid:
        reader = pa.ipc.open_stream(source)
        pieces = iter(reader)
    return Table(reader.schema.names, lambda columns: (b.select(columns).to_pydict() for b in pieces))


def _hf(entry: str) -> Table:
    """`hf:NAME[:CONFIG][@SPLIT]` through `datasets.load_dataset` (offline from its cache with HF_DATASETS_OFFLINE=1);
    NAME may also be a directory written by `save_to_disk`."""
    try:
        import datasets
    except ImportError as error:
        raise CorpusError(f"{entry}: reading hf: corpora needs the datasets package (pip install datasets)") from error
    name, _, split = entry[len(HF_PREFIX) :].partition("@")
    name, _, config = name.partition(":")
    split = split or "train"
    if (Path(name) / "state.json").exists() or (Path(name) / "dataset_dict.json").exists():
        dataset = datasets.load_from_disk(name)
        if isinstance(dataset, datasets.DatasetDict):
            if split not in dataset:
                raise CorpusError(f"{entry}: no split {split!r} (has {', '.join(dataset)})")
            dataset = dataset[split]
    else:
        dataset = datasets.load_dataset(name, config or None, split=split)
    return Table(dataset.column_names, lambda columns: dataset.select_columns(columns).iter(batch_size=BATCH_ROWS))


_OPENERS: dict[str, Callable[..., Table]] = {  # a Path, or the `hf:` entry's text
    "xlsx": _xlsx,
    "csv": _csv,
    "json": _json,
    "jsonl": _json,
    "parquet": _parquet,
    "arrow": _arrow,
    "hf": _hf,
}
TABLES = tuple(_OPENERS)


def moses_pairs(path: Path) -> Iterator[tuple[str, str]]:
    """(Korean, English) lines of NAME.ko and NAME.en together; the two must have as many lines."""
    ko_path = path if path.suffix.lower() == ".ko" else moses_sibling(path)
    en_path = moses_sibling(ko_path)
    for side in (ko_path, en_path):
        if not side.is_file():
            raise CorpusError(f"{path}: a Moses file without its pair ({side} is missing)")
    try:
        with ko_path.open(encoding="utf-8-sig") as ko, en_path.open(encoding="utf-8-sig") as en:
            for number, (k, e) in enumerate(zip_longest(ko, en), 1):
                if k is None or e is None:
                    longer, shorter = (ko_path, en_path) if e is None else (en_path, ko_path)
                    raise CorpusError(
                        f"{longer}: has more lines than {shorter} ({number - 1}); a Moses pair must align"
                    )
                yield k, e
    except UnicodeDecodeError as error:
        raise CorpusError(f"{path}: not a UTF-8 text file ({error})") from error


def tmx_pairs(path: Path) -> Iterator[tuple[str, str]]:
    """(Korean, English) segments of every translation unit of a TMX file (1.4 `xml:lang`, or 1.1 `lang`)."""
    seen: set[str] = set()
    found = 0
    try:
        events = ET.iterparse(path, events=("start", "end"))
        _, root = next(events)
        if root.tag != "tmx":
            raise CorpusError(f"{path}: not a TMX file (the root element is <{root.tag}>, not <tmx>)")
        for event, element in events:
            if event != "end" or element.tag != "tu":
                continue
            segments: dict[str, str] = {}
            for variant in element.iter("tuv"):
                language = (variant.get(_XML_LANG) or variant.get("lang") or "").lower()
                seen.add(language)
                segment = variant.find("seg")
                if segment is not None:
                    segments.setdefault(language[:2], "".join(segment.itertext()))
            if "ko" in segments and "en" in segments:
                found += 1
                yield segments["ko"], segments["en"]
            root.clear()  # the units read so far are no longer held
    except ET.ParseError as error:
        raise CorpusError(f"{path}: not well-formed TMX ({error})") from error
    if not found:
        languages = ", ".join(sorted(seen)) or "none"
        raise CorpusError(
            f"{path}: no translation unit with both a Korean and an English segment (languages: {languages})"
        )


def text_lines(path: Path) -> Iterator[str]:
    try:
        with path.open(encoding="utf-8-sig") as file:
            yield from file
    except UnicodeDecodeError as error:
        raise CorpusError(f"{path}: not a UTF-8 text file ({error})") from error
