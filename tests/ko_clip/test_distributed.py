"""`ko_clip train` on two processes (torchrun, accelerate on CPU with gloo), against one process.

A tiny corpus runs for about four epochs. One 2-process run goes straight to its budget; a second resumes from
a copy of the first run's files at an earlier checkpoint, as a stopped job would, and must end identical.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from ko_clip.train import lr_factor, main

pytestmark = pytest.mark.distributed

ROOT = Path(__file__).resolve().parents[2]
STEPS, EVAL_EVERY, SNAPSHOT = 30, 5, 20


def torchrun(config, log_dir: Path, snapshot: int | None = None) -> dict:
    """Run the config on 2 processes; the progress record (step, history) the run saved."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / "config.yaml"
    path.write_text(yaml.safe_dump(dataclasses.asdict(config), allow_unicode=True), encoding="utf-8")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [str(Path(__file__).with_name("torchrun_entry.py")), str(path), str(log_dir)]
    command += [] if snapshot is None else [str(snapshot)]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    # a hang (the old step bookkeeping skipped every batch after the first epoch) fails here instead of blocking
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((Path(config.out_dir) / "state" / "progress.json").read_text())


@pytest.fixture(scope="module")
def runs(tiny_setup, tiny_config, tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    straight = tiny_config(tiny_setup, root / "straight", steps=STEPS)
    straight.eval_every = EVAL_EVERY
    progress = torchrun(straight, root / "straight-log", snapshot=SNAPSHOT)
    resumed = dataclasses.replace(straight, out_dir=str(root / "straight-log" / "snapshot"))
    return {
        "config": straight,
        "resumed config": resumed,
        "straight": progress,
        "resumed": torchrun(resumed, root / "resumed-log"),
        "renames": {rank: _lines(root / "straight-log" / f"renames-{rank}.txt") for rank in (0, 1)},
        "resumed renames": _lines(root / "resumed-log" / "renames-0.txt"),
        "one process": main(dataclasses.replace(straight, out_dir=str(root / "one-process"))),
    }


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def test_two_processes_reach_the_step_budget(runs):
    assert runs["straight"]["step"] == STEPS
    assert [h["step"] for h in runs["straight"]["history"]] == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))


def test_only_the_main_process_saves_and_it_saves_each_checkpoint_once(runs):
    renames = runs["renames"]
    assert renames[1] == [], "the second process published nothing"
    published = [name for name in renames[0] if not name.endswith(".old")]
    assert published.count("init") == 1 and published.count("state") == STEPS // EVAL_EVERY
    assert 1 <= published.count("best") <= STEPS // EVAL_EVERY
    state = Path(runs["config"].out_dir) / "state"
    saved = {p.name for p in state.iterdir()}
    assert {"model.safetensors", "optimizer.bin", "scheduler.bin", "progress.json"} <= saved
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= saved, "each process keeps its own RNG state"
    assert sorted(p.name for p in state.parent.iterdir()) == ["best", "init", "state"]


def test_a_resumed_run_ends_identical_to_the_uninterrupted_one(runs):
    straight, resumed = runs["straight"], runs["resumed"]
    assert runs["resumed renames"].count("state") == (STEPS - SNAPSHOT) // EVAL_EVERY, "it went on from step 20"
    assert resumed["step"] == STEPS and resumed["history"] == straight["history"]
    weights = [load_file(Path(runs[c].out_dir) / "state" / "model.safetensors") for c in ("config", "resumed config")]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


def test_the_lr_schedule_is_the_one_process_schedule(runs):
    config = runs["config"]
    expected = [config.lr * lr_factor(h["step"] - 1, config.warmup, config.steps) for h in runs["straight"]["history"]]
    assert [h["lr"] for h in runs["straight"]["history"]] == expected
    assert [h["lr"] for h in runs["one process"]["history"]] == expected
