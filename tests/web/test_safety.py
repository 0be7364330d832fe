"""What a hostile or unlucky client tried against the running app, each answered with a 4xx and its reason, or
survived: huge and thin uploads, impossible or unencodable requests, malformed bodies, control characters,
missing security headers, readable data files, an interrupted first start."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from demo.search.seeding import seed_gallery
from demo.search.service import SearchService
from demo.web.extensions import get_services


class ProcessorSpy:
    """The CLIP image processor, refusing (fast) any image it would have to resize from more than 224×224 crops."""

    def __init__(self, processor) -> None:
        self.processor = processor
        self.sizes: list[tuple[int, int]] = []

    def __getattr__(self, name):
        return getattr(self.processor, name)

    def __call__(self, images, **kwargs):
        self.sizes += [image.size for image in images]
        assert max(max(size) for size in self.sizes) <= 224, f"the processor got {self.sizes}"
        return self.processor(images=images, **kwargs)


def test_a_thin_tall_upload_is_cropped_before_clip_resizes_it(app, embedder, monkeypatch):
    """16×1,048,576 px (exactly MAX_PIXELS, 50 kB as PNG) took 21 s and 4 GB: the short side was resized first."""
    get_services(app).search.add(Image.new("RGB", (64, 64), "white"), "흰 배경")
    client = app.test_client()
    buffer = io.BytesIO()
    Image.new("L", (16, 1_048_576), 200).save(buffer, format="PNG")
    monkeypatch.setattr(embedder, "processor", spy := ProcessorSpy(embedder.processor))
    for path in ("/api/search", "/search"):
        answer = client.post(path, data={"image": (io.BytesIO(buffer.getvalue()), "thin.png")})
        assert answer.status_code == 200, answer.get_data(as_text=True)[-600:]
    assert spy.sizes == [(64, 64), (64, 64)]  # the embedded CLIP crops 64 px


@pytest.mark.parametrize("fields", [{"steps": "1"}, {"steps": "10", "strength": "0.0001"}])
def test_img2img_that_would_run_no_step_is_a_400(client, fields, prompt, png):
    data = {"prompt": prompt, "image": (io.BytesIO(png()), "in.png")} | fields
    answer = client.post("/api/img2img", data=data, content_type="multipart/form-data")
    assert answer.status_code == 400 and "int(steps × strength)" in answer.json["error"]
    assert client.get("/api/jobs").json == []
    page = client.post("/img2img", data={"prompt": prompt, "image": (io.BytesIO(png()), "in.png")} | fields)
    assert page.status_code == 400 and "int(단계 수 × 변화 강도)" in page.get_data(as_text=True)


def test_unencodable_text_is_a_400_and_the_pages_still_answer(client):
    for field in ("prompt", "negative_prompt"):
        body = '{"prompt": "a\\ud800b"}' if field == "prompt" else '{"prompt": "원", "negative_prompt": "\\udfff"}'
        answer = client.post("/api/txt2img", data=body, content_type="application/json")
        assert answer.status_code == 400 and "not valid Unicode" in answer.json["error"], answer.json
    assert client.get("/api/jobs").json == []
    assert [client.get(path).status_code for path in ("/", "/img2img")] == [200, 200]


@pytest.mark.parametrize("body", ["[" * 100_000 + "]" * 100_000, '{"prompt": ' * 50_000 + "1" + "}" * 50_000])
def test_deeply_nested_json_is_a_400_with_the_reason(client, body):
    answer = client.post("/api/txt2img", data=body, content_type="application/json")
    assert answer.status_code == 400 and "nested too deeply" in answer.json["error"]
    broken = client.post("/api/txt2img", data='{"prompt": ', content_type="application/json")
    assert broken.status_code == 400 and "not valid JSON" in broken.json["error"]


@pytest.mark.parametrize("before", ["99999999999999999999", "-99999999999999999999", "9223372036854775808"])
def test_gallery_page_beyond_64_bits_is_a_400(client, before):
    api = client.get("/api/gallery", query_string={"before": before})
    assert api.status_code == 400 and "before must be a record id" in api.json["error"]
    assert client.get("/gallery", query_string={"before": before}).status_code == 400
    assert client.get("/api/gallery", query_string={"before": "9223372036854775807"}).json == []


def test_a_form_with_too_many_fields_says_so(client, prompt):
    data = {f"field{i}": "x" for i in range(3000)} | {"prompt": prompt}
    for path, says, not_said in (
        ("/api/img2img", "too many fields (at most 1000)", "larger than the limit"),  # the API: English by default
        ("/img2img", "양식의 항목이 너무 많거나(최대 1000개)", "제한 크기"),  # the page: Korean
    ):
        answer = client.post(path, data=data, content_type="multipart/form-data")
        assert answer.status_code == 413
        assert says in answer.get_data(as_text=True)
        assert not_said not in answer.get_data(as_text=True)


def test_control_characters_are_stripped_from_prompts(client, wait_for):
    answer = client.post(
        "/api/txt2img", json={"prompt": "빨간\x1b[31m 원\x00\x9b", "negative_prompt": "a\r\nb", "steps": 1}
    )
    assert answer.status_code == 202 and answer.json["prompt"] == "빨간[31m 원"
    wait_for(client, answer.json["id"])
    record = client.get("/api/gallery").json[0]
    assert record["prompt"] == "빨간[31m 원" and record["negative_prompt"] == "a b"
    only_controls = client.post("/api/txt2img", json={"prompt": "\x1b\x07\x00"})
    assert only_controls.status_code == 400 and "prompt is empty" in only_controls.json["error"]


def test_security_headers_on_every_response(client, prompt, wait_for):
    job = client.post("/api/txt2img", json={"prompt": prompt, "steps": 1}).json
    image = wait_for(client, job["id"])["images"][0]
    responses = [
        client.get(path)
        for path in ("/", "/gallery", "/static/app.js", "/api/jobs", image, "/nothing", "/api/nothing", "/api/txt2img")
    ]
    responses.append(client.post("/api/txt2img", json={"prompt": ""}))
    assert sorted({r.status_code for r in responses}) == [200, 400, 404, 405]
    for response in responses:
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        policy = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy
        # an image file alone allows less still: nothing but itself and the viewer's inline style
        assert "default-src 'self'" in policy or (response.mimetype == "image/png" and "default-src 'none'" in policy)
        assert response.headers["Referrer-Policy"] == "same-origin"


def test_data_files_are_readable_by_their_owner_only(app, tmp_path, prompt, wait_for):
    client = app.test_client()
    wait_for(client, client.post("/api/txt2img", json={"prompt": prompt, "steps": 1}).json["id"])
    data = tmp_path / "data-0"
    for name in ("gallery.sqlite3", "gallery.sqlite3-wal", "jobs.sqlite3", "secret_key"):
        assert oct((data / name).stat().st_mode & 0o777) == "0o600", name


def test_an_existing_secret_key_is_made_private(make_app, tmp_path):
    data = tmp_path / "data-0"
    data.mkdir()
    (data / "secret_key").write_text("k" * 64)
    (data / "secret_key").chmod(0o644)
    assert make_app().secret_key == "k" * 64
    assert oct((data / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_interrupted_seeding_resumes_to_its_count(make_app, tmp_path, generator, embedder):
    """kill -9 during first-start seeding left 1 of 3 images and the marker: the next start makes the other 2."""
    data = tmp_path / "data-0"
    service = SearchService.open(data, embedder=embedder)
    first = seed_gallery(service, generator, count=1, steps=1)
    service.close()
    (data / "seeding").touch()
    search = get_services(make_app(SEED_GALLERY=3, SEED_GALLERY_STEPS=1)).search
    deadline = time.monotonic() + 120
    while (data / "seeding").exists() and time.monotonic() < deadline:  # the app's seeding thread ends with it
        time.sleep(0.05)
    records = search.store.history()
    assert sorted(r.image for r in records) == ["seed/0-0.png", "seed/0-1.png", "seed/0-2.png"]
    assert first[0].id in {r.id for r in records} and len(search) == 3
