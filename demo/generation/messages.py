"""`N_`: marks an English message for the web app's gettext catalog (`demo/web/translations/`) without translating
it, so any layer can raise a message that the web layer shows in the reader's language. An error carries its
`template` (marked with `N_`) and `params`; the web layer shows `gettext(template) % params`. It lives in
`demo.generation`, the lowest layer of `demo`, so the validators, search and the web can all import it."""

from __future__ import annotations

from typing import Any


def N_(message: str) -> str:  # noqa: N802 - the gettext convention
    return message


class TranslatableError(ValueError):
    """An error whose message is an English `template` with `params`; `str()` gives the English text."""

    def __init__(self, template: str, **params: Any) -> None:
        self.template, self.params = template, params
        super().__init__(template % params if params else template)
