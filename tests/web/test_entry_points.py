"""One request model: the same rule holds on every entry point that takes a generation request (the pages, the JSON
API, A1111's `/sdapi/v1` and OpenAI's `/v1`), each answering in its own error shape; and no malformed field of any
API is ever a 500."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from typing import Any

import pytest
from PIL import Image


@dataclass(frozen=True)
class EntryPoint:
    """How one API names our fields (None: it has no such field) and how its refusals read."""

    name: str
    path: str
    names: dict[str, str | None]
    form: bool = False  # the page posts a form: text fields only

    def carries(self, fields: dict[str, Any]) -> bool:
        return all(self.names.get(field, field) is not None for field in fields)

    def send(self, client, fields: dict[str, Any]):
        body = {"prompt": "빨간 원"} | fields
        body = {self.names.get(field, field): value for field, value in body.items()}
        if self.form:
            return client.post(self.path, data={name: str(value) for name, value in body.items()})
        return client.post(self.path, data=json.dumps(body), content_type="application/json")

    def refusal(self, answer) -> tuple[str, str | None]:
        """The reason and (where the shape has one) the code of a refused request."""
        if self.form:
            return answer.get_data(as_text=True), None
        body = answer.get_json()
        if self.name == "a1111":
            return body["detail"], None
        if self.name == "openai":
            return body["error"]["message"], body["error"]["code"]
        return body["error"], body["code"]


PAGES = EntryPoint("pages", "/?lang=en", {}, form=True)  # the pages speak Korean unless asked (test_i18n)
API = EntryPoint("api", "/api/txt2img", {})
A1111 = EntryPoint(
    "a1111",
    "/sdapi/v1/txt2img",
    {"guidance": "cfg_scale", "num_images": "batch_size", "size": None, "refiner": None, "refiner_strength": None},
)
OPENAI = EntryPoint(
    "openai",
    "/v1/images/generations",
    {"num_images": "n", "size": None, "negative_prompt": None, "seed": None, "steps": None, "guidance": None},
)
ENTRY_POINTS = [PAGES, API, A1111, OPENAI]

RULES = [  # (our fields, the code, words of the reason): refused the same way everywhere the fields exist
    ({"prompt": ""}, "prompt_empty", "the prompt is empty"),
    ({"prompt": "\x1b\x07\x00\r\n"}, "prompt_empty", "the prompt is empty"),  # controls removed, then nothing left
    ({"prompt": "가" * 301}, "prompt_too_long", "at most 300 characters"),
    ({"negative_prompt": "가" * 301}, "prompt_too_long", "at most 300 characters"),
    ({"prompt": "a\ud800b"}, "text_not_unicode", "not valid Unicode"),
    ({"negative_prompt": "\udfff"}, "text_not_unicode", "not valid Unicode"),
    ({"prompt": 42}, "not_text", "must be text"),
    ({"steps": 0}, "steps_out_of_range", "steps must be between 1 and 100"),
    ({"steps": "many"}, "not_a_whole_number", "steps must be a whole number"),
    ({"steps": "9" * 100_000}, "not_a_whole_number", "steps must be a whole number"),
    ({"seed": -2}, "seed_out_of_range", "seed must be between"),
    ({"guidance": 99}, "guidance_out_of_range", "must be between 0 and"),
    ({"guidance": [1]}, "not_a_number", "must be a number"),
    ({"num_images": 50}, "num_images_out_of_range", "must be between 1 and 4"),
    ({"size": 512}, "size_out_of_range", "size must be one of 64"),
]


def cases():
    for entry in ENTRY_POINTS:
        for fields, code, words in RULES:
            textual = all(isinstance(value, str) for value in fields.values())
            unencodable = any("\ud800" <= ch <= "\udfff" for value in fields.values() for ch in str(value))
            if entry.carries(fields) and not (entry.form and (not textual or unencodable)):
                yield pytest.param(entry, fields, code, words, id=f"{entry.name}-{next(iter(fields))}-{code}")


@pytest.fixture
def closed_app(make_app):
    """An app whose queue takes nothing (QUEUE_SIZE 0): every request that passes validation is a 503, so no test
    here waits for a generation."""
    return make_app(QUEUE_SIZE=0)


@pytest.mark.parametrize(("entry", "fields", "code", "words"), cases())
def test_a_rule_holds_on_every_entry_point(closed_app, entry, fields, code, words):
    answer = entry.send(closed_app.test_client(), fields)
    reason, answered_code = entry.refusal(answer)
    assert 400 <= answer.status_code < 500 and answer.status_code != 404, (answer.status_code, reason[-300:])
    assert words in reason
    assert answered_code in (None, code)


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=lambda entry: entry.name)
def test_control_characters_are_removed_on_every_entry_point(make_app, entry, wait_for):
    """ESC, NUL and BEL were stored and served as sent through `/v1` (its handler skipped the text cleaning)."""
    client = make_app().test_client()
    steps = {} if entry is OPENAI else {"steps": 1}
    answer = entry.send(client, {"prompt": "빨간\x1b[31m 원\x00\x07\x9b", "negative_prompt": "a\r\nb"} | steps)
    if entry is OPENAI:
        assert answer.status_code == 200 and answer.json["data"][0]["revised_prompt"] == "빨간[31m 원"
        answer = entry.send(client, {"prompt": "빨간\x1b[31m 원\x00\x07\x9b"})  # and no negative prompt field
    elif entry is PAGES:
        assert answer.status_code == 303
        wait_for(client, answer.headers["Location"].rsplit("/", 1)[-1])
    elif entry is API:
        assert answer.status_code == 202 and answer.json["prompt"] == "빨간[31m 원"
        wait_for(client, answer.json["id"])
    else:
        assert answer.status_code == 200 and json.loads(answer.json["info"])["prompt"] == "빨간[31m 원"
    record = client.get("/api/gallery").json[0]
    assert record["prompt"] == "빨간[31m 원"
    assert record["negative_prompt"] == ("" if entry is OPENAI else "a b")


HOSTILE = [
    [1, 2],
    {"a": {"b": 1}},
    "9" * 100_000,
    "\ud800",
    float("nan"),
    float("inf"),
    -(10**30),
    True,
    "",
    "data:",
    "data:image/png;base64",
    "1e999",
    "9" * 5000 + "x64",  # a size of 5,000 digits
]


def png_b64() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


FIELDS = {
    "/api/txt2img": ["prompt", "negative_prompt", "seed", "steps", "guidance", "size", "num_images", "refiner",
                     "refiner_strength"],
    "/sdapi/v1/txt2img": ["prompt", "negative_prompt", "seed", "steps", "cfg_scale", "width", "height", "batch_size",
                          "n_iter", "sampler_name", "scheduler", "refiner_checkpoint", "refiner_switch_at",
                          "send_images", "override_settings", "styles", "enable_hr"],
    "/sdapi/v1/img2img": ["init_images", "denoising_strength", "resize_mode", "width"],
    "/sdapi/v1/options": ["sd_model_checkpoint"],
    "/v1/images/generations": ["prompt", "n", "size", "response_format", "stream", "model"],
}  # fmt: skip


@pytest.mark.parametrize("path", FIELDS)
def test_no_malformed_field_of_any_api_is_a_500(closed_app, path):
    """Every field of every API, with values no client should send: a 4xx with a reason (or, for what is valid
    after all, the closed queue's 503), never a 500."""
    client = closed_app.test_client()
    base = {"prompt": "빨간 원", "steps": 1}
    if path == "/sdapi/v1/img2img":
        base["init_images"] = [png_b64()]
    wrong = []
    for field in FIELDS[path]:
        for value in HOSTILE + [{"sd_model_checkpoint": value} for value in HOSTILE[:2]]:
            if path.endswith("img2img") and field == "init_images":
                value = [value]
            body = json.dumps(base | {field: value})  # NaN and Infinity as Python's json writes them
            answer = client.post(path, data=body, content_type="application/json")
            if answer.status_code >= 500 and answer.status_code != 503 or not answer.is_json:
                wrong.append(f"{field}={str(value)[:40]!r}: {answer.status_code} {answer.get_data(as_text=True)[:200]}")
    assert wrong == []


def test_sdapi_init_images_without_data_is_a_422_with_the_reason(closed_app):
    client = closed_app.test_client()
    for value in ("data:image/png;base64", "data:", "data:image/png;base64,"):
        answer = client.post("/sdapi/v1/img2img", json={"prompt": "원", "init_images": [value]})
        assert answer.status_code == 422, answer.json
        assert answer.json["detail"].startswith("init_images[0]:")
