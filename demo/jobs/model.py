"""What a job is, whichever backend holds it: its states, its record as flat fields, the queue interface.

A request returns at once with a job id; the worker runs one job at a time, so the generator is never used by two
callers at once. Each job belongs to the client that made it (a browser session, or an API key or address): ids
are unguessable, and a job is invisible to every other client (it answers "not found", not "forbidden", so ids
cannot be probed). Fairness: a client may have only `per_owner` jobs waiting, and the worker takes one job from
each waiting client in turn, so one client can neither fill the queue nor hold everyone else behind its jobs.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from itertools import zip_longest
from typing import Any, Protocol, TypeVar

from PIL import Image

from demo.generation.errors import N_, UserError
from demo.generation.request import Progress, Request

CANCELLED = "cancelled by the user"
INTERRUPTED = "the server stopped while this job was running; nothing was kept, please run it again"
SHUT_DOWN = "the server shut down"
FAILED = "generation failed on the server; the error is in its log"


class JobState(StrEnum):
    """Where a job is. Clients see `status`: a cancelled job is "failed" there, with `cancelled` true."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})


class QueueFull(UserError):
    """The queue holds as many jobs as it may: try again later (503)."""

    default_code = "queue_full"


class TooManyJobs(QueueFull):
    """This client already has as many jobs waiting as one client may (429): the others still get in."""

    default_code = "too_many_jobs"


class QueueUnavailable(QueueFull):
    """The queue's store cannot be reached (Redis is down or restarting): try again shortly (503)."""

    default_code = "queue_unavailable"


class JobNotFound(KeyError):
    """No such job for this client (it never existed, belongs to someone else, or was forgotten)."""


def too_many_jobs(count: int) -> TooManyJobs:
    return TooManyJobs(
        N_("you already have %(count)d jobs waiting; wait for one to start, then try again"), params={"count": count}
    )


def queue_full(limit: int) -> QueueFull:
    return QueueFull(N_("the queue is full (%(limit)d jobs waiting); try again in a minute"), params={"limit": limit})


@dataclass
class JobOutput:
    """What a finished job produced.

    Args:
        images: Its gallery image names (the web app serves them).
        record_ids: Their gallery record ids.
        seeds: Each image's seed.
        notes: The generator's notes on what it could not do (`Result.notes`).
    """

    images: list[str]
    record_ids: list[int]
    seeds: list[int]
    notes: list[str] = field(default_factory=list)


Runner = Callable[[Request, Progress, threading.Event], JobOutput]


@dataclass(kw_only=True)
class Job:
    """One generation job, as both backends keep it.

    Args:
        id: Unguessable id (`secrets.token_urlsafe`), in the job's URLs.
        owner: The client it belongs to (session, API key or address); nobody else can see it.
        kind: "txt2img" or "img2img".
        request: The validated request; its uploaded image is dropped once the job finishes.
        total_steps: Denoising steps it will run (`total_steps`), what `step` counts to.
        state: Where it is.
        step: Denoising steps done so far.
        output: What it produced, once done.
        error: Why it failed or was cancelled, for the client.
        started: When it began running (`time.time()`), for a client's time estimate.
        cancel_event: Set to stop it at its next denoising step (in-process backend).
    """

    id: str
    owner: str
    kind: str
    request: Request
    total_steps: int
    state: JobState = JobState.QUEUED
    step: int = 0
    output: JobOutput | None = None
    error: str | None = None
    started: float | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)

    @property
    def status(self) -> str:
        """What clients see (JSON `status`, the pages): queued, running, done or failed (cancelled included)."""
        return JobState.FAILED.value if self.state is JobState.CANCELLED else self.state.value

    @property
    def cancelled(self) -> bool:
        return self.state is JobState.CANCELLED

    @property
    def finished_or_failed(self) -> bool:
        return self.state.finished


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


def as_text(value: Any) -> str:
    """A record's value as text: SQLite gives str or numbers, Redis bytes (redis-py types them bytes | str)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def job_record(job: Job) -> dict[str, str | int | float | bytes]:
    """A job as flat fields (a SQLite row, a Redis hash): the request as JSON, its uploaded image as PNG bytes."""
    request = {f.name: getattr(job.request, f.name) for f in fields(Request) if f.name != "init_image"}
    image = job.request.init_image
    return {
        "id": job.id,
        "owner": job.owner,
        "kind": job.kind,
        "status": job.state.value,
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
    request = Request(**json.loads(as_text(record["request"])))
    if record.get("init_image"):
        request.init_image = Image.open(io.BytesIO(record["init_image"])).convert("RGB")
    output = as_text(record.get("output") or "")
    error = as_text(record.get("error") or "") or None
    state = JobState(as_text(record["status"]))
    if state is JobState.FAILED and error == CANCELLED:  # recorded before cancelled was a state of its own
        state = JobState.CANCELLED
    return Job(
        id=as_text(record["id"]),
        owner=as_text(record["owner"]),
        kind=as_text(record["kind"]),
        request=request,
        total_steps=int(record["total_steps"]),
        state=state,
        step=int(record.get("step") or 0),
        output=JobOutput(**json.loads(output)) if output else None,
        error=error,
        started=float(as_text(record.get("started") or 0)) or None,
    )
