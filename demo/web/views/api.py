"""The JSON API: everything the pages do, for scripts. Errors answer `{"error": reason}` with a 4xx/5xx status.

Jobs belong to the session cookie that created them: keep cookies between calls (`curl -c jar -b jar`,
`requests.Session`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, jsonify, request, url_for
from flask_wtf.csrf import validate_csrf
from wtforms import ValidationError

from demo.generation.errors import N_, UserError
from demo.generation.images import ImageError
from demo.generation.request import GenerationError, read_number
from demo.jobs.model import Job, JobNotFound
from demo.search.index import SearchError
from demo.search.store import GalleryError
from demo.web.extensions import get_services
from demo.web.serializers import job_json, record_json, result_json
from demo.web.views.errors import refusal
from demo.web.views.forms import decode, generation_request, owner
from demo.web.views.gallery import page_of_records
from demo.web.views.search import search_k

bp = Blueprint("api", __name__, url_prefix="/api")
SAME_ORIGIN = {"same-origin", "none"}  # Sec-Fetch-Site of this site's own pages, and of a user's own typing


def from_another_origin() -> bool:
    """Whether the browser says this request comes from a page of another origin. `Sec-Fetch-Site` where the
    browser sends it; else `Origin`, compared with the host asked for. SameSite=Lax cookies do not tell ports or
    subdomains of one site apart; this does. curl and scripts send neither header."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site.lower() not in SAME_ORIGIN
    origin = request.headers.get("Origin")
    return origin is not None and urlsplit(origin).netloc.lower() != request.host.lower()


@bp.before_request
def refuse_cross_origin_writes():
    """No cross-origin writes with a user's cookie: a page on another port of this host may `fetch()` a multipart
    POST with credentials (no CORS preflight for that). Unless it carries the token the pages send (`X-CSRFToken`),
    such a request is a 403 before it touches the session."""
    if request.method in ("GET", "HEAD", "OPTIONS") or not from_another_origin():
        return
    try:
        validate_csrf(request.headers.get("X-CSRFToken"))
    except ValidationError:
        reason = N_("this request came from a page of another site or origin; send it from this site's pages")
        raise refusal(403, UserError(reason, code="cross_origin")) from None


def _job_response(job: Job, status: int = 200):
    response = jsonify(job_json(job, get_services().jobs.position(job)))
    response.status_code = status
    if status == 202:
        response.headers["Location"] = url_for("api.job", job_id=job.id)
    return response


def _submit(kind: str, fields, upload=None):
    """Queue the request (a full queue is 429 or 503, answered by `errors`)."""
    try:
        generation = generation_request(fields, upload)
    except GenerationError as error:
        raise refusal(400, error) from error
    return _job_response(get_services().jobs.submit(owner(), kind, generation), 202)


@bp.post("/txt2img")
def txt2img():
    """JSON body with the form's fields: prompt, negative_prompt, seed, steps, guidance, size, num_images, refiner,
    refiner_strength."""
    try:  # Flask's get_json would keep the reason from the client
        fields = current_app.json.loads(request.get_data()) if request.is_json else None
    except ValueError as error:
        abort(400, f"the body is not valid JSON: {error}")
    if not isinstance(fields, dict):
        abort(400, "send a JSON object with Content-Type: application/json")
    return _submit("txt2img", fields)


@bp.post("/img2img")
def img2img():
    """Multipart: an `image` file plus the txt2img fields and `strength`."""
    upload = request.files.get("image")
    if upload is None or not upload.filename:
        abort(400, "send the image as a multipart file field named 'image'")
    return _submit("img2img", request.form, upload)


@bp.get("/jobs")
def jobs():
    """This session's jobs, newest first."""
    s = get_services()
    return jsonify([job_json(job, s.jobs.position(job)) for job in s.jobs.jobs(owner())])


def _own_job(action, job_id: str) -> Job:
    """`action(job_id, owner)` (get or cancel) on this session's job; 404 for any other id."""
    try:
        return action(job_id, owner())
    except JobNotFound:
        abort(404, "no such job for this session")


@bp.get("/jobs/<job_id>")
def job(job_id: str):
    return _job_response(_own_job(get_services().jobs.get, job_id))


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str):
    return _job_response(_own_job(get_services().jobs.cancel, job_id))


@bp.route("/search", methods=["GET", "POST"])
def search():
    """GET ?q=TEXT&k=5[&min_score=0.5] by text; POST multipart `image` (and k, min_score) by image."""
    s = get_services()
    try:
        k, floor = search_k(), read_number(request.values, "min_score", float)
        if request.method == "POST":
            upload = request.files.get("image")
            if upload is None or not upload.filename:
                abort(400, "send the image as a multipart file field named 'image'")
            results = s.search.search_image(decode(upload.read(), s.search.image_side), k, floor)
        else:
            results = s.search.search_text(request.args.get("q", ""), k, floor)
    except (GenerationError, ImageError) as error:
        raise refusal(400, error) from error
    except SearchError as error:
        abort(400, str(error))
    return jsonify({"query": request.args.get("q"), "k": k, "results": [result_json(r) for r in results]})


@bp.get("/gallery")
def gallery():
    """The newest records (`?before=<id>` pages back), as the gallery page shows them."""
    try:
        records = page_of_records(current_app.config["PAGE_SIZE"])
    except GenerationError as error:
        raise refusal(400, error) from error
    except GalleryError as error:
        abort(400, str(error))
    return jsonify([record_json(record) for record in records])
