"""Read Korean–English parallel corpora as they ship: the AI Hub release (xlsx `원문`/`번역문`, csv/json `ko`/`en`)
and the open corpora's formats: parquet or arrow (ko/en columns, or a `translation` struct as the hub serves
OPUS-100), JSON Lines or JSON in either layout, Moses pairs (NAME.ko + NAME.en), TMX, and `hf:NAME[:CONFIG][@SPLIT]`
through `datasets`. The format is detected from the file (`formats.detect`), so any mix works with no conversion.

Reading streams (see `formats`), so a corpus of millions of pairs is never held in memory twice; duplicates are
tracked by a 64-bit digest per pair rather than by the text.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ko_clip.dataset.formats import (
    HF_PREFIX,
    CorpusError,
    detect,
    moses_pairs,
    moses_sibling,
    open_table,
    tmx_pairs,
    unreadable,
)

KOREAN_COLUMNS = ("원문", "ko", "korean", "kor")
ENGLISH_COLUMNS = ("번역문", "en", "english", "eng")
TRANSLATION_COLUMN = "translation"
PARALLEL = ("xlsx", "csv", "json", "jsonl", "parquet", "arrow", "moses", "tmx")
_LANGUAGES: dict[str, tuple[str, ...]] = {"Korean": KOREAN_COLUMNS, "English": ENGLISH_COLUMNS}
_SPACE = re.compile(r"\s+")

Source = Path | str  # a file, or an `hf:` entry


@dataclass(frozen=True)
class Pair:
    ko: str
    en: str


def normalize(text: object) -> str:
    """NFC, collapsed whitespace, stripped; anything that is not a string (an empty cell) becomes ''."""
    if not isinstance(text, str):
        return ""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def pick(columns: Iterable[object], wanted: tuple[str, ...], where: object, language: str) -> str:
    """The first of `wanted` among `columns` (case-insensitive), or an error naming what was found."""
    names: dict[str, Any] = {str(c).strip().lower(): c for c in columns if c is not None}
    for name in wanted:
        if name.lower() in names:
            return names[name.lower()]
    found = ", ".join(str(c) for c in columns if c is not None) or "none"
    raise CorpusError(f"{where}: no {language} column (expected one of {', '.join(wanted)}; found {found})")


def table_rows(source: Source, kind: str, languages: dict[str, tuple[str, ...]]) -> Iterator[tuple[object, ...]]:
    """Rows of a table, one value per language (e.g. {"Korean": KOREAN_COLUMNS}): each from its own column or its
    field of a `translation` struct column. Columns are resolved before any row is read, so a file lacking one
    fails at once, naming the columns it has."""
    table = open_table(source, kind)
    lowered = {n.lower(): n for n in table.names}
    columns: list[str] = []
    for language, wanted in languages.items():
        if TRANSLATION_COLUMN in lowered and not any(w.lower() in lowered for w in wanted):
            columns.append(lowered[TRANSLATION_COLUMN])
        else:
            columns.append(pick(table.names, wanted, source, language))
    fields: list[str | None] = [None] * len(columns)  # the struct field each language reads, once seen
    wanted_by = list(languages.items())
    for batch in _guarded(source, kind, table.batches(list(dict.fromkeys(columns)))):
        for values in zip(*(batch[c] for c in columns)):
            row = []
            for i, value in enumerate(values):
                if isinstance(value, dict):
                    if fields[i] is None:
                        language, wanted = wanted_by[i]
                        fields[i] = pick(value, wanted, f"{source}: {columns[i]}", language)
                    value = value.get(fields[i])
                row.append(value)
            yield tuple(row)


def _guarded(source: Source, kind: str, batches: Iterator[dict[str, list]]) -> Iterator[dict[str, list]]:
    try:
        yield from batches
    except CorpusError:
        raise
    except Exception as error:  # a damaged file can fail mid-way, in whichever library reads it
        raise unreadable(source, kind, error) from error


def read_source(source: Source) -> Iterator[tuple[object, ...]]:
    """Raw (Korean, English) values of one file or `hf:` entry."""
    if isinstance(source, str):
        return table_rows(source, "hf", _LANGUAGES)
    kind = detect(source)
    assert kind is not None  # corpus_files keeps only files of a known format
    if kind == "moses":
        return moses_pairs(source)
    if kind == "tmx":
        return tmx_pairs(source)
    return table_rows(source, kind, _LANGUAGES)


def corpus_files(sources: Iterable[str | Path], kinds: tuple[str, ...] = PARALLEL) -> list[Source]:
    """Files of `sources` whose format is one of `kinds`, directories expanded recursively, in a stable order;
    `hf:` entries as they are; a Moses pair once, as its `.ko` file."""
    sources = list(sources)
    files: list[Source] = []
    for entry in sources:
        if isinstance(entry, str) and entry.startswith(HF_PREFIX):
            files.append(entry)
            continue
        source = Path(entry)
        if source.is_dir():
            found = (p for p in sorted(source.rglob("*")) if p.is_file() and p.suffix and _kind(p) in kinds)
            files += [
                p for p in found if _kind(p) != "moses" or p.suffix.lower() == ".ko" or not moses_sibling(p).exists()
            ]
        elif source.is_file():
            kind = _kind(source)
            if kind not in kinds:
                expected = ", ".join(k for k in kinds if k != "hf")
                raise CorpusError(f"{source}: unsupported file type (expected {expected}, or hf:NAME[:CONFIG][@SPLIT])")
            files.append(source if kind != "moses" or source.suffix.lower() == ".ko" else moses_sibling(source))
        else:
            raise CorpusError(f"{source}: no such file or directory")
    if not files:
        raise CorpusError(f"no corpus files ({', '.join(kinds)}) in {', '.join(map(str, sources))}")
    return list(dict.fromkeys(files))


def _kind(path: Path) -> str | None:
    try:
        return detect(path)
    except OSError as error:
        raise CorpusError(f"{path}: cannot be read ({error})") from error


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def read_pairs(sources: Iterable[str | Path], max_chars: int = 300) -> Iterator[Pair]:
    """Normalized pairs from every file, without empty, duplicate or overlong (> `max_chars`) pairs."""
    seen: set[int] = set()
    for source in corpus_files(sources):
        for ko, en in read_source(source):
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
    for pair in tqdm(read_pairs(sources, max_chars), desc="corpus", unit=" pairs", mininterval=2, leave=False):
        (validation if is_validation(pair, fraction) else train).append(pair)
    return train, validation
