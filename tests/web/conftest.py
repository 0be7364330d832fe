"""Web app fixtures: one loaded pipeline and embedder for the session, a fresh data folder and app per test.

The job queue has two backends (in-process, and Redis with RQ workers); `backend` picks one. Test modules that
must hold for both parametrise it; the others run on the embedded default. The Redis backend runs on a real
`redis-server` of the session's own, on a free loopback port.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import uuid

import pytest
import redis

from demo.app import create_app
from demo.vector_search import SearchService

PROMPT = "흰 배경 왼쪽에 있는 큰 빨간 원"
BACKENDS = ["embedded", "redis"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A redis-server on 127.0.0.1 for the whole session (installed by `make test`), stopped after."""
    folder = tmp_path_factory.mktemp("redis")
    for _ in range(5):  # another process may take the free port before the server binds it
        port = free_port()
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--dir", str(folder)]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        client = redis.Redis(port=port)
        while server.poll() is None:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.01)
        if server.poll() is None:
            break
    else:
        raise RuntimeError("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(timeout=30)


class ThreadWorkers:
    """`python -m demo.worker` as threads of the test process, on the session's loaded generator."""

    def __init__(self, generator, url: str, prefix: str, count: int = 1, lease: float = 10.0) -> None:
        from demo.redis_jobs import Keys
        from demo.worker import GenerationLoop, GenerationWorker

        connection = redis.Redis.from_url(url)
        self.workers = [
            GenerationWorker(GenerationLoop(generator, connection, Keys(prefix), f"{prefix}-w{i}", lease))
            for i in range(count)
        ]
        self.threads = [threading.Thread(target=worker.work, kwargs={"logging_level": "WARNING"}, daemon=True)
                        for worker in self.workers]
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        for thread in self.threads:
            thread.join(timeout=60)


@pytest.fixture(scope="session")
def embedder(tmp_path_factory):
    """The search embedder (CLIP + Korean encoder), loaded once."""
    service = SearchService.open(tmp_path_factory.mktemp("embedder"))
    yield service.embedder
    service.close()


@pytest.fixture
def backend() -> str:
    return "embedded"


@pytest.fixture
def make_app(request, tmp_path, generator, embedder, backend):
    """`make_app(**config)`: an app on the shared models, with its own data folder and job queue (and, on Redis,
    its own key prefix and a worker thread)."""
    apps, workers = [], []

    def make(**config):
        settings = {"TESTING": True, "DATA_DIR": str(tmp_path / f"data-{len(apps)}"), "SEED_GALLERY": 0,
                    "WTF_CSRF_ENABLED": False}
        if backend == "redis":
            settings |= {"REDIS_URL": request.getfixturevalue("redis_url"), "REDIS_PREFIX": f"test-{uuid.uuid4().hex}"}
        settings |= config
        search = SearchService.open(settings["DATA_DIR"], embedder=embedder)
        app = create_app(settings, generator=None if backend == "redis" else generator, search=search)
        if backend == "redis":
            workers.append(ThreadWorkers(generator, settings["REDIS_URL"], settings["REDIS_PREFIX"]))
        apps.append(app)
        return app

    yield make
    for worker in workers:
        worker.stop()
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
