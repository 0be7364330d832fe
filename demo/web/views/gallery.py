"""Pages: the gallery of generated images, newest first, paged; one page per image; and the image files themselves."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from flask import Blueprint, abort, current_app, render_template, request, send_file

from demo.generation.request import GenerationError, read_number
from demo.search.index import SearchError
from demo.search.store import GalleryError, Record
from demo.web.extensions import get_services
from demo.web.i18n import N_, translate, translate_error

bp = Blueprint("gallery", __name__)

# An image opened on its own gets the browser's image viewer, whose inline styles the site-wide policy would block.
IMAGE_POLICY = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'"
UNSAFE_IN_NAMES = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]+')
NO_SUCH_IMAGE = N_("There is no such image.")
PARAMETER_LABELS = {  # the keys `ImageGenerator.parameters` writes; any other key is shown as it is
    "seed": N_("Seed"),
    "steps": N_("Steps"),
    "guidance": N_("Guidance"),
    "width": N_("Width"),
    "height": N_("Height"),
    "mode": N_("Mode"),
    "strength": N_("Change strength"),
    "refiner": N_("Refiner"),
    "refiner_strength": N_("Refiner strength"),
    "refiner_guidance": N_("Refiner guidance"),
    "models": N_("Models"),
}


def page_of_records(limit: int):
    """The records older than `?before=<record id>` (all when absent), newest first."""
    before = read_number(request.args, "before", int, "before (a record id)")
    return get_services().search.store.history(limit=limit, before=before)


@bp.get("/gallery")
def gallery():
    limit = current_app.config["PAGE_SIZE"]
    try:
        records = page_of_records(limit)
    except (GenerationError, GalleryError) as error:
        abort(400, translate_error(error))
    older = records[-1].id if len(records) == limit else None
    return render_template("gallery.html", records=records, older=older)


def _record(record_id: int) -> Record:
    try:
        record = get_services().search.store.get(record_id)
    except (GalleryError, OverflowError):
        record = None
    if record is None:
        abort(404, translate(NO_SUCH_IMAGE))
    return record


@bp.get("/gallery/<int:record_id>")
def record(record_id: int):
    """One image, large, with its prompt, every parameter, similar prompts and what to do next."""
    record = _record(record_id)
    wanted = current_app.config["SIMILAR_PROMPTS"]
    try:
        hits = get_services().search.search_text(record.prompt, k=wanted + 1)
    except SearchError:
        hits = []
    similar = [hit for hit in hits if hit.record.id != record.id][:wanted]
    shown = [(PARAMETER_LABELS.get(key, key), _value(value)) for key, value in record.parameters.items()]
    parameters = [(label, value) for label, value in shown if label not in ("prompt", "negative_prompt")]
    return render_template("record.html", record=record, similar=similar, parameters=parameters)


def _value(value) -> str:
    if isinstance(value, bool):
        return translate(N_("yes") if value else N_("no"))
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_value(item)}" for key, item in value.items() if item is not None)
    return "—" if value is None else str(value)


def download_name(record: Record) -> str:
    """A file name from the prompt and the seed, e.g. "흰 배경 왼쪽에 있는 큰 빨간 원-seed1.png"."""
    prompt = unicodedata.normalize("NFC", UNSAFE_IN_NAMES.sub(" ", record.prompt))
    prompt = " ".join(prompt.split())[:60].strip(" .") or "image"
    seed = record.parameters.get("seed")
    return f"{prompt}-seed{seed}.png" if seed is not None else f"{prompt}-{record.id}.png"


@bp.get("/gallery/<int:record_id>/download")
def download(record_id: int):
    """The PNG as an attachment named from its prompt (RFC 5987 `filename*` in UTF-8, an ASCII `filename` beside)."""
    record = _record(record_id)
    response = send_file(get_services().search.store.image_path(record.image), mimetype="image/png", max_age=0)
    name = download_name(record)
    # `filename` for clients without RFC 5987: the ASCII part of the name, e.g. "image-seed1.png" for Hangul
    stem = " ".join(name.encode("ascii", "ignore").decode().removesuffix(".png").split()).strip(" -")
    plain = f"{stem}.png" if stem and not stem.startswith("seed") else f"image-{stem or record.id}.png"
    response.headers["Content-Disposition"] = f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name)}"
    return response


@bp.get("/images/<path:name>")
def image(name: str):
    """Only files of the gallery's own image folder: no path leaves it."""
    try:
        path = get_services().search.store.image_path(name)
    except GalleryError:
        abort(404, translate(NO_SUCH_IMAGE))
    response = send_file(path, mimetype="image/png", max_age=86400)
    response.headers["Content-Security-Policy"] = IMAGE_POLICY
    return response
