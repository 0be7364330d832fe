"""The app-scoped services, in the shape of the Flask tutorial's `db.py`: built once by `init_app`, read by the
views through `get_services()`. The views import this module, never the factory that imports them."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

from demo.generation.request import Progress, Request
from demo.search.seeding import seed_gallery
from demo.search.service import SearchService
from demo.web.jobs import JobOutput, JobQueue

if TYPE_CHECKING:  # the generator's model libraries load in the factory, not with every view
    from demo.generation.pipeline import ImageGenerator

log = logging.getLogger(__name__)

EXTENSION = "demo"  # the key in `app.extensions`


@dataclass
class Services:
    """The heavy objects, created once per app and shared by every request."""

    generator: ImageGenerator
    search: SearchService
    jobs: JobQueue


def get_services(app: Flask | None = None) -> Services:
    """The services of `app` (default: the app handling this request)."""
    return (app or current_app).extensions[EXTENSION]


def init_app(app: Flask, generator: ImageGenerator, search: SearchService) -> Services:
    """Start the job queue on `generator` and `search`, and seed an empty gallery in the background."""
    config = app.config
    jobs = JobQueue(_runner(generator, search), generator.total_steps, config["QUEUE_SIZE"], config["KEEP_JOBS"])
    services = app.extensions[EXTENSION] = Services(generator, search, jobs)
    if config["SEED_GALLERY"] and len(search) == 0:
        _seed_in_background(search, generator, config["SEED_GALLERY"], config["SEED_GALLERY_STEPS"])
    return services


def _runner(generator: ImageGenerator, search: SearchService):
    """What the job worker runs: generate, then store every image in the gallery (and so in the index)."""

    def run(request: Request, progress: Progress, cancel: threading.Event) -> JobOutput:
        result = generator(request, progress, cancel)
        records = [
            search.add(image, parameters["prompt"], parameters, parameters["negative_prompt"])
            for image, parameters in zip(result.images, result.parameters, strict=True)
        ]
        return JobOutput([r.image for r in records], [r.id for r in records], result.seeds, result.notes)

    return run


def _seed_in_background(search: SearchService, generator: ImageGenerator, count: int, steps: int) -> None:
    def seed() -> None:
        try:
            seed_gallery(search, generator, count, steps=steps)
        except Exception:  # a failed seed leaves an emptier gallery, never a dead app
            log.exception("seeding the gallery failed")

    threading.Thread(target=seed, name="seed-gallery", daemon=True).start()
