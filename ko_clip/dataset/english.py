"""English-only prompt collections (`english_corpus:`): parquet, arrow, csv, json/jsonl or txt, e.g. DiffusionDB's
`metadata.parquet` with its `prompt` column. They feed the English side of training on their own: the student
reads the English prompt and is distilled onto the teacher's output for it, no Korean needed."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm

from ko_clip.dataset.corpus import ENGLISH_COLUMNS, corpus_files, normalize, table_rows
from ko_clip.dataset.formats import detect, text_lines

PROMPT_COLUMNS = ("prompt", *ENGLISH_COLUMNS, "text", "caption")
ENGLISH_ONLY = ("parquet", "arrow", "csv", "json", "jsonl", "text")


def read_english(sources: Iterable[str | Path], max_chars: int = 300, exclude: Iterable[str] = ()) -> list[str]:
    """Distinct normalized sentences of every file, without empty, overlong or `exclude`d ones, in file order."""
    kept: dict[str, None] = {}
    excluded = set(exclude)
    for source in corpus_files(sources, ENGLISH_ONLY + ("hf",)):
        if isinstance(source, Path) and detect(source) == "text":
            values: Iterable[object] = text_lines(source)
        else:
            kind = "hf" if isinstance(source, str) else detect(source)
            assert kind is not None  # corpus_files keeps only files of a known format
            values = (row[0] for row in table_rows(source, kind, {"English": PROMPT_COLUMNS}))
        for value in tqdm(values, desc=f"English prompts {Path(str(source)).name}", unit=" rows", mininterval=2):
            text = normalize(value)
            if text and len(text) <= max_chars and text not in excluded:
                kept[text] = None
    return list(kept)
