"""The app-scoped services, in the shape of the Flask tutorial's `db.py`: built once by `init_app`, read by the
views through `get_services()`. The views import this module, never the factory that imports them."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask, current_app

from demo.generation.config import GeneratorConfig, load_config
from demo.generation.errors import N_
from demo.generation.images import DecodeBudget, return_freed_images_to_the_system
from demo.generation.request import Progress, Request, Result
from demo.jobs.local import JobQueue, JobStore
from demo.jobs.model import JobOutput, Jobs, QueueFull, TooManyJobs
from demo.search.seeding import seed_gallery
from demo.search.service import SearchService, load_search_config

if TYPE_CHECKING:  # the generator's model libraries load in the factory, not with every view
    from demo.generation.pipeline import ImageGenerator

log = logging.getLogger(__name__)

EXTENSION = "demo"  # the key in `app.extensions`


class BlockingCalls:
    """The server threads that blocking client calls (`/sdapi/v1` and `/v1` generation, which wait for their images)
    may hold, so the pages and `/api` always have threads left to answer with.

    One more call is refused at once: 429 when it is this client's share, 503 when it is everyone's.

    Args:
        total: Blocking calls all clients together may have running.
        per_client: Blocking calls one client (an API key, else a source address) may have running.
    """

    def __init__(self, total: int, per_client: int) -> None:
        self.total, self.per_client = total, per_client
        self.held: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, client: str) -> Iterator[None]:
        with self._lock:
            if self.held[client] >= self.per_client:
                raise TooManyJobs(
                    N_("you already have %(count)d calls waiting for their images; wait for one, then try again"),
                    code="too_many_calls",
                    params={"count": self.held[client]},
                )
            if self.held.total() >= self.total:
                raise QueueFull(
                    N_("the server is already waiting on %(count)d generations for API clients; try again shortly"),
                    code="too_many_calls_in_all",
                    params={"count": self.total},
                )
            self.held[client] += 1
        try:
            yield
        finally:
            with self._lock:
                self.held[client] -= 1
                if not self.held[client]:
                    del self.held[client]


@dataclass
class Services:
    """The heavy objects, created once per app and shared by every request.

    Args:
        config: The generator configuration requests are validated against.
        search: The gallery and its similar-prompt index.
        jobs: The job queue: in-process (SQLite) or the Redis front.
        decoding: Memory for decoding uploads, shared by every request.
        calls: The server threads blocking `/sdapi/v1` and `/v1` generation calls may hold.
        generator: The models; None on a Redis front, where the workers hold them.
    """

    config: GeneratorConfig
    search: SearchService
    jobs: Jobs
    decoding: DecodeBudget
    calls: BlockingCalls
    generator: ImageGenerator | None = None


def get_services(app: Flask | None = None) -> Services:
    """The services of `app` (default: the app handling this request)."""
    return (app or current_app).extensions[EXTENSION]


def init_app(app: Flask, generator: ImageGenerator | None = None, search: SearchService | None = None) -> Services:
    """Build the services from the app's config (`generator` and `search` may be passed in instead: tests share one
    loaded pipeline), start the job queue, and seed an empty gallery (or finish an interrupted seeding) in the
    background. With `REDIS_URL` no generator is loaded here: the workers have it."""
    config = app.config
    if config["REDIS_URL"]:
        generator, generation, device = None, load_config(config["GENERATOR_CONFIG"]), config["SEARCH_DEVICE"]
    else:
        if generator is None:
            from demo.generation.pipeline import ImageGenerator

            generator = ImageGenerator(load_config(config["GENERATOR_CONFIG"]))
        generation, device = generator.config, generator.device
    if search is None:
        search_config = load_search_config(config["SEARCH_CONFIG"])
        search = SearchService.open(config["DATA_DIR"], search_config, device=device, generator=generator)
    jobs = _jobs(config, Path(config["DATA_DIR"]), generator, search)
    decoding = DecodeBudget(config["DECODE_MEMORY"], config["DECODE_WAIT"])
    return_freed_images_to_the_system()  # else the budget bounds decodes at once, not the memory they leave
    calls = BlockingCalls(config["CLIENT_API_CALLS"], config["CLIENT_API_CALLS_PER_CLIENT"])
    services = app.extensions[EXTENSION] = Services(generation, search, jobs, decoding, calls, generator)
    seeding = Path(config["DATA_DIR"]) / "seeding"  # from the first seed image to the last: a restart resumes
    if generator and config["SEED_GALLERY"] and (len(search) == 0 or seeding.exists()):
        _seed_in_background(search, generator, seeding, config["SEED_GALLERY"], config["SEED_GALLERY_STEPS"])
    return services


def _jobs(config: dict, data_dir: Path, generator: ImageGenerator | None, search: SearchService) -> Jobs:
    """The job queue: Redis and its workers when `REDIS_URL` is set, else in this process on `generator`."""
    lifetime = config["PERMANENT_SESSION_LIFETIME"].total_seconds()
    limits = {"max_queued": config["QUEUE_SIZE"], "per_owner": config["QUEUE_PER_CLIENT"]}
    if generator is None:
        from demo.jobs.redis_front import RedisJobs

        return RedisJobs.from_url(
            config["REDIS_URL"],
            store=partial(store_result, search),
            prefix=config["REDIS_PREFIX"],
            **limits,
            keep_finished=config["KEEP_JOBS"],
            lease=config["WORKER_LEASE"],
            max_age=lifetime,
        )
    store = JobStore(data_dir / "jobs.sqlite3", keep_finished=config["KEEP_JOBS"], max_age=lifetime)
    return JobQueue(
        run=_runner(generator, search),
        total_steps=generator.total_steps,
        store=store,
        **limits,
    )


def store_result(search: SearchService, result: Result, job_id: str | None = None) -> JobOutput:
    """Put a job's images in the gallery (and so in the index). With `job_id` the image names are fixed, so
    storing the same result twice (a front restarted midway) keeps one copy."""
    records = [
        search.add(
            image, parameters["prompt"], parameters, parameters["negative_prompt"], job_id and f"job-{job_id}-{i}.png"
        )
        for i, (image, parameters) in enumerate(zip(result.images, result.parameters, strict=True))
    ]
    return JobOutput([r.image for r in records], [r.id for r in records], result.seeds, result.notes)


def _runner(generator: ImageGenerator, search: SearchService):
    """What the in-process job worker runs: generate, then store every image."""

    def run(request: Request, progress: Progress, cancel: threading.Event) -> JobOutput:
        return store_result(search, generator(request, progress, cancel))

    return run


def _seed_in_background(search: SearchService, generator: ImageGenerator, marker: Path, count: int, steps: int) -> None:
    marker.touch()

    def seed() -> None:
        try:
            seed_gallery(search, generator, count, steps=steps)
            marker.unlink()
        except Exception:  # a failed seed leaves an emptier gallery, never a dead app
            log.exception("seeding the gallery failed")

    threading.Thread(target=seed, name="seed-gallery", daemon=True).start()
