"""Page: similar-prompt search, by Korean or English text or by an uploaded image."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from demo.generation.images import ImageError
from demo.generation.request import GenerationError, read_number
from demo.search.index import SearchError
from demo.web.extensions import get_services
from demo.web.views.forms import decode

DEFAULT_K = 12

bp = Blueprint("search", __name__)


def search_k() -> int:
    """`k` from the query string or form; absent means `DEFAULT_K` (0 or less is an error, not a default)."""
    k = read_number(request.values, "k", int)
    return DEFAULT_K if k is None else k


@bp.route("/search", methods=["GET", "POST"])
def search():
    """GET ?q=…&k=… searches by text; POST with an `image` file searches by image."""
    query = request.args.get("q", "")
    upload = request.files.get("image") if request.method == "POST" else None
    results, error, status = None, None, 200
    try:
        k = search_k()
        if upload is not None:
            search = get_services().search
            results = search.search_image(decode(upload.read(), search.image_side), k)
        elif query.strip():
            results = get_services().search.search_text(query, k)
    except (SearchError, GenerationError, ImageError) as exc:
        error, status = str(exc), 400
    by_image = upload is not None and error is None
    return render_template("search.html", query=query, results=results, error=error, by_image=by_image), status
