"""Web app fixtures: one loaded pipeline and embedder for the session, a fresh data folder and app per test."""

from __future__ import annotations

import time

import pytest

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
