"""The AUTOMATIC1111 web UI API subset (`/sdapi/v1`) that Open WebUI, SillyTavern and `webuiapi` speak.

A generation call blocks until its job is done, as A1111's does. Unknown fields are ignored; fields this server
cannot honour are named in the answer's `info["notes"]`. Unlike A1111, progress and interrupt are per client
(see `demo.views.clients`): one client's `POST /interrupt` never stops another's job. Errors answer A1111's shape,
`{"error", "detail", "body", "errors"}`, with 422 for bad input.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import abort, current_app, g, jsonify, request
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import HfHubHTTPError
from PIL import Image
from werkzeug.exceptions import HTTPException

from demo.generation.config import resolve
from demo.generation.errors import N_
from demo.generation.images import ImageError
from demo.generation.request import GenerationError, Request, RequestError, parse_request, read_number, validated
from demo.jobs.model import Job, JobState
from demo.web.extensions import get_services
from demo.web.views.clients import client_blueprint, gallery_records, generate, square_size, stored_png
from demo.web.views.errors import reason, refusal
from demo.web.views.forms import decode


def _error(error: HTTPException):
    message = reason(error)
    response = jsonify({"error": error.name, "detail": message, "body": "", "errors": message})
    response.status_code = error.code or 500
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="sdapi"'
    return response


bp = client_blueprint("sdapi", "/sdapi/v1", _error)

SAMPLERS = {  # diffusers scheduler class -> A1111 sampler name
    "DDIMScheduler": "DDIM",
    "DPMSolverMultistepScheduler": "DPM++ 2M",
    "EulerAncestralDiscreteScheduler": "Euler a",
    "EulerDiscreteScheduler": "Euler",
    "HeunDiscreteScheduler": "Heun",
    "KDPM2AncestralDiscreteScheduler": "DPM2 a",
    "KDPM2DiscreteScheduler": "DPM2",
    "LCMScheduler": "LCM",
    "LMSDiscreteScheduler": "LMS",
    "PNDMScheduler": "PLMS",
    "UniPCMultistepScheduler": "UniPC",
}
SCHEDULES = (("use_karras_sigmas", "Karras"), ("use_exponential_sigmas", "Exponential"), ("use_beta_sigmas", "Beta"))
UNHONOURED = {  # A1111 fields this server cannot honour, with the values that ask for nothing
    "enable_hr": (False,),
    "restore_faces": (False,),
    "tiling": (False,),
    "styles": ([],),
    "subseed_strength": (0,),
    "script_name": ("",),
    "script_args": ([],),
    "alwayson_scripts": ({},),
    "mask": ("",),
}
RESIZE_MODES = {0: "just resize", 1: "crop and resize", 2: "resize and fill", 3: "just resize (latent upscale)"}
LABELS = {"guidance": "cfg_scale", "strength": "denoising_strength", "num_images": "batch_size × n_iter"}
DEFAULT_SWITCH_AT = 0.8  # A1111's refiner_switch_at when a refiner checkpoint is named without it


@dataclass(frozen=True)
class Checkpoint:
    """The loaded generator config as A1111 lists a model: one per config, since a config is what we run."""

    title: str
    model_name: str
    sha256: str
    filename: str
    config: str

    @property
    def names(self) -> set[str]:
        """Everything A1111 accepts as `sd_model_checkpoint` for it."""
        return {self.title, self.model_name, self.sha256, self.sha256[:10]}


def checkpoint() -> Checkpoint:
    config = get_services().config
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(config), sort_keys=True).encode()).hexdigest()
    source = str(current_app.config["GENERATOR_CONFIG"])
    return Checkpoint(f"{config.name} [{digest[:10]}]", config.name, digest, config.base, source)


@functools.cache
def scheduler_config(base: str) -> dict[str, Any]:
    """The base pipeline's `scheduler/scheduler_config.json`, read from disk (a Redis front loads no model)."""
    local = Path(resolve(base))
    try:
        path = local / "scheduler" / "scheduler_config.json"
        if not local.is_dir():
            path = Path(hf_hub_download(base, "scheduler_config.json", subfolder="scheduler"))
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, HfHubHTTPError) as error:
        current_app.logger.warning("cannot read the scheduler config of %s: %s", base, error)
        return {}


def sampler() -> tuple[str, str, str]:
    """(A1111 sampler name, diffusers class, schedule type) of the base pipeline's scheduler: what actually runs."""
    settings = scheduler_config(get_services().config.base)
    cls = settings.get("_class_name", "unknown")
    name = SAMPLERS.get(cls, cls)
    if cls == "DPMSolverMultistepScheduler" and settings.get("algorithm_type") == "sde-dpmsolver++":
        name = "DPM++ 2M SDE"
    schedule = next((label for flag, label in SCHEDULES if settings.get(flag)), "Automatic")
    return name, cls, schedule


def _body() -> dict:
    fields = request.get_json(silent=True)
    if not isinstance(fields, dict):
        abort(422, "send a JSON object with Content-Type: application/json")
    return fields


def _init_image(fields: dict) -> bytes:
    """The bytes of the first of `init_images` (base64, with or without a `data:image/…;base64,` prefix)."""
    images = fields.get("init_images")
    if not isinstance(images, list) or not images or not isinstance(images[0], str):
        raise RequestError(
            N_("init_images must be a list holding a base64 image"), code="init_images_missing", field="init_images"
        )
    encoded, data_url = images[0], images[0].startswith("data:")
    if data_url:
        _, comma, encoded = encoded.partition(",")
    try:
        if data_url and not comma:
            raise ValueError("a data: URL without its data")
        return base64.b64decode(encoded)
    except ValueError as error:  # binascii.Error, non-ASCII text
        raise RequestError(
            N_("init_images[0]: not valid base64"), code="init_images_not_base64", field="init_images"
        ) from error


def _decode_init_image(data: bytes, side: int, stretch: bool) -> Image.Image:
    try:
        return decode(data, side, stretch)
    except ImageError as error:
        raise RequestError(
            N_("init_images[0]: %(reason)s"), code=error.code, params={"reason": str(error)}, field="init_images"
        ) from error


def _picked(wanted: Any, *available: str) -> bool:
    return wanted in (None, "") or str(wanted).lower() in {name.lower() for name in available}


def _generation(fields: dict, img2img: bool) -> tuple[Request, list[str]]:
    """Our request for an A1111 txt2img/img2img body, and a note for each field it cannot honour: A1111's names
    mapped onto the one request parser (`cfg_scale` is our guidance, `denoising_strength` our strength)."""
    config = get_services().config
    notes = [
        f"{name}={fields[name]!r} is not supported here and was ignored"
        for name, neutral in UNHONOURED.items()
        if fields.get(name) not in (None, *neutral)
    ]
    size, size_notes = square_size(read_number(fields, "width"), read_number(fields, "height"), config)
    notes += size_notes
    batch_size, n_iter = (read_number(fields, name) for name in ("batch_size", "n_iter"))
    batch_size, n_iter = 1 if batch_size is None else batch_size, 1 if n_iter is None else n_iter
    if batch_size < 1 or n_iter < 1 or batch_size * n_iter > config.limits.max_images:
        raise RequestError(
            N_("batch_size × n_iter must be between 1 and %(limit)d"),
            code="num_images_out_of_range",
            params={"limit": config.limits.max_images},
            field="batch_size",
        )
    seed = read_number(fields, "seed")
    refiner, refiner_strength = None, None
    if fields.get("refiner_checkpoint") not in (None, "", "None"):
        switch_at = read_number(fields, "refiner_switch_at", float)
        switch_at = DEFAULT_SWITCH_AT if switch_at is None else switch_at
        if not 0 <= switch_at < 1:
            raise RequestError(
                N_("refiner_switch_at must be at least 0 and below 1"),
                code="refiner_switch_at_out_of_range",
                field="refiner_switch_at",
            )
        refiner, refiner_strength = True, 1 - switch_at
        if fields["refiner_checkpoint"] != config.refiner:
            notes.append(f"refiner_checkpoint {fields['refiner_checkpoint']!r}: this server's refiner ran")
    name, cls, schedule = sampler()
    wanted = fields.get("sampler_name") or fields.get("sampler_index")
    if not _picked(wanted, name, cls):
        notes.append(f"sampler {wanted!r} is not available: {name} ran")
    if not _picked(fields.get("scheduler"), schedule, "automatic"):
        notes.append(f"scheduler {fields['scheduler']!r} is not available: {schedule} ran")
    notes += _override_notes(fields.get("override_settings"))
    image = None
    if img2img:
        mode = read_number(fields, "resize_mode") or 0
        if mode not in RESIZE_MODES:
            raise RequestError(N_("resize_mode must be 0, 1, 2 or 3"), code="resize_mode_unknown", field="resize_mode")
        data = _init_image(fields)
        image = functools.partial(_decode_init_image, data, stretch=mode in (0, 3))
        if mode in (2, 3):
            ran = RESIZE_MODES[1 if mode == 2 else 0]
            notes.append(f"resize_mode {mode} ({RESIZE_MODES[mode]}) is not supported here: {ran} ran")
        if len(fields["init_images"]) > 1:
            notes.append("only the first of init_images was used")
    ours = {
        "prompt": fields.get("prompt"),
        "negative_prompt": fields.get("negative_prompt"),
        "seed": None if seed == -1 else seed,
        "steps": fields.get("steps"),
        "guidance": fields.get("cfg_scale"),
        "size": size,
        "num_images": batch_size * n_iter,
        "refiner": refiner,
        "refiner_strength": refiner_strength,
        "strength": fields.get("denoising_strength"),
    }
    return parse_request(ours, config, labels=LABELS, image=image), notes


def _model_name(fields: dict, where: str) -> str | None:
    """`sd_model_checkpoint` of `fields`, which must be text when given."""
    model = fields.get("sd_model_checkpoint")
    if model is not None and not isinstance(model, str):
        raise RequestError(
            N_("%(field)s must be text"), code="not_text", params={"field": where}, field="sd_model_checkpoint"
        )
    return model


def _override_notes(overrides: Any) -> list[str]:
    if not overrides:
        return []
    if not isinstance(overrides, dict):
        raise RequestError(
            N_("override_settings must be an object"), code="override_settings_not_object", field="override_settings"
        )
    model = _model_name(overrides, "override_settings.sd_model_checkpoint")
    notes = []
    if model not in (None, "") and model not in checkpoint().names:
        notes.append(f"sd_model_checkpoint {model!r} is not loaded here: {checkpoint().title} ran")
    if ignored := sorted(set(overrides) - {"sd_model_checkpoint"}):
        notes.append(f"override_settings ignored: {', '.join(ignored)}")
    return notes


def _infotext(generation: Request, seed: int, img2img: bool) -> str:
    """A1111's text form of the parameters, which its clients show and parse."""
    name, _, schedule = sampler()
    model = checkpoint()
    parameters = {
        "Steps": generation.steps,
        "Sampler": name,
        "Schedule type": schedule,
        "CFG scale": generation.guidance,
        "Seed": seed,
        "Size": f"{generation.size}x{generation.size}",
        "Model hash": model.sha256[:10],
        "Model": model.model_name,
    }
    if img2img:
        parameters["Denoising strength"] = generation.strength
    if generation.refiner:
        refiner = get_services().config.refiner
        parameters |= {"Refiner": refiner, "Refiner switch at": 1 - validated(generation.refiner_strength)}
    negative = [f"Negative prompt: {generation.negative_prompt}"] if generation.negative_prompt else []
    return "\n".join([generation.prompt, *negative, ", ".join(f"{k}: {v}" for k, v in parameters.items())])


def _run(img2img: bool):
    fields = _body()
    try:
        generation, notes = _generation({k: v for k, v in fields.items() if v is not None}, img2img)  # null: unset
    except GenerationError as error:
        raise refusal(422, error) from error
    job = generate("img2img" if img2img else "txt2img", generation)
    interrupted = job.cancelled
    if job.state is JobState.FAILED:
        abort(500, job.error)
    records = [] if interrupted else gallery_records(job)
    seeds = job.output.seeds if job.output else []
    name, _, schedule = sampler()
    model = checkpoint()
    info = {
        "prompt": generation.prompt,
        "all_prompts": [generation.prompt] * len(seeds),
        "negative_prompt": generation.negative_prompt,
        "all_negative_prompts": [generation.negative_prompt] * len(seeds),
        "seed": seeds[0] if seeds else generation.seed,
        "all_seeds": seeds,
        "width": generation.size,
        "height": generation.size,
        "sampler_name": name,
        "scheduler": schedule,
        "cfg_scale": generation.guidance,
        "steps": generation.steps,
        "batch_size": generation.num_images,
        "denoising_strength": generation.strength if img2img else None,
        "refiner": generation.refiner,
        "refiner_switch_at": 1 - validated(generation.refiner_strength) if generation.refiner else None,
        "sd_model_name": model.model_name,
        "sd_model_hash": model.sha256[:10],
        "index_of_first_image": 0,
        "infotexts": [_infotext(generation, seed, img2img) for seed in seeds],
        "interrupted": interrupted,
        "notes": notes + (job.output.notes if job.output else []) + (["interrupted by this client"] * interrupted),
    }
    send = fields.get("send_images", True) is not False
    parameters = (fields | {"init_images": None, "mask": None}) if img2img else fields
    images = [stored_png(record) for record in records] if send else []
    return jsonify({"images": images, "parameters": parameters, "info": json.dumps(info, ensure_ascii=False)})


@bp.post("/txt2img")
def txt2img():
    return _run(img2img=False)


@bp.post("/img2img")
def img2img():
    """txt2img's fields plus `init_images` (base64, with or without a data: prefix), `denoising_strength`,
    `resize_mode` (0 just resize, 1 crop and resize; 2 and 3 run as 1 and 0, noted)."""
    return _run(img2img=True)


def _unfinished(jobs: list[Job]) -> list[Job]:
    return [job for job in jobs if not job.finished_or_failed]


@bp.get("/progress")
def progress():
    """This client's generation: the running job's step, and how many of its jobs are running or waiting."""
    s = get_services()
    mine = s.jobs.jobs(g.client)
    waiting = _unfinished(mine)
    running = next((job for job in waiting if job.state is JobState.RUNNING), None)
    done = running.step / running.total_steps if running and running.total_steps else 0.0
    elapsed = time.time() - running.started if running and running.started else 0.0
    if running:
        textinfo = f"step {running.step}/{running.total_steps}"
    elif waiting:
        textinfo = f"waiting: number {s.jobs.position(waiting[-1])} in the queue"
    else:
        textinfo = None
    state = {
        "skipped": False,
        "interrupted": bool(mine) and mine[0].cancelled,
        "job": running.id if running else "",
        "job_count": len(waiting),
        "job_no": 0,
        "sampling_step": running.step if running else 0,
        "sampling_steps": running.total_steps if running else 0,
    }
    eta = elapsed * (1 - done) / done if done else 0.0
    return jsonify({"progress": done, "eta_relative": eta, "state": state, "current_image": None, "textinfo": textinfo})


@bp.post("/interrupt")
def interrupt():
    """Stop this client's running and waiting jobs (a running one at its next step); nobody else's."""
    s = get_services()
    for job in _unfinished(s.jobs.jobs(g.client)):
        s.jobs.cancel(job.id, g.client)
    return jsonify({})


@bp.get("/options")
def options():
    model = checkpoint()
    return jsonify({"sd_model_checkpoint": model.title, "sd_checkpoint_hash": model.sha256, "samples_format": "png"})


@bp.post("/options")
def set_options():
    """Accepted, so clients can "select" the model; the loaded config is the one model, the rest has no effect."""
    try:
        wanted = _model_name(_body(), "sd_model_checkpoint")
    except GenerationError as error:
        raise refusal(422, error) from error
    model = checkpoint()
    if wanted not in (None, "") and wanted not in model.names:
        abort(422, f"model {wanted!r} not found: this server runs {model.title}")
    return jsonify(None)


@bp.get("/sd-models")
def sd_models():
    model = checkpoint()
    return jsonify([dataclasses.asdict(model) | {"hash": model.sha256[:10]}])


@bp.get("/samplers")
def samplers():
    name, cls, _ = sampler()
    return jsonify([{"name": name, "aliases": [cls], "options": {}}])


@bp.get("/schedulers")
def schedulers():
    _, _, schedule = sampler()
    return jsonify(
        [{"name": schedule.lower(), "label": schedule, "aliases": None, "default_rho": -1, "need_inner_model": False}]
    )


@bp.get("/upscalers")
@bp.get("/sd-vae")
@bp.get("/latent-upscale-modes")
def nothing_here():
    """No upscalers, extra VAEs or latent upscale modes: an empty list, which SillyTavern's dropdowns accept."""
    return jsonify([])
