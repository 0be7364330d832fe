"""What the forms tell a newcomer: example prompts from the config, and for the embedded models the words of their
world, read from `miniworld` (the same vocabulary the corpus and the Korean encoder were made from)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from demo.generation.config import GeneratorConfig
from demo.web.i18n import N_, language

KINDS = {  # attribute → its label (marked for the catalog)
    "shape": N_("shapes"),
    "color": N_("colours"),
    "size": N_("sizes"),
    "position": N_("places"),
    "background": N_("backgrounds"),
}


@dataclass(frozen=True)
class WorldNote:
    size: int
    words: list[tuple[str, list[str]]]  # (label msgid, words in the page's language)


def world_note(config: GeneratorConfig) -> WorldNote | None:
    """The words the configured world knows, in the page's language; None when the config names no world."""
    if config.guide.world != "miniworld":
        return None
    from miniworld import korean
    from miniworld.world import ATTRIBUTES

    korean_words: dict[str, dict[str, Any]] = {
        "shape": korean.SHAPE,
        "color": korean.COLOR_ADJ,
        "size": korean.SIZE_ADJ,
        "position": korean.PLACE,
        "background": korean.BACKGROUND_ADJ,
    }
    in_korean = language() == "ko"
    words = [
        (label, [korean_words[kind][value][0] if in_korean else value for value in ATTRIBUTES[kind]])
        for kind, label in KINDS.items()
    ]
    return WorldNote(config.size, words)
