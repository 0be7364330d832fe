"""Load test: 50 browsers submit a job at once, several rounds, against the real server on loopback.

Starts `python -m demo` on 127.0.0.1 with a throw-away data folder (never anything but loopback), then per round
50 threads, each its own cookie jar (its own browser session), POST /api/txt2img at the same moment and poll
their job to the end. Checks: no job lost (every accepted job ends "done" with its images served), none
duplicated (distinct ids, distinct images, the gallery grew by exactly the images made), every refusal is a 503
with a reason; and the server's resident memory after each round, which should stay flat.

    python -m benchmarks.load_test [--clients 50] [--rounds 3] [--steps 4] [--port 5077]
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"


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
        request = urllib.request.Request(self.base + path, data=data, headers={"Content-Type": "application/json"} if data else {})
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
    return Outcome(status, job, "" if all(code == 200 for code in served) else f"images answered {served}", time.perf_counter() - began)


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--port", type=int, default=5077)
    args = parser.parse_args()
    base = f"http://{HOST}:{args.port}"
    with tempfile.TemporaryDirectory() as data:
        env = os.environ | {"HF_HUB_OFFLINE": "1", "KOIMG_SEED_GALLERY": "0"}
        command = [sys.executable, "-m", "demo", "--host", HOST, "--port", str(args.port), "--data-dir", data]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_up(base, server)
            print(f"server up, RSS {rss_mb(server.pid):.0f} MB; {args.clients} clients × {args.rounds} rounds, {args.steps} steps per job")
            totals = Counter()
            for round_ in range(1, args.rounds + 1):
                before = set(gallery_images(base))
                start = threading.Barrier(args.clients)
                prompts = [f"흰 배경 가운데 있는 작은 {'빨간 파란 노란 초록 보라'.split()[i % 5]} 별 #{round_}-{i}" for i in range(args.clients)]
                began = time.perf_counter()
                with ThreadPoolExecutor(args.clients) as pool:
                    outcomes = list(pool.map(lambda p: one_client(base, p, args.steps, start), prompts))
                wall = time.perf_counter() - began
                accepted = [o for o in outcomes if o.status == 202]
                refused = [o for o in outcomes if o.status == 503]
                other = [o for o in outcomes if o.status not in (202, 503)]
                done = [o for o in accepted if o.job["status"] == "done" and not o.error]
                ids = [o.job["id"] for o in accepted]
                images = [url for o in done for url in o.job["images"]]
                new = set(gallery_images(base)) - before
                checks = {
                    "no job lost": len(done) == len(accepted),
                    "no job duplicated": len(set(ids)) == len(ids) and len(set(images)) == len(images),
                    "refusals are 503 with a reason": all(o.error for o in refused) and not other,
                    "gallery grew by exactly the images made": new == set(images),
                }
                latency = sorted(o.seconds for o in done)
                totals.update({"accepted": len(accepted), "refused": len(refused)})
                print(
                    f"round {round_}: {len(accepted)} accepted, {len(refused)} refused (503), {len(other)} other; "
                    f"{len(done)} done in {wall:.1f} s (job p50 {latency[len(latency) // 2]:.1f} s, max {latency[-1]:.1f} s); "
                    f"server RSS {rss_mb(server.pid):.0f} MB; "
                    + ", ".join(f"{name}: {'ok' if ok else 'FAILED'}" for name, ok in checks.items()),
                    flush=True,
                )
                if not all(checks.values()):
                    return 1
            print(f"all rounds: {totals['accepted']} accepted and finished, {totals['refused']} refused with 503, none lost or duplicated")
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
