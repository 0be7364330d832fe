"""Clients that try to starve or trick the server: blocking API calls by the dozen, a client that hangs up, slow
sockets by the hundred, a page of another origin writing with a user's cookie, and many large decodes at once."""

from __future__ import annotations

import io
import json
import re
import socket
import threading
import time

import pytest
import requests
from PIL import Image, WebPImagePlugin

from demo.jobs.model import JobState
from demo.web.extensions import get_services


def from_address(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def until(condition, what: str, timeout: float = 60):
    """Synchronise on a state of the server; the timeout only turns a hang into a failure."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.01)


def test_blocking_calls_hold_a_bounded_share_of_threads_and_pages_still_answer(make_app, held, prompt):
    """15 blocking calls from 3 addresses held every server thread: pages waited 16 s. Now each client may hold 1
    here (CLIENT_API_CALLS_PER_CLIENT) and all together 2 (CLIENT_API_CALLS); the rest are refused at once."""
    app = make_app(CLIENT_API_CALLS=2, CLIENT_API_CALLS_PER_CLIENT=1)
    calls, answers = get_services(app).calls, {}

    def call(address: str) -> None:
        body = {"prompt": prompt, "steps": 1}
        answers[address] = from_address(app, address).post("/sdapi/v1/txt2img", json=body)

    with held():
        first = threading.Thread(target=call, args=("10.0.0.1",))
        first.start()
        until(lambda: calls.held["addr:10.0.0.1"] == 1, "the first call holds its thread")
        again = from_address(app, "10.0.0.1").post("/sdapi/v1/txt2img", json={"prompt": prompt})
        assert again.status_code == 429 and "calls waiting for their images" in again.json["detail"]
        second = threading.Thread(target=call, args=("10.0.0.2",))
        second.start()
        until(lambda: calls.held.total() == 2, "the second client's call holds its thread")
        third = from_address(app, "10.0.0.3").post("/v1/images/generations", json={"prompt": prompt})
        assert third.status_code == 503 and "already waiting on 2 generations" in third.json["error"]["message"]
        pages = app.test_client()
        assert [pages.get(path).status_code for path in ("/", "/gallery", "/api/jobs")] == [200, 200, 200]
    first.join(timeout=120)
    second.join(timeout=120)
    assert [answers[a].status_code for a in ("10.0.0.1", "10.0.0.2")] == [200, 200]
    assert calls.held.total() == 0


def test_a_client_that_hangs_up_cancels_its_waiting_job(make_app, live, held, prompt):
    """A blocking call whose client went away left its job to run and its thread held, for up to 600 s."""
    app = make_app()
    base, jobs = live(app), get_services(app).jobs
    with held():
        browser = app.test_client()  # someone else's job runs (held), so the caller's job waits behind it
        running = browser.post("/api/txt2img", json={"prompt": prompt, "steps": 1}).json
        until(lambda: browser.get(f"/api/jobs/{running['id']}").json["status"] == "running", "the first job runs")
        body = json.dumps({"prompt": prompt, "steps": 1}).encode()
        caller = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])))
        head = "POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        caller.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        until(lambda: jobs.jobs("addr:127.0.0.1"), "the caller's job is queued")
        caller.close()
        until(lambda: jobs.jobs("addr:127.0.0.1")[0].state is JobState.CANCELLED, "the job is cancelled")
        assert (
            get_services(app).calls.held.total() == 0
            or until(lambda: get_services(app).calls.held.total() == 0, "its thread is free") is None
        )


def test_slow_sockets_by_the_hundred_do_not_lock_others_out(make_app, live):
    """100 sockets each sending a header line now and then held every connection waitress would take (its
    default limit is 100): every other client waited 30 s and timed out."""
    base = live(make_app())
    port = int(base.rsplit(":", 1)[1])
    slow = []
    try:
        for _ in range(150):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: slow\r\n")  # and never the blank line that ends the headers
            slow.append(sock)
        answer = requests.get(f"{base}/api/jobs", timeout=30)
        assert answer.status_code == 200 and answer.json() == []
    finally:
        for sock in slow:
            sock.close()


def multipart(prompt: str, png: bytes) -> dict:
    return {"prompt": prompt, "steps": "2", "image": (io.BytesIO(png), "in.png")}


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://localhost:8081", "Sec-Fetch-Site": "same-site"},  # another port of the same host
        {"Origin": "http://evil.localhost"},  # an older browser: no Sec-Fetch-Site
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},  # a sandboxed frame
    ],
)
def test_cross_origin_writes_with_the_users_cookie_are_refused(client, prompt, png, headers):
    """A page on another port of the same host fetch()ed multipart POSTs with credentials: jobs landed in the
    victim's session and its own submit then got 429."""
    client.get("/")  # the victim has a session
    answer = client.post("/api/img2img", data=multipart(prompt, png()), headers=headers)
    assert answer.status_code == 403 and answer.json["code"] == "cross_origin"
    assert "another site or origin" in answer.json["error"]
    assert client.post("/api/txt2img", json={"prompt": prompt}, headers=headers).status_code == 403
    assert client.get("/api/jobs").json == []


def test_same_origin_pages_curl_and_token_carrying_requests_still_write(make_app, prompt, png, wait_for):
    client = make_app(WTF_CSRF_ENABLED=True).test_client()
    same = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/api/img2img", data=multipart(prompt, png()), headers=same).status_code == 202
    assert client.post("/api/txt2img", json={"prompt": prompt, "steps": 1}).status_code == 202  # curl: no headers
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").get_data(as_text=True))[1]
    other = {"Origin": "http://localhost:8081", "Sec-Fetch-Site": "same-site", "X-CSRFToken": token}
    accepted = client.post("/api/txt2img", json={"prompt": prompt, "steps": 1}, headers=other)
    assert accepted.status_code == 202
    for job in client.get("/api/jobs").json:
        wait_for(client, job["id"])


def lossless_webp(side: int = 4096) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (side, side), (10, 20, 30, 40)).save(buffer, format="WEBP", lossless=True)
    return buffer.getvalue()  # a few hundred bytes, 400 MB decoded


@pytest.mark.slow
def test_concurrent_large_decodes_share_one_memory_budget(make_app, monkeypatch):
    """16 lossless WebPs of 4096² at once took 350 MB each (RSS 1.4 → 4.2 GB). Now decodes share DECODE_MEMORY:
    with room for one here, the others wait their turn (or, past DECODE_WAIT, get 503 with the reason)."""
    side = 2048  # 4096² is what the attack sent; a quarter of it is as good a test, four times faster
    app = make_app(DECODE_MEMORY=side * side * 28, DECODE_WAIT=120)
    get_services(app).search.add(Image.new("RGB", (64, 64), "white"), "흰 배경")  # something to find
    budget, data = get_services(app).decoding, lossless_webp(side)
    inside, most, gate = [0], [0], threading.Event()
    lock = threading.Lock()
    real_load = WebPImagePlugin.WebPImageFile.load

    def counting_load(image):
        if image.size != (side, side):
            return real_load(image)
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        gate.wait(120)  # the first decode stays here until every other request is queued behind it (or inside)
        try:
            return real_load(image)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(WebPImagePlugin.WebPImageFile, "load", counting_load)
    answers = []

    def search() -> None:
        answer = app.test_client().post("/api/search", data={"image": (io.BytesIO(data), "big.webp")})
        answers.append(answer)

    threads = [threading.Thread(target=search) for _ in range(16)]
    for thread in threads:
        thread.start()
    until(lambda: inside[0] + budget.waiting == 16 or most[0] > 1, "all 16 decodes started or wait", timeout=120)
    gate.set()
    for thread in threads:
        thread.join(timeout=300)
    assert most[0] == 1 and budget.peak <= budget.limit
    assert [answer.status_code for answer in answers] == [200] * 16

    impatient = make_app(DECODE_MEMORY=1, DECODE_WAIT=0)
    with get_services(impatient).decoding.reserve(1):  # someone else's decode holds the whole budget
        answer = impatient.test_client().post("/api/search", data={"image": (io.BytesIO(data), "big.webp")})
    assert answer.status_code == 503 and answer.json["code"] == "decode_busy"
    assert "busy decoding other images" in answer.json["error"]
