"""Generation as jobs: a bounded queue, one worker thread per pipeline, progress, cancel, per-browser ownership.

A request returns at once with a job id; the worker runs one job at a time, so the generator is never used by two
callers at once and a long queue cannot pile up (a full queue refuses new jobs). Each job belongs to the browser
session that made it: ids are unguessable, and a job is invisible to every other session (it answers "not
found", not "forbidden", so ids cannot be probed). Finished jobs are kept for a while so a reloaded page still
finds them, then forgotten; their images live on in the gallery.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from typing import Callable

from demo.generation.request import Cancelled, GenerationError, Request

log = logging.getLogger(__name__)

CANCELLED = "cancelled by the user"


class QueueFull(Exception):
    """The queue holds as many jobs as it may: try again later."""


class JobNotFound(KeyError):
    """No such job for this session (it never existed, belongs to someone else, or was forgotten)."""


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
    started: float | None = None  # time.monotonic() when it began to run: progress estimates from it
    cancel_event: threading.Event = field(default_factory=threading.Event)

    @property
    def finished_or_failed(self) -> bool:
        return self.status in ("done", "failed")


class JobQueue:
    """Jobs for one pipeline, run one at a time by a single worker thread, in submission order."""

    def __init__(self, run: Runner, total_steps: Callable[[Request], int], max_queued: int = 16, keep_finished: int = 200) -> None:
        self._run = run
        self._total_steps = total_steps
        self.max_queued = max_queued
        self.keep_finished = keep_finished
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._waiting: deque[Job] = deque()
        self._changed = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="generation-worker", daemon=True)
        self._worker.start()

    def submit(self, owner: str, kind: str, request: Request) -> Job:
        """Queue a validated request; `QueueFull` when `max_queued` jobs already wait."""
        with self._changed:
            if self._closed:
                raise QueueFull("the server is shutting down")
            if len(self._waiting) >= self.max_queued:
                raise QueueFull(f"the queue is full ({self.max_queued} jobs waiting); try again in a minute")
            job = Job(secrets.token_urlsafe(16), owner, kind, request, self._total_steps(request))
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._forget_old()
            self._changed.notify_all()
        return job

    def get(self, job_id: str, owner: str) -> Job:
        with self._changed:
            job = self._jobs.get(job_id)
        if job is None or not secrets.compare_digest(job.owner, owner):
            raise JobNotFound(job_id)
        return job

    def jobs(self, owner: str) -> list[Job]:
        """This owner's jobs, newest first."""
        with self._changed:
            return [job for job in reversed(self._jobs.values()) if job.owner == owner]

    def cancel(self, job_id: str, owner: str) -> Job:
        """Stop a queued job before it starts, or a running one at its next denoising step."""
        job = self.get(job_id, owner)
        with self._changed:
            if job.status == "queued":
                self._waiting.remove(job)
                self._finish(job, "failed", error=CANCELLED)
            elif job.status == "running":
                job.cancel_event.set()
        return job

    def position(self, job: Job) -> int:
        """1 for the next job to run, 2 for the one after…; 0 once it runs or has finished."""
        with self._changed:
            try:
                return self._waiting.index(job) + 1
            except ValueError:
                return 0

    def wait(self, job_id: str, owner: str, timeout: float | None = None) -> Job:
        """This owner's job once it has finished, or as it stands after `timeout` seconds."""
        job = self.get(job_id, owner)
        with self._changed:
            self._changed.wait_for(lambda: job.finished_or_failed, timeout)
        return job

    def close(self) -> None:
        """Refuse new jobs, cancel the waiting ones, stop the running one, and stop the worker."""
        with self._changed:
            self._closed = True
            while self._waiting:
                self._finish(self._waiting.popleft(), "failed", error="the server shut down")
            for job in self._jobs.values():
                job.cancel_event.set()
            self._changed.notify_all()
        self._worker.join(timeout=30)

    def _work(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._waiting or self._closed)
                if self._closed:
                    return
                job = self._waiting.popleft()
                job.status, job.started = "running", time.monotonic()
                self._changed.notify_all()
            self._execute(job)

    def _execute(self, job: Job) -> None:
        def progress(step: int, total: int) -> None:
            job.step, job.total_steps = step, total

        try:
            output = self._run(job.request, progress, job.cancel_event)
        except Cancelled:
            status, output, error = "failed", None, CANCELLED
        except GenerationError as exc:
            status, output, error = "failed", None, str(exc)
        except Exception:  # the worker must survive anything one job does
            log.exception("job %s failed", job.id)
            status, output, error = "failed", None, "generation failed on the server; the error is in its log"
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
        self._changed.notify_all()

    def _forget_old(self) -> None:
        finished = [job for job in self._jobs.values() if job.finished_or_failed]
        for job in finished[: max(0, len(finished) - self.keep_finished)]:
            del self._jobs[job.id]
