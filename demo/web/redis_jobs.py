"""The job queue on Redis: a stateless web front here, GPU workers (`python -m demo.worker`) elsewhere.

Everything about a job lives in Redis: its record (a hash, the fields of `demo.web.jobs.job_record`), its progress and
cancel flag, its client's list of jobs, and the fair queue (a list of waiting job ids per client and a rotation of
clients). Each submission also enqueues one RQ job that wakes a worker; a woken worker takes waiting jobs in the
fair order (a Lua script: the next client in rotation gives its oldest job) until none is left, so it does not
matter which wake-up a worker got. Workers return images; the front stores them in the gallery under names fixed
by the job id, so a result stored twice (a front restarted midway) is kept once.

Every state change is one Lua script, atomic in Redis. A running job holds a lease its worker renews; when the lease
lapses (the worker was killed, or its machine died) the front fails the job with a clear reason, and a result the
dead worker might still send is refused: a job is never lost silently, and never run or stored twice.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import redis
from PIL import Image
from rq import Queue

from demo.generation.request import Request, Result, total_steps
from demo.web.jobs import (
    CANCELLED,
    FINISHED,
    Job,
    JobNotFound,
    JobOutput,
    QueueFull,
    TooManyJobs,
    job_from_record,
    job_record,
    round_robin,
)

log = logging.getLogger(__name__)

LOST = "the worker running this job stopped (killed, or its machine failed); nothing was kept, please run it again"
WAKE = "demo.worker.take_jobs"  # the RQ job function: a worker takes waiting jobs until none is left

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

CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  if redis.call('LLEN', KEYS[2]) == 0 then redis.call('LREM', KEYS[3], 0, ARGV[2]) end
  redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[3], 'init_image', '')
elseif status == 'running' then
  redis.call('HSET', KEYS[1], 'cancel', '1')
end
return status
"""

# A worker's outcome counts only while the job is still its own: a job whose lease lapsed was failed already.
FINISH = """
if redis.call('SREM', KEYS[2], ARGV[1]) == 0 or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[3])
if ARGV[3] == 'failed' then
  redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[4], 'init_image', '')
else
  redis.call('HSET', KEYS[1], 'step', redis.call('HGET', KEYS[1], 'total_steps'))
  redis.call('HSET', KEYS[4], 'meta', ARGV[4], unpack(ARGV, 5))
  redis.call('RPUSH', KEYS[5], ARGV[1])
end
return 1
"""

REAP = """
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('SREM', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[2], 'init_image', '')
return 1
"""


@dataclass(frozen=True)
class Keys:
    """Where each thing lives in Redis, under one prefix."""

    prefix: str

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def owner(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}"  # the client's job ids, newest first

    def waiting(self, owner: str) -> str:
        return f"{self.prefix}:waiting:{owner}"

    def alive(self, job_id: str) -> str:
        return f"{self.prefix}:alive:{job_id}"  # the running job's lease, renewed by its worker

    def result(self, job_id: str) -> str:
        return f"{self.prefix}:result:{job_id}"  # images from a worker, until the front stores them

    @property
    def rotation(self) -> str:
        return f"{self.prefix}:rotation"  # clients with waiting jobs, next first

    @property
    def running(self) -> str:
        return f"{self.prefix}:running"

    @property
    def results(self) -> str:
        return f"{self.prefix}:results"  # finished job ids, for the front to store

    @property
    def storing(self) -> str:
        return f"{self.prefix}:storing"  # taken from `results`, being stored: finished again after a restart

    @property
    def queue(self) -> str:
        return f"{self.prefix}-generation"  # the RQ queue of wake-ups


def wake_queue(connection: redis.Redis, keys: Keys) -> Queue:
    return Queue(keys.queue, connection=connection)


class RedisJobs:
    """The front's side: submit, look up, cancel and wait for jobs; store what workers return; fail lost jobs."""

    def __init__(
        self,
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
        self._wake_for_waiting()
        self._housekeeper = threading.Thread(target=self._housekeep, name="redis-jobs", daemon=True)
        self._housekeeper.start()

    @classmethod
    def from_url(cls, url: str, store: Callable[[Result, str], JobOutput], *args, **kwargs) -> RedisJobs:
        return cls(redis.Redis.from_url(url), store, *args, **kwargs)

    def submit(self, owner: str, kind: str, request: Request) -> Job:
        """Queue a validated request; `TooManyJobs` or `QueueFull` when it may not wait."""
        job = Job(secrets.token_urlsafe(16), owner, kind, request, total_steps(request))
        self._forget_old(owner)
        record = [value for pair in job_record(job).items() for value in pair]
        keys = [self.keys.job(job.id), self.keys.owner(owner), self.keys.waiting(owner), self.keys.rotation]
        refused, count = self._submit(
            keys, [self.keys.prefix, job.id, owner, self.per_owner, self.max_queued, self.max_age, *record]
        )
        if refused == 1:
            raise TooManyJobs(f"you already have {count} jobs waiting; wait for one to start, then try again")
        if refused == 2:
            raise QueueFull(f"the queue is full ({self.max_queued} jobs waiting); try again in a minute")
        self._queue.enqueue(WAKE, job_timeout=-1, result_ttl=0, description="take waiting generation jobs")
        return job

    def _load(self, job_id: str) -> Job | None:
        record = self.redis.hgetall(self.keys.job(job_id))
        return job_from_record({key.decode(): value for key, value in record.items()}) if record else None

    def get(self, job_id: str, owner: str) -> Job:
        job = self._load(job_id)
        if job is None or not secrets.compare_digest(job.owner, owner):
            raise JobNotFound(job_id)
        return job

    def jobs(self, owner: str) -> list[Job]:
        """This client's jobs, newest first."""
        self._forget_old(owner)  # jobs finish in workers' scripts: the front trims when it submits and lists
        ids = [job_id.decode() for job_id in self.redis.lrange(self.keys.owner(owner), 0, -1)]
        return [job for job in map(self._load, ids) if job is not None]

    def cancel(self, job_id: str, owner: str) -> Job:
        """Take a queued job out of the queue, or ask the worker running it to stop at its next step."""
        self.get(job_id, owner)  # someone else's job is not found, and not touched
        self._cancel([self.keys.job(job_id), self.keys.waiting(owner), self.keys.rotation], [job_id, owner, CANCELLED])
        return self.get(job_id, owner)

    def position(self, job: Job) -> int:
        """1 for the next job to run, 2 for the one after…; 0 once it runs or has finished."""
        if job.status != "queued":
            return 0
        owners = self.redis.lrange(self.keys.rotation, 0, -1)
        with self.redis.pipeline(transaction=True) as pipe:
            for owner in owners:
                pipe.lrange(self.keys.waiting(owner.decode()), 0, -1)
            order = [job_id.decode() for job_id in round_robin(pipe.execute())]
        return order.index(job.id) + 1 if job.id in order else 0

    def wait(self, job_id: str, owner: str, timeout: float | None = None) -> Job:
        """Poll until the job has finished or `timeout` seconds have passed; the job as it then is."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (job := self.get(job_id, owner)).status not in FINISHED:
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        return job

    def close(self) -> None:
        """Stop the housekeeping thread; jobs stay in Redis for the next start."""
        self._closed.set()
        self._housekeeper.join(timeout=30)

    def _forget_old(self, owner: str) -> None:
        """Keep this client's last `keep_finished` finished jobs (newest first in its list); nobody else's."""
        key, finished = self.keys.owner(owner), 0
        for job_id in self.redis.lrange(key, 0, -1):
            if self.redis.hget(self.keys.job(job_id.decode()), "status") in (b"done", b"failed", None):
                finished += 1
                if finished > self.keep_finished:
                    self.redis.lrem(key, 0, job_id)
                    self.redis.delete(self.keys.job(job_id.decode()))

    def _wake_for_waiting(self) -> None:
        """A front that died between queueing a job and its wake-up leaves it waiting: wake a worker for it."""
        if self.redis.llen(self.keys.rotation) and not self._queue.count:
            self._queue.enqueue(WAKE, job_timeout=-1, result_ttl=0, description="take waiting generation jobs")

    def _housekeep(self) -> None:
        """Store results as workers send them; fail the jobs whose worker's lease lapsed."""
        while (leftover := self.redis.lindex(self.keys.storing, 0)) is not None:  # a restart midway through
            self._store_result(leftover.decode())
        while not self._closed.is_set():
            try:
                job_id = self.redis.blmove(self.keys.results, self.keys.storing, min(1.0, self.lease / 4))
                if job_id is not None:
                    self._store_result(job_id.decode())
                self._fail_lost()
            except redis.RedisError:
                log.exception("Redis is unreachable; retrying")
                self._closed.wait(1.0)

    def _store_result(self, job_id: str) -> None:
        job, result = self._load(job_id), self.redis.hgetall(self.keys.result(job_id))
        if job is not None and result:
            meta = json.loads(result.pop(b"meta"))
            images = [Image.open(io.BytesIO(result[str(i).encode()])) for i in range(len(meta["seeds"]))]
            try:
                output = self._store(Result(images, meta["seeds"], meta["parameters"], meta["notes"]), job_id)
            except Exception:
                log.exception("storing job %s failed", job_id)
                self.redis.hset(
                    self.keys.job(job_id), mapping={"status": "failed", "error": "storing the images failed"}
                )
            else:
                done = {"status": "done", "output": json.dumps(asdict(output), ensure_ascii=False), "init_image": b""}
                self.redis.hset(self.keys.job(job_id), mapping=done)
        self.redis.delete(self.keys.result(job_id))
        self.redis.lrem(self.keys.storing, 0, job_id)

    def _fail_lost(self) -> None:
        for job_id in self.redis.smembers(self.keys.running):
            job_id = job_id.decode()
            keys = [self.keys.job(job_id), self.keys.running, self.keys.alive(job_id)]
            if self._reap(keys, [job_id, LOST]):
                log.warning("job %s: its worker stopped; failed", job_id)
