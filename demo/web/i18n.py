"""Languages: every page and message goes through Flask-Babel's gettext, with catalogs in `demo/web/translations/`.

Source strings are English; `translations/ko/LC_MESSAGES/messages.po` holds the Korean. Who gets which:

- pages: Korean, unless the visitor picks English with `?lang=en` (remembered in the session; `?lang=ko` goes back);
- the JSON API (`/api/…`): the best of Korean and English by `Accept-Language`, English when the header names
  neither;
- the AUTOMATIC1111 and OpenAI endpoints: English always, as their clients expect.

    make translations   # extract the marked strings, update the catalog, compile the .mo (see the Makefile)
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request, session, url_for
from flask_babel import Babel, get_locale, gettext

from demo.generation.errors import N_

LANGUAGES = ("ko", "en")
PAGES_DEFAULT = "ko"
API_DEFAULT = "en"
ENGLISH_ONLY = ("/sdapi/", "/v1/")  # the client-compatible APIs speak their clients' language

babel = Babel()


def select_locale() -> str:
    path = request.path
    if path.startswith(ENGLISH_ONLY):
        return "en"
    if path.startswith("/api/"):
        return request.accept_languages.best_match(LANGUAGES) or API_DEFAULT
    chosen = request.args.get("lang")
    if chosen in LANGUAGES:
        return chosen
    return session["lang"] if session.get("lang") in LANGUAGES else PAGES_DEFAULT


def _remember_choice() -> None:
    """`?lang=en` on any page keeps English for the pages after it."""
    chosen = request.args.get("lang")
    if chosen in LANGUAGES and session.get("lang") != chosen and not request.path.startswith(("/api/", *ENGLISH_ONLY)):
        session["lang"] = chosen


def language() -> str:
    """The language of this response ("ko" or "en"): `<html lang>` and the scripts' messages follow it."""
    return str(get_locale() or PAGES_DEFAULT)


def language_url(chosen: str) -> str:
    """This page (its query kept) in another language; the start page when this one cannot be fetched again."""
    if request.method != "GET" or not request.endpoint or request.endpoint.startswith("api."):
        return url_for("generate.txt2img", lang=chosen)
    args: dict[str, Any] = {key: value for key, value in request.args.items() if key != "lang"}
    return url_for(request.endpoint, **(request.view_args or {}), **args, lang=chosen)


# How the forms name the request's fields: a refusal's `%(field)s` in another language than English.
FIELD_NAMES = {
    "prompt": N_("Prompt"),
    "negative_prompt": N_("Negative prompt"),
    "seed": N_("Seed"),
    "steps": N_("Steps"),
    "guidance": N_("Guidance"),
    "size": N_("Size"),
    "number of images": N_("Number of images"),
    "refiner": N_("Refiner"),
    "refiner strength": N_("Refiner strength"),
    "strength": N_("Change strength"),
}


def translate(message: str, params: dict[str, Any] | None = None) -> str:
    """A message in this response's language: `gettext(template) % params`, the shape validation errors carry
    (their English template marked with `N_`); a message not in the catalog stays as it is."""
    translated = gettext(message) if message else message
    if params and params.get("field") in FIELD_NAMES and language() != "en":
        params = params | {"field": gettext(FIELD_NAMES[params["field"]])}
    return translated % params if params else translated


def translate_error(error: Exception) -> str:
    """An exception's message in this response's language: its `template` and `params` when it has them, else
    its text looked up as it is."""
    template = getattr(error, "template", None)
    if template:
        return translate(template, getattr(error, "params", None) or {})
    return translate(str(error))


def init_app(app: Flask) -> None:
    babel.init_app(app, default_locale=PAGES_DEFAULT, locale_selector=select_locale)
    app.before_request(_remember_choice)
    app.add_template_global(language)
    app.add_template_global(language_url)
    app.add_template_global(translate)
