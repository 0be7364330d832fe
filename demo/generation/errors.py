"""Refusals meant for the person who sent a request, in a form the web layer can translate later.

Each carries a stable machine-readable `code`, an English message `template` and its `params`; `str(error)` is the
English text. A translating front runs `gettext(error.template) % error.params`; `N_` marks the templates so
`pybabel extract -k N_` finds them without translating anything here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def N_(template: str) -> str:  # noqa: N802 (gettext's name for a no-op marker)
    """Mark `template` for extraction; translated where it is shown, not here."""
    return template


class UserError(ValueError):
    """Something the sender can fix: `code` ("prompt_empty"), `template` ("the prompt is empty"), `params`, and the
    `field` it is about (our field name), when there is one. A plain message is also accepted (code "invalid")."""

    default_code = "invalid"

    def __init__(
        self,
        template: str = "",
        *,
        code: str | None = None,
        params: Mapping[str, Any] | None = None,
        field: str | None = None,
    ) -> None:
        self.template, self.params, self.field = template, dict(params or {}), field
        self.code = code or self.default_code
        super().__init__(template % self.params if self.params else template)
