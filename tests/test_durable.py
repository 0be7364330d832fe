"""Durable writes: whole or not at all, owner-only where asked, nothing left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from durable import (
    TEMPORARY_PREFIX,
    private_file,
    save_atomically,
    save_directory_atomically,
    write_bytes_atomically,
    write_text_atomically,
)


class Interrupted(Exception):
    """A writer dying halfway."""


def half_a_file(tmp: Path) -> None:
    tmp.write_bytes(b"half")
    raise Interrupted


def half_a_directory(tmp: Path) -> None:
    (tmp / "config.json").write_text("{}")
    raise Interrupted


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_write_replaces_the_whole_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "new" / "folder" / "data.json"
    assert write_text_atomically(target, '{"한": 1}') == target
    assert target.read_bytes() == '{"한": 1}'.encode()
    write_bytes_atomically(target, b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["data.json"]


def test_a_failed_save_keeps_the_old_content_and_removes_its_temporary(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"old")
    with pytest.raises(Interrupted):
        save_atomically(half_a_file, target)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["checkpoint.pt"]


def test_the_writer_gets_a_temporary_beside_the_target_with_its_suffix(tmp_path):
    seen = []
    save_atomically(lambda tmp: seen.append(tmp) or tmp.write_text("a,b\n"), tmp_path / "rows.csv")
    assert seen[0].parent == tmp_path and seen[0].name.startswith(TEMPORARY_PREFIX) and seen[0].suffix == ".csv"
    assert not seen[0].exists() and (tmp_path / "rows.csv").read_text() == "a,b\n"


def test_private_files_are_owner_only_from_the_start(tmp_path):
    modes = []
    save_atomically(lambda tmp: modes.append(mode(tmp)) or tmp.write_bytes(b"key"), tmp_path / "key", private=True)
    assert modes == [0o600] and mode(tmp_path / "key") == 0o600
    public = write_bytes_atomically(tmp_path / "public.png", b"png")
    umask = os.umask(0)
    os.umask(umask)
    assert mode(public) == 0o666 & ~umask


def test_private_file_creates_or_tightens(tmp_path):
    assert mode(private_file(tmp_path / "new.sqlite3")) == 0o600
    existing = tmp_path / "secret_key"
    existing.write_text("k")
    existing.chmod(0o644)
    assert mode(private_file(existing)) == 0o600 and existing.read_text() == "k"


def test_without_overwrite_the_first_writer_wins(tmp_path):
    target = tmp_path / "secret_key"
    write_text_atomically(target, "first", overwrite=False)
    with pytest.raises(FileExistsError):
        write_text_atomically(target, "second", overwrite=False)
    assert target.read_text() == "first" and os.listdir(tmp_path) == ["secret_key"]


def test_a_directory_is_replaced_whole(tmp_path):
    target = tmp_path / "encoder"
    save_directory_atomically(lambda tmp: (tmp / "old.txt").write_text("1"), target)
    save_directory_atomically(lambda tmp: (tmp / "sub").mkdir() or (tmp / "sub" / "new.txt").write_text("2"), target)
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == ["sub", "sub/new.txt"]
    assert os.listdir(tmp_path) == ["encoder"]


def test_a_failed_directory_save_keeps_the_old_directory_and_removes_the_partial_one(tmp_path):
    target = tmp_path / "pipeline"
    save_directory_atomically(lambda tmp: (tmp / "model.safetensors").write_bytes(b"weights"), target)
    with pytest.raises(Interrupted):
        save_directory_atomically(half_a_directory, target)
    assert os.listdir(target) == ["model.safetensors"] and (target / "model.safetensors").read_bytes() == b"weights"
    assert os.listdir(tmp_path) == ["pipeline"]


def test_a_directory_save_that_fails_before_any_exists_leaves_nothing(tmp_path):
    with pytest.raises(Interrupted):
        save_directory_atomically(half_a_directory, tmp_path / "cache")
    assert os.listdir(tmp_path) == []
