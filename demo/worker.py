"""One GPU worker for a web front on Redis: loads the generator once, then runs the jobs the front queues.

    KOIMG_REDIS_URL=redis://127.0.0.1:6379/0 python -m demo.worker [--config embedded] [--device cuda:N]

Run one per GPU (`--device cuda:0`, `--device cuda:1`, …), on any machine that reaches the Redis server. The worker
is an RQ `SimpleWorker` (it runs jobs in its own process, where the model lives; a forked child would load it again
or share CUDA state it may not); every RQ job is a wake-up, after which it takes waiting jobs in the fair order
until none is left (see `demo.web.redis_jobs`). While a job runs it renews the job's lease; progress and the cancel
flag go through Redis at each denoising step. It stores nothing itself: the images go back to the front.
"""

from __future__ import annotations

import argparse
import contextvars
import dataclasses
import json
import logging
import os
import socket
import sys
import threading
import time

import redis
from rq import SimpleWorker
from rq.timeouts import TimerDeathPenalty

from demo.generation.pipeline import ImageGenerator
from demo.generation.request import Cancelled, GenerationError
from demo.web.jobs import CANCELLED, FAILED, job_from_record, png
from demo.web.redis_jobs import FINISH, TAKE, Keys, wake_queue

log = logging.getLogger(__name__)

# The process's generation loop while an RQ job runs: RQ calls `take_jobs` by name, so it reaches the loaded
# generator through this (per thread, so tests can run two workers in one process).
_current: contextvars.ContextVar[GenerationLoop] = contextvars.ContextVar("generation_loop")


class GenerationLoop:
    """Takes waiting jobs from Redis and runs them on one loaded generator."""

    def __init__(self, generator: ImageGenerator, connection: redis.Redis, keys: Keys, name: str, lease: float) -> None:
        self.generator, self.redis, self.keys, self.name, self.lease = generator, connection, keys, name, lease
        self._take, self._finish = connection.register_script(TAKE), connection.register_script(FINISH)

    def take_all(self) -> int:
        """Run waiting jobs, fairly, until none is left; how many ran."""
        ran = 0
        while job_id := self._take(
            [self.keys.rotation, self.keys.running], [self.keys.prefix, self.name, int(self.lease * 1000), time.time()]
        ):
            self.run(job_id.decode())
            ran += 1
        return ran

    def run(self, job_id: str) -> None:
        key = self.keys.job(job_id)
        job = job_from_record({k.decode(): v for k, v in self.redis.hgetall(key).items()})
        renewing = threading.Event()
        heartbeat = threading.Thread(target=self._renew, args=(job_id, renewing), daemon=True)
        heartbeat.start()

        def progress(step: int, total: int) -> None:
            self.redis.hset(key, "step", step)
            if self.redis.hget(key, "cancel"):
                raise Cancelled()

        try:
            result = self.generator(job.request, progress)
        except Cancelled:
            outcome = ["failed", CANCELLED]
        except GenerationError as error:
            outcome = ["failed", str(error)]
        except Exception:  # the worker must survive anything one job does
            log.exception("job %s failed", job_id)
            outcome = ["failed", FAILED]
        else:
            meta = {"seeds": result.seeds, "parameters": result.parameters, "notes": result.notes}
            images = [value for i, image in enumerate(result.images) for value in (i, png(image))]
            outcome = ["done", json.dumps(meta, ensure_ascii=False), *images]
        finally:
            renewing.set()
            heartbeat.join()
        keys = [key, self.keys.running, self.keys.alive(job_id), self.keys.result(job_id), self.keys.results]
        if not self._finish(keys, [job_id, self.name, *outcome]):
            log.warning(
                "job %s: its lease lapsed before it finished; the front failed it, the result is dropped", job_id
            )

    def _renew(self, job_id: str, stop: threading.Event) -> None:
        while not stop.wait(self.lease / 3):
            self.redis.set(self.keys.alive(job_id), self.name, px=int(self.lease * 1000), xx=True)


def take_jobs() -> int:
    """The RQ job every submission enqueues: wake up and run the waiting jobs."""
    return _current.get().take_all()


class GenerationWorker(SimpleWorker):
    """An RQ worker whose jobs run on this process's loaded generator."""

    death_penalty_class = TimerDeathPenalty  # jobs have no time limit; and SIGALRM exists in the main thread only

    def __init__(self, loop: GenerationLoop, **kwargs) -> None:
        super().__init__([wake_queue(loop.redis, loop.keys)], connection=loop.redis, name=loop.name, **kwargs)
        self.loop = loop

    def execute_job(self, job, queue) -> None:
        token = _current.set(self.loop)
        try:
            super().execute_job(job, queue)
        finally:
            _current.reset(token)

    def stop(self) -> None:
        """Stop after the current wake-up (from another thread; the signal handlers do the same for SIGTERM)."""
        self._stop_requested = True
        wake_queue(self.loop.redis, self.loop.keys).enqueue(take_jobs, job_timeout=-1, result_ttl=0)  # unblock

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is threading.main_thread():  # a worker thread (tests) cannot have them
            super()._install_signal_handlers()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo.worker", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config",
        default=os.environ.get("KOIMG_GENERATOR_CONFIG", "embedded"),
        help="generator config: embedded (default), sd2-sdxl or a YAML path",
    )
    parser.add_argument("--device", help="e.g. cuda:1 (default: the config's device)")
    parser.add_argument("--redis", default=os.environ.get("KOIMG_REDIS_URL"), help="default: $KOIMG_REDIS_URL")
    parser.add_argument(
        "--prefix",
        default=os.environ.get("KOIMG_REDIS_PREFIX", "koimg"),
        help="the front's REDIS_PREFIX (default koimg)",
    )
    parser.add_argument(
        "--lease",
        type=float,
        default=float(os.environ.get("KOIMG_WORKER_LEASE", "10")),
        help="seconds: the front's WORKER_LEASE (default 10)",
    )
    parser.add_argument("--name", default=f"{socket.gethostname()}-{os.getpid()}")
    args = parser.parse_args(argv)
    if not args.redis:
        parser.error("no Redis: pass --redis URL or set KOIMG_REDIS_URL")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from demo.generation.config import load_config

    try:
        config = load_config(args.config)
        generator = ImageGenerator(dataclasses.replace(config, device=args.device) if args.device else config)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    loop = GenerationLoop(generator, redis.Redis.from_url(args.redis), Keys(args.prefix), args.name, args.lease)
    print(f"worker {args.name}: {config.name} on {generator.device}, taking jobs from {loop.keys.queue}", flush=True)
    GenerationWorker(loop).work()
    return 0


if __name__ == "__main__":  # run as demo.worker, not __main__: RQ finds `take_jobs` (and `_current`) by that name
    from demo.worker import main as worker_main

    sys.exit(worker_main())
