"""The job queue on its own, on both backends: order, fairness, progress, limits, cancel, ownership, failures,
forgetting, and restarts (the in-process queue's records in SQLite; Redis with worker threads and, for a killed
worker, a real `python -m demo.worker` process)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import uuid

import pytest
import redis
from PIL import Image

from demo.generation.request import Cancelled, GenerationError, Request, Result, total_steps
from demo.jobs.local import JobQueue, JobStore
from demo.jobs.model import (
    CANCELLED,
    INTERRUPTED,
    Job,
    JobNotFound,
    JobOutput,
    JobState,
    QueueFull,
    QueueUnavailable,
    TooManyJobs,
)
from demo.jobs.redis_front import LOST, RedisJobs
from tests.web.conftest import BACKENDS, RedisServer, ThreadWorkers, free_port


class FakeGenerator:
    """Runs `steps` steps per job; each step waits for `go`, so tests decide when work happens."""

    def __init__(self, steps: int = 3) -> None:
        self.steps = steps
        self.go = threading.Event()
        self.go.set()
        self.started: list[str] = []
        self.failure: Exception | None = None

    def __call__(self, request: Request, progress, cancel: threading.Event | None = None) -> Result:
        self.started.append(request.prompt)
        if self.failure:
            raise self.failure
        for step in range(1, self.steps + 1):
            while not self.go.wait(0.01) or (cancel is not None and cancel.is_set()):
                if cancel is not None and cancel.is_set():  # in-process: the pipeline's step callback checks it
                    raise Cancelled()
                progress(step - 1, self.steps)  # on Redis the worker's progress callback checks the cancel flag
            progress(step, self.steps)
        return Result([Image.new("RGB", (16, 16))], [request.seed or 0], [{"prompt": request.prompt}])


def output_of(result: Result, job_id: str | None = None) -> JobOutput:
    prompt = result.parameters[0]["prompt"]
    return JobOutput([f"{prompt}.png"], [0], result.seeds)


def runner(fake: FakeGenerator):
    """What the in-process queue runs: the fake generator, then its output."""

    def run(request: Request, progress, cancel: threading.Event) -> JobOutput:
        return output_of(fake(request, progress, cancel))

    return run


def job(prompt: str, **fields) -> Request:
    return Request(prompt, steps=3, strength=1.0, **fields)  # validated enough for `total_steps`


class Harness:
    """A queue on one backend, and how to restart it as a new process would."""

    def __init__(self, backend: str, tmp_path, fake: FakeGenerator, redis_url: str | None, **limits) -> None:
        self.backend, self.tmp_path, self.fake, self.limits = backend, tmp_path, fake, limits
        self.prefix = f"test-{uuid.uuid4().hex}"
        self.redis_url = redis_url
        self.workers = ThreadWorkers(fake, redis_url, self.prefix) if backend == "redis" else None
        self.queue = self.open()

    def open(self):
        max_queued, per_owner, keep = self.limits["max_queued"], self.limits["per_owner"], self.limits["keep"]
        if self.backend == "redis":
            return RedisJobs(
                connection=redis.Redis.from_url(self.redis_url),
                store=output_of,
                prefix=self.prefix,
                max_queued=max_queued,
                per_owner=per_owner,
                keep_finished=keep,
            )
        store = JobStore(self.tmp_path / "jobs.sqlite3", keep_finished=keep)
        return JobQueue(
            run=runner(self.fake), total_steps=total_steps, store=store, max_queued=max_queued, per_owner=per_owner
        )

    def restart(self):
        self.queue.close()
        self.queue = self.open()
        return self.queue

    def until(self, job_id: str, owner: str, status: str):
        """Synchronise on the job's state (a few ms per look)."""
        for _ in range(3000):
            found = self.queue.get(job_id, owner)
            if found.status == status:
                return found
            threading.Event().wait(0.01)
        raise AssertionError(f"job {job_id} never became {status}")

    def close(self) -> None:
        self.fake.go.set()
        if self.workers:
            self.workers.stop()
        self.queue.close()


@pytest.fixture(params=BACKENDS)
def harness(request, tmp_path):
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    made = Harness(request.param, tmp_path, FakeGenerator(), redis_url, max_queued=3, per_owner=2, keep=3)
    yield made
    made.close()


def test_jobs_run_in_order_and_report_progress(harness):
    queue = harness.queue
    first, second = (queue.submit("me", "txt2img", job(p)) for p in ("a", "b"))
    second = queue.wait(second.id, "me", timeout=30)
    assert harness.fake.started == ["a", "b"]
    for done in (queue.get(first.id, "me"), second):
        assert done.status == "done" and done.step == done.total_steps == 3
    assert second.output.images == ["b.png"]
    assert queue.position(second) == 0


def test_one_client_cannot_fill_the_queue_for_everyone(harness):
    queue, fake = harness.queue, harness.fake
    fake.go.clear()
    running = queue.submit("greedy", "txt2img", job("running"))
    harness.until(running.id, "greedy", "running")
    waiting = [queue.submit("greedy", "txt2img", job(p)) for p in ("one", "two")]
    with pytest.raises(TooManyJobs, match="you already have 2 jobs waiting"):
        queue.submit("greedy", "txt2img", job("three"))
    other = queue.submit("someone else", "txt2img", job("mine"))  # still room for another client
    assert [queue.position(queue.get(j.id, j.owner)) for j in (running, *waiting, other)] == [0, 1, 3, 2]
    with pytest.raises(QueueFull, match="queue is full"):
        queue.submit("a third", "txt2img", job("late"))
    fake.go.set()
    assert queue.wait(waiting[-1].id, "greedy", timeout=30).status == "done"
    assert fake.started == ["running", "one", "mine", "two"]  # round-robin: the other client did not wait for both


def test_clients_take_turns(harness):
    queue, fake = harness.queue, harness.fake
    fake.go.clear()
    first = queue.submit("a", "txt2img", job("a1"))
    harness.until(first.id, "a", "running")
    queue.submit("a", "txt2img", job("a2"))
    queue.submit("a", "txt2img", job("a3"))
    last = queue.submit("b", "txt2img", job("b1"))
    fake.go.set()
    queue.wait(last.id, "b", timeout=30)
    assert queue.wait(queue.jobs("a")[0].id, "a", timeout=30).status == "done"
    assert fake.started == ["a1", "a2", "b1", "a3"]


def test_cancel_a_waiting_job_before_it_runs(harness):
    queue, fake = harness.queue, harness.fake
    fake.go.clear()
    first = queue.submit("me", "txt2img", job("first"))
    harness.until(first.id, "me", "running")
    waiting = queue.submit("me", "txt2img", job("never"))
    cancelled = queue.cancel(waiting.id, "me")
    assert cancelled.state is JobState.CANCELLED and cancelled.status == "failed" and cancelled.error == CANCELLED
    assert queue.position(cancelled) == 0
    fake.go.set()
    queue.wait(queue.submit("me", "txt2img", job("last")).id, "me", timeout=30)
    assert "never" not in fake.started


def test_cancel_a_running_job_stops_it(harness):
    queue, fake = harness.queue, harness.fake
    fake.go.clear()
    running = queue.submit("me", "txt2img", job("stop me"))
    harness.until(running.id, "me", "running")
    queue.cancel(running.id, "me")
    fake.go.set()
    stopped = queue.wait(running.id, "me", timeout=30)
    assert stopped.state is JobState.CANCELLED and stopped.error == CANCELLED and stopped.output is None


def test_jobs_are_invisible_to_other_owners(harness):
    queue = harness.queue
    mine = queue.submit("me", "txt2img", job("mine"))
    assert queue.get(mine.id, "me").id == mine.id
    for action in (queue.get, queue.cancel):
        with pytest.raises(JobNotFound):
            action(mine.id, "you")
    with pytest.raises(JobNotFound):
        queue.get("no-such-id", "me")
    assert queue.jobs("you") == [] and [j.id for j in queue.jobs("me")] == [mine.id]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", mine.id)  # unguessable: 128 random bits, URL-safe
    assert queue.wait(mine.id, "me", timeout=30).status == "done"  # their cancel did nothing


def test_failures_are_reported_and_the_worker_survives(harness):
    queue, fake = harness.queue, harness.fake
    fake.failure = GenerationError("steps must be between 1 and 100")
    bad = queue.wait(queue.submit("me", "txt2img", job("bad")).id, "me", timeout=30)
    assert bad.status == "failed" and bad.error == "steps must be between 1 and 100"
    fake.failure = RuntimeError("CUDA out of memory at 0x7f…")
    crashed = queue.wait(queue.submit("me", "txt2img", job("crash")).id, "me", timeout=30)
    assert crashed.status == "failed" and "0x7f" not in crashed.error  # no internals leak to the browser
    fake.failure = None
    assert queue.wait(queue.submit("me", "txt2img", job("fine")).id, "me", timeout=30).status == "done"


def test_finished_jobs_are_kept_per_client_and_uploads_dropped(harness):
    queue = harness.queue
    theirs = queue.wait(queue.submit("them", "txt2img", job("theirs")).id, "them", timeout=30)
    harness.fake.go.clear()  # no job gets to finish before its cancel
    spam = [queue.cancel(queue.submit("me", "txt2img", job("spam")).id, "me") for _ in range(10)]  # as fast as can be
    assert queue.wait(spam[-1].id, "me", timeout=30).error == CANCELLED
    harness.fake.go.set()
    mine = []
    for i in range(6):  # more than `keep` (3): only mine are forgotten, never theirs
        mine.append(queue.submit("me", "img2img", job(str(i), init_image=Image.new("RGB", (16, 16)))))
        queue.wait(mine[-1].id, "me", timeout=30)
    assert queue.get(theirs.id, "them").status == "done" and [j.id for j in queue.jobs("them")] == [theirs.id]
    kept = queue.jobs("me")
    assert len(kept) == 3 and all(j.request.init_image is None for j in kept)
    with pytest.raises(JobNotFound):
        queue.get(mine[0].id, "me")


def test_jobs_survive_a_restart(harness):
    queue, fake = harness.queue, harness.fake
    done = queue.wait(queue.submit("me", "txt2img", job("before")).id, "me", timeout=30)
    fake.go.clear()
    running = queue.submit("me", "txt2img", job("running"))
    harness.until(running.id, "me", "running")
    waiting = queue.submit("you", "img2img", job("waiting", init_image=Image.new("RGB", (16, 16), "red")))
    queue = harness.restart()  # in-process, the running job stops with its process; on Redis its worker goes on
    fake.go.set()
    assert queue.get(done.id, "me").output.images == ["before.png"]  # its page still answers
    assert queue.wait(waiting.id, "you", timeout=30).status == "done" and fake.started.count("waiting") == 1
    assert queue.wait(running.id, "me", timeout=30).status in ("done", "failed")  # never lost


def test_a_job_running_when_the_process_was_killed_fails_with_a_reason(tmp_path):
    """What kill -9 leaves in the in-process queue's records: one job running, one waiting."""
    store = JobStore(tmp_path / "jobs.sqlite3")
    running = Job(id="running-id", owner="me", kind="txt2img", request=job("was running"), total_steps=3)
    running.state, running.step = JobState.RUNNING, 2
    store.save(running)
    store.save(Job(id="queued-id", owner="me", kind="txt2img", request=job("was waiting"), total_steps=3))
    store.close()
    fake = FakeGenerator()
    queue = JobQueue(run=runner(fake), total_steps=total_steps, store=JobStore(tmp_path / "jobs.sqlite3"))
    try:
        interrupted = queue.get("running-id", "me")
        assert interrupted.status == "failed" and interrupted.error == INTERRUPTED
        assert queue.wait("queued-id", "me", timeout=30).status == "done" and fake.started == ["was waiting"]
    finally:
        queue.close()
    assert oct((tmp_path / "jobs.sqlite3").stat().st_mode & 0o777) == "0o600"


@pytest.mark.redis
def test_a_killed_worker_fails_its_job_and_another_worker_goes_on(redis_url, tmp_path):
    """A real `python -m demo.worker` killed with SIGKILL mid-job: its job fails once the lease lapses (never lost,
    never stored twice), and the job behind it runs on the worker that is left."""
    prefix, lease = f"test-{uuid.uuid4().hex}", 2.0
    queue = RedisJobs(connection=redis.Redis.from_url(redis_url), store=output_of, prefix=prefix, lease=lease)
    fake = FakeGenerator(steps=2)
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "demo.worker", "--redis", redis_url, "--prefix", prefix, "--lease", str(lease)]
    worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    survivor = None
    try:
        next(line for line in worker.stdout if "taking jobs" in line)  # the model is loaded
        doomed = queue.submit("me", "txt2img", Request("흰 배경 가운데 있는 큰 빨간 원", steps=100, refiner=False))
        for _ in range(6000):  # synchronise on its progress: it is mid-job
            if queue.get(doomed.id, "me").step >= 1:
                break
            threading.Event().wait(0.01)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        behind = queue.submit("me", "txt2img", job("after the kill"))
        survivor = ThreadWorkers(fake, redis_url, prefix, lease=lease)
        failed = queue.wait(doomed.id, "me", timeout=60)
        assert failed.status == "failed" and failed.error == LOST
        assert queue.wait(behind.id, "me", timeout=60).status == "done" and fake.started == ["after the kill"]
        assert queue.get(doomed.id, "me").status == "failed"  # and it stays so: no second run, no late result
    finally:
        worker.kill()
        if survivor:
            survivor.stop()
        queue.close()


def test_the_worker_imports_neither_flask_nor_the_search_service():
    """A GPU worker loads the generator and the queue's worker side only: not the web app, not the search models."""
    script = "import sys, demo.worker; print(sorted(m for m in sys.modules if m == 'flask' or m.startswith('demo.')))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    loaded = eval(done.stdout)  # a list of module names
    assert "demo.jobs.redis_worker" in loaded
    assert [name for name in loaded if name == "flask" or name.startswith(("demo.web", "demo.search"))] == []


@pytest.mark.redis
def test_a_redis_restart_loses_nothing_and_stops_no_worker(tmp_path):
    """Redis (appendonly yes) stopped and started again while a worker runs a job and while the front stores a
    result: during the outage the queue refuses with QueueUnavailable (the API's 503); after it the running job
    ends done, the result being stored is stored, the worker is still there and new jobs run."""
    server = RedisServer(tmp_path, appendonly=True)
    prefix, storing, stored = f"test-{uuid.uuid4().hex}", threading.Event(), threading.Event()
    stored.set()

    def store(result: Result, job_id: str) -> JobOutput:
        storing.set()
        assert stored.wait(60)
        return output_of(result)

    queue = RedisJobs(connection=redis.Redis.from_url(server.url), store=store, prefix=prefix)
    fake = FakeGenerator()
    workers = ThreadWorkers(fake, server.url, prefix)
    try:
        fake.go.clear()
        running = queue.submit("me", "txt2img", job("running through the outage"))
        for _ in range(3000):
            if queue.get(running.id, "me").state is JobState.RUNNING:
                break
            threading.Event().wait(0.01)
        server.stop()
        with pytest.raises(QueueUnavailable, match="cannot be reached"):
            queue.submit("me", "txt2img", job("refused"))
        with pytest.raises(QueueUnavailable):
            queue.get(running.id, "me")
        fake.go.set()  # the job finishes while Redis is down: the worker holds its outcome until Redis is back
        server.start()
        assert queue.wait(running.id, "me", timeout=60).state is JobState.DONE

        stored.clear()  # now Redis goes away while the front is storing a result
        second = queue.submit("me", "txt2img", job("stored through the outage"))
        assert storing.wait(60)
        server.stop()
        stored.set()
        server.start()
        assert queue.wait(second.id, "me", timeout=60).state is JobState.DONE
        assert queue.redis.llen(queue.keys.storing) == 0

        after = queue.submit("you", "txt2img", job("after the restart"))
        assert queue.wait(after.id, "you", timeout=60).state is JobState.DONE
        assert fake.started == ["running through the outage", "stored through the outage", "after the restart"]
        assert all(thread.is_alive() for thread in workers.threads)  # no worker quit
    finally:
        fake.go.set()
        stored.set()
        workers.stop()
        queue.close()
        server.stop()


def test_an_unreachable_queue_is_a_503_with_the_reason_on_every_api(make_app, prompt):
    """With Redis down, every call that needs the queue answers 503 and why, in each API's shape; never a 500."""
    client = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0").test_client()
    calls = [
        client.post("/api/txt2img", json={"prompt": prompt}),
        client.get("/api/jobs"),
        client.get("/api/jobs/some-id"),
        client.post("/sdapi/v1/txt2img", json={"prompt": prompt}),
        client.get("/sdapi/v1/progress"),
        client.post("/v1/images/generations", json={"prompt": prompt}),
        client.get("/"),
    ]
    assert [answer.status_code for answer in calls] == [503] * len(calls)
    assert calls[0].json["code"] == "queue_unavailable" and "cannot be reached" in calls[0].json["error"]
    assert "cannot be reached" in calls[3].json["detail"]
    assert calls[5].json["error"]["type"] == "server_error" and "cannot be reached" in calls[5].json["error"]["message"]
    assert "작업 대기열에 지금 연결할 수 없습니다" in calls[6].get_data(as_text=True)
