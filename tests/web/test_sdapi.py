"""The AUTOMATIC1111 API (/sdapi/v1) driven by the real `webuiapi` client, and Open WebUI's exact request sequence,
against `python -m demo` on loopback."""

from __future__ import annotations

import base64
import io
import json
import threading
import time

import pytest
import requests
import webuiapi
from PIL import Image
from requests.adapters import HTTPAdapter

from demo.generation.images import read_parameters

# Each test drives `python -m demo` served in a subprocess (two of them, a few seconds each to start); the
# in-process tests in test_sdapi_clients.py cover the same endpoints in the inner loop.
pytestmark = pytest.mark.slow

OTHER_PROMPT = "검은 배경 가운데 노란 세모"


class FromAddress(HTTPAdapter):
    """Connect from another loopback address: to the server, another machine."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


def client(url: str, key: str | None = None, address: str | None = None) -> webuiapi.WebUIApi:
    api = webuiapi.WebUIApi(baseurl=f"{url}/sdapi/v1", username="webuiapi" if key else None, password=key)
    if address:
        api.session.mount("http://", FromAddress(address))
    return api


def test_txt2img_korean_prompt_comes_back_in_the_png(demo_server, prompt):
    result = client(demo_server).txt2img(
        prompt=prompt, negative_prompt="흐릿한", seed=7, steps=3, width=64, height=64, batch_size=2, cfg_scale=5
    )
    assert len(result.images) == 2 and result.info["all_seeds"] == [7, 8]
    for image, seed in zip(result.images, (7, 8), strict=True):
        parameters = read_parameters(image)
        assert image.size == (64, 64) and parameters["prompt"] == prompt and parameters["seed"] == seed
        assert parameters["negative_prompt"] == "흐릿한" and parameters["steps"] == 3
    assert result.info["infotexts"][0].startswith(f"{prompt}\nNegative prompt: 흐릿한\nSteps: 3, Sampler: DPM++ 2M")
    # webuiapi asks for its default sampler, "Euler a", and 512x512: both named in info, never silently dropped
    assert "sampler 'Euler a' is not available: DPM++ 2M ran" in result.info["notes"]
    assert result.parameters["prompt"] == prompt


def test_txt2img_names_the_size_and_fields_it_cannot_honour(demo_server, prompt):
    result = client(demo_server).txt2img(
        prompt=prompt,
        seed=1,
        steps=2,
        width=512,
        height=768,
        enable_hr=True,
        sampler_name="DPM++ 2M",
        override_settings={"CLIP_stop_at_last_layers": 2},
    )
    assert result.image.size == (64, 64)
    assert result.info["notes"] == [
        "enable_hr=True is not supported here and was ignored",
        "512x768 is not a size this model makes (64x64): it made 64x64",
        "override_settings ignored: CLIP_stop_at_last_layers",
    ]


def test_img2img_round_trips_with_and_without_a_data_prefix(demo_server, prompt):
    api = client(demo_server)
    start = api.txt2img(prompt=prompt, seed=3, steps=3, width=64, height=64).image
    result = api.img2img(
        images=[start], prompt=OTHER_PROMPT, seed=4, steps=4, denoising_strength=0.5, width=64, height=64
    )
    parameters = read_parameters(result.image)
    assert parameters["prompt"] == OTHER_PROMPT and parameters["mode"] == "img2img" and parameters["strength"] == 0.5
    assert result.info["denoising_strength"] == 0.5 and result.parameters["init_images"] is None
    fields = {"prompt": OTHER_PROMPT, "seed": 4, "steps": 4, "denoising_strength": 0.5, "cfg_scale": 7}  # as webuiapi's
    raw = api.custom_post("img2img", fields | {"init_images": [webuiapi.raw_b64_img(start)]}, baseurl=True)
    assert raw.image.tobytes() == result.image.tobytes()  # same image, seed and strength: the same result


def _unprocessable(raised: pytest.ExceptionInfo) -> str:
    """webuiapi raises RuntimeError(status, body) for any answer but 200: the status and A1111's error detail."""
    status, body = raised.value.args
    error = json.loads(body)
    assert status == 422 and error["error"] == "Unprocessable Entity" and error["errors"] == error["detail"]
    return error["detail"]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"prompt": ""}, "the prompt is empty"),
        ({"steps": 1000}, "steps must be between 1 and 100"),
        ({"batch_size": 3, "n_iter": 2}, "batch_size × n_iter must be between 1 and 4"),
        ({"batch_size": 0}, "batch_size × n_iter must be between 1 and 4"),
        ({"cfg_scale": 99}, "cfg_scale must be between"),
        ({"seed": -2}, "seed must be between"),
    ],
)
def test_bad_input_raises_webuiapis_usual_error(demo_server, prompt, fields, reason):
    with pytest.raises(RuntimeError) as raised:
        client(demo_server).txt2img(**{"prompt": prompt, "steps": 2} | fields)
    assert reason in _unprocessable(raised)


@pytest.mark.parametrize(
    ("endpoint", "fields", "reason"),
    [
        ("img2img", {"init_images": ["bm90IGFuIGltYWdl"]}, "init_images[0]: the file is not a readable image"),
        ("img2img", {"init_images": []}, "init_images must be a list holding a base64 image"),
        ("img2img", {"init_images": ["data:image/png;base64,AAA"]}, "init_images[0]: not valid base64"),
        ("img2img", {"init_images": ["AAAA"], "resize_mode": 7}, "resize_mode must be 0, 1, 2 or 3"),
        ("txt2img", {"steps": "many"}, "steps must be a whole number"),
        ("txt2img", {"refiner_checkpoint": "sdxl", "refiner_switch_at": 1}, "refiner_switch_at must be"),
    ],
)
def test_bad_bodies_raise_webuiapis_usual_error(demo_server, prompt, endpoint, fields, reason):
    with pytest.raises(RuntimeError) as raised:
        client(demo_server).custom_post(endpoint, {"prompt": prompt} | fields, baseurl=True)
    assert reason in _unprocessable(raised)


def test_model_lists_and_options_answer_like_a1111(demo_server):
    api = client(demo_server)
    (model,) = api.get_sd_models()
    assert set(model) >= {"title", "model_name", "hash", "sha256", "filename", "config"}
    assert model["model_name"] == "embedded" and api.get_options()["sd_model_checkpoint"] == model["title"]
    assert api.set_options({"sd_model_checkpoint": model["title"]}) is None
    assert [s["name"] for s in api.get_samplers()] == ["DPM++ 2M"]
    assert [s["name"] for s in api.get_schedulers()] == ["automatic"]
    latent_modes = api.session.get(f"{demo_server}/sdapi/v1/latent-upscale-modes").json()
    assert api.get_upscalers() == api.get_sd_vae() == latent_modes == []
    assert api.get_progress()["state"]["job_count"] == 0 and api.get_progress()["progress"] == 0


def _start(api: webuiapi.WebUIApi, prompt: str, steps: int):
    """A long txt2img in a thread (the most steps allowed: two HTTP calls take a fraction of it); returns once
    its job runs (this client's progress says so)."""
    outcome = {}

    def run() -> None:
        outcome["result"] = api.txt2img(prompt=prompt, seed=2, steps=steps)

    thread = threading.Thread(target=run)
    thread.start()
    while api.get_progress()["state"]["sampling_step"] == 0:
        assert thread.is_alive(), "the generation ended before it was seen running"
        time.sleep(0.02)  # the poll interval
    return thread, outcome


@pytest.mark.parametrize("server", ["demo_server", "keyed_demo_server"])
def test_interrupt_from_another_client_leaves_the_job_running(request, server, prompt, api_keys):
    url = request.getfixturevalue(server)
    first = client(url, key=api_keys[0] if server == "keyed_demo_server" else None)
    other = client(url, key=api_keys[1]) if server == "keyed_demo_server" else client(url, address="127.0.0.2")
    thread, outcome = _start(first, prompt, steps=100)
    assert other.get_progress()["state"]["job_count"] == 0  # the other client sees nothing of it
    assert other.interrupt() == {}
    assert first.get_progress()["state"]["job_count"] == 1  # still running
    thread.join(timeout=120)
    result = outcome["result"]
    assert len(result.images) == 1 and result.info["interrupted"] is False
    assert first.get_progress()["state"]["interrupted"] is False


def test_interrupt_stops_the_clients_own_job(demo_server, prompt):
    api = client(demo_server)
    thread, outcome = _start(api, prompt, steps=100)
    assert api.interrupt() == {}
    thread.join(timeout=120)
    result = outcome["result"]
    assert result.images == [] and result.info["interrupted"] is True
    assert api.get_progress()["state"]["interrupted"] is True and api.get_progress()["state"]["job_count"] == 0


def test_keys_are_required_when_set(keyed_demo_server, prompt, api_keys):
    with pytest.raises(RuntimeError) as raised:
        client(keyed_demo_server).txt2img(prompt=prompt, steps=2)
    assert raised.value.args[0] == 401
    with pytest.raises(RuntimeError) as raised:
        client(keyed_demo_server, key="not-a-key").txt2img(prompt=prompt, steps=2)
    assert raised.value.args[0] == 401
    result = client(keyed_demo_server, key=api_keys[1]).txt2img(prompt=prompt, seed=1, steps=2)
    assert read_parameters(result.image)["prompt"] == prompt
    bearer = requests.get(f"{keyed_demo_server}/sdapi/v1/options", headers={"Authorization": f"Bearer {api_keys[0]}"})
    assert bearer.status_code == 200


def _basic(auth: str) -> str:
    """Open WebUI's header: `Basic ` + base64 of its "API auth" setting, which is empty by default."""
    return "Basic " + base64.b64encode(auth.encode()).decode()


@pytest.mark.parametrize("server", ["demo_server", "keyed_demo_server"])
def test_open_webui_request_sequence(request, server, prompt, api_keys):
    """What Open WebUI sends when its admin saves the A1111 settings, lists models, and a user generates; its "API
    auth" setting is empty by default, and `user:KEY` for a server with keys."""
    url = request.getfixturevalue(server)
    headers = {"authorization": _basic(f"openwebui:{api_keys[0]}" if server == "keyed_demo_server" else "")}
    assert requests.get(f"{url}/sdapi/v1/options", headers=headers).status_code == 200  # "verify URL"
    listed = requests.get(f"{url}/sdapi/v1/sd-models", headers=headers).json()
    models = [{"id": m["title"], "name": m["model_name"]} for m in listed]
    options = requests.get(f"{url}/sdapi/v1/options", headers=headers).json()  # the current model
    assert options["sd_model_checkpoint"] == models[0]["id"]
    for model in ("", models[0]["id"]):  # set_image_model: before a model is picked, and with the picked one
        chosen = options | {"sd_model_checkpoint": model}
        requests.post(f"{url}/sdapi/v1/options", json=chosen, headers=headers).raise_for_status()
    options = requests.get(f"{url}/sdapi/v1/options", headers=headers).json()  # before every generation
    data = {"prompt": prompt, "batch_size": 1, "width": 512, "height": 512, "steps": 3, "negative_prompt": ""}
    res = requests.post(f"{url}/sdapi/v1/txt2img", json=data, headers=headers).json()
    (image,) = res["images"]
    assert read_parameters(Image.open(io.BytesIO(base64.b64decode(image))))["prompt"] == prompt
