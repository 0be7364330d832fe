"""Turning form fields and JSON bodies into generation requests, and knowing whose browser is asking."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from flask import session
from werkzeug.datastructures import FileStorage

from demo.generation.config import GeneratorConfig
from demo.generation.images import ImageError, open_upload
from demo.generation.request import GenerationError, Request, validate
from demo.generation.text import TextError, clean_text

TRUE = {"1", "true", "on", "yes"}
FALSE = {"0", "false", "off", "no", ""}


class FormError(ValueError):
    """A field that cannot be read, with a message meant for the person who filled it in."""


def owner() -> str:
    """This browser's id, kept in its signed session cookie: jobs belong to it."""
    if "owner" not in session:
        session["owner"] = secrets.token_urlsafe(16)
        session.permanent = True
    return session["owner"]


def number(fields: Mapping[str, Any], name: str, kind: type = int, label: str | None = None) -> Any:
    """`fields[name]` as `kind`; None when absent or blank; `FormError` for anything else."""
    label = label or name
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or (kind is int and isinstance(value, float)):
        raise FormError(f"{label} must be a {'whole ' if kind is int else ''}number")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise FormError(f"{label} must be a {'whole ' if kind is int else ''}number") from None


def _flag(fields: Mapping[str, Any], name: str) -> bool | None:
    value = fields.get(name)
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in TRUE | FALSE:
        raise FormError(f"{name} must be true or false")
    return text in TRUE


def text_field(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name, "")
    if not isinstance(value, str):
        raise FormError(f"{name} must be text")
    try:
        return clean_text(value, name)
    except TextError as error:
        raise FormError(str(error)) from None
    return value


def generation_request(
    fields: Mapping[str, Any], config: GeneratorConfig, upload: FileStorage | None = None
) -> Request:
    """A validated request from the txt2img/img2img fields (form or JSON); `GenerationError` says what is wrong."""
    init_image = None
    if upload is not None:
        try:
            init_image = open_upload(upload.read())
        except ImageError as error:
            raise GenerationError(str(error)) from error
    try:
        num_images = number(fields, "num_images", int, "number of images")
        request = Request(
            prompt=text_field(fields, "prompt"),
            negative_prompt=text_field(fields, "negative_prompt"),
            seed=number(fields, "seed", int, "seed"),
            steps=number(fields, "steps", int, "steps"),
            guidance=number(fields, "guidance", float, "guidance"),
            size=number(fields, "size", int, "size"),
            num_images=1 if num_images is None else num_images,
            refiner=_flag(fields, "refiner"),
            refiner_strength=number(fields, "refiner_strength", float, "refiner strength"),
            init_image=init_image,
            strength=number(fields, "strength", float, "strength"),
        )
    except FormError as error:
        raise GenerationError(str(error)) from error
    return validate(config, request)
