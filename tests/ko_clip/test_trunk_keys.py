"""The trunk's keys are `trunk`, `trunk_layers` and `trunk_heads`; their old names (`head`, `head_layers`,
`head_heads`) still load, from config.json files already written, YAML configs and `--set` overrides alike."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open

from ko_clip import KoreanStudent, KoreanStudentConfig, Target
from ko_clip.card import model_card, training_summary
from ko_clip.config import CONFIG_DIR, load_config
from ko_clip.modeling import OLD_TRUNK_KEYS, rename_old_trunk_keys
from ko_clip.student import scratch_student, train_wordpiece
from miniworld.paths import KOREAN_ENCODER_DIR

OLD_NAMES = {new: old for old, new in OLD_TRUNK_KEYS.items()}


def test_the_old_names_map_to_the_new_ones():
    assert rename_old_trunk_keys({"head": "positional", "head_layers": 3, "head_heads": 2, "trunk_width": 8}) == {
        "trunk": "positional",
        "trunk_layers": 3,
        "trunk_heads": 2,
        "trunk_width": 8,
    }
    with pytest.raises(ValueError, match="'head_layers' and 'trunk_layers'"):
        rename_old_trunk_keys({"head_layers": 3, "trunk_layers": 2})


def test_a_config_saves_the_new_keys_only():
    saved = KoreanStudentConfig(head="positional", head_layers=3, head_heads=2).to_dict()
    assert (saved["trunk"], saved["trunk_layers"], saved["trunk_heads"]) == ("positional", 3, 2)
    assert not set(OLD_TRUNK_KEYS) & set(saved)


def test_an_encoder_directory_with_the_old_keys_loads_to_the_same_model(tmp_path):
    tokenizer = train_wordpiece(["빨간 원이 왼쪽에 있다", "a red circle"], vocab_size=120)
    backbone = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    torch.manual_seed(0)
    model = scratch_student(tokenizer, [Target("base", 24)], backbone, trunk_layers=3, trunk_heads=4)
    model.save_pretrained(tmp_path / "new")
    shutil.copytree(tmp_path / "new", tmp_path / "old")
    config = json.loads((tmp_path / "new" / "config.json").read_text())
    config = {OLD_NAMES.get(key, key): value for key, value in config.items()}  # as encoders were first written
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    assert {"head", "head_layers", "head_heads"} <= set(config) and "trunk_layers" not in config

    new, old = (KoreanStudent.from_pretrained(tmp_path / name).eval() for name in ("new", "old"))
    assert (old.config.trunk, old.config.trunk_layers, old.config.trunk_heads) == ("cross_attention", 3, 4)
    assert len(old.trunk.decoder.layers) == 3
    assert old.config.to_dict() | {"_name_or_path": ""} == new.config.to_dict() | {"_name_or_path": ""}
    new_state, old_state = new.state_dict(), old.state_dict()
    assert new_state.keys() == old_state.keys()
    assert all(torch.equal(new_state[key], old_state[key]) for key in new_state)
    batch = tokenizer(["빨간 원"], return_tensors="pt")
    assert torch.equal(new(**batch)["base"][0], old(**batch)["base"][0])


def test_the_shipped_encoder_written_with_the_old_keys_reads_them():
    on_disk = json.loads((KOREAN_ENCODER_DIR / "config.json").read_text())
    config = KoreanStudentConfig.from_pretrained(KOREAN_ENCODER_DIR)
    assert (config.trunk_layers, config.trunk_heads) == (on_disk["head_layers"], on_disk["head_heads"]) == (2, 4)
    with torch.device("meta"):  # the architecture alone: shapes, no weights
        model = KoreanStudent(config)
    with safe_open(KOREAN_ENCODER_DIR / "model.safetensors", "pt") as weights:
        shipped = {key: tuple(weights.get_slice(key).get_shape()) for key in weights.keys()}
    built = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
    trunk = {key for key in shipped if key.startswith("trunk.")}
    assert trunk and trunk == {key for key in built if key.startswith("trunk.")}
    assert all(shipped[key] == built[key] for key in shipped)


def test_a_yaml_config_with_the_old_keys_loads_to_the_same_config(tmp_path):
    text = (CONFIG_DIR / "embedded.yaml").read_text(encoding="utf-8")
    assert "  trunk_layers: 2\n" in text and "  trunk_heads: 4\n" in text
    old = text.replace("  trunk_layers:", "  head_layers:").replace("  trunk_heads:", "  head_heads:")
    old = old.replace("  trunk: cross_attention", "  head: cross_attention")
    (tmp_path / "old.yaml").write_text(old, encoding="utf-8")
    assert load_config(tmp_path / "old.yaml") == load_config("embedded")


def test_old_and_new_override_keys_set_the_trunk(tmp_path):
    for override in ("student.head_layers=3", "student.trunk_layers=3"):
        assert load_config("embedded", [override]).student.trunk_layers == 3
    assert load_config("embedded", ["student.head_heads=8"]).student.trunk_heads == 8
    old = (CONFIG_DIR / "embedded.yaml").read_text(encoding="utf-8").replace("  trunk_layers:", "  head_layers:")
    (tmp_path / "old.yaml").write_text(old, encoding="utf-8")
    assert load_config(tmp_path / "old.yaml", ["student.trunk_layers=1"]).student.trunk_layers == 1


def test_a_config_giving_a_key_under_both_names_is_refused(tmp_path):
    both = (
        (CONFIG_DIR / "embedded.yaml")
        .read_text(encoding="utf-8")
        .replace("  trunk_heads: 4", "  trunk_heads: 4\n  head_heads: 8")
    )
    (tmp_path / "both.yaml").write_text(both, encoding="utf-8")
    with pytest.raises(ValueError, match="student: both a key and its old name given: 'head_heads' and 'trunk_heads'"):
        load_config(tmp_path / "both.yaml")


def test_a_training_summary_written_with_the_old_keys_gives_the_same_card():
    config = load_config("embedded")
    tokenizer = train_wordpiece(["빨간 원", "a red circle"], vocab_size=60)
    backbone = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    targets = [Target(t.name, 16) for t in config.teachers]
    model = scratch_student(tokenizer, targets, backbone, trunk_layers=2, trunk_heads=2)
    metrics = {t.name: {"token_mse": 0.5} for t in config.teachers}
    summary = training_summary(config, model, {"train": 10, "validation": 2, "english_only": 0}, 3, metrics)
    old = json.loads(json.dumps(summary))
    old["student"] = {OLD_NAMES.get(key, key): value for key, value in old["student"].items()}
    assert "head_layers" in old["student"] and "trunk_layers" not in old["student"]
    assert model_card(old) == model_card(summary)
    assert "(2 layers, width 128)" in model_card(old)
