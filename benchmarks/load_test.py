"""Load test: 50 browsers submit a job at once, several rounds, against the real server on loopback.

Starts `python -m demo` on 127.0.0.1 with a throw-away data folder (never anything but loopback), then per round
50 threads, each its own cookie jar (its own browser session), POST /api/txt2img at the same moment and poll
their job to the end. Checks: no job lost (every accepted job ends "done" with its images served, or "failed"
with the reason a killed worker gives), none duplicated (distinct ids, distinct images, the gallery grew by
exactly the images made), every refusal is a 503 or 429 with a reason; and the front's resident memory after each
round, which should stay flat.

With `--redis`: a redis-server of its own on a free port, the front on it and `python -m demo.worker` processes
(OMP_NUM_THREADS=1 each): first `--baseline-rounds` with one worker, then the rounds with `--workers` (2), one
of which is killed with SIGKILL mid-job in round `--kill-round` and replaced, as a supervisor would. Prints each
round and the throughput (finished jobs per second of the round) of 2 workers against 1.

    python -m benchmarks.load_test [--clients 50] [--rounds 3] [--steps 4] [--port 0]
    python -m benchmarks.load_test --redis [--workers 2] [--rounds 5] [--steps 25] [--kill-round 3]
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
PREFIX = "load"


@dataclass
class Outcome:
    status: int  # HTTP status of the submission
    job: dict = field(default_factory=dict)  # the job's last state, when accepted
    error: str = ""
    seconds: float = 0.0


class Browser:
    """One client with its own session cookie, as one person's browser."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def call(self, path: str, body: dict | None = None) -> tuple[int, dict | list | bytes]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, headers={"Content-Type": "application/json"} if data else {}
        )
        try:
            with self.opener.open(request, timeout=300) as response:
                payload = response.read()
                status = response.status
                kind = response.headers.get_content_type()
        except urllib.error.HTTPError as error:
            payload, status, kind = error.read(), error.code, error.headers.get_content_type()
        return status, json.loads(payload) if kind == "application/json" else payload


def one_client(base: str, prompt: str, steps: int, start: threading.Barrier) -> Outcome:
    browser = Browser(base)
    start.wait()
    began = time.perf_counter()
    status, answer = browser.call("/api/txt2img", {"prompt": prompt, "steps": steps})
    if status != 202:
        return Outcome(status, error=answer.get("error", "") if isinstance(answer, dict) else "")
    job = answer
    while job["status"] not in ("done", "failed"):
        time.sleep(0.2)
        _, job = browser.call(f"/api/jobs/{job['id']}")
    served = [browser.call(url)[0] for url in job["images"]]
    return Outcome(
        status,
        job,
        "" if all(code == 200 for code in served) else f"images answered {served}",
        time.perf_counter() - began,
    )


def gallery_images(base: str) -> list[str]:
    """Every image in the gallery, walking /api/gallery page by page."""
    browser, images, before = Browser(base), [], ""
    while True:
        _, page = browser.call(f"/api/gallery{before}")
        if not page:
            return images
        images += [record["image"] for record in page]
        before = f"?before={page[-1]['id']}"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_until_up(base: str, server: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the server exited while starting")
        try:
            urllib.request.urlopen(base + "/api/gallery", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the server did not start")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass
class Round:
    name: str
    accepted: int = 0
    refused: int = 0
    other: int = 0
    finished: int = 0
    failed_with_reason: int = 0  # the jobs a killed worker held: "failed", with the reason
    lost: int = 0
    duplicated: int = 0
    wall: float = 0.0
    latency: list[float] = field(default_factory=list)
    rss_mb: float = 0.0
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.finished / self.wall

    def line(self) -> str:
        p50, worst = (statistics.median(self.latency), max(self.latency)) if self.latency else (0.0, 0.0)
        return (
            f"| {self.name} | {self.accepted} | {self.refused} | {self.finished} | {self.failed_with_reason} | "
            f"{self.lost} | {self.duplicated} | {self.wall:.1f} s | {p50:.1f} / {worst:.1f} s | "
            f"{self.throughput:.2f}/s | {self.rss_mb:.0f} MB |"
        )


HEADER = (
    "| round | accepted | refused (503/429) | finished | failed (worker killed) | lost | duplicated | wall | "
    "job p50 / max | throughput | front RSS after |\n|" + "---|" * 11
)


def run_round(
    base: str, name: str, clients: int, steps: int, pid: int, lost_reason: str, during: Callable[[], None] | None = None
) -> Round:
    """One round: `clients` sessions submit at once and follow their job; `during` runs beside them."""
    before = set(gallery_images(base))
    start = threading.Barrier(clients)
    prompts = [
        f"흰 배경 가운데 있는 작은 {['빨간', '파란', '노란', '초록', '보라'][i % 5]} 별 #{name}-{i}"
        for i in range(clients)
    ]
    side = threading.Thread(target=during) if during else None
    began = time.perf_counter()
    if side:
        side.start()
    with ThreadPoolExecutor(clients) as pool:
        outcomes = list(pool.map(lambda p: one_client(base, p, steps, start), prompts))
    wall = time.perf_counter() - began
    if side:
        side.join()
    accepted = [o for o in outcomes if o.status == 202]
    refused = [o for o in outcomes if o.status in (429, 503)]
    done = [o for o in accepted if o.job["status"] == "done" and not o.error]
    killed = [o for o in accepted if o.job["status"] == "failed" and o.job["error"] == lost_reason]
    ids = [o.job["id"] for o in accepted]
    images = [url for o in done for url in o.job["images"]]
    new = set(gallery_images(base)) - before
    result = Round(
        name,
        len(accepted),
        len(refused),
        len(outcomes) - len(accepted) - len(refused),
        len(done),
        len(killed),
        len(accepted) - len(done) - len(killed),
        len(ids) - len(set(ids)) + len(images) - len(set(images)),
        wall,
        sorted(o.seconds for o in done),
        rss_mb(pid),
    )
    result.checks = {
        "no job lost": result.lost == 0,
        "no job duplicated": result.duplicated == 0,
        "refusals are 503/429 with a reason": all(o.error for o in refused) and not result.other,
        "gallery grew by exactly the images made": new == set(images),
    }
    return result


def start_front(port: int, data: str, env: dict) -> subprocess.Popen:
    command = [sys.executable, "-m", "demo", "--host", HOST, "--port", str(port), "--data-dir", data]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_worker(url: str, name: str, log: Path) -> subprocess.Popen:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "demo.worker", "--redis", url, "--prefix", PREFIX, "--name", name]
    worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
    next(line for line in worker.stdout if "taking jobs" in line)  # its model is loaded
    return worker


def start_redis(folder: str) -> tuple[subprocess.Popen, str]:
    import redis

    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", folder]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    client = redis.Redis(host=HOST, port=port)
    while True:
        try:
            client.ping()
            return server, f"redis://{HOST}:{port}/0"
        except redis.ConnectionError:
            if server.poll() is not None:
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)


def killer(url: str, workers: dict[str, subprocess.Popen], name: str, log: Path) -> Callable[[], None]:
    """Kill worker `name` with SIGKILL while it runs a job, then start a replacement."""
    import redis

    def kill() -> None:
        client = redis.Redis.from_url(url)
        while not any(
            client.hget(f"{PREFIX}:job:{job_id.decode()}", "worker") == name.encode()
            and client.get(f"{PREFIX}:alive:{job_id.decode()}")
            for job_id in client.smembers(f"{PREFIX}:running")
        ):
            time.sleep(0.01)
        workers[name].send_signal(signal.SIGKILL)
        workers[name].wait()
        print(f"  killed worker {name} mid-job; starting a replacement", flush=True)
        workers[name + "b"] = start_worker(url, name + "b", log)

    return kill


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, help="default 3, with --redis 5")
    parser.add_argument("--steps", type=int, help="default 4, with --redis 25")
    parser.add_argument("--port", type=int, default=0, help="the front's port (default: a free one)")
    parser.add_argument("--redis", action="store_true", help="front + workers on a redis-server of its own")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline-rounds", type=int, default=1, help="rounds with one worker first (--redis)")
    parser.add_argument("--kill-round", type=int, default=3, help="the round in which a worker is killed (--redis)")
    args = parser.parse_args()
    rounds = args.rounds or (5 if args.redis else 3)
    steps = args.steps or (25 if args.redis else 4)
    port = args.port or free_port()
    base = f"http://{HOST}:{port}"
    from demo.jobs.redis_front import LOST

    with tempfile.TemporaryDirectory() as data, ExitStack() as cleanup:
        env = os.environ | {"HF_HUB_OFFLINE": "1", "KOIMG_SEED_GALLERY": "0"}
        workers: dict[str, subprocess.Popen] = {}
        log = Path(data) / "workers.log"
        if args.redis:
            server, url = start_redis(data)
            cleanup.callback(lambda: (server.terminate(), server.wait(30)))
            cleanup.callback(lambda: [(w.terminate(), w.wait(60)) for w in workers.values() if w.poll() is None])
            env |= {"KOIMG_REDIS_URL": url, "KOIMG_REDIS_PREFIX": PREFIX, "OMP_NUM_THREADS": "1"}
            workers["w1"] = start_worker(url, "w1", log)
        front = start_front(port, str(Path(data) / "front"), env)
        cleanup.callback(lambda: (front.terminate(), front.wait(30)))
        wait_until_up(base, front)
        mode = f"front + workers on Redis, {steps} steps per job" if args.redis else f"{steps} steps per job"
        print(f"server up, RSS {rss_mb(front.pid):.0f} MB; {args.clients} clients × {rounds} rounds, {mode}")
        if args.redis:  # one job first, so the 1-worker rounds do not pay the front's and the worker's warm-up
            assert run_round(base, "warm-up", 1, steps, front.pid, LOST).finished == 1
        print(HEADER, flush=True)
        plan = [(f"1 worker, {i}", None) for i in range(1, args.baseline_rounds + 1)] if args.redis else []
        for i in range(1, rounds + 1):
            kill = killer(url, workers, "w2", log) if args.redis and i == args.kill_round else None
            plan.append(
                (f"{args.workers} workers, {i}" + (", one killed" if kill else "") if args.redis else str(i), kill)
            )
        results = []
        for name, kill in plan:
            if args.redis and not name.startswith("1 worker") and len(workers) < args.workers:
                for n in range(2, args.workers + 1):
                    workers[f"w{n}"] = start_worker(url, f"w{n}", log)
            results.append(run_round(base, name, args.clients, steps, front.pid, LOST, kill))
            print(results[-1].line(), flush=True)
            if not all(results[-1].checks.values()):
                print("FAILED: " + ", ".join(k for k, ok in results[-1].checks.items() if not ok))
                return 1
        print("checks every round: " + ", ".join(results[0].checks))
        if args.redis:
            one = statistics.mean(r.throughput for r in results if r.name.startswith("1 worker"))
            many = statistics.mean(
                r.throughput for r in results if not r.name.startswith("1 worker") and "killed" not in r.name
            )
            print(
                f"throughput: 1 worker {one:.2f} jobs/s, {args.workers} workers {many:.2f} jobs/s "
                f"(rounds without a kill): {many / one:.2f}×"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
