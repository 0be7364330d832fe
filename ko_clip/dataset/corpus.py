"""Read the AI Hub Korean–English parallel corpus as it ships: xlsx (`원문`/`번역문`), csv and json (`ko`/`en`).

Reading streams row by row (openpyxl read-only, pandas chunks), so a corpus of millions of pairs is never held
in memory twice; duplicates are tracked by a 64-bit digest per pair rather than by the text.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from openpyxl import load_workbook

KOREAN_COLUMNS = ("원문", "ko", "korean", "kor")
ENGLISH_COLUMNS = ("번역문", "en", "english", "eng")
SUFFIXES = (".xlsx", ".csv", ".json", ".jsonl")
_SPACE = re.compile(r"\s+")


class CorpusError(ValueError):
    """A corpus file that cannot be read as parallel pairs; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Pair:
    ko: str
    en: str


def normalize(text: object) -> str:
    """NFC, collapsed whitespace, stripped; anything that is not a string (an empty cell) becomes ''."""
    if not isinstance(text, str):
        return ""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def _pick(columns: Iterable[object], wanted: tuple[str, ...], path: Path, language: str) -> str:
    names = {str(c).strip().lower(): c for c in columns if c is not None}
    for name in wanted:
        if name.lower() in names:
            return names[name.lower()]
    found = ", ".join(str(c) for c in columns if c is not None) or "none"
    raise CorpusError(f"{path}: no {language} column (expected one of {', '.join(wanted)}; found {found})")


def _read_xlsx(path: Path) -> Iterator[tuple[object, object]]:
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many types for a damaged file
        raise CorpusError(f"{path}: not a readable xlsx file ({error})") from error
    try:
        rows = workbook.worksheets[0].iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            raise CorpusError(f"{path}: the first sheet is empty")
        ko = header.index(_pick(header, KOREAN_COLUMNS, path, "Korean"))
        en = header.index(_pick(header, ENGLISH_COLUMNS, path, "English"))
        for row in rows:
            yield (row[ko] if ko < len(row) else None, row[en] if en < len(row) else None)
    finally:
        workbook.close()


def _read_csv(path: Path, chunk_rows: int = 100_000) -> Iterator[tuple[object, object]]:
    try:
        chunks = pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=chunk_rows, encoding="utf-8-sig")
        for chunk in chunks:
            ko = _pick(chunk.columns, KOREAN_COLUMNS, path, "Korean")
            en = _pick(chunk.columns, ENGLISH_COLUMNS, path, "English")
            yield from zip(chunk[ko], chunk[en])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise CorpusError(f"{path}: not a readable UTF-8 csv file ({error})") from error


def _records(path: Path) -> list:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    if isinstance(data, dict):  # AI Hub wraps the records: {"data": [...]}
        data = next((v for v in data.values() if isinstance(v, list)), None)
    if not isinstance(data, list):
        raise CorpusError(f"{path}: expected a list of records or an object holding one")
    return data


def _read_json(path: Path) -> Iterator[tuple[object, object]]:
    try:
        records = _records(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CorpusError(f"{path}: not valid UTF-8 JSON ({error})") from error
    if not records:
        return
    if not isinstance(records[0], dict):
        raise CorpusError(f"{path}: records are {type(records[0]).__name__}, expected objects with ko/en fields")
    ko = _pick(records[0].keys(), KOREAN_COLUMNS, path, "Korean")
    en = _pick(records[0].keys(), ENGLISH_COLUMNS, path, "English")
    for record in records:
        yield record.get(ko), record.get(en)


_READERS = {".xlsx": _read_xlsx, ".csv": _read_csv, ".json": _read_json, ".jsonl": _read_json}


def corpus_files(sources: Iterable[str | Path]) -> list[Path]:
    """Files of `sources`, directories expanded recursively, in a stable order."""
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            files += sorted(p for p in source.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
        elif source.is_file():
            if source.suffix.lower() not in SUFFIXES:
                raise CorpusError(f"{source}: unsupported file type (expected {', '.join(SUFFIXES)})")
            files.append(source)
        else:
            raise CorpusError(f"{source}: no such file or directory")
    if not files:
        raise CorpusError(f"no corpus files ({', '.join(SUFFIXES)}) in {', '.join(map(str, sources))}")
    return files


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def read_pairs(sources: Iterable[str | Path], max_chars: int = 300) -> Iterator[Pair]:
    """Normalized pairs from every file, without empty, duplicate or overlong (> `max_chars`) pairs."""
    seen: set[int] = set()
    for path in corpus_files(sources):
        for ko, en in _READERS[path.suffix.lower()](path):
            pair = Pair(normalize(ko), normalize(en))
            if not pair.ko or not pair.en or len(pair.ko) > max_chars or len(pair.en) > max_chars:
                continue
            key = _digest(pair.ko + "\t" + pair.en)
            if key not in seen:
                seen.add(key)
                yield pair


def is_validation(pair: Pair, fraction: float) -> bool:
    """A deterministic split by the Korean sentence's digest: the same sentence always lands on the same side."""
    return _digest(pair.ko) % 10_000 < fraction * 10_000


def split_pairs(
    sources: Iterable[str | Path], fraction: float = 0.05, max_chars: int = 300
) -> tuple[list[Pair], list[Pair]]:
    """(train, validation) lists."""
    train: list[Pair] = []
    validation: list[Pair] = []
    for pair in read_pairs(sources, max_chars):
        (validation if is_validation(pair, fraction) else train).append(pair)
    return train, validation
