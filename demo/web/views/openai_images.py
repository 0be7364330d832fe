"""OpenAI's image generation endpoint, `POST /v1/images/generations`, for the `openai` SDK and Open WebUI.

`prompt`, `n`, `size` ("WxH": a size this model does not make gives its nearest, and the answer's `size` says which)
and `response_format` (`url`, OpenAI's default, or `b64_json`); other fields (`model`, `quality`, …) are ignored.
Errors answer OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so the SDK raises its usual
`BadRequestError`, `AuthenticationError`, ….
"""

from __future__ import annotations

import time
from typing import NoReturn

from flask import jsonify, request, url_for
from werkzeug.exceptions import BadRequest, HTTPException, InternalServerError

from demo.generation.config import GeneratorConfig
from demo.generation.request import GenerationError, parse_request
from demo.web.extensions import get_services
from demo.web.views.clients import client_blueprint, gallery_records, generate, parse_size, square_size, stored_png
from demo.web.views.errors import reason, refusal

RESPONSE_FORMATS = ("url", "b64_json")
PARAMS = {"prompt": "prompt", "negative_prompt": "prompt", "num_images": "n", "size": "size"}  # ours → OpenAI's


def _error(error: HTTPException):
    code = error.code or 500
    kind = {401: "authentication_error", 404: "not_found_error"}.get(code, "invalid_request_error")
    user_error = getattr(error, "user_error", None)
    body = {
        "message": reason(error),
        "type": "server_error" if code >= 500 else kind,
        "param": getattr(error, "param", None) or PARAMS.get(getattr(user_error, "field", "")),
        "code": "invalid_api_key" if code == 401 else getattr(user_error, "code", None),
    }
    response = jsonify({"error": body})
    response.status_code = code
    if code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="v1"'
    return response


bp = client_blueprint("openai_images", "/v1", _error)


def _invalid(message: str, param: str | None = None) -> NoReturn:
    error = BadRequest(message)
    error.param = param  # type: ignore[attr-defined]  # read back with getattr by the handler
    raise error


def _size(value, config: GeneratorConfig) -> int:
    if value in (None, "", "auto"):
        return config.size
    if not isinstance(value, str):
        _invalid("size must be a string such as 512x512", "size")
    return square_size(*parse_size(value), config)[0]


@bp.post("/images/generations")
def generations():
    """OpenAI's fields mapped onto the one request parser: `n` is our number of images, `size` "WxH" our size."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        _invalid("send a JSON object with Content-Type: application/json")
    if body.get("stream"):
        _invalid("streaming is not supported here", "stream")
    response_format = body.get("response_format") or "url"
    if response_format not in RESPONSE_FORMATS:
        _invalid(f"response_format must be one of {', '.join(RESPONSE_FORMATS)}", "response_format")
    config = get_services().config
    try:
        size = _size(body.get("size"), config)
        fields = {"prompt": body.get("prompt"), "num_images": body.get("n"), "size": size}
        generation = parse_request(fields, config, labels={"num_images": "n"})
    except GenerationError as error:
        raise refusal(400, error) from error
    job = generate("txt2img", generation)
    if job.status == "failed":
        raise InternalServerError(job.error)
    records = gallery_records(job)
    if response_format == "url":
        images = [{"url": url_for("gallery.image", name=record.image, _external=True)} for record in records]
    else:
        images = [{"b64_json": stored_png(record)} for record in records]
    data = [image | {"revised_prompt": generation.prompt} for image in images]
    answer = {"created": int(time.time()), "data": data, "size": f"{size}x{size}", "output_format": "png"}
    return jsonify(answer)
