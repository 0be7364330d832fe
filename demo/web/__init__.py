"""The web app's factory: configuration, the app-scoped services (see `extensions`), blueprints.

    python -m demo [--port 5000] [--host 127.0.0.1] [--config embedded]       # the README's run command
    flask --app demo.app run                                                  # development
    waitress-serve --host 0.0.0.0 --port 8000 --call demo.app:create_app      # real use

Configuration, later wins: the defaults below, `instance/app.yaml` (same keys), environment variables
`KOIMG_<KEY>` (e.g. `KOIMG_GENERATOR_CONFIG=sd2-sdxl`, `KOIMG_MAX_CONTENT_LENGTH=5000000`), then `test_config`.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from flask import Flask
from flask_wtf.csrf import CSRFProtect

from demo.web import extensions
from demo.web.serializers import image_url

if TYPE_CHECKING:
    from demo.generation.pipeline import ImageGenerator
    from demo.search.service import SearchService

DEFAULTS: dict[str, Any] = {
    "GENERATOR_CONFIG": "embedded",  # a demo/generation/configs name or a YAML path
    "SEARCH_CONFIG": None,  # a YAML of demo.search.service.SearchConfig keys; None: the embedded models
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
    "API_KEYS": None,  # /sdapi/v1 and /v1 clients: a list (or "k1,k2"); None: told apart by source address
    "CLIENT_API_TIMEOUT": 600,  # seconds a blocking /sdapi/v1 or /v1 generation waits before answering 504
}

csrf = CSRFProtect()


def create_app(
    test_config: dict[str, Any] | None = None,
    generator: ImageGenerator | None = None,
    search: SearchService | None = None,
) -> Flask:
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
