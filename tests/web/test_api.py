"""The JSON API with Flask's test client: every route, and every bad input answered with a 4xx and a reason."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from demo.generation.images import read_parameters
from tests.web.conftest import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """Every API test runs on both job queues: in-process, and Redis with a worker."""
    return request.param


def test_txt2img_job_runs_to_images_with_their_parameters(client, scorer, prompt, wait_for):
    answer = client.post("/api/txt2img", json={"prompt": prompt, "seed": 1, "steps": 12, "num_images": 2})
    assert answer.status_code == 202 and answer.headers["Location"].endswith(answer.json["id"])
    assert set(answer.json) >= {"id", "status", "step", "total_steps", "queue_position", "images", "error"}
    job = wait_for(client, answer.json["id"])
    assert job["status"] == "done" and job["step"] == job["total_steps"] == 12 and job["error"] is None
    assert len(job["images"]) == 2 and job["seeds"] == [1, 2]
    for url, seed in zip(job["images"], job["seeds"], strict=True):
        served = client.get(url)
        assert served.status_code == 200 and served.mimetype == "image/png"
        image = Image.open(io.BytesIO(served.data))
        assert read_parameters(image)["prompt"] == prompt and read_parameters(image)["seed"] == seed
    first = Image.open(io.BytesIO(client.get(job["images"][0]).data)).convert("RGB")
    assert scorer.read([first])[0]["color"] == "red"


def test_img2img_job_from_an_upload(client, png, wait_for):
    data = {
        "prompt": "검은 배경 가운데 노란 세모",
        "steps": "10",
        "strength": "0.5",
        "seed": "3",
        "image": (io.BytesIO(png()), "in.png"),
    }
    answer = client.post("/api/img2img", data=data, content_type="multipart/form-data")
    assert answer.status_code == 202, answer.json
    job = wait_for(client, answer.json["id"])
    assert job["status"] == "done" and job["kind"] == "img2img"
    parameters = read_parameters(Image.open(io.BytesIO(client.get(job["images"][0]).data)))
    assert parameters["mode"] == "img2img" and parameters["strength"] == 0.5


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"prompt": ""}, "prompt is empty"),
        ({"prompt": "   "}, "prompt is empty"),
        ({"prompt": "가" * 301}, "at most 300 characters"),
        ({"steps": 0}, "steps must be between"),
        ({"steps": 1000}, "steps must be between"),
        ({"steps": "many"}, "steps must be a whole number"),
        ({"steps": 2.5}, "steps must be a whole number"),
        ({"seed": -1}, "seed must be between"),
        ({"guidance": 99}, "guidance must be between"),
        ({"size": 512}, "size must be one of 64"),
        ({"num_images": 0}, "number of images must be between"),
        ({"num_images": 50}, "number of images must be between"),
        ({"refiner": "maybe"}, "refiner must be true or false"),
        ({"refiner_strength": 1.5}, "refiner strength must be in"),
        ({"prompt": 42}, "prompt must be text"),
    ],
)
def test_txt2img_bad_input_is_a_400_with_the_reason(client, prompt, body, reason):
    answer = client.post("/api/txt2img", json={"prompt": prompt} | body)
    assert answer.status_code == 400 and reason in answer.json["error"]
    assert client.get("/api/jobs").json == []  # nothing was queued


def test_txt2img_needs_a_json_object(client):
    for answer in (client.post("/api/txt2img", data="prompt=x"), client.post("/api/txt2img", json=["a list"])):
        assert answer.status_code == 400 and "JSON object" in answer.json["error"]


def image_bytes(mode: str, size: int = 64, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (size, size)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("upload", "reason"),
    [
        (None, "multipart file field named 'image'"),
        (b"", "empty"),
        (b"<html>not an image</html>", "not a readable image"),
        (image_bytes("I;16"), "unsupported image mode"),
        (image_bytes("RGB", size=8), "too small"),
        (image_bytes("RGB", fmt="TIFF"), "unsupported image type TIFF"),
    ],
)
def test_img2img_bad_uploads_are_a_400_with_the_reason(client, prompt, upload, reason):
    data = {"prompt": prompt}
    if upload is not None:
        data["image"] = (io.BytesIO(upload), "upload.png")
    answer = client.post("/api/img2img", data=data, content_type="multipart/form-data")
    assert answer.status_code == 400 and reason in answer.json["error"]


def test_decompression_bomb_is_refused(client, prompt):
    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, format="PNG")  # 400 M pixels in a few kB
    data = {"prompt": prompt, "image": (io.BytesIO(buffer.getvalue()), "bomb.png")}
    answer = client.post("/api/img2img", data=data, content_type="multipart/form-data")
    assert answer.status_code == 400 and "too large" in answer.json["error"]


def test_upload_over_the_size_limit_is_a_413(make_app, prompt):
    client = make_app(MAX_CONTENT_LENGTH=10_000).test_client()
    noise = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    data = {"prompt": prompt, "image": (io.BytesIO(buffer.getvalue()), "big.png")}
    answer = client.post("/api/img2img", data=data, content_type="multipart/form-data")
    assert answer.status_code == 413 and "larger than the limit" in answer.json["error"]


def test_jobs_belong_to_the_session_that_made_them(app, prompt, wait_for):
    mine, theirs = app.test_client(), app.test_client()
    job_id = mine.post("/api/txt2img", json={"prompt": prompt, "steps": 2}).json["id"]
    assert theirs.get(f"/api/jobs/{job_id}").status_code == 404
    assert theirs.post(f"/api/jobs/{job_id}/cancel").status_code == 404
    assert theirs.get("/api/jobs").json == []
    assert [job["id"] for job in mine.get("/api/jobs").json] == [job_id]
    assert wait_for(mine, job_id)["status"] == "done"  # their cancel did nothing


def test_cancel_a_queued_job_and_a_full_queue_answers_503(make_app, held, prompt, wait_for):
    client = make_app(QUEUE_SIZE=1).test_client()
    with held():  # the worker takes the first job and waits: the second job is the one queued
        running = client.post("/api/txt2img", json={"prompt": prompt, "steps": 2}).json
        assert wait_for(client, running["id"], until={"running"})["queue_position"] == 0
        waiting = client.post("/api/txt2img", json={"prompt": prompt, "steps": 2}).json
        assert client.get(f"/api/jobs/{waiting['id']}").json["queue_position"] == 1
        refused = client.post("/api/txt2img", json={"prompt": prompt, "steps": 2})
        assert refused.status_code == 503 and "queue is full" in refused.json["error"]
        cancelled = client.post(f"/api/jobs/{waiting['id']}/cancel").json
        assert cancelled["status"] == "failed" and cancelled["cancelled"] is True
    assert wait_for(client, running["id"])["status"] == "done"
    assert client.get(f"/api/jobs/{waiting['id']}").json["images"] == []


def test_search_finds_a_generated_prompt_and_checks_its_input(client, prompt, wait_for):
    job = wait_for(client, client.post("/api/txt2img", json={"prompt": prompt, "steps": 4, "seed": 5}).json["id"])
    found = client.get("/api/search", query_string={"q": "왼쪽의 커다란 붉은 동그라미, 흰 바탕", "k": 3}).json
    assert found["results"][0]["image"] == job["images"][0]
    assert set(found["results"][0]) >= {"prompt", "score", "image"}
    by_image = client.post("/api/search", data={"image": (io.BytesIO(client.get(job["images"][0]).data), "q.png")})
    assert by_image.status_code == 200 and by_image.json["results"][0]["prompt"] == prompt
    for query, reason in [
        ({"q": ""}, "empty"),
        ({"q": "원", "k": 0}, "k must be"),
        ({"q": "원", "k": "ten"}, "k must be a whole number"),
        ({"q": "가" * 1000}, "too long"),
        ({"q": "원", "min_score": "high"}, "min_score must be a number"),
    ]:
        answer = client.get("/api/search", query_string=query)
        assert answer.status_code == 400 and reason in answer.json["error"], (query, answer.json)


def test_gallery_api_pages_newest_first(make_app, wait_for):
    client = make_app(PAGE_SIZE=2).test_client()
    ids = [
        client.post("/api/txt2img", json={"prompt": f"{colour} 원", "steps": 1}).json["id"]
        for colour in ("빨간", "파란", "노란")
    ]
    for job_id in ids:
        wait_for(client, job_id)
    first = client.get("/api/gallery").json
    assert [r["prompt"] for r in first] == ["노란 원", "파란 원"]
    older = client.get("/api/gallery", query_string={"before": first[-1]["id"]}).json
    assert [r["prompt"] for r in older] == ["빨간 원"]
    assert client.get("/api/gallery?before=abc").status_code == 400


def test_unknown_routes_and_methods_answer_json(client):
    assert client.get("/api/nothing").status_code == 404 and "error" in client.get("/api/nothing").json
    answer = client.get("/api/txt2img")
    assert answer.status_code == 405 and answer.json["status"] == 405


def test_one_client_cannot_make_another_clients_request_fail(make_app, held, prompt, wait_for):
    """One session posting as fast as it can fills only its own share of the queue: 429 for it, 202 for others."""
    app = make_app(QUEUE_SIZE=16, QUEUE_PER_CLIENT=4)
    greedy, other = app.test_client(), app.test_client()
    body = {"prompt": prompt, "steps": 100, "num_images": 4}
    with held():  # the pipeline is busy, so nothing drains while the greedy client refills
        first = greedy.post("/api/txt2img", json=body).json
        wait_for(greedy, first["id"], until={"running"})  # taken by the worker: no longer waiting, from here on
        answers = [greedy.post("/api/txt2img", json=body) for _ in range(20)]
        codes = [answer.status_code for answer in answers]
        assert codes == [202] * 4 + [429] * 16  # 4 waiting behind the running one, then refused
        assert "you already have 4 jobs waiting" in answers[-1].json["error"]
        assert other.post("/api/txt2img", json={"prompt": prompt, "steps": 1}).status_code == 202
        assert other.post("/", data={"prompt": prompt, "steps": "1"}).status_code == 303  # the HTML form too
        for job in greedy.get("/api/jobs").json:
            greedy.post(f"/api/jobs/{job['id']}/cancel")
