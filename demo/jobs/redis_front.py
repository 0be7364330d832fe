"""The job queue on Redis, the web front's side: submit, look up, cancel and wait for jobs; store what workers
return; fail jobs whose worker died. GPU workers (`demo.jobs.redis_worker`, `python -m demo.worker`) run them.

Everything about a job lives in Redis: its record (a hash, the fields of `demo.jobs.model.job_record`), its progress
and cancel flag, its client's list of jobs, and the fair queue (a list of waiting job ids per client and a rotation
of clients). Each submission also enqueues one RQ job that wakes a worker; a woken worker takes waiting jobs in the
fair order until none is left, so it does not matter which wake-up a worker got. Workers return images; the front
stores them in the gallery under names fixed by the job id, so a result stored twice is kept once.

Every state change is one Lua script, atomic in Redis. A running job holds a lease its worker renews; when the lease
lapses (the worker was killed, or its machine died) the front fails the job with a clear reason, and a result the
dead worker might still send is refused: a job is never lost silently, and never run or stored twice.

Redis faults: while Redis is unreachable every call raises `QueueUnavailable` (the API's 503); the housekeeping
thread retries with backoff, finishes storing what it was storing, and wakes a worker for jobs left waiting.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import cast

import redis
from PIL import Image

from demo.generation.errors import N_
from demo.generation.request import Request, Result, total_steps
from demo.jobs.model import (
    CANCELLED,
    FINISHED,
    Job,
    JobNotFound,
    JobOutput,
    QueueUnavailable,
    as_text,
    job_from_record,
    job_record,
    queue_full,
    round_robin,
    too_many_jobs,
)
from demo.jobs.redis_common import Backoff, Keys, wake, wake_queue

log = logging.getLogger(__name__)

LOST = "the worker running this job stopped (killed, or its machine failed); nothing was kept, please run it again"
STORE_FAILED = "storing the images failed"

SUBMIT = """
local prefix, id, owner = ARGV[1], ARGV[2], ARGV[3]
local mine = redis.call('LLEN', KEYS[3])
if mine >= tonumber(ARGV[4]) then return {1, mine} end
local waiting = 0
for _, other in ipairs(redis.call('LRANGE', KEYS[4], 0, -1)) do
  waiting = waiting + redis.call('LLEN', prefix .. ':waiting:' .. other)
end
if waiting >= tonumber(ARGV[5]) then return {2, waiting} end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('LPUSH', KEYS[2], id)
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('RPUSH', KEYS[3], id)
if mine == 0 then redis.call('RPUSH', KEYS[4], owner) end
return {0, 0}
"""

CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  if redis.call('LLEN', KEYS[2]) == 0 then redis.call('LREM', KEYS[3], 0, ARGV[2]) end
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'error', ARGV[3], 'init_image', '')
elseif status == 'running' then
  redis.call('HSET', KEYS[1], 'cancel', '1')
end
return status
"""

REAP = """
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('SREM', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[2], 'init_image', '')
return 1
"""


def _reachable(method):
    """Redis faults as `QueueUnavailable`, a refusal with its reason (503), never a crash (500)."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except redis.RedisError as error:
            log.warning("Redis: %s", error)
            raise QueueUnavailable(
                N_("the job queue cannot be reached right now (it may be restarting); try again in a few seconds")
            ) from error

    return call


class RedisJobs:
    """The front's side: submit, look up, cancel and wait for jobs; store what workers return; fail lost jobs.

    A housekeeping thread starts at once: it stores the results workers send and fails jobs whose lease lapsed.

    Args:
        connection: The Redis the workers use too.
        store: Puts a finished job's result in the gallery, under names fixed by the job id.
        prefix: Key prefix and RQ queue name, so several apps can share one Redis.
        max_queued: Jobs that may wait, all clients together; more raise `QueueFull`.
        per_owner: Jobs one client may have waiting; more raise `TooManyJobs`.
        keep_finished: Finished jobs kept per client.
        lease: Seconds a worker may miss its heartbeat before its running job fails as lost.
        max_age: Seconds a job's record lives in Redis after it was submitted (a client's job list: after its latest).
    """

    def __init__(
        self,
        *,
        connection: redis.Redis,
        store: Callable[[Result, str], JobOutput],
        prefix: str = "koimg",
        max_queued: int = 16,
        per_owner: int = 4,
        keep_finished: int = 50,
        lease: float = 10.0,
        max_age: float = 7 * 86400,
    ) -> None:
        self.redis = connection
        self.keys = Keys(prefix)
        self._store = store
        self.max_queued, self.per_owner, self.keep_finished = max_queued, per_owner, keep_finished
        self.lease, self.max_age = lease, int(max_age)
        self._submit, self._cancel = connection.register_script(SUBMIT), connection.register_script(CANCEL)
        self._reap = connection.register_script(REAP)
        self._queue = wake_queue(connection, self.keys)
        self._closed = threading.Event()
        self._housekeeper = threading.Thread(target=self._housekeep, name="redis-jobs", daemon=True)
        self._housekeeper.start()

    @classmethod
    def from_url(cls, url: str, **kwargs) -> RedisJobs:
        return cls(connection=redis.Redis.from_url(url), **kwargs)

    @_reachable
    def submit(self, owner: str, kind: str, request: Request) -> Job:
        """Queue a validated request; `TooManyJobs` or `QueueFull` when it may not wait."""
        job = Job(
            id=secrets.token_urlsafe(16), owner=owner, kind=kind, request=request, total_steps=total_steps(request)
        )
        self._forget_old(owner)
        record = [value for pair in job_record(job).items() for value in pair]
        keys = [self.keys.job(job.id), self.keys.owner(owner), self.keys.waiting(owner), self.keys.rotation]
        refused, count = self._submit(
            keys, [self.keys.prefix, job.id, owner, self.per_owner, self.max_queued, self.max_age, *record]
        )
        if refused == 1:
            raise too_many_jobs(count)
        if refused == 2:
            raise queue_full(self.max_queued)
        wake(self._queue)  # lost with a fault? The housekeeper wakes a worker for waiting jobs anyway
        return job

    def _load(self, job_id: str) -> Job | None:
        record = self.redis.hgetall(self.keys.job(job_id))
        return job_from_record({as_text(key): value for key, value in record.items()}) if record else None

    @_reachable
    def get(self, job_id: str, owner: str) -> Job:
        job = self._load(job_id)
        if job is None or not secrets.compare_digest(job.owner, owner):
            raise JobNotFound(job_id)
        return job

    @_reachable
    def jobs(self, owner: str) -> list[Job]:
        """This client's jobs, newest first."""
        self._forget_old(owner)  # jobs finish in workers' scripts: the front trims when it submits and lists
        ids = [as_text(job_id) for job_id in self.redis.lrange(self.keys.owner(owner), 0, -1)]
        return [job for job in map(self._load, ids) if job is not None]

    @_reachable
    def cancel(self, job_id: str, owner: str) -> Job:
        """Take a queued job out of the queue, or ask the worker running it to stop at its next step."""
        self.get(job_id, owner)  # someone else's job is not found, and not touched
        self._cancel([self.keys.job(job_id), self.keys.waiting(owner), self.keys.rotation], [job_id, owner, CANCELLED])
        return self.get(job_id, owner)

    @_reachable
    def position(self, job: Job) -> int:
        """1 for the next job to run, 2 for the one after…; 0 once it runs or has finished."""
        if job.status != "queued":
            return 0
        owners = self.redis.lrange(self.keys.rotation, 0, -1)
        with self.redis.pipeline(transaction=True) as pipe:
            for owner in owners:
                pipe.lrange(self.keys.waiting(as_text(owner)), 0, -1)
            order = [as_text(job_id) for job_id in round_robin(pipe.execute())]
        return order.index(job.id) + 1 if job.id in order else 0

    def wait(self, job_id: str, owner: str, timeout: float | None = None) -> Job:
        """Poll until the job has finished or `timeout` seconds have passed; the job as it then is. A Redis fault
        while waiting is waited out (the job goes on in its worker); one at the first look is `QueueUnavailable`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = self.get(job_id, owner)
        while job.state not in FINISHED and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.02)
            try:
                job = self.get(job_id, owner)
            except QueueUnavailable:
                time.sleep(0.2)
        return job

    def close(self) -> None:
        """Stop the housekeeping thread; jobs stay in Redis for the next start."""
        self._closed.set()
        self._housekeeper.join(timeout=30)

    def _forget_old(self, owner: str) -> None:
        """Keep this client's last `keep_finished` finished jobs (newest first in its list); nobody else's."""
        key, finished = self.keys.owner(owner), 0
        for reply in self.redis.lrange(key, 0, -1):
            job_id = as_text(reply)
            status = self.redis.hget(self.keys.job(job_id), "status")
            if status is None or as_text(status) in ("done", "failed", "cancelled"):
                finished += 1
                if finished > self.keep_finished:
                    self.redis.lrem(key, 0, job_id)
                    self.redis.delete(self.keys.job(job_id))

    def _wake_for_waiting(self) -> None:
        """Jobs waiting with no wake-up queued (a front that died between the two, a wake-up lost to a Redis
        restart): wake a worker for them. A worker that is busy takes them after its job anyway; one extra
        wake-up costs an empty look."""
        if self.redis.llen(self.keys.rotation) and not self._queue.count:
            wake(self._queue)

    def _housekeep(self) -> None:
        """Store results as workers send them; fail the jobs whose worker's lease lapsed; through Redis faults."""
        backoff, pause = Backoff(), 0.0
        while not self._closed.wait(pause):
            try:
                while (leftover := self.redis.lindex(self.keys.storing, 0)) is not None:  # after a fault or restart
                    self._store_result(as_text(leftover))
                self._wake_for_waiting()
                # BLMOVE takes a fractional timeout (Redis >= 6); redis-py's hint says int
                timeout = min(1.0, self.lease / 4)
                job_id = self.redis.blmove(self.keys.results, self.keys.storing, timeout)  # type: ignore[arg-type]
                if job_id is not None:
                    self._store_result(as_text(job_id))
                self._fail_lost()
                backoff.reset()
                pause = 0.0
            except redis.RedisError as error:
                pause = backoff.failed()
                log.warning("Redis is unreachable (%s); retrying in %.2f s", error, pause)

    def _store_result(self, job_id: str) -> None:
        job, result = self._load(job_id), self.redis.hgetall(self.keys.result(job_id))
        if job is not None and result:
            meta = json.loads(result.pop(b"meta"))
            # the connection does not decode replies: the PNGs come as bytes
            images: list[Image.Image] = [
                Image.open(io.BytesIO(cast(bytes, result[str(i).encode()]))) for i in range(len(meta["seeds"]))
            ]
            try:
                output = self._store(Result(images, meta["seeds"], meta["parameters"], meta["notes"]), job_id)
            except Exception:
                log.exception("storing job %s failed", job_id)
                self.redis.hset(self.keys.job(job_id), mapping={"status": "failed", "error": STORE_FAILED})
            else:
                stored = json.dumps(asdict(output), ensure_ascii=False)
                self.redis.hset(self.keys.job(job_id), mapping={"status": "done", "output": stored, "init_image": b""})
        self.redis.delete(self.keys.result(job_id))
        self.redis.lrem(self.keys.storing, 0, job_id)

    def _fail_lost(self) -> None:
        for reply in self.redis.smembers(self.keys.running):
            job_id = as_text(reply)
            keys = [self.keys.job(job_id), self.keys.running, self.keys.alive(job_id)]
            if self._reap(keys, [job_id, LOST]):
                log.warning("job %s: its worker stopped; failed", job_id)
