"""Pages of the `generate` blueprint: the text→image and image→image forms, and one job's page (progress, images)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, send_file, url_for
from werkzeug.datastructures import FileStorage

from demo.generation.images import DecodeBusy
from demo.generation.request import GenerationError
from demo.jobs.model import JobNotFound, QueueFull, TooManyJobs
from demo.search.index import SearchError
from demo.search.store import GalleryError
from demo.web.extensions import get_services
from demo.web.guide import world_note
from demo.web.i18n import N_, translate, translate_error
from demo.web.views.forms import generation_request, owner

bp = Blueprint("generate", __name__)

FORM_FIELDS = {"init_image": "image"}  # the request's field names that the forms call otherwise
NO_IMAGE = N_("Choose an image file to start from.")


def error_field(error: Exception) -> str | None:
    """The form field an error is about (a `UserError`'s `field`, under the form's name for it)."""
    field: Any = getattr(error, "field", None)
    return FORM_FIELDS.get(field, field)


def _form_page(kind: str, error: str | None = None, status: int = 200, field: str | None = None):
    s = get_services()
    fields = request.form if request.method == "POST" else request.args
    source = _source_record(fields)
    page = render_template(
        f"{kind}.html",
        config=s.config,
        fields=fields,
        error=error if field is None else None,
        field_error=error if field else None,
        error_field=field,
        jobs=s.jobs.jobs(owner())[:8],
        world=world_note(s.config),
        source=source,
        max_upload=current_app.config["MAX_CONTENT_LENGTH"],
    )
    return page, status


def _source_record(fields):
    """The gallery record an image→image form starts from (`?source=<id>`, "image→image from this"), if any."""
    value = fields.get("source", "")
    if not value.isdigit():
        return None
    try:
        return get_services().search.store.get(int(value))
    except (GalleryError, OverflowError):
        return None


def _upload(kind: str) -> FileStorage | None:
    upload = request.files.get("image") if kind == "img2img" else None
    if kind == "img2img" and (upload is None or not upload.filename):
        record = _source_record(request.form)
        if record is None:
            return None
        path = get_services().search.store.image_path(record.image)
        return FileStorage(io.BytesIO(path.read_bytes()), filename=Path(record.image).name)
    return upload


def _submit(kind: str):
    s = get_services()
    upload = _upload(kind)
    if kind == "img2img" and upload is None:
        return _form_page(kind, translate(NO_IMAGE), 400, "image")
    try:
        generation = generation_request(request.form, upload)
        job = s.jobs.submit(owner(), kind, generation)
    except GenerationError as error:
        return _form_page(kind, translate_error(error), 400, error_field(error))
    except TooManyJobs as error:
        return _form_page(kind, translate_error(error), 429)
    except (QueueFull, DecodeBusy) as error:
        return _form_page(kind, translate_error(error), 503)
    if generation.init_image is not None:
        _input_path(job.id).parent.mkdir(exist_ok=True)
        generation.init_image.save(_input_path(job.id), format="PNG")
    return redirect(url_for("generate.job", job_id=job.id), code=303)


def _input_path(job_id: str) -> Path:
    """Where the image an image→image job started from is kept, for its page (the job queue forgets it)."""
    if not re.fullmatch(r"[\w-]+", job_id):
        abort(404)
    return Path(current_app.config["DATA_DIR"]) / "inputs" / f"{job_id}.png"


@bp.route("/", methods=["GET", "POST"])
def txt2img():
    return _submit("txt2img") if request.method == "POST" else _form_page("txt2img")


@bp.route("/img2img", methods=["GET", "POST"])
def img2img():
    return _submit("img2img") if request.method == "POST" else _form_page("img2img")


def _own_job(action, job_id: str):
    try:
        return action(job_id, owner())
    except JobNotFound:
        abort(404, translate(N_("This browser has no such job.")))


@bp.get("/jobs/<job_id>")
def job(job_id: str):
    s = get_services()
    job = _own_job(s.jobs.get, job_id)
    similar = []
    if job.status == "done":  # "similar prompts" beside the result: the gallery's nearest, not the job's own
        mine, wanted = set(job.output.record_ids), current_app.config["SIMILAR_PROMPTS"]
        try:
            hits = s.search.search_text(job.request.prompt, k=wanted + len(mine))
        except SearchError:
            hits = []
        similar = [hit for hit in hits if hit.record.id not in mine][:wanted]
    has_input = job.kind == "img2img" and _input_path(job.id).exists()
    return render_template("job.html", job=job, position=s.jobs.position(job), similar=similar, has_input=has_input)


@bp.get("/jobs/<job_id>/input.png")
def job_input(job_id: str):
    """The image an image→image job started from, for the browser that made the job only."""
    job = _own_job(get_services().jobs.get, job_id)
    path = _input_path(job.id)
    if not path.exists():
        abort(404, translate(N_("This job has no input image.")))
    return send_file(path, mimetype="image/png", max_age=86400)


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str):
    _own_job(get_services().jobs.cancel, job_id)
    return redirect(url_for("generate.job", job_id=job_id), code=303)


@bp.get("/favicon.ico")
def favicon():
    return redirect(url_for("static", filename="favicon.svg"), code=301)
