"""The web app's factory: configuration, the app-scoped services (generator, search, job queue), blueprints.

    python -m demo [--port 5000] [--host 127.0.0.1] [--config embedded]       # the README's run command
    flask --app demo.app run                                                  # development
    waitress-serve --host 0.0.0.0 --port 8000 --call demo.app:create_app      # real use

Configuration, later wins: the defaults below, `instance/app.yaml` (same keys), environment variables
`KOIMG_<KEY>` (e.g. `KOIMG_GENERATOR_CONFIG=sd2-sdxl`, `KOIMG_MAX_CONTENT_LENGTH=5000000`), then `test_config`.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from flask import Flask, current_app
from flask_wtf.csrf import CSRFProtect

from demo.config import load_config
from demo.jobs import JobOutput, JobQueue
from demo.pipeline import Generator, Request
from demo.vector_search import SearchService, image_url, load_search_config, seed_gallery

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "GENERATOR_CONFIG": "embedded",  # a demo/configs name or a YAML path
    "SEARCH_CONFIG": None,  # a YAML of demo.vector_search.SearchConfig keys; None: the embedded models
    "DATA_DIR": None,  # gallery, index and secret key; None: the instance folder
    "MAX_CONTENT_LENGTH": 10 * 1024 * 1024,  # uploads, bytes
    "QUEUE_SIZE": 16,  # jobs that may wait; more are refused with 503
    "KEEP_JOBS": 200,  # finished jobs remembered for their pages
    "SEED_GALLERY": 24,  # images generated on first start so search has something to find; 0: none
    "SEED_GALLERY_STEPS": 10,
    "PAGE_SIZE": 24,  # gallery page
    "SIMILAR_PROMPTS": 6,  # shown beside a result
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_HTTPONLY": True,
    "PERMANENT_SESSION_LIFETIME": timedelta(days=7),
    "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
}

csrf = CSRFProtect()


@dataclass
class Services:
    """The heavy objects, created once per app and shared by every request."""

    generator: Generator
    search: SearchService
    jobs: JobQueue


def services() -> Services:
    return current_app.extensions["demo"]


def create_app(test_config: dict[str, Any] | None = None, generator: Generator | None = None, search: SearchService | None = None) -> Flask:
    """Build the app; `generator` and `search` may be passed in (tests share one loaded pipeline)."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(DEFAULTS)
    app.config.from_file("app.yaml", load=yaml.safe_load, silent=True)
    app.config.from_prefixed_env("KOIMG")
    app.config.from_mapping(test_config or {})
    data_dir = Path(app.config["DATA_DIR"] or app.instance_path)
    data_dir.mkdir(parents=True, exist_ok=True)
    app.config["DATA_DIR"] = str(data_dir)
    app.config["SECRET_KEY"] = app.config["SECRET_KEY"] or _secret_key(data_dir / "secret_key")
    csrf.init_app(app)

    generator = generator or Generator(load_config(app.config["GENERATOR_CONFIG"]))
    search = search or SearchService.open(data_dir, load_search_config(app.config["SEARCH_CONFIG"]), generator=generator)
    jobs = JobQueue(_runner(generator, search), generator.total_steps, app.config["QUEUE_SIZE"], app.config["KEEP_JOBS"])
    app.extensions["demo"] = Services(generator, search, jobs)
    if app.config["SEED_GALLERY"] and len(search) == 0:
        _seed_in_background(search, generator, app.config["SEED_GALLERY"], app.config["SEED_GALLERY_STEPS"])

    from demo.views import api, errors, gallery, generate, search as search_views

    for blueprint in (generate.bp, search_views.bp, gallery.bp, api.bp):
        app.register_blueprint(blueprint)
    csrf.exempt(api.bp)  # JSON and multipart API: same-site cookies, unguessable ids; no forms to forge
    errors.register(app)
    return app


def _runner(generator: Generator, search: SearchService):
    """What the job worker runs: generate, then store every image in the gallery (and so in the index)."""

    def run(request: Request, progress, cancel: threading.Event) -> JobOutput:
        result = generator(request, progress, cancel)
        records = [
            search.add(image, parameters["prompt"], parameters, parameters["negative_prompt"])
            for image, parameters in zip(result.images, result.parameters)
        ]
        return JobOutput([image_url(r.image) for r in records], [r.id for r in records], result.seeds, result.notes)

    return run


def _seed_in_background(search: SearchService, generator: Generator, count: int, steps: int) -> None:
    def seed() -> None:
        try:
            seed_gallery(search, generator, count, steps=steps)
        except Exception:  # a failed seed leaves an emptier gallery, never a dead app
            log.exception("seeding the gallery failed")

    threading.Thread(target=seed, name="seed-gallery", daemon=True).start()


def _secret_key(path: Path) -> str:
    """A key kept in the data folder, so sessions (and so the jobs they own) survive a restart."""
    if path.exists():
        return path.read_text().strip()
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(secrets.token_hex(32))
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)  # atomic, and the first of two starting processes wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()
