"""What the Redis front and its workers share: where each thing lives, the wake-up queue, and retrying through a
Redis restart."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis
from rq import Queue

log = logging.getLogger(__name__)

WAKE = "demo.jobs.redis_worker.take_jobs"  # the RQ job function: a worker takes waiting jobs until none is left
T = TypeVar("T")


@dataclass(frozen=True)
class Keys:
    """Where each thing lives in Redis, under one prefix.

    Args:
        prefix: The first part of every key, and of the RQ queue's name.
    """

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
        return f"{self.prefix}:storing"  # taken from `results`, being stored: stored again after a fault

    @property
    def queue(self) -> str:
        return f"{self.prefix}-generation"  # the RQ queue of wake-ups


def wake_queue(connection: redis.Redis, keys: Keys) -> Queue:
    return Queue(keys.queue, connection=connection)


def wake(queue: Queue) -> None:
    queue.enqueue(WAKE, job_timeout=-1, result_ttl=0, description="take waiting generation jobs")


class Backoff:
    """Delays between tries while Redis is unreachable: doubling from `first` up to `most` seconds.

    Args:
        first: The first delay, in seconds.
        most: The longest delay, in seconds.
    """

    def __init__(self, first: float = 0.05, most: float = 2.0) -> None:
        self.first, self.most, self.delay = first, most, 0.0

    def failed(self) -> float:
        self.delay = min(max(self.delay * 2, self.first), self.most)
        return self.delay

    def reset(self) -> None:
        self.delay = 0.0


def retrying(action: Callable[[], T], what: str) -> T:
    """`action()`, tried again with backoff for as long as Redis is unreachable: a worker holding a result waits
    for Redis to come back rather than drop it (or die)."""
    backoff = Backoff()
    while True:
        try:
            return action()
        except (redis.ConnectionError, redis.TimeoutError) as error:
            delay = backoff.failed()
            log.warning("Redis is unreachable while trying to %s (%s); again in %.2f s", what, error, delay)
            time.sleep(delay)
