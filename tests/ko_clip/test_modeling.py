"""ko_clip.modeling: the student's config keys and its frozen-layer shortcut."""

from __future__ import annotations

import torch

from ko_clip import KoreanStudentConfig, Target
from ko_clip.config import load_config
from ko_clip.student import scratch_student, train_wordpiece


def test_trunk_is_the_config_key_and_head_its_old_name():
    assert KoreanStudentConfig(head="positional").trunk == "positional"
    assert "head" not in KoreanStudentConfig(trunk="positional").to_dict()
    assert load_config("embedded", ["student.head=positional"]).student.trunk == "positional"


def test_cached_frozen_states_give_the_same_output_as_the_full_forward():
    tokenizer = train_wordpiece(["빨간 원이 왼쪽에 있다", "a red circle"], vocab_size=120)
    backbone = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    model = scratch_student(tokenizer, [Target("base", 24)], backbone, head_layers=1, head_heads=2).eval()
    model.config.frozen_layers = 1
    batch = tokenizer(["빨간 원", "a red circle on the left"], padding=True, return_tensors="pt")
    with torch.no_grad():
        full = model(batch.input_ids, batch.attention_mask)["base"][0]
        cached = model(attention_mask=batch.attention_mask, frozen_states=model.frozen_states(**batch))["base"][0]
    assert torch.allclose(full, cached, atol=1e-5)
