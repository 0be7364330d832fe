"""Durable writes: a file or a directory is replaced whole or not at all, and once a call returns, a power cut
cannot take it back.

Every writer in the project goes through here: gallery images, the search index manifest, the web app's secret
key, training checkpoints and caches, encoder and pipeline directories. The pattern is the usual one: write a
temporary sibling, fsync it, rename it over the target (atomic on POSIX), fsync the folder that holds the new
name. This package imports nothing of ours, so `demo`, `ko_clip` and `miniworld` may all use it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

TEMPORARY_PREFIX = ".tmp-"  # a file being written; the name of what a killed writer leaves behind starts with it
OWNER_ONLY = 0o600


def sync_to_disk(path: str | Path) -> None:
    """fsync a file or folder: after this, a power cut cannot take it back."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_file(path: str | Path) -> Path:
    """Create `path` (or tighten it) readable and writable by its owner only: other people's prompts, or a key."""
    path = Path(path)
    path.touch(mode=OWNER_ONLY, exist_ok=True)
    path.chmod(OWNER_ONLY)
    return path


def temporary_sibling(target: Path) -> Path:
    """A fresh name beside `target`: in its folder, so the rename stays on one file system; unique, so writers
    never share one; ending in its name, so writers that choose the format by the suffix (pandas, numpy) write
    the right one."""
    return target.with_name(f"{TEMPORARY_PREFIX}{uuid.uuid4().hex[:16]}-{target.name}")


def save_atomically(
    save: Callable[[Path], object], target: str | Path, *, private: bool = False, overwrite: bool = True
) -> Path:
    """Have `save` write a temporary file beside `target`, then put it in place: readers see the old file or the
    new one, never part of one. If `save` raises, `target` is untouched and the temporary is gone.

    `private`: owner-only. The temporary is created so before `save` runs, so `save` must write into that path
    (open it for writing), not put another file there. `overwrite=False`: only if `target` does not exist yet,
    else FileExistsError; of two processes racing to create it, the first wins.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(target)
    try:
        if private:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_ONLY))
        save(tmp)
        sync_to_disk(tmp)
        if overwrite:
            os.replace(tmp, target)
        else:
            os.link(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    sync_to_disk(target.parent)
    return target


def write_bytes_atomically(target: str | Path, data: bytes, *, private: bool = False, overwrite: bool = True) -> Path:
    """`data` as the whole of `target`, replaced atomically (see `save_atomically`)."""
    return save_atomically(lambda tmp: tmp.write_bytes(data), target, private=private, overwrite=overwrite)


def write_text_atomically(target: str | Path, text: str, *, private: bool = False, overwrite: bool = True) -> Path:
    """`text` in UTF-8 as the whole of `target`, replaced atomically (see `save_atomically`)."""
    return write_bytes_atomically(target, text.encode("utf-8"), private=private, overwrite=overwrite)


def replace_directory(finished: Path, target: Path) -> None:
    """Put the finished directory `finished` in place of `target` (replacing it if it exists), synced first.

    Two renames: `target` to a temporary `….old` sibling, then `finished` to `target`; the old one is deleted
    after. A kill between the two leaves the previous directory complete under that `….old` name.
    """
    _sync_tree(finished)
    old = temporary_sibling(target.with_name(target.name + ".old"))
    if target.exists():
        os.rename(target, old)
    try:
        os.rename(finished, target)
    except BaseException:
        if old.exists():
            os.rename(old, target)
        raise
    sync_to_disk(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def save_directory_atomically(save: Callable[[Path], object], target: str | Path) -> Path:
    """Have `save` write a directory (e.g. a `save_pretrained`) beside `target`, then swap it in with
    `replace_directory`. If `save` raises, `target` is untouched and the partial directory is gone."""
    target = Path(target)
    tmp = temporary_sibling(target)
    tmp.mkdir(parents=True)
    try:
        save(tmp)
        replace_directory(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _sync_tree(root: Path) -> None:
    """fsync every file and folder under `root`, the folders after what they hold."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            sync_to_disk(Path(folder, name))
        sync_to_disk(folder)
