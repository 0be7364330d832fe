"""/sdapi/v1 and /v1 in-process (Flask's test client): who a client is, per-client interrupt with the worker held
at a known point, and how A1111 fields map onto our requests."""

from __future__ import annotations

import base64
import io
import json
import threading
import time

import pytest
from PIL import Image

from demo.generation.images import read_parameters

KEYS = ["alpha-key", "beta-key"]


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def from_address(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def png_of(answer) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(answer.json["images"][0])))


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (f"Bearer {KEYS[0]}", 200),
        (basic(f"anyone:{KEYS[1]}"), 200),
        (basic(KEYS[0]), 200),  # SillyTavern's auth field holding just the key
        ("Basic ", 401),  # Open WebUI's default: no key
        ("Basic not-base64!", 401),
        ("Bearer wrong-key", 401),
        (None, 401),
    ],
)
def test_with_keys_set_only_a_known_key_gets_in(make_app, authorization, status):
    client = make_app(API_KEYS=KEYS).test_client()
    headers = {"Authorization": authorization} if authorization else {}
    sdapi, openai = (
        client.get("/sdapi/v1/options", headers=headers),
        client.post("/v1/images/generations", headers=headers, json={}),
    )
    assert sdapi.status_code == status
    if status == 401:
        assert sdapi.json["detail"].startswith("a valid API key is required") and "WWW-Authenticate" in sdapi.headers
        assert openai.status_code == 401 and openai.json["error"]["code"] == "invalid_api_key"
        assert openai.json["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("authorization", ["Basic ", "Basic", basic(":"), "Bearer sk-anything", None])
def test_without_keys_any_authorization_is_fine(client, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    assert client.get("/sdapi/v1/options", headers=headers).status_code == 200


def _start(client, prompt: str) -> tuple[threading.Thread, dict]:
    """A txt2img call in a thread; returns once its job holds the (held) worker."""
    answers = {}

    def call() -> None:
        answers["answer"] = client.post("/sdapi/v1/txt2img", json={"prompt": prompt, "seed": 1, "steps": 2})

    thread = threading.Thread(target=call)
    thread.start()
    while not client.get("/sdapi/v1/progress").json["state"]["job"]:
        assert thread.is_alive()
        time.sleep(0.01)  # the poll interval
    return thread, answers


@pytest.mark.parametrize("other", ["address", "key"])
def test_another_clients_interrupt_leaves_the_job_running(make_app, held, prompt, other):
    app = make_app(API_KEYS=KEYS) if other == "key" else make_app()
    mine, theirs = app.test_client(), from_address(app, "127.0.0.2")
    if other == "key":
        mine.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {KEYS[0]}"
        theirs = app.test_client()
        theirs.environ_base["HTTP_AUTHORIZATION"] = basic(f"bot:{KEYS[1]}")
    with held():
        thread, answers = _start(mine, prompt)
        progress = theirs.get("/sdapi/v1/progress").json
        assert progress["state"]["job_count"] == 0 and progress["textinfo"] is None
        assert theirs.post("/sdapi/v1/interrupt").json == {}
        assert mine.get("/sdapi/v1/progress").json["textinfo"] == "step 0/2"
    thread.join()
    answer = answers["answer"]
    assert answer.status_code == 200 and len(answer.json["images"]) == 1
    assert json.loads(answer.json["info"])["interrupted"] is False


def test_a_clients_own_interrupt_stops_its_job(app, held, prompt):
    client = app.test_client()
    with held():
        thread, answers = _start(client, prompt)
        assert client.post("/sdapi/v1/interrupt").json == {}
    thread.join()
    answer = answers["answer"]
    info = json.loads(answer.json["info"])
    assert answer.status_code == 200 and answer.json["images"] == [] and info["interrupted"] is True
    assert info["notes"][-1] == "interrupted by this client"
    state = client.get("/sdapi/v1/progress").json["state"]
    assert state["interrupted"] is True and state["job_count"] == 0


def test_a_waiting_job_shows_its_place_and_is_interrupted_before_it_runs(app, held, prompt):
    mine, theirs = app.test_client(), from_address(app, "127.0.0.2")
    with held():
        running, _ = _start(mine, prompt)
        answers = {}
        waiting = threading.Thread(
            target=lambda: answers.update(answer=theirs.post("/sdapi/v1/txt2img", json={"prompt": prompt, "steps": 2}))
        )
        waiting.start()
        while theirs.get("/sdapi/v1/progress").json["state"]["job_count"] == 0:
            time.sleep(0.01)  # the poll interval
        progress = theirs.get("/sdapi/v1/progress").json
        assert progress["textinfo"] == "waiting: number 1 in the queue" and progress["progress"] == 0
        assert progress["state"]["job"] == "" and progress["eta_relative"] == 0
        assert theirs.post("/sdapi/v1/interrupt").json == {}
        waiting.join()
    running.join()
    assert json.loads(answers["answer"].json["info"])["interrupted"] is True and answers["answer"].json["images"] == []


def test_refiner_fields_map_onto_our_refiner(client, prompt):
    body = {
        "prompt": prompt,
        "seed": 2,
        "steps": 4,
        "refiner_checkpoint": "sd_xl_refiner_1.0",
        "refiner_switch_at": 0.75,
    }
    answer = client.post("/sdapi/v1/txt2img", json=body)
    parameters, info = read_parameters(png_of(answer)), json.loads(answer.json["info"])
    assert parameters["refiner"] is True and parameters["refiner_strength"] == pytest.approx(0.25)
    assert info["refiner"] is True and info["refiner_switch_at"] == pytest.approx(0.75)
    assert "refiner_checkpoint 'sd_xl_refiner_1.0': this server's refiner ran" in info["notes"]
    assert "Refiner switch at: 0.75" in info["infotexts"][0]


def test_resize_modes(client, prompt):
    """0 stretches a wide image to the square, 1 crops its middle (so they differ); 3 runs as 0, 2 as 1, noted."""
    wide = Image.new("RGB", (128, 64), (0, 0, 255))
    wide.paste((255, 0, 0), (0, 0, 32, 64))  # red only in the left quarter, which the crop cuts off
    buffer = io.BytesIO()
    wide.save(buffer, format="PNG")
    body = {
        "prompt": prompt,
        "seed": 5,
        "steps": 4,
        "denoising_strength": 0.5,
        "init_images": [base64.b64encode(buffer.getvalue()).decode()],
    }
    answers = {mode: client.post("/sdapi/v1/img2img", json=body | {"resize_mode": mode}) for mode in range(4)}
    notes = {mode: json.loads(answer.json["info"])["notes"] for mode, answer in answers.items()}
    assert notes[0] == notes[1] == []
    assert notes[2] == ["resize_mode 2 (resize and fill) is not supported here: crop and resize ran"]
    assert notes[3] == ["resize_mode 3 (just resize (latent upscale)) is not supported here: just resize ran"]
    stretched, cropped = (png_of(answers[mode]).tobytes() for mode in (0, 1))
    assert stretched != cropped
    assert png_of(answers[3]).tobytes() == stretched and png_of(answers[2]).tobytes() == cropped


def test_fields_it_cannot_honour_are_named_and_send_images_false_sends_none(client, prompt):
    body = {
        "prompt": prompt,
        "steps": 2,
        "restore_faces": True,
        "styles": ["anime"],
        "send_images": False,
        "negative_prompt": None,
        "seed": None,
        "script_name": None,  # null is unset, as in A1111
        "override_settings": {"sd_model_checkpoint": "v1-5-pruned.safetensors"},
        "some_future_field": 1,
    }
    answer = client.post("/sdapi/v1/txt2img", json=body)
    info = json.loads(answer.json["info"])
    assert answer.status_code == 200 and answer.json["images"] == [] and len(info["all_seeds"]) == 1
    assert info["notes"][:2] == [
        "restore_faces=True is not supported here and was ignored",
        "styles=['anime'] is not supported here and was ignored",
    ]
    assert info["notes"][2].startswith("sd_model_checkpoint 'v1-5-pruned.safetensors' is not loaded here")


def test_options_post_accepts_our_model_and_refuses_another(client):
    options = client.get("/sdapi/v1/options").json
    model = client.get("/sdapi/v1/sd-models").json[0]
    for name in (model["title"], model["model_name"], model["hash"], ""):
        assert client.post("/sdapi/v1/options", json=options | {"sd_model_checkpoint": name}).status_code == 200
    refused = client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "v1-5-pruned.safetensors"})
    assert refused.status_code == 422 and "not found" in refused.json["detail"]


def test_unknown_paths_answer_in_each_clients_shape(client):
    sdapi, openai = client.get("/sdapi/v1/loras"), client.get("/v1/models")
    assert sdapi.status_code == openai.status_code == 404
    assert sdapi.json["error"] == "Not Found" and openai.json["error"]["type"] == "not_found_error"


def test_a_full_queue_is_503_in_each_clients_shape(make_app, prompt):
    client = make_app(QUEUE_SIZE=0).test_client()
    sdapi = client.post("/sdapi/v1/txt2img", json={"prompt": prompt})
    openai = client.post("/v1/images/generations", json={"prompt": prompt, "size": "auto"})
    assert sdapi.status_code == openai.status_code == 503
    assert "queue is full" in sdapi.json["detail"] and openai.json["error"]["type"] == "server_error"


@pytest.mark.parametrize("size", [{"width": 0}, {"height": 0}, {"width": 0, "height": 0}, {"width": -64}])
def test_a_zero_or_negative_size_is_refused_in_a1111s_shape(client, prompt, size):
    """A width of 0 with no height once reached arithmetic on None (a 500); every such size is A1111's 422."""
    answer = client.post("/sdapi/v1/txt2img", json={"prompt": prompt, "steps": 2} | size)
    assert answer.status_code == 422
    assert answer.json["detail"] == "width and height must be positive"
