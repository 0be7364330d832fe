"""The generation pipeline: Korean prompt → ko_clip embeddings → base (SD2 layout) → SDXL img2img refiner.

`ImageGenerator` only orchestrates diffusers components: the base `StableDiffusionPipeline`, an img2img pipeline
built from the same components (`from_pipe`: no second copy of the weights), the refiner
`StableDiffusionXLImg2ImgPipeline`, and a prompt encoder whose embeddings replace the English text encoders
through `prompt_embeds`: the Korean student, or (for evaluation) the pipelines' own English encoders, so both
run the same code. One lock per generator: concurrent callers wait their turn.
"""

from __future__ import annotations

import importlib.util
import threading
import time

import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline, StableDiffusionXLImg2ImgPipeline
from diffusers.utils import logging as diffusers_logging

from demo.generation.config import GeneratorConfig, resolve
from demo.generation.prompt_encoders import EnglishPromptEncoder, PromptEncoder
from demo.generation.request import Cancelled, GenerationError, Progress, Request, Result, total_steps, validate
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
TARGETS = ("base", "refiner")


class ImageGenerator:
    """`prompt_encoder`: "korean" (the config's `korean_encoder`, the product) or "english" (the pipelines' own
    CLIP text encoders: the teacher, the reference the Korean encoder is measured against)."""

    def __init__(self, config: GeneratorConfig, prompt_encoder: str = "korean") -> None:
        diffusers_logging.disable_progress_bar()
        self.config = config
        self.device = _device(config)
        self.dtype = _dtype(config, self.device)
        self._lock = threading.Lock()
        load = {"dtype": self.dtype, "variant": config.variant}
        self.encoder = self._prompt_encoder(prompt_encoder)
        # The prompt encoder replaces the pipelines' text encoders, so they do not load them.
        self.base = StableDiffusionPipeline.from_pretrained(resolve(config.base), text_encoder=None, **load)
        # from_pipe casts every shared module to its own dtype (float32 unless told), the base's too.
        self.img2img = StableDiffusionImg2ImgPipeline.from_pipe(self.base, dtype=self.dtype)
        self.refiner = None
        if config.refiner:
            keep_english = "refiner" not in self.encoder.targets  # needed for the empty-prompt fallback only
            extra = {} if keep_english else {"text_encoder_2": None}
            self.refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(resolve(config.refiner), **extra, **load)
        self.pipelines = [p for p in (self.base, self.img2img, self.refiner) if p is not None]
        self._place()

    def _prompt_encoder(self, name: str) -> PromptEncoder:
        c = self.config
        if name == "korean":
            return KoreanPromptEncoder.from_pretrained(resolve(c.korean_encoder), self.device, self.dtype)
        if name == "english":
            refiner = resolve(c.refiner) if c.refiner else None
            return EnglishPromptEncoder.from_pipelines(resolve(c.base), refiner, self.device, self.dtype)
        raise ValueError(f"prompt_encoder must be one of {', '.join(PROMPT_ENCODERS)}, not {name!r}")

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
        return "xformers" if self._use_xformers() else "sdpa"

    def validate(self, request: Request) -> Request:
        return validate(self.config, request)

    def _text(self, prompts: list[str], negatives: list[str], targets: list[str]) -> tuple[dict[str, dict], list[str]]:
        """Pipeline text arguments per target, from one encoder pass over every distinct prompt and negative."""
        encoded = [t for t in targets if t in self.encoder.targets]
        row = {text: i for i, text in enumerate(dict.fromkeys(prompts + negatives))}
        embeds = self.encoder.encode_all(list(row), encoded) if encoded else {}
        cond, uncond = [row[p] for p in prompts], [row[n] for n in negatives]
        text, notes = {}, []
        for target in targets:
            if target not in embeds:
                notes.append(f"the Korean encoder has no '{target}' head: the {target} ran with an empty prompt")
                text[target] = {"prompt": [""] * len(prompts), "negative_prompt": [""] * len(prompts)}
                continue
            tokens, pooled = embeds[target].prompt_embeds, embeds[target].pooled_prompt_embeds
            text[target] = {"prompt_embeds": tokens[cond], "negative_prompt_embeds": tokens[uncond]}
            if pooled is not None:
                text[target] |= {"pooled_prompt_embeds": pooled[cond], "negative_pooled_prompt_embeds": pooled[uncond]}
        return text, notes

    def __call__(
        self, request: Request, progress: Progress | None = None, cancel: threading.Event | None = None
    ) -> Result:
        """Generate `request.num_images` images; `progress(step, total)` after every denoising step."""
        return self.generate_batch([request], progress, cancel)

    def generate_batch(
        self, requests: list[Request], progress: Progress | None = None, cancel: threading.Event | None = None
    ) -> Result:
        """Several requests that share their settings (steps, guidance, size, refiner, strengths, mode) in one
        pipeline call: their images, seeds and parameters in request order."""
        requests = [self.validate(r) for r in requests]
        if not requests:
            raise GenerationError("no requests")
        request = requests[0]
        shared = ("steps", "guidance", "size", "refiner", "refiner_strength", "strength")
        if len({(*(getattr(r, k) for k in shared), r.init_image is None) for r in requests}) > 1:
            raise GenerationError(f"requests generated together must share {', '.join(shared)} and the mode")
        images_of = [(r, (r.seed + i) % 2**32) for r in requests for i in range(r.num_images)]  # one per image
        seeds = [seed for _, seed in images_of]
        prompts, negatives = [r.prompt for r, _ in images_of], [r.negative_prompt for r, _ in images_of]
        total = self.total_steps(request)
        done = 0

        def on_step(pipe, step, timestep, tensors):
            nonlocal done
            done += 1
            if progress:
                progress(min(done, total), total)
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            return tensors

        common = {"num_inference_steps": request.steps, "callback_on_step_end": on_step}
        started = time.perf_counter()
        with self._lock, torch.inference_mode():
            text, notes = self._text(prompts, negatives, list(TARGETS if request.refiner else TARGETS[:1]))
            generators = [torch.Generator().manual_seed(s) for s in seeds]
            # Without the refiner the base writes the final images; with it, the base hands over pixels in [0, 1]
            # (the refiner's VAE need not be the base's, as with the real SD2 and SDXL checkpoints).
            output_type = "pt" if request.refiner else "pil"
            if request.init_image is None:
                images = self.base(
                    **text["base"],
                    height=request.size,
                    width=request.size,
                    generator=generators,
                    output_type=output_type,
                    guidance_scale=request.guidance,
                    **common,
                ).images
            else:
                init = [r.init_image for r, _ in images_of]
                images = self.img2img(
                    **text["base"],
                    image=init,
                    strength=request.strength,
                    generator=generators,
                    output_type=output_type,
                    guidance_scale=request.guidance,
                    **common,
                ).images
            if request.refiner:
                generators = [torch.Generator().manual_seed(s) for s in seeds]
                images = self.refiner(
                    **text["refiner"],
                    image=images,
                    strength=request.refiner_strength,
                    guidance_scale=self.refiner_guidance(request),
                    generator=generators,
                    output_type="pil",
                    **common,
                ).images
        parameters = [self.parameters(r, seed) for r, seed in images_of]
        return Result(images, seeds, parameters, notes, time.perf_counter() - started)

    def refiner_guidance(self, request: Request) -> float:
        """The refiner's guidance scale: its own from the config, else the request's."""
        own = self.config.refiner_guidance
        return request.guidance if own is None else own

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
