"""One GPU worker for a web front on Redis: loads the generator once, then runs the jobs the front queues.

    KOIMG_REDIS_URL=redis://127.0.0.1:6379/0 python -m demo.worker [--config NAME|PATH] [--device cuda:N]

Run one per GPU (`--device cuda:0`, `--device cuda:1`, …), on any machine that reaches the Redis server. The worker
is an RQ `SimpleWorker` (it runs jobs in its own process, where the model lives; a forked child would load it again
or share CUDA state it may not); every RQ job is a wake-up, after which it takes waiting jobs in the fair order
until none is left (see `demo.jobs.redis_worker`). While a job runs it renews the job's lease; progress and the
cancel flag go through Redis at each denoising step. It stores nothing itself: the images go back to the front.
A Redis restart is waited out (retries with backoff); the worker never exits on one. It imports neither the web
app nor the search service.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import socket
import sys

import redis

from demo.generation.config import config_help
from demo.jobs.redis_common import Keys
from demo.jobs.redis_worker import GenerationLoop, WorkerRunner, take_jobs

__all__ = ["main", "take_jobs"]  # take_jobs: wake-ups queued by an older front name it here


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo.worker", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config",
        default=os.environ.get("KOIMG_GENERATOR_CONFIG", "embedded"),
        help=f"{config_help()} (default: $KOIMG_GENERATOR_CONFIG, else embedded)",
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
    from demo.generation.pipeline import ImageGenerator

    try:
        config = load_config(args.config)
        generator = ImageGenerator(dataclasses.replace(config, device=args.device) if args.device else config)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    connection = redis.Redis.from_url(args.redis)
    loop = GenerationLoop(
        generator=generator, connection=connection, keys=Keys(args.prefix), name=args.name, lease=args.lease
    )
    print(f"worker {args.name}: {config.name} on {generator.device}, taking jobs from {loop.keys.queue}", flush=True)
    WorkerRunner(loop).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
