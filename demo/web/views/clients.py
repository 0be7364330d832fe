"""What the client-compatible APIs (`/sdapi/v1`, `/v1/images`) share: who is calling, blocking generation, errors.

Those clients send no cookies, so a client is told apart by its API key when `API_KEYS` is set (`Authorization:
Bearer KEY`, or Basic with the key as the password; other requests get 401), else by its source address: every
program on one machine, or behind one proxy, is one client. Open WebUI's empty `Authorization: Basic ` is no key,
which is fine without keys. Jobs belong to that client as they belong to a browser session on the pages: nobody
else sees, waits on or interrupts them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable

from flask import Blueprint, abort, current_app, g, request
from werkzeug.exceptions import (
    GatewayTimeout,
    HTTPException,
    InternalServerError,
    Unauthorized,
)

from demo.generation.config import GeneratorConfig
from demo.generation.errors import N_
from demo.generation.images import DecodeBusy
from demo.generation.request import Request, RequestError
from demo.jobs.model import Job, QueueFull
from demo.search.store import Record
from demo.web.extensions import get_services
from demo.web.views.errors import busy_status, refusal

log = logging.getLogger(__name__)

HANG_UP_CHECK = 0.5  # seconds between looks at whether a blocking call's client is still there
SIZE = re.compile(r"\s*(\d{1,6})\s*[xX×]\s*(\d{1,6})\s*")  # no side has more than 6 digits


def api_keys() -> list[str]:
    """`API_KEYS` as a list: YAML/JSON list, or one comma-separated string (`KOIMG_API_KEYS=k1,k2`)."""
    keys = current_app.config["API_KEYS"]
    if keys is None:
        return []
    if not isinstance(keys, list):
        keys = str(keys).split(",")
    return [str(key).strip() for key in keys if str(key).strip()]


def presented_key() -> str | None:
    """The key in `Authorization`: `Bearer KEY`, or Basic `user:KEY` (or just `KEY`); None when there is none."""
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        return credentials or None
    if scheme.lower() != "basic" or not credentials:
        return None
    try:
        user, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return password or user or None


def identify_client() -> None:
    """`before_request`: `g.client` becomes the caller's job owner, "key:…" or "addr:…"; 401 for a wrong key."""
    keys = api_keys()
    if not keys:
        g.client = f"addr:{request.remote_addr}"
        return
    key = presented_key()
    if key is None or not any(secrets.compare_digest(key.encode(), known.encode()) for known in keys):
        raise Unauthorized("a valid API key is required: Authorization: Bearer KEY, or Basic with the key as password")
    g.client = "key:" + hashlib.sha256(key.encode()).hexdigest()[:16]


def client_blueprint(name: str, prefix: str, render_error: Callable[[HTTPException], tuple]) -> Blueprint:
    """A blueprint for one client family: clients identified, and every error, unknown paths under `prefix`
    included, answered by `render_error` in that family's own JSON shape."""
    bp = Blueprint(name, __name__, url_prefix=prefix)
    bp.before_request(identify_client)

    def unexpected(error: Exception):
        log.exception("unhandled error on %s", request.path)
        return render_error(InternalServerError("something went wrong on the server; the error is in its log"))

    def unknown(path: str):
        abort(404, f"{prefix}/{path} is not part of this API")

    bp.register_error_handler(HTTPException, render_error)
    for busy in (QueueFull, DecodeBusy):  # Redis down, a full queue, no room to decode: 429 or 503, with why
        bp.register_error_handler(busy, lambda error: render_error(refusal(busy_status(error), error)))
    bp.register_error_handler(Exception, unexpected)
    bp.add_url_rule("/<path:path>", "unknown", unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    return bp


def square_size(width: int | None, height: int | None, config: GeneratorConfig) -> tuple[int, list[str]]:
    """The configured square size to make for a requested width×height, and a note when it is not that size:
    clients default to 512×512 or 1024×1024, and an image of another size serves them better than an error."""
    if width is None and height is None:
        return config.size, []
    # a missing side takes the other's value (a given 0 is a size, refused below, not a missing side)
    width, height = (height if width is None else width), (width if height is None else height)
    if width is None or height is None or width <= 0 or height <= 0:  # None only to satisfy mypy: one was given
        raise RequestError(N_("width and height must be positive"), code="size_not_positive", field="size")
    if width == height and width in config.sizes:
        return width, []
    size = min(config.sizes, key=lambda s: (abs(s - max(width, height)), -s))
    sizes = ", ".join(f"{s}x{s}" for s in config.sizes)
    return size, [f"{width}x{height} is not a size this model makes ({sizes}): it made {size}x{size}"]


def parse_size(value: str) -> tuple[int, int]:
    """ "WxH" as (width, height); `RequestError` for anything else."""
    match = SIZE.fullmatch(value)
    if not match:
        raise RequestError(
            N_("size must be WIDTHxHEIGHT, such as 512x512, not %(value)s"),
            code="size_unreadable",
            params={"value": repr(value[:40])},
            field="size",
        )
    return int(match[1]), int(match[2])


def generate(kind: str, generation: Request) -> Job:
    """Queue a validated request as this client's job and block until it has finished, as A1111 and OpenAI do.

    The call holds one of the server threads `BlockingCalls` lends to such calls (refused with 429 or 503 when
    this client, or all of them, hold their share). A client that hangs up while it waits cancels its job: waitress
    (with `channel_request_lookahead`) says so through `waitress.client_disconnected`."""
    s = get_services()
    with s.calls.hold(g.client):
        job = s.jobs.submit(g.client, kind, generation)
        timeout = current_app.config["CLIENT_API_TIMEOUT"]
        deadline, hung_up = time.monotonic() + timeout, request.environ.get("waitress.client_disconnected")
        while not job.finished_or_failed:
            if hung_up is not None and hung_up():
                s.jobs.cancel(job.id, g.client)
                log.info("%s hung up: its job %s is cancelled", g.client, job.id)
                raise ClientClosedRequest()
            if (left := deadline - time.monotonic()) <= 0:
                raise GatewayTimeout(f"still generating after {timeout} s; the images will appear in the gallery")
            job = s.jobs.wait(job.id, g.client, min(HANG_UP_CHECK, left))
    return job


class ClientClosedRequest(HTTPException):
    """The client went away before its answer (nginx's 499); nobody reads this."""

    code, description = 499, "the client closed the connection"


def gallery_records(job: Job) -> list[Record]:
    """The gallery records of a finished job's images."""
    assert job.output is not None  # callers pass only jobs that are done
    found = get_services().search.store.get_many(job.output.record_ids)
    return [found[i] for i in job.output.record_ids if i in found]


def stored_png(record: Record) -> str:
    """The image file as the gallery keeps it (its PNG metadata holds prompt and parameters), base64-encoded."""
    return base64.b64encode(get_services().search.store.image_path(record.image).read_bytes()).decode("ascii")
