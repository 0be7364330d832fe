import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from demo.search.cli import main
from demo.search.embeddings import PromptEmbedder
from demo.search.sentence_head import SentenceHead
from demo.search.service import SENTENCE_HEAD_DIR, SearchConfig, SearchService, sentence_head_path
from miniworld.korean import korean_captions
from miniworld.paths import CLIP_DIR, KOREAN_ENCODER_DIR
from miniworld.world import Scene, all_scenes, english_caption
from tests.search.test_service import fill

TARGET = "miniworld-clip:penultimate"


@pytest.fixture(scope="module")
def with_head(embedder) -> PromptEmbedder:
    """The shipped models as the app loads them: the Korean encoder carries its sentence head."""
    head = SentenceHead.from_pretrained(sentence_head_path(SearchConfig()))
    return PromptEmbedder(
        embedder.clip, embedder.tokenizer, embedder.processor, embedder.korean, embedder.target, sentence_head=head
    )


def test_search_uses_the_head_its_encoder_carries_unless_told_otherwise(tmp_path):
    assert sentence_head_path(SearchConfig()) == str(Path(KOREAN_ENCODER_DIR) / SENTENCE_HEAD_DIR)
    assert sentence_head_path(SearchConfig(sentence_head="")) is None
    assert sentence_head_path(SearchConfig(sentence_head=str(tmp_path))) == str(tmp_path)
    bare = tmp_path / "encoder"  # an encoder directory without a head: none, and search works as before
    bare.mkdir()
    assert sentence_head_path(SearchConfig(korean_encoder=str(bare))) is None


def test_a_head_saves_and_loads_as_a_diffusers_component(tmp_path):
    torch.manual_seed(0)
    head = SentenceHead(width=8, size=4, target="t")
    states = torch.randn(3, 77, 8)
    head.save_pretrained(tmp_path)
    loaded = SentenceHead.from_pretrained(tmp_path)
    assert (loaded.width, loaded.size, loaded.target) == (8, 4, "t")
    vectors = loaded(states)
    assert torch.allclose(vectors, head(states)) and torch.allclose(vectors.norm(dim=-1), torch.ones(3))


def test_a_head_for_states_the_encoder_lacks_is_refused_clearly(embedder):
    for head in (SentenceHead(width=7, target=TARGET), SentenceHead(width=128, target="no-such-head")):
        with pytest.raises(ValueError, match="which the Korean encoder lacks"):
            PromptEmbedder(
                embedder.clip,
                embedder.tokenizer,
                embedder.processor,
                embedder.korean,
                embedder.target,
                sentence_head=head,
            )


@pytest.fixture(scope="module")
def every_scene(tmp_path_factory, with_head) -> SearchService:
    """Every miniworld scene's English caption, imported as a gallery written before views existed."""
    data_dir = tmp_path_factory.mktemp("every") / "data"
    fill(data_dir, [english_caption(s) for s in all_scenes()], with_head)
    return SearchService.open(data_dir, embedder=with_head)


@pytest.mark.slow
@pytest.mark.parametrize(
    "scene",
    [
        Scene("blue", "triangle", "large", "right", "black"),
        Scene("purple", "star", "large", "right", "black"),
        Scene("green", "square", "small", "top", "white"),
    ],
)
def test_a_korean_sentence_finds_its_own_scene_first(every_scene, scene):
    """Scenes the whole-prompt ranking put below others that differ in place or shape (search_quality.md)."""
    import random

    query = korean_captions(scene, 1, random.Random(5), heldout=True)[0]
    assert every_scene.search_text(query, k=1)[0].record.prompt == english_caption(scene), query


@pytest.mark.slow
def test_a_sentence_querys_score_is_the_mean_of_its_pooled_and_sentence_cosines(every_scene, with_head):
    query = "까만 배경 한가운데 커다란 노란 별을 하나 그려 줘"
    results = every_scene.search_text(query, k=10)
    pooled, sentence = with_head.embed_text(query), with_head.embed_sentences([query])[0]
    stored = every_scene.store.views([r.record.id for r in results], with_head.dim, with_head.sentence_size)
    for result in results:
        expected = (
            result.record.embedding @ pooled + stored[result.record.id].sentence.astype(np.float32) @ sentence
        ) / 2
        assert result.score == pytest.approx(float(expected), abs=1e-6)
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def _corpus(path: Path, scenes: list[Scene]) -> Path:
    import random

    rng = random.Random(0)
    rows = [{"ko": ko, "en": english_caption(s)} for s in scenes for ko in korean_captions(s, 2, rng)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_train_head_writes_a_head_that_search_loads(tmp_path, capsys):
    corpus = _corpus(tmp_path / "pairs.csv", all_scenes()[:40])
    out = tmp_path / "head"
    code = main(["train-head", "--corpus", str(corpus), "--out", str(out), "--steps", "20", "--batch", "8"])
    printed = capsys.readouterr().out
    assert code == 0 and f"wrote {out}" in printed and "step    20" in printed
    summary = json.loads((out / "training.json").read_text(encoding="utf-8"))
    assert summary["target"] == TARGET and summary["curve"][-1]["step"] == 20
    assert summary["sentences"]["train"] + summary["sentences"]["validation"] == 40 * 3
    head = SentenceHead.from_pretrained(out)
    assert (head.width, head.target) == (128, TARGET)
    embedder = PromptEmbedder.from_pretrained(CLIP_DIR, KOREAN_ENCODER_DIR, sentence_head=out)
    assert embedder.embed_sentences(["빨간 원", "a red circle"]).shape == (2, 128)


@pytest.mark.parametrize(
    ("corpus", "message"),
    [
        ("missing.csv", "missing.csv"),
        ("one.csv", "at least 2"),
    ],
)
def test_train_head_says_what_is_wrong_with_a_corpus(tmp_path, capsys, corpus, message):
    _corpus(tmp_path / "one.csv", all_scenes()[:1])
    code = main(["train-head", "--corpus", str(tmp_path / corpus), "--out", str(tmp_path / "head"), "--steps", "2"])
    error = capsys.readouterr().err
    assert code == 2 and error.startswith("error:") and message in error and "Traceback" not in error  # before loading
    assert not (tmp_path / "head").exists()


def test_one_pass_gives_the_same_pooled_and_sentence_vectors_as_two(with_head):
    texts = ["까만 배경 한가운데 커다란 노란 별", "a small red circle on the left on a white background"]
    pooled, sentences = with_head.embed_with_sentences(texts)
    assert np.allclose(pooled, with_head.embed_texts(texts), atol=1e-5)
    assert np.allclose(sentences, with_head.embed_sentences(texts), atol=1e-5)


def test_train_head_needs_out_for_an_encoder_that_is_not_a_local_directory(tmp_path, capsys):
    corpus = _corpus(tmp_path / "pairs.csv", all_scenes()[:4])
    code = main(["train-head", "--corpus", str(corpus), "--korean-encoder", "someone/ko-clip-on-the-hub"])
    error = capsys.readouterr().err
    assert code == 2 and "not a local encoder directory: pass --out DIR" in error and "Traceback" not in error


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--steps", "0", "steps must be at least 1"),
        ("--batch", "1", "batch must be at least 2"),
        ("--temperature", "0", "temperature must be above 0"),
        ("--lr", "nan", "lr must be above 0"),
        ("--max-pairs", "-5", "max_pairs must be at least 2"),
    ],
)
def test_train_head_refuses_settings_that_cannot_train(tmp_path, capsys, option, value, message):
    code = main(["train-head", "--out", str(tmp_path / "head"), option, value])
    error = capsys.readouterr().err
    assert code == 2 and message in error and "Traceback" not in error
    assert not (tmp_path / "head").exists()
