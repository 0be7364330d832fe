"""Natural, varied Korean captions for miniworld scenes.

Captions come from sentence templates (noun phrases and full sentences, several word orders and verbs) filled
with synonyms. `TRAIN_TEMPLATES` are the phrasings a Korean encoder may learn from; `HELDOUT_TEMPLATES` never
appear in training data and measure how well it generalises to unseen phrasing.
"""

from __future__ import annotations

import random
import re

from miniworld.world import Scene

# Adjective forms (before a noun) and noun forms (after 은/는) of every attribute value.
COLOR_ADJ = {
    "red": ("빨간", "빨간색", "붉은"),
    "orange": ("주황", "주황색", "주황빛"),
    "yellow": ("노란", "노란색", "샛노란"),
    "green": ("초록", "초록색", "녹색"),
    "blue": ("파란", "파란색", "푸른"),
    "purple": ("보라", "보라색", "보랏빛"),
}
COLOR_NOUN = {
    "red": ("빨간색", "빨강"),
    "orange": ("주황색", "주황"),
    "yellow": ("노란색", "노랑"),
    "green": ("초록색", "녹색"),
    "blue": ("파란색", "파랑"),
    "purple": ("보라색", "보라"),
}
SHAPE = {
    "circle": ("원", "동그라미", "원형"),
    "square": ("사각형", "네모", "정사각형"),
    "triangle": ("삼각형", "세모"),
    "star": ("별", "별 모양"),
    "diamond": ("마름모", "마름모꼴"),
}
SIZE_ADJ = {"small": ("작은", "조그만", "자그마한"), "large": ("큰", "커다란", "큼직한")}
PLACE = {
    "left": ("왼쪽", "좌측"),
    "right": ("오른쪽", "우측"),
    "top": ("위쪽", "상단"),
    "bottom": ("아래쪽", "하단"),
    "center": ("가운데", "중앙", "한가운데"),
}
BACKGROUND_ADJ = {"white": ("흰", "하얀", "흰색"), "black": ("검은", "까만", "검정"), "gray": ("회색", "잿빛")}
BACKGROUND_NOUN = {"white": ("흰색", "하얀색"), "black": ("검은색", "까만색", "검정색"), "gray": ("회색",)}

TRAIN_TEMPLATES = (
    "{bg} 배경 {place}에 있는 {size} {color} {shape}",
    "{bg} 배경의 {place}에 {size} {color} {shape}이/가 있다",
    "{size} {color} {shape}이/가 {bg} 배경 {place}에 놓여 있다",
    "{place}에 {size} {color} {shape}이/가 그려진 {bg} 배경",
    "{bg} 바탕 {place}에 {size} {color} {shape}",
    "{size} {color} {shape}, {place}, {bg} 배경",
    "{bg} 배경 위 {place}에 {size} {color} {shape} 하나",
    "{size} {color} {shape}이/가 {place}에 있는 {bg} 배경 그림",
    "{place}에 놓인 {size} {color} {shape}과/와 {bg} 배경",
    "{bg} 배경에 {size} {color} {shape}이/가 {place}에 그려져 있다",
    "{size} {color} {shape} 하나가 {bg} 배경의 {place}에 있습니다",
    "배경은 {bg_noun}이고 {place}에 {size} {color} {shape}이/가 있다",
    "{color_noun} {shape}이/가 {bg} 배경 {place}에 있는데 크기가 {size_word}",
    "{bg} 배경을 바탕으로 {place}에 {size} {color} {shape}을/를 그린 그림",
)
HELDOUT_TEMPLATES = (
    "{place}을/를 보면 {size} {color} {shape}이/가 있고 배경은 {bg_noun}이다",
    "{bg} 화면의 {place}에 자리한 {size} {color} {shape}",
    "{size} {color} {shape}을/를 {bg} 배경 {place}에 그려 주세요",
    "{place}에 {size} {color} {shape}이/가 보이는 {bg} 배경의 이미지",
    "{bg} 배경, 그리고 {place}에는 {size} {color} {shape}",
)
_SIZE_WORD = {"small": ("작다", "작은 편이다"), "large": ("크다", "큰 편이다")}

_PARTICLE = re.compile(r"(?<=(.))(이/가|을/를|과/와|은/는)")


def has_final_consonant(word: str) -> bool:
    """Whether the last Hangul syllable of `word` ends in a consonant (받침), which picks 이/가, 을/를, 과/와."""
    code = ord(word[-1]) - 0xAC00
    return 0 <= code < 11172 and code % 28 != 0


def korean_caption(scene: Scene, template: str, rng: random.Random) -> str:
    """Fill `template` for `scene`, choosing each synonym with `rng` and the particles that fit it."""
    slots = {
        "bg": rng.choice(BACKGROUND_ADJ[scene.background]),
        "bg_noun": rng.choice(BACKGROUND_NOUN[scene.background]),
        "place": rng.choice(PLACE[scene.position]),
        "size": rng.choice(SIZE_ADJ[scene.size]),
        "size_word": rng.choice(_SIZE_WORD[scene.size]),
        "color": rng.choice(COLOR_ADJ[scene.color]),
        "color_noun": rng.choice(COLOR_NOUN[scene.color]),
        "shape": rng.choice(SHAPE[scene.shape]),
    }
    return attach_particles(template.format(**slots))


def attach_particles(text: str) -> str:
    """Resolve 'X이/가'-style markers to the particle that fits the syllable before them."""
    return _PARTICLE.sub(lambda m: m.group(2).split("/")[0 if has_final_consonant(m.group(1)) else 1], text)


def korean_captions(scene: Scene, count: int, rng: random.Random, heldout: bool = False) -> list[str]:
    """`count` distinct captions for `scene` from the training (or held-out) templates."""
    templates = HELDOUT_TEMPLATES if heldout else TRAIN_TEMPLATES
    captions: list[str] = []
    for _ in range(count * 20):
        caption = korean_caption(scene, rng.choice(templates), rng)
        if caption not in captions:
            captions.append(caption)
        if len(captions) == count:
            break
    return captions
