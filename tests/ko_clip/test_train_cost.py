"""benchmarks/train_cost.py: the real training step on the tiny setup, and the FLOP formula behind its GPU estimate."""

import json

import pytest

from benchmarks.train_cost import measure, step_flops


def test_the_cost_benchmark_runs_the_training_step_and_its_formula_matches_torchs_counter(
    tiny_setup, tiny_config, tmp_path
):
    config = tiny_config(tiny_setup, tmp_path / "run", steps=10)
    config.student.intermediate_size = 4 * config.student.hidden_size  # the formula's MLP, as in every real backbone
    result = measure(config, "bf16", steps=1, tokens=24, workdir=tmp_path, name="cost")
    assert result["seconds"] > 0 and result["pairs_per_second"] > 0 and "RSS" in result["peak_memory"]
    backbone = {k: getattr(config.student, k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers")}
    text = json.loads((tiny_setup / "teacher" / "config.json").read_text())["text_config"]
    teachers = [{k: v for k, v in text.items() if k != "projection_dim"}, text]  # base: no pooled output
    formula = sum(step_flops(config, backbone, teachers, tokens=24).values())
    assert formula == pytest.approx(result["counted_flops"], rel=0.15)
