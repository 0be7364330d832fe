"""POST /v1/images/generations driven by the official `openai` SDK against `python -m demo` on loopback."""

from __future__ import annotations

import base64
import io
import time

import openai
import pytest
import requests
from PIL import Image

from demo.generation.images import read_parameters

# Each test drives `python -m demo` served in a subprocess (two of them, a few seconds each to start); the
# in-process tests in test_sdapi_clients.py cover the same endpoints in the inner loop.
pytestmark = pytest.mark.slow


def client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def test_b64_json_images_hold_the_korean_prompt(demo_server, prompt):
    asked = int(time.time())
    answer = client(demo_server).images.generate(prompt=prompt, n=2, size="64x64", response_format="b64_json")
    assert len(answer.data) == 2 and answer.size == "64x64" and asked <= answer.created <= time.time()
    seeds = set()
    for item in answer.data:
        image = Image.open(io.BytesIO(base64.b64decode(item.b64_json)))
        parameters = read_parameters(image)
        assert image.size == (64, 64) and parameters["prompt"] == prompt and item.revised_prompt == prompt
        seeds.add(parameters["seed"])
    assert len(seeds) == 2


def test_url_images_are_served_png_files(demo_server, prompt):
    answer = client(demo_server).images.generate(prompt=prompt, size="1024x1024", response_format="url")
    assert answer.size == "64x64"  # the nearest size this model makes, said where OpenAI says the size
    (item,) = answer.data
    assert item.url.startswith(f"{demo_server}/images/") and item.b64_json is None
    served = requests.get(item.url)
    assert served.headers["Content-Type"] == "image/png"
    assert read_parameters(Image.open(io.BytesIO(served.content)))["prompt"] == prompt


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        ({"prompt": ""}, "prompt", "the prompt is empty"),
        ({"n": 9}, "n", "n must be between 1 and 4"),
        ({"size": "big"}, "size", "size must be WIDTHxHEIGHT"),
        ({"response_format": "jpeg"}, "response_format", "response_format must be one of"),
        ({"prompt": "가" * 301}, "prompt", "at most 300 characters"),
    ],
)
def test_bad_input_raises_the_sdks_bad_request_error(demo_server, prompt, fields, param, message):
    with pytest.raises(openai.BadRequestError) as raised:
        client(demo_server).images.generate(**{"prompt": prompt} | fields)
    assert raised.value.status_code == 400 and raised.value.param == param and message in raised.value.message
    assert raised.value.type == "invalid_request_error"


def test_keys_are_required_when_set(keyed_demo_server, prompt, api_keys):
    with pytest.raises(openai.AuthenticationError) as raised:
        client(keyed_demo_server, key="not-a-key").images.generate(prompt=prompt, response_format="b64_json")
    assert raised.value.code == "invalid_api_key"
    answer = client(keyed_demo_server, key=api_keys[0]).images.generate(prompt=prompt, response_format="b64_json")
    assert read_parameters(Image.open(io.BytesIO(base64.b64decode(answer.data[0].b64_json))))["prompt"] == prompt
