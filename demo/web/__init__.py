"""The web app's factory: configuration, the app-scoped services (see `extensions`), blueprints.

Two ways to serve, same pages and API: by default one process holds the generator and an in-process job queue;
with `KOIMG_REDIS_URL` set, this process is only the front (search embedder, gallery and index; no generation
model) and `python -m demo.worker` processes, one per GPU, take the jobs from Redis.

    python -m demo [--port 5000] [--host 127.0.0.1] [--config embedded]       # the README's run command
    flask --app demo.app run                                                  # development
    waitress-serve --host 0.0.0.0 --port 8000 --call demo.app:create_app      # real use, with demo.web.server's flags

Configuration, later wins: the defaults below, `instance/app.yaml` (same keys), environment variables
`KOIMG_<KEY>` (e.g. `KOIMG_GENERATOR_CONFIG=sd2-sdxl`, `KOIMG_MAX_CONTENT_LENGTH=5000000`), then `test_config`.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from flask import Flask, Response
from flask.json.provider import DefaultJSONProvider
from flask_wtf.csrf import CSRFProtect

from demo.web import extensions, i18n
from demo.web.serializers import image_url
from durable import private_file, write_text_atomically

if TYPE_CHECKING:
    from demo.generation.pipeline import ImageGenerator
    from demo.search.service import SearchService

DEFAULTS: dict[str, Any] = {
    "GENERATOR_CONFIG": "embedded",  # a demo/generation/configs name or a YAML path
    "SEARCH_CONFIG": None,  # a YAML of demo.search.service.SearchConfig keys; None: the embedded models
    "DATA_DIR": None,  # gallery, index and secret key; None: the instance folder
    "MAX_CONTENT_LENGTH": 10 * 1024 * 1024,  # uploads, bytes
    "DECODE_MEMORY": 512 * 1024 * 1024,  # bytes all uploads being decoded at once may take (estimated from headers)
    "DECODE_WAIT": 10.0,  # seconds a decode waits for room in DECODE_MEMORY before the request gets 503
    "QUEUE_SIZE": 16,  # jobs that may wait, all clients together; more are refused with 503
    "QUEUE_PER_CLIENT": 4,  # jobs one client may have waiting; more are refused with 429, nobody else is
    "KEEP_JOBS": 50,  # finished jobs remembered per client, for their pages
    "REDIS_URL": None,  # e.g. redis://127.0.0.1:6379/0: jobs go through Redis to `python -m demo.worker` processes
    "REDIS_PREFIX": "koimg",  # Redis key prefix and RQ queue name, so several apps can share one Redis
    "WORKER_LEASE": 10.0,  # seconds a worker may miss its heartbeat before its job fails as lost (Redis)
    "SEARCH_DEVICE": "cpu",  # the search embedder's device on a Redis front (embedded: the generator's)
    "SEED_GALLERY": 24,  # images generated on first start so search has something to find; 0: none
    "SEED_GALLERY_STEPS": 10,
    "PAGE_SIZE": 24,  # gallery page
    "SIMILAR_PROMPTS": 6,  # shown beside a result
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_HTTPONLY": True,
    "PERMANENT_SESSION_LIFETIME": timedelta(days=7),
    "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
    "API_KEYS": None,  # /sdapi/v1 and /v1 clients: a list (or "k1,k2"); None: told apart by source address
    "CLIENT_API_TIMEOUT": 600,  # seconds a blocking /sdapi/v1 or /v1 generation waits before answering 504
    "CLIENT_API_CALLS": 6,  # server threads blocking /sdapi/v1 and /v1 generations may hold, all clients (of 16)
    "CLIENT_API_CALLS_PER_CLIENT": 2,  # … and one client; more are refused at once (429, or 503 for all)
}

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # Scripts, styles and images from this site only (blob: for the upload preview); no framing (clickjacking).
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

csrf = CSRFProtect()


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, where a body nested too deeply for the parser is a malformed request (400), not a crash."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("the JSON is nested too deeply") from None


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def create_app(
    test_config: dict[str, Any] | None = None,
    generator: ImageGenerator | None = None,
    search: SearchService | None = None,
) -> Flask:
    """Build the app: its configuration, services (generator, search, job queue) and blueprints.

    Args:
        test_config: Settings applied last, over the defaults, `instance/app.yaml` and `KOIMG_*` variables.
        generator: A loaded generator to use instead of loading `GENERATOR_CONFIG` (tests share one); ignored,
            and none loaded, when `REDIS_URL` is set: the workers hold the models.
        search: A search service to use instead of opening one from `SEARCH_CONFIG` in `DATA_DIR`.

    Returns:
        The Flask app, its job queue already running.
    """
    app = Flask(__name__, instance_relative_config=True)
    app.json = JSONProvider(app)
    app.after_request(_security_headers)
    app.config.from_mapping(DEFAULTS)
    app.config.from_file("app.yaml", load=yaml.safe_load, silent=True)
    app.config.from_prefixed_env("KOIMG")
    app.config.from_mapping(test_config or {})
    data_dir = Path(app.config["DATA_DIR"] or app.instance_path)
    data_dir.mkdir(parents=True, exist_ok=True)
    app.config["DATA_DIR"] = str(data_dir)
    app.config["SECRET_KEY"] = app.config["SECRET_KEY"] or _secret_key(data_dir / "secret_key")
    csrf.init_app(app)
    i18n.init_app(app)

    extensions.init_app(app, generator, search)
    app.add_template_global(image_url)

    from demo.web.views import api, errors, gallery, generate_pages, openai_images, sdapi
    from demo.web.views import search as search_views

    for blueprint in (generate_pages.bp, search_views.bp, gallery.bp, api.bp, sdapi.bp, openai_images.bp):
        app.register_blueprint(blueprint)
    csrf.exempt(api.bp)  # JSON and multipart API: same-site cookies, unguessable ids; no forms to forge
    csrf.exempt(sdapi.bp)  # the A1111 and OpenAI clients send no cookies: no session to ride on, nothing to forge
    csrf.exempt(openai_images.bp)
    errors.register(app)
    return app


def _secret_key(path: Path) -> str:
    """A key kept in the data folder, so sessions (and so the jobs they own) survive a restart. Owner-only: with
    it anyone could sign a session cookie and so read another client's jobs."""
    if not path.exists():
        try:
            write_text_atomically(path, secrets.token_hex(32), private=True, overwrite=False)
        except FileExistsError:  # the first of two starting processes wins
            pass
    return private_file(path).read_text().strip()
