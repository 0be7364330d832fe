"""Text from people and files, made safe to store and to print: valid Unicode, no terminal control characters."""

from __future__ import annotations

import re
import unicodedata

from demo.generation.errors import N_, UserError

WHITESPACE_CONTROLS = re.compile(r"[\t\n\r\v\f]+")
C1_CONTROLS = re.compile("[\x80-\x9f]")


class TextError(UserError):
    """Text that cannot be stored or encoded, with a message meant for the person who sent it."""


def without_controls(text: str) -> str:
    """`text` with line breaks and tabs as spaces and every other control character (ESC, NUL, C1 codes) removed:
    a prompt is one line, and one that reaches a terminal can no longer move its cursor or change its colours."""
    text = WHITESPACE_CONTROLS.sub(" ", text)
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cc")


def clean_text(text: str, name: str = "prompt") -> str:
    """Prompt text as the pipeline and the gallery take it; `TextError` for text UTF-8 cannot encode (lone
    surrogates from a JSON `\\ud800`), which would fail later in the pipeline or on every page that shows it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise TextError(
            N_("%(field)s contains characters that are not valid Unicode text (lone surrogates)"),
            code="text_not_unicode",
            params={"field": name},
            field=name,
        ) from None
    return without_controls(text)


def escape_c1(json_text: str) -> str:
    """JSON with its C1 control characters as \\u escapes (json.dumps escapes only C0 ones without ensure_ascii);
    some terminals take U+009B for an escape sequence."""
    return C1_CONTROLS.sub(lambda match: f"\\u{ord(match.group()):04x}", json_text)
