"""The generation pipeline: Korean prompt → ko_clip embeddings → base (SD 1.x, 2.x or XL) → SDXL img2img refiner.

`ImageGenerator` only orchestrates diffusers components: the base pipeline of the checkpoint's family
(`StableDiffusionPipeline` or `StableDiffusionXLPipeline`, from a directory, a hub id or a single `.safetensors`
file, with optional LoRAs), an img2img pipeline built from the same components (`from_pipe`: no second copy of the
weights), the optional refiner `StableDiffusionXLImg2ImgPipeline`, and a prompt encoder whose embeddings replace
the English text encoders through `prompt_embeds`: the Korean student, or (for evaluation) the pipelines' own
English encoders, so both run the same code. Each pipeline's text arguments are assembled from the heads that
imitate the towers it reads (`demo.generation.families`). One lock per generator: concurrent callers wait.

`generate_batch` runs named steps, in diffusers' manner: `check_requests`, `image_seeds`, `encode_prompts`,
`make_generators`, `run_base`, `run_refiner`, then `parameters` for each image's PNG.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import StableDiffusionXLImg2ImgPipeline
from diffusers.utils import logging as diffusers_logging
from PIL import Image

from demo.generation.config import GeneratorConfig, resolve
from demo.generation.families import FAMILIES, Pipeline, TowerRead, family_of
from demo.generation.prompt_encoders import EnglishPromptEncoder, PromptEncoder
from demo.generation.request import (
    Cancelled,
    GenerationError,
    Progress,
    Request,
    Result,
    total_steps,
    validate,
    validated,
)
from ko_clip import KoreanPromptEncoder


def _device(config: GeneratorConfig) -> torch.device:
    if config.device != "auto":
        return torch.device(config.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _dtype(config: GeneratorConfig, device: torch.device) -> torch.dtype:
    if config.dtype != "auto":
        return getattr(torch, config.dtype)
    return torch.float16 if device.type == "cuda" else torch.float32


PROMPT_ENCODERS = ("korean", "english")
ROLES = ("base", "refiner")  # the pipelines a request runs, in order


def is_single_file(location: str) -> bool:
    """A checkpoint shared as one file (`.safetensors`, `.ckpt`), as fine-tunes are, rather than a pipeline layout."""
    return location.endswith((".safetensors", ".ckpt"))


class ImageGenerator:
    """Korean prompts to images with one checkpoint family's diffusers pipelines, loaded once.

    Args:
        config: The models to load (base and its family, text towers, refiner, Korean encoder, LoRAs), where to
            run them (device, dtype, attention, CPU offload, compile), and the requests' defaults and limits.
        prompt_encoder: "korean" (the config's `korean_encoder`, the product) or "english" (the pipelines' own
            CLIP text encoders: the teacher, the reference the Korean encoder is measured against).

    Raises:
        GenerationError: The Korean encoder has no head for the base's text towers, a single-file base has no
            `base_config`, a LoRA cannot be read or has no UNet weights, or xformers was asked for but is missing.
        ValueError: `prompt_encoder` is neither "korean" nor "english".
    """

    def __init__(self, config: GeneratorConfig, prompt_encoder: str = "korean") -> None:
        diffusers_logging.disable_progress_bar()
        self.config = config
        self.device = _device(config)
        self.dtype = _dtype(config, self.device)
        self._lock = threading.Lock()
        self.family = family_of(config.family, resolve(config.base_config or config.base))
        self.reads = {"base": self.family.tower_reads(config.base_towers)}
        if config.refiner:
            self.reads["refiner"] = FAMILIES["sdxl-refiner"].tower_reads(config.refiner_towers)
        self.encoder = self.load_prompt_encoder(prompt_encoder)
        self.heads = {role: self._heads(role, reads) for role, reads in self.reads.items()}
        if self.heads["base"] is None:
            wanted = ", ".join(read.head for read in self.reads["base"])
            raise GenerationError(
                f"the Korean encoder {config.korean_encoder} has no head for the {self.family.name} base's text "
                f"towers ({wanted}); it has {', '.join(self.encoder.targets)}"
            )
        self.notes: list[str] = []  # said on every result: what the loaded models cannot do
        self.base: Pipeline = self._load_base()
        self._load_loras()
        # from_pipe casts every shared module to its own dtype (float32 unless told), the base's too.
        self.img2img: Pipeline = self.family.img2img.from_pipe(self.base, dtype=self.dtype)
        self.refiner: Pipeline | None = None
        if config.refiner:
            keep_english = self.heads["refiner"] is None  # needed for the empty-prompt fallback only
            extra = {} if keep_english else {"text_encoder_2": None}
            load = {"dtype": self.dtype, "variant": config.variant}
            self.refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(resolve(config.refiner), **extra, **load)
        self.pipelines = [p for p in (self.base, self.img2img, self.refiner) if p is not None]
        self._place()

    def load_prompt_encoder(self, name: str) -> PromptEncoder:
        """The Korean student ("korean") or the English text towers it stands in for ("english"), loaded."""
        c = self.config
        if name == "korean":
            return KoreanPromptEncoder.from_pretrained(resolve(c.korean_encoder), self.device, self.dtype)
        if name == "english":
            return EnglishPromptEncoder.from_reads(self.tower_sources(), self.device, self.dtype)
        raise ValueError(f"prompt_encoder must be one of {', '.join(PROMPT_ENCODERS)}, not {name!r}")

    def tower_sources(self) -> list[tuple[str, TowerRead]]:
        """Every text tower the pipelines read, with the pipeline (directory or hub id) that holds it: what the
        English encoder loads, and what a benchmark compares the Korean one against."""
        c = self.config
        locations = {"base": resolve(c.base_config or c.base), "refiner": resolve(c.refiner or "")}
        return [(locations[role], read) for role, reads in self.reads.items() for read in reads]

    def _heads(self, role: str, reads: list[TowerRead]) -> list[str] | None:
        """The encoder heads standing in for `role`'s text towers, in the order the pipeline concatenates them;
        None when the encoder lacks one. Encoders written before heads were keyed by tower name theirs after the
        pipeline role ('base', 'refiner'), which stands for a one-tower pipeline's only tower."""
        targets = self.encoder.targets
        if all(read.head in targets for read in reads):
            return [read.head for read in reads]
        if role in targets and len(reads) == 1:
            return [role]
        return None

    def _load_base(self) -> Pipeline:
        """The family's text-to-image pipeline without its text encoders (the prompt encoder replaces them)."""
        c = self.config
        no_text = dict.fromkeys(self.family.text_encoders)
        pipeline = self.family.text2img
        if not is_single_file(c.base):
            return pipeline.from_pretrained(resolve(c.base), **no_text, dtype=self.dtype, variant=c.variant)
        if not c.base_config:
            raise GenerationError(
                f"the single-file base {c.base} needs `base_config`: its family's pipeline layout (a directory or "
                "hub id, e.g. stabilityai/stable-diffusion-xl-base-1.0), so it loads offline"
            )
        return pipeline.from_single_file(
            resolve(c.base), config=resolve(c.base_config), **no_text, torch_dtype=self.dtype, local_files_only=True
        )

    def _load_loras(self) -> None:
        """Each of the config's LoRAs into the base's UNet (through peft), at its weight.

        A LoRA's text-encoder part changes the English towers, which the Korean encoder replaces: it cannot reach
        the Korean prompts, so it is left out and every result says so.
        """
        names = []
        for number, lora in enumerate(self.config.loras):
            path = resolve(lora.path)
            try:
                state, alphas = self.base.lora_state_dict(path)
            except (OSError, ValueError) as error:
                raise GenerationError(f"cannot read the LoRA {lora.path}: {error}") from error
            unet = {key: value for key, value in state.items() if key.startswith("unet.")}
            if not unet:
                raise GenerationError(f"the LoRA {lora.path} has no UNet weights")
            if len(unet) < len(state):
                self.notes.append(
                    f"the LoRA {Path(lora.path).name} also trained the English text encoder; the Korean encoder "
                    "replaces it, so only its UNet part is applied"
                )
            unet_alphas = {k: v for k, v in (alphas or {}).items() if k.startswith("unet.")} or None
            name = f"lora{number}"
            self.base.load_lora_into_unet(unet, unet_alphas, self.base.unet, adapter_name=name, _pipeline=self.base)
            names.append(name)
        if names:
            self.base.set_adapters(names, adapter_weights=[lora.weight for lora in self.config.loras])

    def _place(self) -> None:
        c = self.config
        for pipe in (self.base, self.refiner):
            if pipe is None:
                continue
            pipe.set_progress_bar_config(disable=True)
            if c.cpu_offload and self.device.type == "cuda":
                pipe.enable_model_cpu_offload(device=self.device)
            else:
                pipe.to(self.device)
            if self._use_xformers():
                pipe.enable_xformers_memory_efficient_attention()
            if c.compile:
                # In place: img2img shares this very module, and the offload hooks wrap its forward, not a copy.
                pipe.unet.compile()
        self.img2img.set_progress_bar_config(disable=True)

    def _use_xformers(self) -> bool:
        wanted = self.config.attention
        available = self.device.type == "cuda" and importlib.util.find_spec("xformers") is not None
        if wanted == "xformers" and not available:
            raise GenerationError("attention: xformers needs a CUDA device and the xformers package")
        return wanted in ("auto", "xformers") and available

    @property
    def attention(self) -> str:
        """The attention implementation the UNets run: "xformers" or "sdpa"."""
        return "xformers" if self._use_xformers() else "sdpa"

    def validate(self, request: Request) -> Request:
        """`request` with this config's defaults filled in; `GenerationError` when it cannot run."""
        return validate(self.config, request)

    def __call__(
        self, request: Request, progress: Progress | None = None, cancel: threading.Event | None = None
    ) -> Result:
        """Generate `request.num_images` images for one request.

        Args:
            request: What to generate; validated here (defaults filled in).
            progress: Called as `progress(step, total)` after every denoising step.
            cancel: When set, generation stops at the next step with `Cancelled`.

        Returns:
            The images with their seeds, PNG parameters, notes and seconds taken.
        """
        return self.generate_batch([request], progress, cancel)

    def generate_batch(
        self, requests: list[Request], progress: Progress | None = None, cancel: threading.Event | None = None
    ) -> Result:
        """Generate several requests that share their settings in one pipeline call per stage.

        Args:
            requests: Requests sharing steps, guidance, size, refiner, strengths and mode (text→image or
                image→image); their prompts, negatives, seeds and uploads may differ.
            progress: Called as `progress(step, total)` after every denoising step of base and refiner.
            cancel: When set, generation stops at the next step with `Cancelled`.

        Returns:
            Every request's images, seeds and parameters, in request order.

        Raises:
            GenerationError: A request is invalid, or the requests do not share their settings.
        """
        requests = self.check_requests(requests)
        request = requests[0]  # the settings they share
        per_image = self.image_seeds(requests)
        seeds = [seed for _, seed in per_image]
        prompts, negatives = [r.prompt for r, _ in per_image], [r.negative_prompt for r, _ in per_image]
        init_images = None if request.init_image is None else [validated(r.init_image) for r, _ in per_image]
        roles = list(ROLES if request.refiner else ROLES[:1])
        callback = self.step_callback(self.total_steps(request), progress, cancel)
        started = time.perf_counter()
        with self._lock, torch.inference_mode():
            text, notes = self.encode_prompts(prompts, negatives, roles)
            images = self.run_base(request, text["base"], self.make_generators(seeds), callback, init_images)
            if request.refiner:
                images = self.run_refiner(request, images, text["refiner"], self.make_generators(seeds), callback)
        assert isinstance(images, list)  # the base hands a tensor only to the refiner, which gives PIL images
        parameters = [self.parameters(r, seed) for r, seed in per_image]
        return Result(images, seeds, parameters, self.notes + notes, time.perf_counter() - started)

    def check_requests(self, requests: list[Request]) -> list[Request]:
        """Validate requests meant for one batch.

        Args:
            requests: The batch, as callers sent it.

        Returns:
            The requests with their defaults filled in.

        Raises:
            GenerationError: A request is invalid, there is none, or they differ in a setting the batch shares.
        """
        requests = [self.validate(r) for r in requests]
        if not requests:
            raise GenerationError("no requests")
        shared = ("steps", "guidance", "size", "refiner", "refiner_strength", "strength")
        if len({(*(getattr(r, k) for k in shared), r.init_image is None) for r in requests}) > 1:
            raise GenerationError(f"requests generated together must share {', '.join(shared)} and the mode")
        return requests

    @staticmethod
    def image_seeds(requests: list[Request]) -> list[tuple[Request, int]]:
        """One entry per image to make: its request and its seed (the request's seed + its index, modulo 2**32)."""
        return [(r, (validated(r.seed) + i) % 2**32) for r in requests for i in range(validated(r.num_images))]

    @staticmethod
    def make_generators(seeds: list[int]) -> list[torch.Generator]:
        """Fresh CPU random generators, one per image: its starting noise depends on its seed only, not on the batch."""
        return [torch.Generator().manual_seed(seed) for seed in seeds]

    @staticmethod
    def step_callback(total: int, progress: Progress | None, cancel: threading.Event | None) -> Callable[..., dict]:
        """The pipelines' `callback_on_step_end`: counts steps across base and refiner for `progress(step, total)`
        and raises `Cancelled` once `cancel` is set."""
        done = 0

        def on_step(pipe, step, timestep, tensors):
            nonlocal done
            done += 1
            if progress:
                progress(min(done, total), total)
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            return tensors

        return on_step

    def encode_prompts(
        self, prompts: list[str], negatives: list[str], roles: list[str]
    ) -> tuple[dict[str, dict], list[str]]:
        """Each pipeline's text arguments, from one encoder pass over every distinct prompt and negative.

        A pipeline that reads several towers (SDXL) gets their heads' token states side by side and the pooled
        embedding of the tower it takes it from; a role whose towers the encoder has no head for gets empty prompts.

        Args:
            prompts: One prompt per image.
            negatives: One negative prompt per image.
            roles: The pipelines to encode for ("base", "refiner").

        Returns:
            Per role, the keyword arguments (`prompt_embeds`, `negative_prompt_embeds` and, for SDXL towers, the
            pooled pair) to pass the pipeline; and notes on roles that ran with an empty prompt.
        """
        heads = sorted({head for role in roles for head in self.heads[role] or []})
        row = {text: i for i, text in enumerate(dict.fromkeys(prompts + negatives))}
        embeds = self.encoder.encode_all(list(row), heads) if heads else {}
        cond, uncond = [row[p] for p in prompts], [row[n] for n in negatives]
        text: dict[str, dict[str, list[str] | torch.Tensor]] = {}
        notes: list[str] = []
        for role in roles:
            role_heads = self.heads[role]
            if role_heads is None:
                notes.append(f"the Korean encoder has no head for the {role}'s text tower: it ran with an empty prompt")
                text[role] = {"prompt": [""] * len(prompts), "negative_prompt": [""] * len(prompts)}
                continue
            reads = zip(role_heads, self.reads[role])
            tokens = torch.cat([embeds[head].prompt_embeds for head in role_heads], dim=-1)
            text[role] = {"prompt_embeds": tokens[cond], "negative_prompt_embeds": tokens[uncond]}
            if pooled := [validated(embeds[head].pooled_prompt_embeds) for head, read in reads if read.pooled]:
                text[role] |= {
                    "pooled_prompt_embeds": pooled[0][cond],
                    "negative_pooled_prompt_embeds": pooled[0][uncond],
                }
        return text, notes

    def run_base(
        self,
        request: Request,
        text: dict,
        generators: list[torch.Generator],
        callback: Callable,
        init_images: list[Image.Image] | None = None,
    ) -> list[Image.Image] | torch.Tensor:
        """The base pipeline's images: text→image, or image→image from the uploads.

        Either pipeline is the family's own (SD or SDXL); an SDXL one takes the pooled embeddings in `text` and
        builds its size conditioning (`add_time_ids`) itself from the image size.

        Args:
            request: The batch's shared settings (steps, guidance, size, strength).
            text: The base's text arguments from `encode_prompts`.
            generators: One per image, from `make_generators`.
            callback: The `step_callback`.
            init_images: One upload per image for image→image; None for text→image.

        Returns:
            PIL images, or, when the refiner follows, a tensor of pixels in [0, 1]: the refiner's VAE need not be
            the base's (as with the real SD2 and SDXL checkpoints), so it is handed pixels, not latents.
        """
        common = {
            **text,
            "generator": generators,
            "output_type": "pt" if request.refiner else "pil",
            "guidance_scale": request.guidance,
            "num_inference_steps": request.steps,
            "callback_on_step_end": callback,
        }
        if init_images is None:
            return self.base(height=request.size, width=request.size, **common).images
        return self.img2img(image=init_images, strength=request.strength, **common).images

    def run_refiner(
        self,
        request: Request,
        images: list[Image.Image] | torch.Tensor,
        text: dict,
        generators: list[torch.Generator],
        callback: Callable,
    ) -> list[Image.Image]:
        """The refiner's pass over the base's images (SDXL img2img at `request.refiner_strength`).

        Args:
            request: The batch's shared settings.
            images: The base's output (`run_base`).
            text: The refiner's text arguments from `encode_prompts`.
            generators: Fresh ones, seeded as the base's were.
            callback: The same `step_callback`, so progress counts on.

        Returns:
            The final PIL images.
        """
        assert self.refiner is not None  # only requests with `refiner` come here, and `validate` checks it is loaded
        return self.refiner(
            **text,
            image=images,
            strength=request.refiner_strength,
            guidance_scale=self.refiner_guidance(request),
            generator=generators,
            output_type="pil",
            num_inference_steps=request.steps,
            callback_on_step_end=callback,
        ).images

    def refiner_guidance(self, request: Request) -> float:
        """The refiner's guidance scale: its own from the config, else the request's."""
        own = self.config.refiner_guidance
        return validated(request.guidance) if own is None else own

    total_steps = staticmethod(total_steps)

    def parameters(self, request: Request, seed: int) -> dict:
        """What a PNG records about how it was made."""
        c = self.config
        parameters = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "seed": seed,
            "steps": request.steps,
            "guidance": request.guidance,
            "width": request.size,
            "height": request.size,
            "mode": "img2img" if request.init_image is not None else "txt2img",
            "refiner": request.refiner,
            "models": {
                "config": c.name,
                "family": self.family.name,
                "base": c.base,
                "refiner": c.refiner if request.refiner else None,
                "korean_encoder": c.korean_encoder,
            },
        }
        if request.refiner:
            parameters["refiner_strength"] = request.refiner_strength
            parameters["refiner_guidance"] = self.refiner_guidance(request)
        if request.init_image is not None:
            parameters["strength"] = request.strength
        return parameters
