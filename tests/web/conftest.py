"""Web app fixtures: one loaded pipeline and embedder for the session, a fresh data folder and app per test.

The job queue has two backends (in-process, and Redis with RQ workers); `backend` picks one. Test modules that
must hold for both parametrise it; the others run on the embedded default. The Redis backend runs on a real
`redis-server` of the session's own, on a free loopback port.
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
import requests
from PIL import Image

from demo.search.service import SearchService
from demo.web import create_app
from demo.web.extensions import get_services

PROMPT = "흰 배경 왼쪽에 있는 큰 빨간 원"
BACKENDS = ["embedded", pytest.param("redis", marks=pytest.mark.redis)]  # "redis" starts a real redis-server
FINISHED = frozenset({"done", "failed"})


class GatedImageGenerator:
    """The shared generator behind a gate: while the gate is shut, the job worker waits before it generates, so a
    test decides when a running job may go on (and so which jobs are still queued)."""

    def __init__(self, generator) -> None:
        self._generator = generator
        self.open = threading.Event()
        self.open.set()

    def __getattr__(self, name: str):
        return getattr(self._generator, name)

    def __call__(self, request, progress=None, cancel=None):
        self.open.wait()
        return self._generator(request, progress, cancel)


@pytest.fixture(scope="session")
def prompt() -> str:
    return PROMPT


@pytest.fixture(scope="session")
def gated_generator(generator) -> GatedImageGenerator:
    return GatedImageGenerator(generator)


@pytest.fixture
def held(gated_generator):
    """`with held():` the worker takes the next job (it shows as running) and waits there until the block ends."""

    @contextmanager
    def hold():
        gated_generator.open.clear()
        try:
            yield
        finally:
            gated_generator.open.set()

    yield hold
    gated_generator.open.set()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A redis-server of the tests' own on 127.0.0.1 (installed by `make test`), which a test may stop and start again
    on the same port and folder, as an operator restarting Redis would."""

    def __init__(self, folder: Path, appendonly: bool = False) -> None:
        self.folder, self.appendonly, self.process = folder, appendonly, None
        for _ in range(5):  # another process may take the free port before the server binds it
            self.port = free_port()
            if self.start():
                return
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> bool:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "yes" if self.appendonly else "no", "--dir", str(self.folder)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        while self.process.poll() is None:
            try:
                client.ping()
                return True
            except redis.ConnectionError:  # not listening yet (or still loading its append-only file)
                time.sleep(0.01)
        return False

    def stop(self) -> None:
        self.process.terminate()  # a clean shutdown: the append-only file is flushed
        self.process.wait(timeout=30)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A redis-server for the whole session, stopped after."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


class ThreadWorkers:
    """`python -m demo.worker` as threads of the test process, on the session's loaded generator."""

    def __init__(self, generator, url: str, prefix: str, count: int = 1, lease: float = 10.0) -> None:
        from demo.jobs.redis_common import Keys
        from demo.jobs.redis_worker import GenerationLoop, WorkerRunner

        connection = redis.Redis.from_url(url)
        self.workers = [
            WorkerRunner(
                GenerationLoop(
                    generator=generator, connection=connection, keys=Keys(prefix), name=f"{prefix}-w{i}", lease=lease
                )
            )
            for i in range(count)
        ]
        self.threads = [
            threading.Thread(target=worker.run, kwargs={"logging_level": "WARNING"}, daemon=True)
            for worker in self.workers
        ]
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


@pytest.fixture(scope="session")
def serve(gated_generator, embedder):
    """`serve(data_dir, **config)`: an app on the shared models with its own data folder and job queue; whoever
    asks for it closes its services (`get_services(app)`)."""

    def make(data_dir, **config):
        settings = {"DATA_DIR": str(data_dir), "SEED_GALLERY": 0} | config
        search = SearchService.open(settings["DATA_DIR"], embedder=embedder)
        return create_app(settings, generator=gated_generator, search=search)

    return make


@pytest.fixture
def backend() -> str:
    """The job queue the apps of a test use: "embedded" here; modules that test both parametrise it."""
    return "embedded"


@pytest.fixture
def make_app(request, tmp_path, serve, backend, gated_generator):
    """`make_app(**config)`: a test app (CSRF off) with its own data folder, closed after the test; on Redis, with its
    own key prefix and a worker thread on the shared generator."""
    apps, workers = [], []

    def make(**config):
        settings = {"TESTING": True, "WTF_CSRF_ENABLED": False}
        if backend == "redis":
            url, prefix = request.getfixturevalue("redis_url"), f"test-{uuid.uuid4().hex}"
            settings |= {"REDIS_URL": url, "REDIS_PREFIX": prefix}
            workers.append(ThreadWorkers(gated_generator, url, prefix))
        apps.append(serve(tmp_path / f"data-{len(apps)}", **(settings | config)))
        return apps[-1]

    yield make
    for worker in workers:
        worker.stop()
    for app in apps:
        get_services(app).jobs.close()
        get_services(app).search.close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def wait_for():
    """`wait_for(client, job_id, until=FINISHED)`: poll the API as a browser would until the job's status is in
    `until`; the timeout only turns a hang into a failure."""

    def wait(client, job_id: str, until=FINISHED, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = client.get(f"/api/jobs/{job_id}").get_json()
            if job["status"] in until:
                return job
            time.sleep(0.02)
        raise AssertionError(f"job {job_id} never reached {sorted(until)} in {timeout} s")

    return wait


@pytest.fixture(scope="session")
def png():
    """`png(mode="RGB", size=64, colour=(255, 0, 0))`: the bytes of a one-colour PNG."""

    def make(mode: str = "RGB", size: int = 64, colour=(255, 0, 0)) -> bytes:
        buffer = io.BytesIO()
        Image.new(mode, (size, size), colour if mode == "RGB" else 0).save(buffer, format="PNG")
        return buffer.getvalue()

    return make


SERVING = re.compile(r"Serving on http://127\.0\.0\.1:(\d+)")
API_KEYS = ("first-client-key", "second-client-key")


def served_demo(data_dir: Path, **settings: str) -> Iterator[str]:
    """`python -m demo` on a free loopback port (port 0: waitress logs the one it got); yields its URL once ready."""
    env = os.environ | {"KOIMG_SEED_GALLERY": "0", "HF_HUB_OFFLINE": "1"}
    env |= {f"KOIMG_{key}": value for key, value in settings.items()}
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
def api_keys() -> tuple[str, str]:
    """The two keys `keyed_demo_server` accepts: two clients."""
    return API_KEYS


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory):
    """The app as users run it, without API keys: clients are told apart by source address."""
    yield from served_demo(tmp_path_factory.mktemp("demo-server"))


@pytest.fixture(scope="session")
def keyed_demo_server(tmp_path_factory):
    """The app with `KOIMG_API_KEYS` set: every client call needs one of `API_KEYS`."""
    yield from served_demo(tmp_path_factory.mktemp("keyed-demo-server"), API_KEYS=",".join(API_KEYS))


@pytest.fixture
def live():
    """`live(app)`: the app served by waitress with the production settings (`demo.web.server`) on a free loopback
    port, in this process (so tests can hold its generator); yields the base URL. Closed after the test."""
    from demo.web.server import create_server

    servers = []

    def start(app) -> str:
        server = create_server(app)
        threading.Thread(target=server.run, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.effective_port}"

    yield start
    for server in servers:
        server.close()
        server.task_dispatcher.shutdown(timeout=5)
