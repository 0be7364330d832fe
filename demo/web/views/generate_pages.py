"""Pages of the `generate` blueprint: the text→image and image→image forms, and one job's page (progress, images)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for

from demo.generation.images import DecodeBusy
from demo.generation.request import GenerationError
from demo.jobs.model import JobNotFound, QueueFull, TooManyJobs
from demo.search.index import SearchError
from demo.web.extensions import get_services
from demo.web.views.forms import generation_request, owner

bp = Blueprint("generate", __name__)


def _form_page(kind: str, error: str | None = None, status: int = 200):
    s = get_services()
    fields = request.form if request.method == "POST" else request.args
    page = render_template(f"{kind}.html", config=s.config, fields=fields, error=error, jobs=s.jobs.jobs(owner())[:8])
    return page, status


def _submit(kind: str):
    s = get_services()
    upload = request.files.get("image") if kind == "img2img" else None
    if kind == "img2img" and (upload is None or not upload.filename):
        return _form_page(kind, "이미지 파일을 골라 주세요 (choose an image file)", 400)
    try:
        job = s.jobs.submit(owner(), kind, generation_request(request.form, upload))
    except GenerationError as error:
        return _form_page(kind, str(error), 400)
    except TooManyJobs as error:
        return _form_page(kind, str(error), 429)
    except (QueueFull, DecodeBusy) as error:
        return _form_page(kind, str(error), 503)
    return redirect(url_for("generate.job", job_id=job.id), code=303)


@bp.route("/", methods=["GET", "POST"])
def txt2img():
    return _submit("txt2img") if request.method == "POST" else _form_page("txt2img")


@bp.route("/img2img", methods=["GET", "POST"])
def img2img():
    return _submit("img2img") if request.method == "POST" else _form_page("img2img")


@bp.get("/jobs/<job_id>")
def job(job_id: str):
    s = get_services()
    try:
        job = s.jobs.get(job_id, owner())
    except JobNotFound:
        abort(404, "이 작업을 찾을 수 없습니다 (no such job in this browser)")
    similar = []
    if job.status == "done":  # "similar prompts" beside the result: the gallery's nearest, not the job's own
        mine, wanted = set(job.output.record_ids), current_app.config["SIMILAR_PROMPTS"]
        try:
            hits = s.search.search_text(job.request.prompt, k=wanted + len(mine))
        except SearchError:
            hits = []
        similar = [hit for hit in hits if hit.record.id not in mine][:wanted]
    return render_template("job.html", job=job, position=s.jobs.position(job), similar=similar)


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str):
    try:
        get_services().jobs.cancel(job_id, owner())
    except JobNotFound:
        abort(404, "이 작업을 찾을 수 없습니다 (no such job in this browser)")
    return redirect(url_for("generate.job", job_id=job_id), code=303)
