"""Every error as a clear message: JSON `{"error", "status", "code"}` under /api, a page elsewhere; never a stack
trace. Messages are in the response's language (`demo.web.i18n`): Korean on the pages, by `Accept-Language` on the
JSON API. A refusal made from a `UserError` keeps its stable `code`, English `template` and `params`, and is shown
as `gettext(template) % params`."""

from __future__ import annotations

import logging
import re

from flask import Flask, current_app, jsonify, render_template, request
from flask_babel import get_locale
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge, default_exceptions

from demo.generation.errors import UserError
from demo.generation.images import DecodeBusy
from demo.jobs.model import QueueFull, TooManyJobs
from demo.web.i18n import N_, translate, translate_error

log = logging.getLogger(__name__)
HANGUL = re.compile(r"[\uac00-\ud7a3]")

TITLES = {
    400: N_("The request cannot be processed"),
    403: N_("This request is not allowed"),
    404: N_("Not found"),
    405: N_("This request is not allowed"),
    413: N_("The request is too large"),
    429: N_("Too many jobs waiting"),
    500: N_("Something went wrong"),
    503: N_("Not available right now"),
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
# Said in the reader's language when the view's own message is not in the catalog (its English stays for English).
GENERIC = {
    404: N_("There is nothing at this address."),
    405: N_("This address does not accept this kind of request."),
    429: N_("You already have %(count)d jobs waiting; wait for one to start, then try again."),
    500: N_("Something went wrong on the server; the error is in its log."),
    503: N_("The queue is full right now; try again in a minute."),
}
TOO_LARGE = N_("The upload is larger than the limit of %(mb)d MB.")
TOO_MANY_FIELDS = N_("The form has too many fields (at most %(fields)d) or a text field larger than %(kb)d kB.")
CSRF = N_("The form has expired or was not sent from this site; reload the page and try again.")


def refusal(status: int, error: UserError) -> HTTPException:
    """The HTTP error that answers `error` with `status`, keeping its code, template and params."""
    http = default_exceptions[status](str(error))
    http.user_error = error  # type: ignore[attr-defined]  # read back with getattr by the handlers
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
    """What went wrong, for the person who sent the request, in this response's language (the client-compatible
    APIs answer it too, in English)."""
    limit = request.max_content_length
    if isinstance(error, RequestEntityTooLarge):
        # Werkzeug raises the same error for a body over the limit and for a form over its part or field limits.
        if limit and (request.content_length is None or request.content_length > limit):
            return translate(TOO_LARGE, {"mb": round(limit / 1024 / 1024)})
        # Flask's MAX_FORM_MEMORY_SIZE (500 kB unless set) is never None in this app
        limits = {"fields": request.max_form_parts, "kb": request.max_form_memory_size // 1024}  # type: ignore[operator]
        return translate(TOO_MANY_FIELDS, limits)
    if isinstance(error, CSRFError):
        return translate(CSRF)
    user_error = getattr(error, "user_error", None)
    if user_error is not None:
        return translate_error(user_error)
    message = error.description or error.name
    translated = translate(message)
    untranslated = translated == message and not HANGUL.search(message)  # a view's English, not in the catalog
    if untranslated and str(get_locale()) != "en" and error.code in GENERIC:
        return translate(GENERIC[error.code], {"count": current_app.config["QUEUE_PER_CLIENT"]})
    return translated


def _answer(error: HTTPException):
    code = error.code or 500
    message = reason(error)
    if request.path.startswith("/api/"):
        response = jsonify({"error": message, "status": code, "code": error_code(error)})
        response.status_code = code
        return response
    title = translate(TITLES[code]) if code in TITLES else error.name
    return render_template("error.html", code=code, title=title, reason=message), code


def _unexpected(error: Exception):
    log.exception("unhandled error on %s", request.path)
    return _answer(InternalServerError("something went wrong on the server; the error is in its log"))


def register(app: Flask) -> None:
    app.register_error_handler(HTTPException, _answer)
    for busy in (QueueFull, DecodeBusy):  # from any view: Redis down, no room to decode
        app.register_error_handler(busy, lambda error: _answer(refusal(busy_status(error), error)))
    app.register_error_handler(Exception, _unexpected)
