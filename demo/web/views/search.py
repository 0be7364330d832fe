"""Page: similar-prompt search, by Korean or English text or by an uploaded image."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from demo.generation.images import ImageError
from demo.generation.request import GenerationError, read_number
from demo.search.index import SearchError
from demo.web.extensions import get_services
from demo.web.i18n import translate_error
from demo.web.views.forms import decode

DEFAULT_K = 12

bp = Blueprint("search", __name__)


def search_k() -> int:
    """`k` from the query string or form; absent means `DEFAULT_K` (0 or less is an error, not a default)."""
    k = read_number(request.values, "k", int)
    return DEFAULT_K if k is None else k


@bp.route("/search", methods=["GET", "POST"])
def search():
    """GET ?q=…&k=… searches by text; POST with an `image` file searches by image. Text results below the
    config's `page_min_score` (or `min_score`) are left out: an empty list then says "no close match"."""
    s = get_services()
    query = request.args.get("q", "")
    upload = request.files.get("image") if request.method == "POST" else None
    results, error, status, field = None, None, 200, None
    try:
        k, floor = search_k(), read_number(request.values, "min_score", float)
        if upload is not None:  # image–text scores sit lower than text–text ones: the text floor does not apply
            field = "image"
            results = s.search.search_image(decode(upload.read(), s.search.image_side), k, floor)
        elif query.strip():
            field = "q"
            results = s.search.search_text(query, k, s.search.config.page_min_score if floor is None else floor)
    except (SearchError, GenerationError, ImageError) as exc:
        error, status = translate_error(exc), 400
    by_image = upload is not None and error is None
    return render_template(
        "search.html",
        query=query,
        results=results,
        field_error=error,
        error_field=field or "q",
        by_image=by_image,
        gallery_size=len(s.search),
    ), status
