"""The app on the embedded SDXL-layout config, end to end: page → job → image → search, and the A1111 endpoint."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from demo.generation.config import load_config
from demo.generation.images import read_parameters
from demo.generation.pipeline import ImageGenerator
from demo.search.service import SearchService
from demo.web import create_app
from demo.web.extensions import get_services

PROMPT = "검은 배경 가운데에 있는 큰 노란 별"  # a large yellow star in the centre on a black background


@pytest.fixture(scope="module")
def sdxl_generator():
    return ImageGenerator(load_config("embedded-sdxl"))


@pytest.fixture
def sdxl_app(sdxl_generator, tmp_path):
    search = SearchService.open(tmp_path, generator=sdxl_generator)
    app = create_app(
        {"TESTING": True, "WTF_CSRF_ENABLED": False, "DATA_DIR": str(tmp_path), "SEED_GALLERY": 0},
        generator=sdxl_generator,
        search=search,
    )
    yield app
    get_services(app).jobs.close()
    get_services(app).search.close()


def test_sdxl_page_to_job_to_image_to_search(sdxl_app, sdxl_generator, scorer, wait_for):
    assert sdxl_generator.family.name == "sdxl" and type(sdxl_generator.base).__name__ == "StableDiffusionXLPipeline"
    client = sdxl_app.test_client()
    answer = client.post("/", data={"prompt": PROMPT, "steps": "20", "seed": "2", "refiner": "0"})
    assert answer.status_code == 303
    job = wait_for(client, answer.headers["Location"].rsplit("/", 1)[-1])
    assert job["status"] == "done" and len(job["images"]) == 1
    png = client.get(job["images"][0])
    image = Image.open(io.BytesIO(png.data))
    assert image.size == (64, 64)
    read = scorer.read([image.convert("RGB")])[0]
    assert (read["color"], read["background"]) == ("yellow", "black")
    parameters = read_parameters(image)
    assert parameters["models"]["config"] == "embedded-sdxl" and parameters["models"]["family"] == "sdxl"
    results = client.get("/api/search", query_string={"q": "노란 별", "k": 3}).json["results"]
    assert results and results[0]["prompt"] == PROMPT


def test_sdxl_through_the_automatic1111_endpoint(sdxl_app):
    client = sdxl_app.test_client()
    models = client.get("/sdapi/v1/sd-models").json
    assert models[0]["model_name"].startswith("embedded-sdxl")
    answer = client.post("/sdapi/v1/txt2img", json={"prompt": PROMPT, "steps": 6, "seed": 5, "width": 64})
    assert answer.status_code == 200
    image = Image.open(io.BytesIO(base64.b64decode(answer.json["images"][0])))
    assert image.size == (64, 64)
