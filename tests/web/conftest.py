"""Web app fixtures: one loaded pipeline and embedder for the session, a fresh data folder and app per test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from demo.app import create_app
from demo.vector_search import SearchService

PROMPT = "흰 배경 왼쪽에 있는 큰 빨간 원"


@pytest.fixture(scope="session")
def embedder(tmp_path_factory):
    """The search embedder (CLIP + Korean encoder), loaded once."""
    service = SearchService.open(tmp_path_factory.mktemp("embedder"))
    yield service.embedder
    service.close()


@pytest.fixture
def make_app(tmp_path, generator, embedder):
    """`make_app(**config)`: an app on the shared models, with its own data folder and job queue."""
    apps = []

    def make(**config):
        settings = {"TESTING": True, "DATA_DIR": str(tmp_path / f"data-{len(apps)}"), "SEED_GALLERY": 0, "WTF_CSRF_ENABLED": False}
        settings |= config
        search = SearchService.open(settings["DATA_DIR"], embedder=embedder)
        app = create_app(settings, generator=generator, search=search)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["demo"].jobs.close()
        app.extensions["demo"].search.close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


def wait_for(client, job_id: str, timeout: float = 60) -> dict:
    """Poll the API as a browser would until the job has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").get_json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


SERVING = re.compile(r"Serving on http://127\.0\.0\.1:(\d+)")
API_KEYS = ("first-client-key", "second-client-key")


def served_demo(data_dir: Path, **settings: str) -> Iterator[str]:
    """`python -m demo` on a free loopback port (port 0: waitress logs the one it got); yields its URL once it answers."""
    env = os.environ | {"KOIMG_SEED_GALLERY": "0", "HF_HUB_OFFLINE": "1"} | {f"KOIMG_{k}": v for k, v in settings.items()}
    log = data_dir / "server.log"
    with log.open("wb") as out:
        command = [sys.executable, "-m", "demo", "--port", "0", "--data-dir", str(data_dir)]
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=Path(__file__).parents[2])
    try:
        yield _ready(server, log)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _ready(server: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and server.poll() is None:
        if port := SERVING.search(log.read_text(errors="replace")):
            url = f"http://127.0.0.1:{port[1]}"
            try:
                if requests.get(f"{url}/sdapi/v1/options", timeout=5).status_code in (200, 401):
                    return url
            except requests.ConnectionError:
                pass
        time.sleep(0.05)  # the poll interval: readiness is the log line and an answer, never a fixed delay
    raise AssertionError(f"python -m demo did not start:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory):
    """The app as users run it, without API keys: clients are told apart by source address."""
    yield from served_demo(tmp_path_factory.mktemp("demo-server"))


@pytest.fixture(scope="session")
def keyed_demo_server(tmp_path_factory):
    """The app with `KOIMG_API_KEYS` set: every client call needs one of `API_KEYS`."""
    yield from served_demo(tmp_path_factory.mktemp("keyed-demo-server"), API_KEYS=",".join(API_KEYS))
