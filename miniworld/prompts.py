"""Prompt files: one prompt per row with the scene it describes, the input of `python -m miniworld.evaluate`.

Columns prompt,color,shape,size,position,background (attribute values in English; the prompt in any language).
The corpus writer adds `en`, the scene's English caption; a probe file may add `english`, its own translation.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from miniworld.world import ATTRIBUTES, Scene

COLUMNS = ("prompt", *ATTRIBUTES)


def read_prompts(path: Path, column: str = "prompt") -> tuple[list[str], list[Scene]]:
    """The prompts of `column` and the scenes they describe; a clear error for a missing column or an unknown value."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read as CSV ({error})") from error
    missing = [c for c in (column, *COLUMNS) if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(dict.fromkeys(missing))}; expected {','.join(COLUMNS)}")
    if table.empty:
        raise ValueError(f"{path}: no prompts")
    scenes = []
    for row_number, row in enumerate(table.itertuples(index=False), start=2):
        try:
            scenes.append(Scene(**{name: getattr(row, name).strip() for name in ATTRIBUTES}))
        except ValueError as error:
            raise ValueError(f"{path}, line {row_number}: {error}") from error
    return table[column].tolist(), scenes


def has_column(path: Path, column: str) -> bool:
    return column in pd.read_csv(path, nrows=0).columns
