"""ko_clip fixtures: a tiny teacher and corpus, and the training config built on them."""

from __future__ import annotations

import random

import pandas as pd
import pytest
import torch

from ko_clip.config import LossConfig, StudentConfig, TrainConfig
from ko_clip.teacher import TeacherSpec
from miniworld.components import clip_model
from miniworld.korean import korean_captions
from miniworld.tokenizer import train_clip_tokenizer
from miniworld.world import all_scenes, english_caption


@pytest.fixture(scope="session")
def tiny_setup(tmp_path_factory):
    """A small random English CLIP as the teacher and 300 miniworld pairs as the corpus."""
    root = tmp_path_factory.mktemp("ko_clip_train")
    torch.manual_seed(0)
    tokenizer = train_clip_tokenizer(english_caption(s) for s in all_scenes())
    clip = clip_model(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    clip.save_pretrained(root / "teacher")
    tokenizer.save_pretrained(root / "teacher")
    rng = random.Random(0)
    scenes = rng.sample(all_scenes(), 150)
    rows = [{"ko": ko, "en": english_caption(s)} for s in scenes for ko in korean_captions(s, 2, rng)]
    pd.DataFrame(rows).to_csv(root / "pairs.csv", index=False)
    return root


def make_tiny_config(root, out, steps, **loss) -> TrainConfig:
    teacher = str(root / "teacher")
    return TrainConfig(
        corpus=[str(root / "pairs.csv")],
        teachers=[
            TeacherSpec("base", teacher, subfolder="", tokenizer_subfolder="", layer="last"),
            TeacherSpec("refiner", teacher, subfolder="", tokenizer_subfolder="", layer="penultimate", pooled=True),
        ],
        student=StudentConfig(
            vocab_size=300,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            trunk_layers=1,
            trunk_heads=2,
        ),
        loss=LossConfig(**loss),
        out_dir=str(out),
        cache_dir=str(root / "cache"),
        validation_fraction=0.1,
        steps=steps,
        batch_size=16,
        lr=3e-3,
        warmup=2,
        eval_every=10,
        threads=1,
    )


@pytest.fixture(scope="session")
def tiny_config():
    """`tiny_config(root, out, steps, **loss)`: a small student's training config on `tiny_setup`."""
    return make_tiny_config
