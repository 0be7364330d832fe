"""Every error as a clear message: JSON `{"error": …, "status": …, "code": …}` under /api, a page elsewhere; never a
stack trace. A refusal made from a `UserError` keeps its stable `code`, English `template` and `params`, so a
translating front can show `gettext(template) % params`."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge, default_exceptions

from demo.generation.errors import UserError
from demo.generation.images import DecodeBusy
from demo.jobs.model import QueueFull, TooManyJobs

log = logging.getLogger(__name__)

TITLES = {
    400: "요청을 처리할 수 없습니다",
    403: "허용되지 않는 요청입니다",
    404: "찾을 수 없습니다",
    405: "허용되지 않는 요청입니다",
    413: "요청이 너무 큽니다",
    429: "대기 중인 작업이 너무 많습니다",
    503: "지금은 처리할 수 없습니다",
}
CODES = {  # the `code` of an HTTP error that no `UserError` explains
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    422: "invalid",
    429: "too_many_requests",
    500: "server_error",
    503: "unavailable",
    504: "timeout",
}


def refusal(status: int, error: UserError) -> HTTPException:
    """The HTTP error that answers `error` with `status`, keeping its code, template and params."""
    http = default_exceptions[status](str(error))
    http.user_error = error
    return http


def busy_status(error: UserError) -> int:
    """429 when this client has enough jobs waiting, 503 when the server has no room (queue, decoding, Redis)."""
    return 429 if isinstance(error, TooManyJobs) else 503


def error_code(error: HTTPException) -> str:
    user_error = getattr(error, "user_error", None)
    if user_error is not None:
        return user_error.code
    if isinstance(error, CSRFError):
        return "csrf"
    return CODES.get(error.code or 500, "error")


def reason(error: HTTPException) -> str:
    """What went wrong, for the person who sent the request (the client-compatible APIs answer it too)."""
    limit = request.max_content_length
    if isinstance(error, RequestEntityTooLarge):
        # Werkzeug raises the same error for a body over the limit and for a form over its part or field limits.
        if limit and (request.content_length is None or request.content_length > limit):
            return f"the upload is larger than the limit of {limit / 1024 / 1024:.0f} MB"
        return (
            f"the form has too many fields (at most {request.max_form_parts}) or a text field larger than "
            f"{request.max_form_memory_size // 1024} kB"
        )
    if isinstance(error, CSRFError):
        return (
            f"the form has expired or was not sent from this site ({error.description}); reload the page and try again"
        )
    return error.description or error.name


def _answer(error: HTTPException):
    code = error.code or 500
    message = reason(error)
    if request.path.startswith("/api/"):
        response = jsonify({"error": message, "status": code, "code": error_code(error)})
        response.status_code = code
        return response
    return render_template("error.html", code=code, title=TITLES.get(code, error.name), reason=message), code


def _unexpected(error: Exception):
    log.exception("unhandled error on %s", request.path)
    return _answer(InternalServerError("something went wrong on the server; the error is in its log"))


def register(app: Flask) -> None:
    app.register_error_handler(HTTPException, _answer)
    for busy in (QueueFull, DecodeBusy):  # from any view: Redis down, no room to decode
        app.register_error_handler(busy, lambda error: _answer(refusal(busy_status(error), error)))
    app.register_error_handler(Exception, _unexpected)
