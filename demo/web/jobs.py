"""Generation as jobs: a fair, bounded queue with progress, cancel and per-client ownership, kept on disk.

A request returns at once with a job id; the worker runs one job at a time, so the generator is never used by two
callers at once. Each job belongs to the client that made it (a browser session, or an API key or address): ids
are unguessable, and a job is invisible to every other client (it answers "not found", not "forbidden", so ids
cannot be probed). Fairness: a client may have only `per_owner` jobs waiting, and the worker takes one job from
each waiting client in turn, so one client can neither fill the queue nor hold everyone else behind its jobs.
A client's last `keep_finished` finished jobs are kept (per client, so nobody's submissions evict another's).

This module is the embedded backend (one process, records in SQLite, so queued jobs run after a restart and
running ones fail with a reason); `demo.web.redis_jobs` keeps the same interface for a front and GPU workers apart.
Both answer `submit`, `get`, `cancel`, `jobs`, `wait`, `position` and `close`.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from itertools import zip_longest
from pathlib import Path
from typing import Any, Protocol, TypeVar

from PIL import Image

from demo.generation.request import Cancelled, GenerationError, Request
from demo.search.store import private_file

log = logging.getLogger(__name__)

CANCELLED = "cancelled by the user"
INTERRUPTED = "the server stopped while this job was running; nothing was kept, please run it again"
SHUT_DOWN = "the server shut down"
FAILED = "generation failed on the server; the error is in its log"
FINISHED = ("done", "failed")


class QueueFull(Exception):
    """The queue holds as many jobs as it may: try again later (503)."""


class TooManyJobs(QueueFull):
    """This client already has as many jobs waiting as one client may (429): the others still get in."""


class JobNotFound(KeyError):
    """No such job for this client (it never existed, belongs to someone else, or was forgotten)."""


@dataclass
class JobOutput:
    """What a finished job produced: its gallery images (names, served by `demo.web.views.gallery`) and records."""

    images: list[str]
    record_ids: list[int]
    seeds: list[int]
    notes: list[str] = field(default_factory=list)


Progress = Callable[[int, int], None]
Runner = Callable[[Request, Progress, threading.Event], JobOutput]


@dataclass
class Job:
    id: str
    owner: str
    kind: str  # "txt2img" | "img2img"
    request: Request
    total_steps: int
    status: str = "queued"  # queued | running | done | failed
    step: int = 0
    output: JobOutput | None = None
    error: str | None = None
    started: float | None = None  # when it began running (time.time()), for a client's time estimate
    cancel_event: threading.Event = field(default_factory=threading.Event)

    @property
    def finished_or_failed(self) -> bool:
        return self.status in FINISHED


class Jobs(Protocol):
    """The queue interface both backends implement (and the views and API blueprints use)."""

    def submit(self, owner: str, kind: str, request: Request) -> Job: ...
    def get(self, job_id: str, owner: str) -> Job: ...
    def cancel(self, job_id: str, owner: str) -> Job: ...
    def jobs(self, owner: str) -> list[Job]: ...
    def wait(self, job_id: str, owner: str, timeout: float | None = None) -> Job: ...
    def position(self, job: Job) -> int: ...
    def close(self) -> None: ...


T = TypeVar("T")


def round_robin(queues: Iterable[Sequence[T]]) -> list[T]:
    """Waiting jobs in the order they will run: one from each client's queue in turn, clients in rotation order."""
    return [item for turn in zip_longest(*queues) for item in turn if item is not None]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def job_record(job: Job) -> dict[str, str | int | bytes]:
    """A job as flat fields (a SQLite row, a Redis hash): the request as JSON, its uploaded image as PNG bytes."""
    request = {f.name: getattr(job.request, f.name) for f in fields(Request) if f.name != "init_image"}
    image = job.request.init_image
    return {
        "id": job.id,
        "owner": job.owner,
        "kind": job.kind,
        "status": job.status,
        "step": job.step,
        "total_steps": job.total_steps,
        "request": json.dumps(request, ensure_ascii=False),
        "init_image": png(image) if image is not None else b"",
        "output": json.dumps(asdict(job.output), ensure_ascii=False) if job.output else "",
        "error": job.error or "",
        "started": job.started or 0.0,
    }


def job_from_record(record: Mapping[str, Any]) -> Job:
    """The inverse of `job_record` (values may be str or, from Redis, bytes)."""
    request = Request(**json.loads(_text(record["request"])))
    if record.get("init_image"):
        request.init_image = Image.open(io.BytesIO(record["init_image"])).convert("RGB")
    output = _text(record.get("output") or "")
    return Job(
        _text(record["id"]),
        _text(record["owner"]),
        _text(record["kind"]),
        request,
        int(record["total_steps"]),
        _text(record["status"]),
        int(record.get("step") or 0),
        JobOutput(**json.loads(output)) if output else None,
        _text(record.get("error") or "") or None,
        float(_text(record.get("started") or 0)) or None,
    )


SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- submission order
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    step INTEGER NOT NULL,
    total_steps INTEGER NOT NULL,
    request TEXT NOT NULL,
    init_image BLOB NOT NULL,
    output TEXT NOT NULL,
    error TEXT NOT NULL,
    started REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, seq);
"""
COLUMNS = "id, owner, kind, status, step, total_steps, request, init_image, output, error, started"


class JobStore:
    """Job records in SQLite (`jobs.sqlite3` in the data folder), so jobs and their pages outlive the process."""

    def __init__(self, path: str | Path, keep_finished: int = 50, max_age: float = 7 * 86400) -> None:
        self.keep_finished = keep_finished
        self._lock = threading.Lock()
        self._db = sqlite3.connect(private_file(Path(path)), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a job accepted with 202 is on disk
        self._db.executescript(SCHEMA)
        # Finished jobs outlive the sessions that could see them no longer.
        self._execute("DELETE FROM jobs WHERE status IN ('done', 'failed') AND updated < ?", (time.time() - max_age,))

    def _execute(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def save(self, job: Job) -> None:
        record = job_record(job)
        names = ", ".join(record)
        self._execute(
            f"INSERT INTO jobs ({names}, updated) VALUES ({', '.join('?' * len(record))}, ?) "
            f"ON CONFLICT (id) DO UPDATE SET ({names}, updated) = ({', '.join('excluded.' + n for n in record)}, "
            "excluded.updated)",
            (*record.values(), time.time()),
        )

    def _jobs(self, where: str, args: tuple) -> list[Job]:
        rows = self._execute(f"SELECT {COLUMNS} FROM jobs WHERE {where} ORDER BY seq", args)
        return [job_from_record(dict(zip(COLUMNS.split(", "), row, strict=True))) for row in rows]

    def load(self, job_id: str) -> Job | None:
        found = self._jobs("id = ?", (job_id,))
        return found[0] if found else None

    def of(self, owner: str) -> list[Job]:
        """This client's jobs, oldest first."""
        return self._jobs("owner = ?", (owner,))

    def unfinished(self) -> list[Job]:
        return self._jobs("status NOT IN ('done', 'failed')", ())

    def forget_old(self, owner: str) -> None:
        """Keep this client's last `keep_finished` finished jobs; nobody else's are touched."""
        self._execute(
            "DELETE FROM jobs WHERE owner = ? AND status IN ('done', 'failed') AND seq NOT IN "
            "(SELECT seq FROM jobs WHERE owner = ? AND status IN ('done', 'failed') ORDER BY seq DESC LIMIT ?)",
            (owner, owner, self.keep_finished),
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()


class JobQueue:
    """Jobs for one pipeline, run one at a time by a single worker thread, fairly between clients."""

    def __init__(
        self,
        run: Runner,
        total_steps: Callable[[Request], int],
        store: JobStore,
        max_queued: int = 16,
        per_owner: int = 4,
    ) -> None:
        self._run = run
        self._total_steps = total_steps
        self.store = store
        self.max_queued = max_queued
        self.per_owner = per_owner
        self._active: dict[str, Job] = {}  # queued and running; finished jobs live in the store only
        self._waiting: OrderedDict[str, deque[Job]] = OrderedDict()  # by client, in rotation order
        self._changed = threading.Condition()
        self._closed = False
        with self._changed:
            self._recover()
        self._worker = threading.Thread(target=self._work, name="generation-worker", daemon=True)
        self._worker.start()

    def _recover(self) -> None:
        """After a restart (kill -9 included): queued jobs wait again in their order; a running one failed."""
        for job in self.store.unfinished():
            if job.status == "running":
                self._finish(job, "failed", error=INTERRUPTED)
            else:
                self._active[job.id] = job
                self._waiting.setdefault(job.owner, deque()).append(job)

    def submit(self, owner: str, kind: str, request: Request) -> Job:
        """Queue a validated request; `TooManyJobs` or `QueueFull` when it may not wait."""
        with self._changed:
            if self._closed:
                raise QueueFull("the server is shutting down")
            mine = self._waiting.get(owner, ())
            if len(mine) >= self.per_owner:
                raise TooManyJobs(f"you already have {len(mine)} jobs waiting; wait for one to start, then try again")
            if sum(map(len, self._waiting.values())) >= self.max_queued:
                raise QueueFull(f"the queue is full ({self.max_queued} jobs waiting); try again in a minute")
            job = Job(secrets.token_urlsafe(16), owner, kind, request, self._total_steps(request))
            self.store.save(job)
            self.store.forget_old(owner)
            self._active[job.id] = job
            self._waiting.setdefault(owner, deque()).append(job)
            self._changed.notify_all()
        return job

    def get(self, job_id: str, owner: str) -> Job:
        with self._changed:
            job = self._active.get(job_id) or self.store.load(job_id)
        if job is None or not secrets.compare_digest(job.owner, owner):
            raise JobNotFound(job_id)
        return job

    def jobs(self, owner: str) -> list[Job]:
        """This client's jobs, newest first."""
        with self._changed:
            return [self._active.get(job.id, job) for job in reversed(self.store.of(owner))]

    def cancel(self, job_id: str, owner: str) -> Job:
        """Stop a queued job before it starts, or a running one at its next denoising step."""
        job = self.get(job_id, owner)
        with self._changed:
            if job.status == "queued":
                self._unqueue(job)
                self._finish(job, "failed", error=CANCELLED)
            elif job.status == "running":
                job.cancel_event.set()
        return job

    def position(self, job: Job) -> int:
        """1 for the next job to run, 2 for the one after…; 0 once it runs or has finished."""
        with self._changed:
            order = [waiting.id for waiting in round_robin(self._waiting.values())]
        return order.index(job.id) + 1 if job.id in order else 0

    def wait(self, job_id: str, owner: str, timeout: float | None = None) -> Job:
        """Block until the job has finished or `timeout` seconds have passed; the job as it then is."""
        job = self.get(job_id, owner)
        with self._changed:
            self._changed.wait_for(lambda: job.finished_or_failed, timeout)
        return job

    def close(self) -> None:
        """Refuse new jobs, stop the running one, and stop the worker; waiting jobs stay queued for the next start."""
        with self._changed:
            self._closed = True
            for job in self._active.values():
                job.cancel_event.set()
            self._changed.notify_all()
        self._worker.join(timeout=30)
        self.store.close()

    def _unqueue(self, job: Job) -> None:
        waiting = self._waiting[job.owner]
        waiting.remove(job)
        if not waiting:
            del self._waiting[job.owner]

    def _next(self) -> Job:
        """The next client in rotation gives its oldest waiting job, then goes to the back of the line."""
        owner, waiting = next(iter(self._waiting.items()))
        job = waiting.popleft()
        if waiting:
            self._waiting.move_to_end(owner)
        else:
            del self._waiting[owner]
        return job

    def _work(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._waiting or self._closed)
                if self._closed:
                    return
                job = self._next()
                job.status, job.started = "running", time.time()
                self.store.save(job)
                self._changed.notify_all()
            self._execute(job)

    def _execute(self, job: Job) -> None:
        def progress(step: int, total: int) -> None:
            job.step, job.total_steps = step, total

        try:
            output = self._run(job.request, progress, job.cancel_event)
        except Cancelled:
            status, output, error = "failed", None, SHUT_DOWN if self._closed else CANCELLED
        except GenerationError as exc:
            status, output, error = "failed", None, str(exc)
        except Exception:  # the worker must survive anything one job does
            log.exception("job %s failed", job.id)
            status, output, error = "failed", None, FAILED
        else:
            status, error = "done", None
        with self._changed:
            self._finish(job, status, output, error)

    def _finish(self, job: Job, status: str, output: JobOutput | None = None, error: str | None = None) -> None:
        """Record the outcome (the caller holds the lock) and drop the uploaded image: memory stays flat."""
        job.status, job.output, job.error = status, output, error
        if status == "done":
            job.step = job.total_steps
        job.request = replace(job.request, init_image=None)
        self.store.save(job)
        self.store.forget_old(job.owner)
        self._active.pop(job.id, None)
        self._changed.notify_all()
