import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import demo.search.store
from demo.generation.images import read_parameters
from demo.search.store import GalleryError, GalleryStore, NewRecord
from miniworld.world import Scene, render

REPO = Path(__file__).resolve().parents[2]
SCENE = Scene("red", "circle", "large", "left", "white")


def vector(seed: int, dim: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def test_a_saved_image_comes_back_with_its_prompt_parameters_and_embedding(tmp_path):
    store = GalleryStore(tmp_path)
    record = store.add(
        render(SCENE, 0), "흰 배경 왼쪽에 있는 큰 빨간 원", vector(1), {"seed": 3, "steps": 20}, "흐릿한"
    )
    again = store.get(record.id)
    assert again.prompt == "흰 배경 왼쪽에 있는 큰 빨간 원" and again.negative_prompt == "흐릿한"
    assert again.parameters == {"seed": 3, "steps": 20} and np.array_equal(again.embedding, vector(1))
    path = store.image_path(again.image)
    assert path.parent == tmp_path / "images" and Image.open(path).size == (64, 64)
    assert read_parameters(path)["prompt"] == "흰 배경 왼쪽에 있는 큰 빨간 원"
    assert store.get(record.id + 1) is None


def test_records_survive_a_restart(tmp_path):
    store = GalleryStore(tmp_path)
    ids = [store.add(render(SCENE, i), f"prompt {i}", vector(i)).id for i in range(3)]
    store.close()
    reopened = GalleryStore(tmp_path)
    assert reopened.count() == 3 and [r.id for r in reopened.history()] == ids[::-1]
    assert all(reopened.image_path(r.image).is_file() for r in reopened.history())


def test_history_pages_newest_first(tmp_path):
    store = GalleryStore(tmp_path)
    ids = [store.add(render(SCENE, i), f"prompt {i}", vector(i)).id for i in range(5)]
    first = store.history(limit=2)
    second = store.history(limit=2, before=first[-1].id)
    last = store.history(limit=2, before=second[-1].id)
    assert [r.id for r in first + second + last] == ids[::-1]
    with pytest.raises(GalleryError, match="between 1 and 1000"):
        store.history(limit=0)


def test_a_record_whose_image_could_not_be_written_is_not_kept(tmp_path, monkeypatch):
    store = GalleryStore(tmp_path)
    store.add(render(SCENE, 0), "kept", vector(0))

    def disk_full(image, path, parameters):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(demo.search.store, "write_png", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.add(render(SCENE, 1), "lost", vector(1))
    assert store.count() == 1 and [r.prompt for r in store.history()] == ["kept"]


def test_a_failed_commit_leaves_no_image_behind(tmp_path, monkeypatch):
    store = GalleryStore(tmp_path)

    def refuse(rows):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store, "_insert", refuse)
    with pytest.raises(sqlite3.OperationalError):
        store.add(render(SCENE, 0), "lost", vector(0))
    assert store.count() == 0 and list((tmp_path / "images").iterdir()) == []


def test_killing_the_writer_never_leaves_a_record_without_its_image(tmp_path):
    """A process adding images as fast as it can is killed mid-stream, twice: after 3 and after 20 records, while
    it is writing the next one (it never waits for us)."""
    writer = textwrap.dedent(
        f"""
        import numpy as np
        from demo.search.store import GalleryStore
        from miniworld.world import Scene, render
        store = GalleryStore({str(tmp_path)!r})
        image = render(Scene("red", "circle", "large", "left", "white"), 0)
        i = 0
        while True:
            store.add(image, f"prompt {{i}}", np.ones(8, np.float32) / 8 ** 0.5)
            i += 1
            print(i, flush=True)
        """
    )
    before = 0
    for written in (3, 20):
        process = subprocess.Popen([sys.executable, "-c", writer], cwd=REPO, stdout=subprocess.PIPE, text=True)
        while int(process.stdout.readline()) < written:
            pass
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        store = GalleryStore(tmp_path)
        with sqlite3.connect(tmp_path / "gallery.sqlite3") as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        records = store.history(limit=1000)
        assert len(records) >= before + written and all(store.image_path(r.image).is_file() for r in records)
        assert sorted(p.name for p in (tmp_path / "images").iterdir()) == sorted(r.image for r in records)  # no orphan
        before = len(records)
        store.close()


def test_image_paths_never_lead_outside_the_images_folder(tmp_path):
    store = GalleryStore(tmp_path)
    record = store.add(render(SCENE, 0), "a red circle", vector(0))
    (tmp_path / "secret.txt").write_text("no")
    (tmp_path / "images" / "link.png").symlink_to(tmp_path / "secret.txt")
    assert store.image_path(record.image).is_file()
    for name in [
        "../secret.txt",
        "../gallery.sqlite3",
        "/etc/passwd",
        "a/../../secret.txt",
        "link.png",
        "",
        ".",
        "missing.png",
        "x\0.png",
    ]:
        with pytest.raises(GalleryError):
            store.image_path(name)


def test_importing_files_records_them_once_even_when_run_again(tmp_path):
    source = tmp_path / "dump"
    source.mkdir()
    for i in range(3):
        render(SCENE, i).save(source / f"{i}.png")
    store = GalleryStore(tmp_path / "data")
    items = [NewRecord(source / f"{i}.png", f"prompt {i}", vector(i), {"seed": i}, f"dump/{i}.png") for i in range(3)]
    assert [r.prompt for r in store.import_files(items, batch_size=2)] == ["prompt 0", "prompt 1", "prompt 2"]
    assert list(store.import_files(items)) == [] and store.count() == 3
    assert store.image_path("dump/1.png").read_bytes() == (source / "1.png").read_bytes()
    ids, vectors = zip(*store.embeddings(batch_size=2), strict=True)
    assert np.concatenate(ids).tolist() == [1, 2, 3] and np.allclose(np.concatenate(vectors)[2], vector(2))


def test_an_image_whose_record_a_crash_never_committed_is_swept_at_the_next_start(tmp_path):
    """kill -9 between writing an image and committing its record (forced here) left an orphan PNG."""
    writer = textwrap.dedent(
        f"""
        import os, signal
        import numpy as np
        from demo.search.store import GalleryStore
        from miniworld.world import Scene, render
        store = GalleryStore({str(tmp_path)!r})
        store.add(render(Scene("red", "circle", "large", "left", "white"), 0), "kept", np.ones(8, np.float32))
        store._insert = lambda rows: os.kill(os.getpid(), signal.SIGKILL)  # the file is written and synced
        store.add(render(Scene("blue", "square", "small", "right", "black"), 0), "lost", np.ones(8, np.float32))
        """
    )
    assert subprocess.run([sys.executable, "-c", writer], cwd=REPO, check=False).returncode == -signal.SIGKILL
    assert len(list((tmp_path / "images").iterdir())) == 2  # the kept image and the orphan
    store = GalleryStore(tmp_path)
    assert [path.name for path in (tmp_path / "images").iterdir()] == [store.history()[0].image]
    assert oct((tmp_path / "gallery.sqlite3").stat().st_mode & 0o777) == "0o600"


def test_the_sweep_waits_while_another_process_has_the_gallery_open(tmp_path):
    """Its images in flight are pending too: only the last one out may sweep."""
    first = GalleryStore(tmp_path)
    first._begin_writing(["in-flight.png"])
    (tmp_path / "images" / "in-flight.png").write_bytes(b"being written")
    GalleryStore(tmp_path).close()  # starts while `first` is open: sweeps nothing
    assert (tmp_path / "images" / "in-flight.png").exists()
    first.close()
    GalleryStore(tmp_path).close()
    assert not (tmp_path / "images" / "in-flight.png").exists()
