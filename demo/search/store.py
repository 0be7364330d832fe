"""The gallery: every image the demo keeps, with its prompt, parameters and prompt embedding.

Records live in one SQLite table (WAL, synchronous=FULL: a committed record survives a crash or power loss);
image files live under `<data_dir>/images/`. An image is written (atomically, then synced to disk) before its
record is committed, so every record names a complete file. Its name goes into a `pending` table first, so a
crash in between (kill -9, power loss) leaves a file that the next start finds and deletes: never a record
without its image, nor an image without its record. The database is readable by its owner only (0600).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from demo.generation.images import write_png
from demo.search.views import Phrases, RecordViews
from durable import TEMPORARY_PREFIX, private_file, save_atomically

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids only grow, so "after id N" means "newer than N"
    prompt TEXT NOT NULL,
    negative_prompt TEXT NOT NULL DEFAULT '',
    parameters TEXT NOT NULL DEFAULT '{}',
    image TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    embedding BLOB NOT NULL  -- float32, little-endian
);
CREATE TABLE IF NOT EXISTS pending (image TEXT PRIMARY KEY);  -- files being written, not yet recorded
CREATE TABLE IF NOT EXISTS views (  -- what re-scores text queries (demo.search.views), made when first needed
    id INTEGER PRIMARY KEY REFERENCES records (id),
    lengths BLOB NOT NULL,  -- uint8, each span's words
    spans BLOB NOT NULL,  -- float16, little-endian, one row per span
    sentence BLOB  -- float16, little-endian, the sentence head's vector; NULL: none
);
"""
COLUMNS = "id, prompt, negative_prompt, parameters, image, created, embedding"


class GalleryError(ValueError):
    """A gallery request that cannot be served, with a message meant for the person who sent it."""


@dataclass(frozen=True)
class Record:
    """One image in the gallery.

    Args:
        id: Its row id; ids only grow, so a larger id is a newer record.
        prompt: The prompt it was made from.
        negative_prompt: Its negative prompt, empty for none.
        parameters: How it was made (`ImageGenerator.parameters`), as its PNG records them.
        image: Its file name, relative to the images folder.
        created: When it was recorded, in seconds since the epoch.
        embedding: Its prompt's embedding, float32, L2-normalised.
    """

    id: int
    prompt: str
    negative_prompt: str
    parameters: dict
    image: str
    created: float
    embedding: np.ndarray


@dataclass(frozen=True)
class NewRecord:
    """An image file already on disk (e.g. from a prompt dataset) and what to record about it.

    Args:
        source: The file to copy (or hard-link) in.
        prompt: Its prompt.
        embedding: Its prompt's embedding.
        parameters: How it was made, as far as known.
        name: Where it goes, relative to the images folder.
    """

    source: Path
    prompt: str
    embedding: np.ndarray
    parameters: dict
    name: str  # where it goes under the images folder


def _row_to_record(row: tuple) -> Record:
    id_, prompt, negative, parameters, image, created, blob = row
    return Record(id_, prompt, negative, json.loads(parameters), image, created, np.frombuffer(blob, dtype="<f4"))


def _blob(embedding: np.ndarray) -> bytes:
    return np.ascontiguousarray(embedding, dtype="<f4").tobytes()


class GalleryStore:
    """The records table and the images folder of one data directory; safe to share between threads.

    Opening one deletes the files a crash left unrecorded, when no other process has the gallery open.

    Args:
        data_dir: Holds `gallery.sqlite3` (owner-only) and `images/`; created if missing.
    """

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.images_dir = self.data_dir / "images"
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # SQLite gives the -wal and -shm files the database's own mode.
        database = private_file(self.data_dir / "gallery.sqlite3")
        self._db = sqlite3.connect(database, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._users = os.open(self.data_dir / "gallery.lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._sweep_orphans()

    def close(self) -> None:
        with self._lock:
            self._db.close()
            os.close(self._users)

    def _sweep_orphans(self) -> None:
        """Delete the files a crash left between writing an image and committing its record.

        Only when no other process has this gallery open (the CLI importing while the app starts): its files in
        flight are pending too. Every store holds a shared lock on `gallery.lock` while open.
        """
        try:
            fcntl.flock(self._users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fcntl.flock(self._users, fcntl.LOCK_SH)
            return
        pending = [row[0] for row in self._query("SELECT image FROM pending")]
        recorded = self._known_names(pending) if pending else set()
        for name in pending:
            if name not in recorded:
                self.image_path(name, must_exist=False).unlink(missing_ok=True)
        for folder in {self.images_dir} | {self.image_path(n, must_exist=False).parent for n in pending}:
            for tmp in folder.glob(f"{TEMPORARY_PREFIX}*"):  # half-written files (write_png, _place)
                tmp.unlink(missing_ok=True)
        self._query("DELETE FROM pending")
        fcntl.flock(self._users, fcntl.LOCK_SH)

    def _begin_writing(self, names: list[str]) -> None:
        """Note `names` as pending before their files exist, so a crash before their records can be swept."""
        with self._lock:
            self._db.executemany("INSERT OR IGNORE INTO pending (image) VALUES (?)", [(n,) for n in names])

    def find(self, name: str) -> Record | None:
        """The record of an image name, if there is one."""
        rows = self._query(f"SELECT {COLUMNS} FROM records WHERE image = ?", (name,))
        return _row_to_record(rows[0]) if rows else None

    def add(
        self,
        image: Image.Image,
        prompt: str,
        embedding: np.ndarray,
        parameters: dict | None = None,
        negative_prompt: str = "",
        name: str | None = None,
    ) -> Record:
        """Save `image` (PNG with its parameters) and then commit its record.

        `name` (default: a new random one) makes it idempotent: an image already recorded under that name is
        returned as it is, so storing a result again after a crash never stores it twice.
        """
        if name and (existing := self.find(name)):
            return existing
        parameters = dict(parameters or {})
        name = name or f"{time.strftime('%Y%m%d')}-{uuid.uuid4().hex}.png"
        path = self.image_path(name, must_exist=False)
        self._begin_writing([name])
        try:
            write_png(image, path, parameters | {"prompt": prompt, "negative_prompt": negative_prompt})  # and synced
            return self._insert([(prompt, negative_prompt, parameters, name, embedding)])[0]
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    def import_files(self, items: Iterable[NewRecord], batch_size: int = 1000) -> Iterator[Record]:
        """Copy (or hard-link) existing image files in and record them, one transaction per batch.

        Each file is synced as it is placed, and its batch's records are committed together after.
        """
        batch: list[NewRecord] = []
        for item in items:
            batch.append(item)
            if len(batch) == batch_size:
                yield from self._import_batch(batch)
                batch = []
        if batch:
            yield from self._import_batch(batch)

    def _import_batch(self, batch: list[NewRecord]) -> list[Record]:
        known = self._known_names([item.name for item in batch])
        batch = [item for item in batch if item.name not in known]  # an interrupted import can simply run again
        self._begin_writing([item.name for item in batch])
        for item in batch:
            self._place(item.source, self.image_path(item.name, must_exist=False))
        return self._insert([(i.prompt, "", i.parameters, i.name, i.embedding) for i in batch])

    @staticmethod
    def _place(source: Path, target: Path) -> Path:
        """Hard-link (or copy) `source` to `target` atomically and durably."""

        def link_or_copy(tmp: Path) -> None:
            try:
                os.link(source, tmp)
            except OSError:  # another file system, or links not allowed
                shutil.copyfile(source, tmp)

        return save_atomically(link_or_copy, target)

    def _known_names(self, names: list[str]) -> set[str]:
        marks = ",".join("?" * len(names))
        return {row[0] for row in self._query(f"SELECT image FROM records WHERE image IN ({marks})", tuple(names))}

    def _insert(self, rows: list[tuple[str, str, dict, str, np.ndarray]]) -> list[Record]:
        created = time.time()
        records = []
        with self._transaction() as db:
            for prompt, negative, parameters, name, embedding in rows:
                cursor = db.execute(
                    "INSERT INTO records (prompt, negative_prompt, parameters, image, created, embedding) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (prompt, negative, json.dumps(parameters, ensure_ascii=False), name, created, _blob(embedding)),
                )
                assert cursor.lastrowid is not None  # set by the INSERT just run
                vector = np.asarray(embedding, dtype=np.float32)
                records.append(Record(cursor.lastrowid, prompt, negative, parameters, name, created, vector))
            db.executemany("DELETE FROM pending WHERE image = ?", [(row[3],) for row in rows])
        return records

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock: committed whole, or rolled back if anything fails."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def get(self, record_id: int) -> Record | None:
        rows = self._query(f"SELECT {COLUMNS} FROM records WHERE id = ?", (record_id,))
        return _row_to_record(rows[0]) if rows else None

    def get_many(self, record_ids: list[int]) -> dict[int, Record]:
        """The records that exist among `record_ids` (at most a few thousand), by id."""
        marks = ",".join("?" * len(record_ids))
        rows = self._query(f"SELECT {COLUMNS} FROM records WHERE id IN ({marks})", tuple(record_ids))
        return {row[0]: _row_to_record(row) for row in rows}

    def history(self, limit: int = 20, before: int | None = None) -> list[Record]:
        """Newest first; pass the last id of a page as `before` to get the next page."""
        if not 1 <= limit <= 1000:
            raise GalleryError("a page holds between 1 and 1000 records")
        before = 2**63 - 1 if before is None else before
        if not 0 <= before < 2**63:  # SQLite's integers are 64-bit: a larger one is an OverflowError, not a page
            raise GalleryError("before must be a record id (a whole number from 0 to 2^63 - 1)")
        rows = self._query(f"SELECT {COLUMNS} FROM records WHERE id < ? ORDER BY id DESC LIMIT ?", (before, limit))
        return [_row_to_record(row) for row in rows]

    def views(self, record_ids: list[int], dim: int, sentence_size: int) -> dict[int, RecordViews]:
        """The stored views among `record_ids`, by id. Spans of another size (another encoder) leave the record out,
        to be made again; a sentence vector of another size (another head) reads as None."""
        marks = ",".join("?" * len(record_ids))
        rows = self._query(f"SELECT id, lengths, spans, sentence FROM views WHERE id IN ({marks})", tuple(record_ids))
        found = {}
        for id_, lengths, spans, sentence in rows:
            if len(spans) != 2 * dim * len(lengths):
                continue
            sizes = np.frombuffer(lengths, dtype=np.uint8)
            phrases = Phrases(np.frombuffer(spans, dtype="<f2").reshape(len(sizes), dim), sizes)
            fits = sentence is not None and len(sentence) == 2 * sentence_size
            found[id_] = RecordViews(phrases, np.frombuffer(sentence, dtype="<f2") if fits else None)
        return found

    def add_views(self, views: dict[int, RecordViews]) -> None:
        """Keep records' views (made again the same way if lost, so a second writer simply replaces them)."""
        rows = [
            (
                id_,
                v.phrases.lengths.astype(np.uint8).tobytes(),
                np.ascontiguousarray(v.phrases.vectors, dtype="<f2").tobytes(),
                None if v.sentence is None else np.ascontiguousarray(v.sentence, dtype="<f2").tobytes(),
            )
            for id_, v in views.items()
        ]
        with self._transaction() as db:  # one commit (and one sync) for the lot
            db.executemany("INSERT OR REPLACE INTO views (id, lengths, spans, sentence) VALUES (?, ?, ?, ?)", rows)

    def count(self) -> int:
        return self._query("SELECT COUNT(*) FROM records")[0][0]

    def last_id(self) -> int:
        return self._query("SELECT COALESCE(MAX(id), 0) FROM records")[0][0]

    def embeddings(
        self, after: int = 0, upto: int | None = None, batch_size: int = 10_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) in id order for the records with `after` < id ≤ `upto`, a batch at a time.

        Each batch is its own short query, so a long reader (an index rebuild) never holds writers up.
        """
        upto = 2**63 - 1 if upto is None else upto
        while True:
            rows = self._query(
                "SELECT id, embedding FROM records WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                (after, upto, batch_size),
            )
            if not rows:
                return
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            yield ids, np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows])
            after = int(ids[-1])

    def image_path(self, name: str, must_exist: bool = True) -> Path:
        """The file for an image name; refuses any name that leads outside the images folder."""
        root = self.images_dir.resolve()
        path = None if not name or "\0" in name or Path(name).is_absolute() else (root / name).resolve()
        if path is None or not path.is_relative_to(root) or path == root:
            raise GalleryError(f"not an image of this gallery: {name!r}")
        if must_exist and not path.is_file():
            raise GalleryError(f"no such image: {name!r}")
        return path
