"""Shared fixtures. Tests run offline: nothing may reach a model hub."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def scorer():
    from miniworld.scoring import SceneScorer

    return SceneScorer()


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory):
    from miniworld.corpus import write_corpus

    out = tmp_path_factory.mktemp("corpus")
    write_corpus(out)
    return out


@pytest.fixture(scope="session")
def generator():
    """The embedded generation pipeline, loaded once for the whole session (as the web app does)."""
    from demo.config import load_config
    from demo.pipeline import Generator

    return Generator(load_config("embedded"))


@pytest.fixture(scope="session")
def teacher_generator():
    """The same embedded pipeline reading English prompts through the pipelines' own text encoders."""
    from demo.config import load_config
    from demo.pipeline import Generator

    return Generator(load_config("embedded"), prompt_encoder="english")
