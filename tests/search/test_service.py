import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import durable
from demo.generation.config import resolve
from demo.search.cli import main
from demo.search.embeddings import PromptEmbedder, is_korean
from demo.search.importers import import_prompts
from demo.search.index import IndexSettings, PromptIndex, SearchError
from demo.search.seeding import seed_gallery
from demo.search.service import SearchConfig, SearchService, load_search_config
from demo.search.store import GalleryStore, NewRecord
from miniworld.korean import korean_captions
from miniworld.world import Scene, all_scenes, english_caption, render

REPO = Path(__file__).resolve().parents[2]
SCENE = Scene("red", "circle", "large", "left", "white")


def fill(data_dir: Path, prompts: list[str], embedder: PromptEmbedder) -> None:
    """A gallery of `prompts`, each with a rendered image, imported in bulk."""
    source = data_dir.parent / f"{data_dir.name}-source.png"
    render(SCENE, 0).save(source)
    store = GalleryStore(data_dir)
    vectors = embedder.embed_texts(prompts)
    list(
        store.import_files(
            [
                NewRecord(source, p, v, {}, f"test/{i}.png")
                for i, (p, v) in enumerate(zip(prompts, vectors, strict=True))
            ]
        )
    )
    store.close()


def unit_vectors(count: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def miniworld_gallery(tmp_path_factory, embedder) -> SearchService:
    """Every miniworld scene's English caption."""
    data_dir = tmp_path_factory.mktemp("miniworld") / "data"
    fill(data_dir, [english_caption(s) for s in all_scenes()], embedder)
    return SearchService.open(data_dir, embedder=embedder)


def test_embeddings_are_unit_vectors_in_one_space(embedder):
    texts = ["흰 배경 왼쪽에 있는 큰 빨간 원", "a large red circle on the left on a white background"]
    vectors = np.concatenate([embedder.embed_texts(texts), embedder.embed_images([render(SCENE, 0)])])
    assert vectors.shape == (3, embedder.dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert is_korean(texts[0]) and not is_korean(texts[1]) and is_korean("a 빨간 circle")


@pytest.mark.slow
def test_korean_query_finds_the_english_prompt_of_the_same_scene_at_rank_1(miniworld_gallery):
    rng = random.Random(0)
    for scene in rng.sample(all_scenes(), 10):
        query = korean_captions(scene, 1, rng)[0]
        top = miniworld_gallery.search_text(query, k=3)
        assert top[0].record.prompt == english_caption(scene), query
        assert top[0].score > top[1].score and top[0].record.image == f"test/{top[0].record.id - 1}.png"


def test_english_query_finds_a_korean_prompt(tmp_path, embedder):
    rng = random.Random(1)
    scenes = rng.sample(all_scenes(), 30)
    fill(tmp_path / "data", [korean_captions(s, 1, rng)[0] for s in scenes], embedder)
    service = SearchService.open(tmp_path / "data", embedder=embedder)
    for i in (0, 7, 19):
        assert service.search_text(english_caption(scenes[i]), k=1)[0].record.id == i + 1


@pytest.mark.slow
def test_search_by_image_finds_the_prompt_that_describes_it(miniworld_gallery):
    for scene in (SCENE, Scene("blue", "square", "small", "right", "black")):
        top = miniworld_gallery.search_image(render(scene, 5), k=5)
        assert english_caption(scene) in [r.record.prompt for r in top]


@pytest.mark.slow
def test_min_score_leaves_out_weaker_matches(miniworld_gallery):
    results = miniworld_gallery.search_text("a large red circle on the left on a white background", k=10)
    cut = results[3].score
    kept = miniworld_gallery.search_text("a large red circle on the left on a white background", k=10, min_score=cut)
    assert [r.record.id for r in kept] == [r.record.id for r in results if r.score >= cut] and len(kept) < 10
    assert results[0].score > 0.99 and results[0].as_json(str).keys() >= {"prompt", "score", "image"}


@pytest.mark.slow
def test_clear_errors_for_bad_queries(tmp_path, miniworld_gallery, embedder):
    empty = SearchService.open(tmp_path / "empty", embedder=embedder)
    with pytest.raises(SearchError, match="gallery is empty"):
        empty.search_text("빨간 원")
    for k in (0, -1, 101, 2.5):
        with pytest.raises(SearchError, match="k must be a whole number between 1 and 100"):
            miniworld_gallery.search_text("빨간 원", k=k)
    for query, message in [("", "query is empty"), ("   ", "query is empty"), ("원" * 301, "too long: at most 300")]:
        with pytest.raises(SearchError, match=message):
            miniworld_gallery.search_text(query)
    with pytest.raises(SearchError, match="minimum score"):
        miniworld_gallery.search_text("빨간 원", min_score=1.5)
    with pytest.raises(SearchError, match="not a readable image"):
        miniworld_gallery.search_image(b"<html>not an image</html>")
    PromptIndex(tmp_path / "index", 16).rebuild([(np.arange(1, 11), unit_vectors(10, 16, 0))])
    with pytest.raises(SearchError, match="holds 16-d vectors but the embedder gives 8-d"):
        PromptIndex(tmp_path / "index", 8)


def test_exact_search_below_the_crossover_and_annoy_above_it(tmp_path):
    vectors = unit_vectors(300, 16, 0)
    small = PromptIndex(tmp_path / "small", 16, IndexSettings(exact_below=1000))
    small.add(np.arange(1, 301), vectors)
    assert not small.needs_rebuild() and small.built == 0
    large = PromptIndex(tmp_path / "large", 16, IndexSettings(exact_below=100, trees=8, search_k=10_000))
    large.add(np.arange(1, 301), vectors)
    assert large.needs_rebuild()
    large.rebuild([(np.arange(1, 301), vectors)])
    assert large.built == 300 and large.buffered == 0
    for index in (small, large):
        hits = index.search(vectors[41], k=5)
        assert hits[0].id == 42 and hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert [h.score for h in hits] == pytest.approx(sorted(vectors @ vectors[41], reverse=True)[:5], abs=1e-4)


def test_a_new_image_is_found_at_once_and_after_the_background_rebuild(tmp_path, embedder):
    config = SearchConfig(index=IndexSettings(exact_below=20, rebuild_after=3, trees=4))
    scenes = all_scenes()
    fill(tmp_path / "data", [english_caption(s) for s in scenes[:30]], embedder)
    service = SearchService(
        GalleryStore(tmp_path / "data"),
        PromptIndex(tmp_path / "data" / "index", embedder.dim, config.index),
        embedder,
        config,
    )
    service.index.wait()  # past the crossover with nothing built: the service started a build
    assert service.index.built == 30 and service.index.buffered == 0

    new = english_caption(scenes[500])
    record = service.add(render(scenes[500], 0), new, {"seed": 1})
    assert service.index.buffered == 1 and service.search_text(new, k=1)[0].record.id == record.id

    for scene in scenes[501:503]:  # the third buffered image starts a rebuild
        service.add(render(scene, 0), english_caption(scene))
    service.index.wait()
    assert service.index.built == 33 and service.index.buffered == 0 and service.index.last_error is None
    assert service.search_text(new, k=1)[0].record.id == record.id
    service.close()

    reopened = SearchService.open(tmp_path / "data", config, embedder=embedder)
    top = reopened.search_text(new, k=1)[0]
    assert (
        top.record.id == record.id
        and top.record.parameters["seed"] == 1
        and reopened.store.image_path(top.record.image).is_file()
    )


def test_a_killed_rebuild_leaves_the_old_index_answering(tmp_path):
    """A rebuild in another process is killed while it adds items, then once its trees are built (the moment
    before it writes the ids and switches the manifest); each time the process says where it is and waits."""
    directory, vectors = tmp_path / "index", unit_vectors(200, 16, 0)
    PromptIndex(directory, 16, IndexSettings(trees=4)).rebuild([(np.arange(1, 201), vectors)])
    manifest = (directory / "index.json").read_text()
    builder = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import demo.search.index
        from demo.search.index import IndexSettings, PromptIndex
        stop_at = sys.argv[1]

        class Announcing(demo.search.index.AnnoyIndex):
            added = 0

            def add_item(self, i, vector):
                super().add_item(i, vector)
                self.added += 1
                if stop_at == "adding" and self.added == 1000:
                    self.stop()

            def build(self, *args, **kwargs):
                built = super().build(*args, **kwargs)
                if stop_at == "built":
                    self.stop()
                return built

            @staticmethod
            def stop():
                print(stop_at, flush=True)
                sys.stdin.read()  # until killed

        demo.search.index.AnnoyIndex = Announcing
        index = PromptIndex({str(directory)!r}, 16, IndexSettings(trees=10))
        vectors = np.random.default_rng(1).standard_normal((3_000, 16)).astype(np.float32)
        index.rebuild([(np.arange(1, len(vectors) + 1), vectors)])
        print("finished", flush=True)
        """
    )
    for stop_at in ("adding", "built"):
        command = [sys.executable, "-c", builder, stop_at]
        process = subprocess.Popen(command, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == stop_at
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL

        assert (directory / "index.json").read_text() == manifest
        survivor = PromptIndex(directory, 16)
        assert survivor.built == 200 and [h.id for h in survivor.search(vectors[9], k=1)] == [10]
    assert len(list(directory.glob("prompts-*"))) > 2  # what the dead builds left
    survivor.rebuild([(np.arange(1, 201), vectors)])  # the next build clears it
    assert len(list(directory.glob("prompts-*"))) == 2


def test_an_interrupted_swap_keeps_the_old_index_and_the_new_vectors(tmp_path, monkeypatch):
    index, vectors = (
        PromptIndex(tmp_path / "index", 16, IndexSettings(exact_below=0, rebuild_after=1, trees=4)),
        unit_vectors(101, 16, 0),
    )
    index.rebuild([(np.arange(1, 101), vectors[:100])])
    index.add(np.array([101]), vectors[100:])

    def power_cut(source, target):
        raise OSError("the machine went down before the switch")

    monkeypatch.setattr(durable.os, "replace", power_cut)
    assert index.rebuild_in_background(lambda: [(np.arange(1, 102), vectors)])
    index.wait()
    assert isinstance(index.last_error, OSError) and index.built == 100 and index.buffered == 1
    assert index.search(vectors[100], k=1)[0].id == 101 and index.search(vectors[5], k=1)[0].id == 6
    assert PromptIndex(tmp_path / "index", 16).built == 100
    monkeypatch.undo()
    index.rebuild([(np.arange(1, 102), vectors)])
    assert index.built == 101 and index.buffered == 0 and len(list((tmp_path / "index").glob("*prompts-*"))) == 2


@pytest.mark.slow
def test_cli_query_prints_json_results(miniworld_gallery, capsys):
    data_dir = str(miniworld_gallery.store.data_dir)
    assert main(["query", "흰 배경 왼쪽에 있는 큰 빨간 원", "--k", "3", "--json", "--data-dir", data_dir]) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 3 and all({"prompt", "score", "image"} <= set(r) for r in results)
    assert results[0]["prompt"] == english_caption(SCENE) and results[0]["image"].startswith("/images/")
    assert main(["query", "", "--data-dir", data_dir]) == 2 and "query is empty" in capsys.readouterr().err


def prompt_table(dump: Path, scenes: list[Scene], extra_rows: tuple[dict, ...] = ()) -> Path:
    """DiffusionDB-style: images in a part folder, named in full or by bare file name (as DiffusionDB does)."""
    (dump / "part-000001").mkdir(parents=True)
    for i, scene in enumerate(scenes):
        render(scene, i).save(dump / "part-000001" / f"{i}.png")
    rows = [
        {"prompt": english_caption(s), "image_name": f"part-000001/{i}.png" if i < 2 else f"{i}.png", "cfg": 7.0}
        for i, s in enumerate(scenes)
    ]
    pd.DataFrame(rows + list(extra_rows)).to_csv(dump / "prompts.csv", index=False)
    return dump / "prompts.csv"


def test_importing_into_an_open_gallery_indexes_each_record_once(tmp_path, embedder):
    fill(tmp_path / "data", [english_caption(s) for s in all_scenes()[-3:]], embedder)
    service = SearchService.open(tmp_path / "data", embedder=embedder)
    counts = import_prompts(service, prompt_table(tmp_path / "dump", all_scenes()[:2]))
    assert counts["added"] == 2 and len(service) == 5
    assert set(service.store.views([1, 2, 3, 4, 5], embedder.dim, 0)) == {4, 5}  # the imported ones' views, at once
    assert sorted(r.record.id for r in service.search_text("a small red circle", k=10)) == [1, 2, 3, 4, 5]


@pytest.mark.slow
def test_cli_builds_a_gallery_from_a_prompt_table(tmp_path, capsys):
    scenes = all_scenes()[:4]
    lost = (
        {"prompt": "", "image_name": "0.png", "cfg": 7.0},
        {"prompt": "a lost image", "image_name": "9.png", "cfg": 7.0},
    )
    table = prompt_table(tmp_path / "dump", scenes, lost)
    data_dir = str(tmp_path / "data")
    assert main(["build", str(table), "--data-dir", data_dir]) == 0
    assert "rows: 6, added: 4, no prompt: 1, missing image: 1" in capsys.readouterr().out
    for i in (1, 2):
        assert main(["query", english_caption(scenes[i]), "--k", "1", "--json", "--data-dir", data_dir]) == 0
        [top] = json.loads(capsys.readouterr().out)
        assert top["image"] == f"/images/prompts/part-000001/{i}.png" and top["parameters"] == {"cfg": 7.0}
    assert main(["build", str(table), "--data-dir", data_dir]) == 0
    assert "added: 0" in capsys.readouterr().out  # run again: nothing twice
    assert main(["build", str(table), "--prompt-column", "text", "--data-dir", data_dir]) == 2
    assert "has no column text" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_builds_from_parquet_as_diffusiondb_ships_its_metadata(tmp_path, capsys):
    scenes = all_scenes()[:3]
    table = prompt_table(tmp_path / "dump", scenes)
    parquet = table.with_suffix(".parquet")
    pd.read_csv(table).to_parquet(parquet)
    data_dir = str(tmp_path / "data")
    assert main(["build", str(parquet), "--data-dir", data_dir]) == 0
    assert "added: 3" in capsys.readouterr().out
    assert main(["query", english_caption(scenes[2]), "--k", "1", "--json", "--data-dir", data_dir]) == 0
    assert json.loads(capsys.readouterr().out)[0]["prompt"] == english_caption(scenes[2])


def test_seeded_gallery_is_generated_and_searchable(tmp_path, generator, embedder):
    service = SearchService.open(tmp_path / "data", embedder=embedder)
    records = seed_gallery(service, generator, count=2, steps=4)
    assert [is_korean(r.prompt) for r in records] == [False, True] and len(service) == 2
    assert all(
        service.store.image_path(r.image).is_file() and r.parameters["steps"] == 4 and not r.parameters["refiner"]
        for r in records
    )
    assert service.search_text(records[1].prompt, k=1)[0].record.id == records[1].id


def test_search_config_reads_yaml_with_index_settings(tmp_path):
    path = tmp_path / "search.yaml"
    path.write_text("clip: laion/CLIP-ViT-bigG-14-laion2B-39B-b160k\nindex:\n  exact_below: 1000\n  trees: 16\n")
    config = load_search_config(path)
    assert config.clip.startswith("laion/") and config.index.exact_below == 1000 and config.index.trees == 16
    assert config.index.search_k == IndexSettings().search_k and resolve(config.clip) == config.clip
    path.write_text("index:\n  tres: 16\n")
    with pytest.raises(SearchError, match="unknown search setting"):
        load_search_config(path)


@pytest.mark.slow
def test_cli_prints_prompts_without_terminal_control_characters(tmp_path, embedder, capsys):
    """A prompt table may carry ANSI escapes; printing them would let a dataset drive the terminal."""
    service = SearchService.open(tmp_path, embedder=embedder)
    service.add(Image.new("RGB", (64, 64)), "red \x1b[2J\x1b]0;pwned\x07circle\x9b31m")
    service.close()
    assert main(["query", "red circle", "--k", "1", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "red [2J]0;pwnedcircle31m" in out and not any(ch in out for ch in "\x1b\x07\x9b")
    assert main(["query", "red circle", "--k", "1", "--json", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)[0]["prompt"] == "red \x1b[2J\x1b]0;pwned\x07circle\x9b31m"  # JSON keeps it, escaped
    assert not any(ch in out for ch in "\x1b\x07\x9b")
