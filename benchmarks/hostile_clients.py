"""Hostile clients against the real server on loopback: the figures behind issue 19's targets.

Starts `python -m demo` (embedded models, a throw-away data folder, 127.0.0.1 only) and measures, one after the
other:

1. blocking calls: 3 source addresses (127.0.0.1-3) × 5 threads call `POST /sdapi/v1/txt2img` (steps 100,
   batch 4) while a browser times `GET /gallery`; how many calls were let in (200/held) or refused (429/503);
2. slow sockets: `--slow` (100) connections each sending one header line every 2 s while another client times
   `GET /api/jobs`;
3. decodes: 16 concurrent `POST /api/search` of a 702-byte lossless WebP of 4096² (RGBA); the front's resident
   memory before and its peak (VmHWM, reset through /proc/PID/clear_refs) during them, and the answers.

    python -m benchmarks.hostile_clients [--slow 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import statistics
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from benchmarks.load_test import HOST, free_port, rss_mb, start_front, wait_until_up


def timed_get(port: int, path: str, timeout: float = 60) -> float:
    began = time.perf_counter()
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path)
        connection.getresponse().read()
    except OSError:
        return float("inf")
    finally:
        connection.close()
    return time.perf_counter() - began


def post_json(port: int, path: str, body: dict, source: str, timeout: float = 900) -> int:
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout, source_address=(source, 0))
    try:
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        return connection.getresponse().status
    except OSError:
        return 0
    finally:
        connection.close()


def page_times(port: int, seconds: float, path: str) -> list[float]:
    times, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        times.append(timed_get(port, path))
        time.sleep(0.5)
    return times


def blocking_calls(port: int, seconds: float) -> None:
    body = {"prompt": "흰 배경 왼쪽에 있는 큰 빨간 원", "steps": 100, "batch_size": 4}
    sources = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    with ThreadPoolExecutor(15) as pool:
        calls = [
            pool.submit(post_json, port, "/sdapi/v1/txt2img", body, source) for source in sources for _ in range(5)
        ]
        time.sleep(2)
        times = page_times(port, seconds, "/gallery")
        for source in sources:
            post_json(port, "/sdapi/v1/interrupt", {}, source)
        answered = Counter(call.result() for call in calls)
    print(
        f"1. blocking calls: GET /gallery p50 {statistics.median(times):.3f} s, max {max(times):.3f} s "
        f"({len(times)} pages); the 15 calls' answers {dict(answered)}"
    )


def slow_sockets(port: int, count: int, seconds: float) -> None:
    sockets, stop = [], threading.Event()
    for _ in range(count):
        sock = socket.create_connection((HOST, port))
        sock.sendall(b"GET / HTTP/1.1\r\n")
        sockets.append(sock)

    def drip() -> None:
        while not stop.wait(2):
            for i, sock in enumerate(sockets):
                try:
                    sock.sendall(f"X-Slow-{i}: 1\r\n".encode())
                except OSError:
                    pass

    threading.Thread(target=drip, daemon=True).start()
    times = page_times(port, seconds, "/api/jobs")
    stop.set()
    for sock in sockets:
        sock.close()
    print(f"2. {count} slow sockets: GET /api/jobs p50 {statistics.median(times):.3f} s, max {max(times):.3f} s")


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def decodes(port: int, pid: int) -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (4096, 4096), (10, 20, 30, 40)).save(buffer, format="WEBP", lossless=True)
    data, boundary = buffer.getvalue(), "hostile-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.webp"\r\n'
        f"Content-Type: image/webp\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )

    def search() -> int:
        connection = http.client.HTTPConnection(HOST, port, timeout=300)
        connection.request("POST", "/api/search", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        return connection.getresponse().status

    time.sleep(5)  # the seeding thread done, its memory settled
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak (VmHWM) restarts from the resident size now
    idle, began, sampled, done = rss_mb(pid), time.perf_counter(), [], threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            sampled.append(rss_mb(pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    with ThreadPoolExecutor(16) as pool:
        statuses = Counter(pool.map(lambda _: search(), range(16)))
    done.set()
    sampler.join()
    peak = vm_hwm_mb(pid)
    print(f"   sampled RSS every 20 ms: max {max(sampled):.0f} MB, after {rss_mb(pid):.0f} MB")
    print(
        f"3. 16 × {len(data)}-byte 4096² WebPs: RSS idle {idle:.0f} MB, peak {peak:.0f} MB "
        f"(+{peak - idle:.0f} MB), answers {dict(statuses)} in {time.perf_counter() - began:.1f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        env = os.environ | {"KOIMG_SEED_GALLERY": "2", "KOIMG_SEED_GALLERY_STEPS": "2", "HF_HUB_OFFLINE": "1"}
        front = start_front(port, data, env)
        try:
            wait_until_up(f"http://{HOST}:{port}", front)
            decodes(port, front.pid)  # first: the peak it reads is the process's own
            slow_sockets(port, args.slow, args.seconds)
            blocking_calls(port, args.seconds)
        finally:
            front.terminate()
            front.wait(timeout=60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
