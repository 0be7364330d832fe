"""The job queue on Redis, a GPU worker's side: take waiting jobs in the fair order, run them on one loaded
generator, report progress, read the cancel flag, renew the job's lease, and send the images back to the front.

The worker is an RQ `SimpleWorker` (jobs run in its own process, where the model lives); every RQ job is a
wake-up, after which it takes waiting jobs until none is left. It survives Redis restarts: every write it must
make (taking a job, its outcome) is retried with backoff until Redis answers again, progress and lease renewals
are skipped while it does not, and when RQ's own loop gives up on an error the worker starts it again. It never
exits on a Redis fault.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
from typing import Protocol

import redis
from rq import SimpleWorker
from rq.timeouts import TimerDeathPenalty

from demo.generation.request import Cancelled, GenerationError, Progress, Request, Result
from demo.jobs.model import CANCELLED, FAILED, JobState, as_text, job_from_record, png
from demo.jobs.redis_common import Backoff, Keys, retrying, wake_queue

log = logging.getLogger(__name__)

TAKE = """
local prefix = ARGV[1]
local owner = redis.call('LPOP', KEYS[1])
if not owner then return false end
local waiting = prefix .. ':waiting:' .. owner
local id = redis.call('LPOP', waiting)
if redis.call('LLEN', waiting) > 0 then redis.call('RPUSH', KEYS[1], owner) end
if not id then return false end
redis.call('HSET', prefix .. ':job:' .. id, 'status', 'running', 'worker', ARGV[2], 'started', ARGV[4])
redis.call('SADD', KEYS[2], id)
redis.call('SET', prefix .. ':alive:' .. id, ARGV[2], 'PX', ARGV[3])
return id
"""

# A worker's outcome counts only while the job is still its own: a job whose lease lapsed was failed already.
FINISH = """
if redis.call('SREM', KEYS[2], ARGV[1]) == 0 or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[3])
if ARGV[3] == 'failed' or ARGV[3] == 'cancelled' then
  redis.call('HSET', KEYS[1], 'status', ARGV[3], 'error', ARGV[4], 'init_image', '')
else
  redis.call('HSET', KEYS[1], 'step', redis.call('HGET', KEYS[1], 'total_steps'))
  redis.call('HSET', KEYS[4], 'meta', ARGV[4], unpack(ARGV, 5))
  redis.call('RPUSH', KEYS[5], ARGV[1])
end
return 1
"""


class Generator(Protocol):
    """What a worker runs jobs on: `ImageGenerator`, or a stand-in in tests."""

    def __call__(self, request: Request, progress: Progress | None = None) -> Result: ...


# The process's generation loop while an RQ job runs: RQ calls `take_jobs` by name, so it reaches the loaded
# generator through this (per thread, so tests can run two workers in one process).
_current: contextvars.ContextVar[GenerationLoop] = contextvars.ContextVar("generation_loop")


class GenerationLoop:
    """Takes waiting jobs from Redis and runs them on one loaded generator.

    Args:
        generator: The loaded generator.
        connection: The front's Redis.
        keys: Where things live in that Redis (the front's prefix).
        name: This worker's name, recorded on the jobs it runs.
        lease: Seconds the running job's lease lasts; renewed every third of it while the job runs.
    """

    def __init__(self, *, generator: Generator, connection: redis.Redis, keys: Keys, name: str, lease: float) -> None:
        self.generator, self.redis, self.keys, self.name, self.lease = generator, connection, keys, name, lease
        self._take, self._finish = connection.register_script(TAKE), connection.register_script(FINISH)

    def take_all(self) -> int:
        """Run waiting jobs, fairly, until none is left; how many ran."""
        ran = 0
        while job_id := retrying(self._take_one, "take a job"):
            self.run(as_text(job_id))
            ran += 1
        return ran

    def _take_one(self) -> bytes | None:
        keys = [self.keys.rotation, self.keys.running]
        return self._take(keys, [self.keys.prefix, self.name, int(self.lease * 1000), time.time()])

    def run(self, job_id: str) -> None:
        key = self.keys.job(job_id)
        record = retrying(lambda: self.redis.hgetall(key), "read a job")
        job = job_from_record({as_text(k): v for k, v in record.items()})
        renewing = threading.Event()
        heartbeat = threading.Thread(target=self._renew, args=(job_id, renewing), daemon=True)
        heartbeat.start()

        def progress(step: int, total: int) -> None:
            try:
                self.redis.hset(key, "step", step)
                cancel = self.redis.hget(key, "cancel")
            except redis.RedisError:  # Redis restarting: the job goes on; its outcome waits for Redis
                return
            if cancel:
                raise Cancelled()

        try:
            result = self.generator(job.request, progress)
        except Cancelled:
            outcome: list[str | int | bytes] = [JobState.CANCELLED.value, CANCELLED]
        except GenerationError as error:
            outcome = [JobState.FAILED.value, str(error)]
        except Exception:  # the worker must survive anything one job does
            log.exception("job %s failed", job_id)
            outcome = [JobState.FAILED.value, FAILED]
        else:
            meta = {"seeds": result.seeds, "parameters": result.parameters, "notes": result.notes}
            images = [value for i, image in enumerate(result.images) for value in (i, png(image))]
            outcome = [JobState.DONE.value, json.dumps(meta, ensure_ascii=False), *images]
        finally:
            renewing.set()
            heartbeat.join()
        keys = [key, self.keys.running, self.keys.alive(job_id), self.keys.result(job_id), self.keys.results]
        if not retrying(lambda: self._finish(keys, [job_id, self.name, *outcome]), "report a job's outcome"):
            log.warning(
                "job %s: its lease lapsed before it finished; the front failed it, the result is dropped", job_id
            )

    def _renew(self, job_id: str, stop: threading.Event) -> None:
        while not stop.wait(self.lease / 3):
            try:
                self.redis.set(self.keys.alive(job_id), self.name, px=int(self.lease * 1000), xx=True)
            except redis.RedisError as error:  # the next renewal tries again; the lease outlives a short outage
                log.warning("job %s: cannot renew its lease (%s)", job_id, error)


def take_jobs() -> int:
    """The RQ job every submission enqueues: wake up and run the waiting jobs."""
    return _current.get().take_all()


class GenerationWorker(SimpleWorker):
    """An RQ worker whose jobs run on this process's loaded generator.

    Args:
        loop: The generation loop its wake-up jobs run.
        name: Its RQ name; None: the loop's name.
        **kwargs: Passed on to RQ's `SimpleWorker`.
    """

    death_penalty_class = TimerDeathPenalty  # jobs have no time limit; and SIGALRM exists in the main thread only

    def __init__(self, loop: GenerationLoop, name: str | None = None, **kwargs) -> None:
        super().__init__([wake_queue(loop.redis, loop.keys)], connection=loop.redis, name=name or loop.name, **kwargs)
        self.loop = loop

    def execute_job(self, job, queue) -> None:
        token = _current.set(self.loop)
        try:
            super().execute_job(job, queue)
        finally:
            _current.reset(token)

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is threading.main_thread():  # a worker thread (tests) cannot have them
            super()._install_signal_handlers()


class WorkerRunner:
    """Runs a `GenerationWorker` until `stop()` (or SIGTERM): when RQ's loop quits on an error (Redis gone while
    it wrote), a new one starts after a backoff, under a new RQ name (the old one may still be registered).

    Args:
        loop: The generation loop each worker runs.
    """

    def __init__(self, loop: GenerationLoop) -> None:
        self.loop = loop
        self._stopping = threading.Event()
        self.worker: GenerationWorker | None = None

    def run(self, **work_options) -> None:
        backoff = Backoff(first=0.5, most=5.0)
        for attempt in range(1_000_000_000):
            self.worker = GenerationWorker(
                self.loop, name=self.loop.name if attempt == 0 else f"{self.loop.name}.{attempt}"
            )
            try:
                self.worker.work(**work_options)
            except redis.RedisError as error:  # RQ's teardown could not reach Redis either
                log.warning("worker %s: %s", self.worker.name, error)
            if self._stopping.is_set() or self.worker._stop_requested:
                return
            delay = backoff.failed()
            log.warning("worker %s: RQ's loop stopped on an error; starting it again in %.1f s", self.loop.name, delay)
            if self._stopping.wait(delay):
                return

    def stop(self) -> None:
        """Stop after the current wake-up (from another thread; the signal handlers do the same for SIGTERM)."""
        self._stopping.set()
        if self.worker is not None:
            self.worker._stop_requested = True
        wake_queue(self.loop.redis, self.loop.keys).enqueue(take_jobs, job_timeout=-1, result_ttl=0)  # unblock
