"""Page: the gallery of generated images, newest first, paged; and the image files themselves."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template, request, send_file

from demo.generation.request import GenerationError, read_number
from demo.search.store import GalleryError
from demo.web.extensions import get_services

bp = Blueprint("gallery", __name__)


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
        abort(400, str(error))
    older = records[-1].id if len(records) == limit else None
    return render_template("gallery.html", records=records, older=older)


@bp.get("/images/<path:name>")
def image(name: str):
    """Only files of the gallery's own image folder: no path leaves it."""
    try:
        path = get_services().search.store.image_path(name)
    except GalleryError:
        abort(404, "그런 이미지가 없습니다 (no such image)")
    return send_file(path, mimetype="image/png", max_age=86400)
