"""The embedded backend: one process runs the jobs in a worker thread; records live in SQLite (`jobs.sqlite3` in
the data folder), so queued jobs run after a restart, even after kill -9, and a job that was running fails with a
reason. A client's last `keep_finished` finished jobs are kept (per client: nobody's submissions evict another's).
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from demo.generation.request import Cancelled, GenerationError, Request
from demo.jobs.model import (
    CANCELLED,
    FAILED,
    INTERRUPTED,
    SHUT_DOWN,
    Job,
    JobNotFound,
    JobOutput,
    JobState,
    QueueFull,
    Runner,
    job_from_record,
    job_record,
    queue_full,
    round_robin,
    too_many_jobs,
)
from durable import private_file

log = logging.getLogger(__name__)

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
ENDED = "('done', 'failed', 'cancelled')"  # the finished states, as SQL


class JobStore:
    """Job records in SQLite, so jobs and their pages outlive the process; safe to share between threads.

    Args:
        path: The database file, created readable by its owner only.
        keep_finished: Finished jobs kept per client (`forget_old`).
        max_age: Seconds a finished job is kept after its last change; older ones are deleted on opening.
    """

    def __init__(self, path: str | Path, *, keep_finished: int = 50, max_age: float = 7 * 86400) -> None:
        self.keep_finished = keep_finished
        self._lock = threading.Lock()
        self._db = sqlite3.connect(private_file(Path(path)), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a job accepted with 202 is on disk
        self._db.executescript(SCHEMA)
        # Finished jobs outlive the sessions that could see them no longer.
        self._execute(f"DELETE FROM jobs WHERE status IN {ENDED} AND updated < ?", (time.time() - max_age,))

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
        return self._jobs(f"status NOT IN {ENDED}", ())

    def forget_old(self, owner: str) -> None:
        """Keep this client's last `keep_finished` finished jobs; nobody else's are touched."""
        self._execute(
            f"DELETE FROM jobs WHERE owner = ? AND status IN {ENDED} AND seq NOT IN "
            f"(SELECT seq FROM jobs WHERE owner = ? AND status IN {ENDED} ORDER BY seq DESC LIMIT ?)",
            (owner, owner, self.keep_finished),
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()


class JobQueue:
    """Jobs for one pipeline, run one at a time by a single worker thread, fairly between clients.

    Queued jobs found in `store` wait again (a running one failed: the process stopped under it); the worker
    thread starts at once.

    Args:
        run: Runs a job's request with a progress callback and a cancel event; returns its output.
        total_steps: The denoising steps a request runs (`ImageGenerator.total_steps`).
        store: Where the job records live.
        max_queued: Jobs that may wait, all clients together; more raise `QueueFull`.
        per_owner: Jobs one client may have waiting; more raise `TooManyJobs`.
    """

    def __init__(
        self,
        *,
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
            if job.state is JobState.RUNNING:
                self._finish(job, JobState.FAILED, error=INTERRUPTED)
            else:
                self._active[job.id] = job
                self._waiting.setdefault(job.owner, deque()).append(job)

    def submit(self, owner: str, kind: str, request: Request) -> Job:
        """Queue a validated request; `TooManyJobs` or `QueueFull` when it may not wait."""
        with self._changed:
            if self._closed:
                raise QueueFull("the server is shutting down", code="shutting_down")
            mine = self._waiting.get(owner, ())
            if len(mine) >= self.per_owner:
                raise too_many_jobs(len(mine))
            if sum(map(len, self._waiting.values())) >= self.max_queued:
                raise queue_full(self.max_queued)
            job = Job(
                id=secrets.token_urlsafe(16),
                owner=owner,
                kind=kind,
                request=request,
                total_steps=self._total_steps(request),
            )
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
            if job.state is JobState.QUEUED:
                self._unqueue(job)
                self._finish(job, JobState.CANCELLED, error=CANCELLED)
            elif job.state is JobState.RUNNING:
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
                job.state, job.started = JobState.RUNNING, time.time()
                self.store.save(job)
                self._changed.notify_all()
            self._execute(job)

    def _execute(self, job: Job) -> None:
        def progress(step: int, total: int) -> None:
            job.step, job.total_steps = step, total

        output, error = None, None
        try:
            output = self._run(job.request, progress, job.cancel_event)
        except Cancelled:
            state, error = (JobState.FAILED, SHUT_DOWN) if self._closed else (JobState.CANCELLED, CANCELLED)
        except GenerationError as exc:
            state, error = JobState.FAILED, str(exc)
        except Exception:  # the worker must survive anything one job does
            log.exception("job %s failed", job.id)
            state, error = JobState.FAILED, FAILED
        else:
            state = JobState.DONE
        with self._changed:
            self._finish(job, state, output, error)

    def _finish(self, job: Job, state: JobState, output: JobOutput | None = None, error: str | None = None) -> None:
        """Record the outcome (the caller holds the lock) and drop the uploaded image: memory stays flat."""
        job.state, job.output, job.error = state, output, error
        if state is JobState.DONE:
            job.step = job.total_steps
        job.request = replace(job.request, init_image=None)
        self.store.save(job)
        self.store.forget_old(job.owner)
        self._active.pop(job.id, None)
        self._changed.notify_all()
