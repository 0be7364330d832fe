"""The job queue on its own: order, progress, limits, cancel, ownership, failures, forgetting."""

from __future__ import annotations

import threading

import pytest

from demo.generation.request import Cancelled, GenerationError, Request
from demo.web.jobs import CANCELLED, JobNotFound, JobOutput, JobQueue, QueueFull

TIMEOUT = 60  # seconds; only turns a hang into a failure: every wait below ends on a state


class Runner:
    """Runs `steps` steps per job; each step waits for `go` so tests decide when work happens."""

    def __init__(self, steps: int = 3) -> None:
        self.steps = steps
        self.go = threading.Event()
        self.go.set()
        self.started: list[str] = []
        self.failure: Exception | None = None

    def __call__(self, request: Request, progress, cancel: threading.Event) -> JobOutput:
        self.started.append(request.prompt)
        if self.failure:
            raise self.failure
        for step in range(1, self.steps + 1):
            while not self.go.wait(0.01) or cancel.is_set():
                if cancel.is_set():  # as the pipeline's step callback does
                    raise Cancelled()
            progress(step, self.steps)
        return JobOutput([f"{request.prompt}.png"], [len(self.started)], [request.seed or 0])


def until_running(job, timeout: float = TIMEOUT) -> None:
    for _ in range(int(timeout / 0.01)):
        if job.status == "running":
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"job {job.request.prompt!r} never started")


@pytest.fixture
def runner():
    return Runner()


@pytest.fixture
def queue(runner):
    jobs = JobQueue(runner, lambda request: runner.steps, max_queued=2, keep_finished=3)
    yield jobs
    runner.go.set()
    jobs.close()


def test_jobs_run_in_order_and_report_progress(queue, runner):
    first, second = (queue.submit("me", "txt2img", Request(p)) for p in ("a", "b"))
    assert queue.wait(second.id, "me", timeout=TIMEOUT).status == "done"
    assert runner.started == ["a", "b"]
    for job in (first, second):
        assert job.status == "done" and job.step == job.total_steps == 3
    assert second.output.images == ["b.png"] and queue.position(second) == 0


def test_queue_positions_and_a_full_queue(queue, runner):
    runner.go.clear()
    running = queue.submit("me", "txt2img", Request("running"))
    until_running(running)
    waiting = [queue.submit("me", "txt2img", Request(p)) for p in ("one", "two")]
    assert [queue.position(job) for job in (running, *waiting)] == [0, 1, 2]
    with pytest.raises(QueueFull, match="queue is full"):
        queue.submit("someone else", "txt2img", Request("three"))
    runner.go.set()
    assert queue.wait(waiting[-1].id, "me", timeout=TIMEOUT).status == "done"
    queue.submit("someone else", "txt2img", Request("room again"))  # the queue drained: accepted


def test_cancel_a_waiting_job_before_it_runs(queue, runner):
    runner.go.clear()
    queue.submit("me", "txt2img", Request("first"))
    waiting = queue.submit("me", "txt2img", Request("never"))
    queue.cancel(waiting.id, "me")
    assert waiting.status == "failed" and waiting.error == CANCELLED and queue.position(waiting) == 0
    runner.go.set()
    queue.wait(queue.submit("me", "txt2img", Request("last")).id, "me", timeout=TIMEOUT)
    assert "never" not in runner.started


def test_cancel_a_running_job_stops_it(queue, runner):
    runner.go.clear()
    job = queue.submit("me", "txt2img", Request("stop me"))
    until_running(job)
    queue.cancel(job.id, "me")
    runner.go.set()
    assert queue.wait(job.id, "me", timeout=TIMEOUT).finished_or_failed
    assert job.status == "failed" and job.error == CANCELLED and job.output is None


def test_jobs_are_invisible_to_other_owners(queue):
    job = queue.submit("me", "txt2img", Request("mine"))
    assert queue.get(job.id, "me") is job
    for action in (queue.get, queue.cancel):
        with pytest.raises(JobNotFound):
            action(job.id, "you")
    with pytest.raises(JobNotFound):
        queue.get("no-such-id", "me")
    with pytest.raises(JobNotFound):
        queue.wait(job.id, "you", timeout=0)
    assert queue.jobs("you") == [] and queue.jobs("me") == [job]
    assert len(job.id) >= 20  # unguessable: 128 random bits


def test_failures_are_reported_and_the_worker_survives(queue, runner):
    runner.failure = GenerationError("steps must be between 1 and 100")
    bad = queue.submit("me", "txt2img", Request("bad"))
    queue.wait(bad.id, "me", timeout=TIMEOUT)
    assert bad.status == "failed" and bad.error == "steps must be between 1 and 100"
    runner.failure = RuntimeError("CUDA out of memory at 0x7f…")
    crashed = queue.submit("me", "txt2img", Request("crash"))
    queue.wait(crashed.id, "me", timeout=TIMEOUT)
    assert crashed.status == "failed" and "0x7f" not in crashed.error  # no internals leak to the browser
    runner.failure = None
    fine = queue.submit("me", "txt2img", Request("fine"))
    assert queue.wait(fine.id, "me", timeout=TIMEOUT).status == "done"


def test_finished_jobs_are_forgotten_beyond_the_limit_and_uploads_dropped(queue):
    jobs = []
    for i in range(6):
        jobs.append(queue.submit("me", "txt2img", Request(str(i), init_image=object())))
        queue.wait(jobs[-1].id, "me", timeout=TIMEOUT)
    assert all(job.request.init_image is None for job in jobs)
    kept = queue.jobs("me")
    assert len(kept) <= 4 and jobs[-1] in kept and jobs[0] not in kept


def test_close_fails_waiting_jobs_and_refuses_new_ones(runner):
    queue = JobQueue(runner, lambda request: 3, max_queued=4)
    runner.go.clear()
    running = queue.submit("me", "txt2img", Request("running"))
    waiting = queue.submit("me", "txt2img", Request("waiting"))
    until_running(running)
    queue.close()
    assert running.status == "failed" and running.error == CANCELLED
    assert waiting.status == "failed" and "shut down" in waiting.error and runner.started == ["running"]
    with pytest.raises(QueueFull):
        queue.submit("me", "txt2img", Request("late"))
