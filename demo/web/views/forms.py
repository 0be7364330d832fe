"""The pages' and the JSON API's generation fields onto the one request parser, and whose browser is asking."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from flask import session
from werkzeug.datastructures import FileStorage

from demo.generation.images import open_upload
from demo.generation.request import Request, parse_request
from demo.web.extensions import get_services


def owner() -> str:
    """This browser's id, kept in its signed session cookie: jobs belong to it."""
    if "owner" not in session:
        session["owner"] = secrets.token_urlsafe(16)
        session.permanent = True
    return session["owner"]


def decode(data: bytes, side: int, stretch: bool = False):
    """An upload decoded within the server's decoding budget, as a `side`×`side` square."""
    return open_upload(data, budget=get_services().decoding, side=side, stretch=stretch)


def generation_request(fields: Mapping[str, Any], upload: FileStorage | None = None) -> Request:
    """A validated request from the txt2img/img2img fields (form or JSON, our own names); `GenerationError` says
    what is wrong. The upload is decoded only once every other field is valid."""
    image = None if upload is None else lambda side: decode(upload.read(), side)
    return parse_request(fields, get_services().config, image=image)
