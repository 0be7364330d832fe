import numpy as np
import pytest

from demo.search import views
from demo.search.seeding import seed_scenes
from demo.search.service import SearchConfig, SearchService
from demo.search.store import GalleryStore
from demo.search.views import Phrases, RecordViews, spans
from miniworld.world import Scene, english_caption, render
from tests.search.test_service import fill


def test_spans_are_the_distinct_runs_of_two_to_four_words_in_order():
    assert spans("a red circle on white") == [
        "a red",
        "a red circle",
        "a red circle on",
        "red circle",
        "red circle on",
        "red circle on white",
        "circle on",
        "circle on white",
        "on white",
    ]
    assert spans("노란별") == [] and spans("") == []
    assert spans("big big big big big") == ["big big", "big big big", "big big big big"]
    assert len(spans(" ".join(f"w{i}" for i in range(100)))) == views.MOST


def test_only_spans_at_least_as_long_as_the_query_count():
    texts = ["two words", "now three words", "and now four words"]
    vectors = np.eye(3, 4, dtype=np.float32)
    found = Phrases.of(texts, vectors)
    assert found.lengths.tolist() == [2, 3, 4] and found.vectors.dtype == np.float16
    query = np.array([1.0, 0.5, 0.25, 0.0], dtype=np.float32)
    assert [found.best(query, n) for n in (1, 2, 3, 4, 5)] == [1.0, 1.0, 0.5, 0.25, -1.0]


def test_the_store_keeps_views_and_ignores_another_encoders(tmp_path):
    store = GalleryStore(tmp_path)
    kept = Phrases.of(["a b", "a b c"], np.ones((2, 8), dtype=np.float32) / np.sqrt(8))
    store.add_views({7: RecordViews(kept, np.full(4, 0.5, dtype=np.float16)), 9: RecordViews(kept, None)})
    found = store.views([7, 8, 9], dim=8, sentence_size=4)
    assert sorted(found) == [7, 9] and found[7].phrases.lengths.tolist() == [2, 3]
    assert np.allclose(found[7].phrases.vectors, kept.vectors) and found[7].sentence.tolist() == [0.5] * 4
    assert found[9].sentence is None
    assert store.views([7], dim=8, sentence_size=6)[7].sentence is None  # another head: its vector made again
    assert store.views([7], dim=16, sentence_size=4) == {}  # another encoder: made again, never a crash
    store.close()


def test_images_added_or_imported_keep_their_spans_at_once(tmp_path, embedder):
    service = SearchService.open(tmp_path / "on", embedder=embedder)
    prompt = english_caption(Scene("red", "circle", "large", "left", "white"))
    record = service.add(render(Scene("red", "circle", "large", "left", "white"), 0), prompt)
    stored = service.store.views([record.id], embedder.dim, 0)[record.id].phrases
    assert len(stored.vectors) == len(spans(prompt)) and set(stored.lengths) == {2, 3, 4}
    assert np.allclose(stored.vectors.astype(np.float32), embedder.embed_texts(spans(prompt)), atol=2e-3)
    off = SearchService.open(tmp_path / "off", SearchConfig(rerank_candidates=0), embedder=embedder)
    other = off.add(render(Scene("red", "circle", "large", "left", "white"), 0), prompt)
    assert off.store.views([other.id], embedder.dim, 0) == {}
    service.close()
    off.close()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, embedder) -> tuple[SearchService, dict[int, Scene]]:
    """The benchmark's kind of gallery (seeded scenes, English and Korean by turns), imported as a gallery written
    before span vectors existed: they are made when a search first needs them."""
    data_dir = tmp_path_factory.mktemp("seeded") / "data"
    pairs = seed_scenes(300, seed=11)
    fill(data_dir, [prompt for _, prompt in pairs], embedder)
    service = SearchService.open(data_dir, embedder=embedder)
    assert service.store.views(list(range(1, 301)), embedder.dim, 0) == {}
    return service, {i + 1: scene for i, (scene, _) in enumerate(pairs)}


@pytest.mark.slow
@pytest.mark.parametrize("query", ["초록 네모", "주황색 마름모", "blue triangle", "a purple circle"])
def test_a_short_query_finds_its_colour_and_shape_first(seeded, query):
    service, scenes = seeded
    wanted = {"초록 네모": ("green", "square"), "주황색 마름모": ("orange", "diamond")}.get(query) or tuple(
        query.removeprefix("a ").split()
    )
    top = [scenes[r.record.id] for r in service.search_text(query, k=5)]
    assert [(s.color, s.shape) for s in top] == [wanted] * 5


@pytest.mark.slow
def test_a_short_querys_score_is_the_best_of_its_prompt_and_long_enough_spans(seeded, embedder):
    service, _ = seeded
    results = service.search_text("노란 별 하나", k=10)
    query = embedder.embed_text("노란 별 하나")
    stored = service.store.views([r.record.id for r in results], embedder.dim, 0)
    for result in results:
        whole = float(result.record.embedding @ query)
        assert result.score == pytest.approx(max(whole, stored[result.record.id].phrases.best(query, 3)), abs=1e-6)
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    floor = results[4].score
    kept = service.search_text("노란 별 하나", k=10, min_score=floor)
    assert [r.record.id for r in kept] == [r.record.id for r in results if r.score >= floor]


@pytest.mark.slow
def test_without_a_sentence_head_a_longer_query_is_scored_on_whole_prompts(seeded, embedder):
    service, _ = seeded
    sentence = "회색 배경 위쪽에 작은 파란 별"  # five words: longer than any span
    with_spans = service.search_text(sentence, k=8)
    service.config.rerank_candidates = 0
    try:
        without = service.search_text(sentence, k=8)
    finally:
        service.config.rerank_candidates = SearchConfig().rerank_candidates
    assert [(r.record.id, r.score) for r in with_spans] == [(r.record.id, r.score) for r in without]
