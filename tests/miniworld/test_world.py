import random

import numpy as np
import pytest

from miniworld.korean import HELDOUT_TEMPLATES, TRAIN_TEMPLATES, attach_particles, korean_captions
from miniworld.world import (
    ATTRIBUTES,
    BACKGROUNDS,
    COLORS,
    IMAGE_SIZE,
    Scene,
    all_scenes,
    english_caption,
    render,
    sample,
)


def test_render_is_deterministic_and_jittered():
    scene = Scene("red", "circle", "large", "left", "white")
    first, again, other_seed = render(scene, 7), render(scene, 7), render(scene, 8)
    assert first.size == (IMAGE_SIZE, IMAGE_SIZE) and first.mode == "RGB"
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(other_seed))


def test_render_draws_the_attributes():
    image = np.asarray(render(Scene("blue", "square", "large", "right", "black"), 0)).astype(int)
    assert (image[2, 2] == BACKGROUNDS["black"]).all()
    object_pixels = np.abs(image - COLORS["blue"]).sum(-1) < 30
    ys, xs = np.nonzero(object_pixels)
    assert xs.mean() > 40 and 24 < ys.mean() < 40  # right of centre, vertically centred
    small = np.abs(
        np.asarray(render(Scene("blue", "square", "small", "right", "black"), 0)).astype(int) - COLORS["blue"]
    )
    assert (small.sum(-1) < 30).sum() < object_pixels.sum() / 2


def test_english_caption_is_canonical():
    scene = Scene("red", "circle", "large", "left", "white")
    assert english_caption(scene) == "a large red circle on the left on a white background"
    assert english_caption(Scene("purple", "star", "small", "center", "gray")) == (
        "a small purple star in the center on a gray background"
    )


def test_unknown_attribute_value_is_rejected():
    with pytest.raises(ValueError, match="unknown color 'pink'"):
        Scene("pink", "circle", "large", "left", "white")


def test_all_scenes_covers_every_combination_once():
    scenes = all_scenes()
    assert len(scenes) == len(set(scenes)) == np.prod([len(v) for v in ATTRIBUTES.values()])


def test_sample_is_reproducible():
    a = [(s, np.asarray(i)) for s, i in sample(5, seed=3)]
    b = [(s, np.asarray(i)) for s, i in sample(5, seed=3)]
    assert [s for s, _ in a] == [s for s, _ in b]
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b))


@pytest.mark.parametrize(
    "marked, expected",
    [
        ("원이/가 있다", "원이 있다"),
        ("네모이/가 있다", "네모가 있다"),
        ("별을/를", "별을"),
        ("세모과/와", "세모와"),
        ("가운데을/를 보면", "가운데를 보면"),
    ],
)
def test_particles_follow_the_final_consonant(marked, expected):
    assert attach_particles(marked) == expected


def test_korean_captions_name_every_attribute_and_vary():
    from miniworld.korean import BACKGROUND_ADJ, BACKGROUND_NOUN, COLOR_ADJ, COLOR_NOUN, PLACE, SHAPE

    scene = Scene("green", "triangle", "small", "bottom", "gray")
    captions = korean_captions(scene, 8, random.Random(0))
    assert len(set(captions)) == 8
    for caption in captions:
        assert any(w in caption for w in COLOR_ADJ["green"] + COLOR_NOUN["green"])
        assert any(w in caption for w in SHAPE["triangle"])
        assert any(w in caption for w in PLACE["bottom"])
        assert any(w in caption for w in BACKGROUND_ADJ["gray"] + BACKGROUND_NOUN["gray"])
        assert "/" not in caption and "{" not in caption


def test_heldout_templates_are_disjoint_from_training():
    assert not set(TRAIN_TEMPLATES) & set(HELDOUT_TEMPLATES)
    assert len(TRAIN_TEMPLATES) == 14 and len(HELDOUT_TEMPLATES) == 5
