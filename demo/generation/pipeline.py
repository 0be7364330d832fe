"""The generation pipeline: Korean prompt → ko_clip embeddings → base (SD2 layout) → SDXL img2img refiner.

`ImageGenerator` only orchestrates diffusers components: the base `StableDiffusionPipeline`, an img2img pipeline
built from the same components (`from_pipe`: no second copy of the weights), the refiner
`StableDiffusionXLImg2ImgPipeline`, and the Korean encoder, whose embeddings replace the English text
encoders through `prompt_embeds`. One lock per generator: concurrent callers wait their turn.
"""

from __future__ import annotations

import importlib.util
import threading
import time

import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline, StableDiffusionXLImg2ImgPipeline
from diffusers.utils import logging as diffusers_logging

from demo.generation.config import GeneratorConfig, resolve
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


class ImageGenerator:
    def __init__(self, config: GeneratorConfig) -> None:
        diffusers_logging.disable_progress_bar()
        self.config = config
        self.device = _device(config)
        self.dtype = _dtype(config, self.device)
        self._lock = threading.Lock()
        load = dict(dtype=self.dtype, variant=config.variant)
        self.encoder = KoreanPromptEncoder.from_pretrained(resolve(config.korean_encoder), self.device, self.dtype)
        # The Korean encoder replaces the English text encoder, so the base pipeline does not load it.
        self.base = StableDiffusionPipeline.from_pretrained(resolve(config.base), text_encoder=None, **load)
        self.img2img = StableDiffusionImg2ImgPipeline.from_pipe(self.base)
        self.refiner = None
        if config.refiner:
            keep_english = "refiner" not in self.encoder.targets  # needed for the empty-prompt fallback only
            extra = {} if keep_english else {"text_encoder_2": None}
            self.refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(resolve(config.refiner), **extra, **load)
        self.pipelines = [p for p in (self.base, self.img2img, self.refiner) if p is not None]
        self._place()

    def _place(self) -> None:
        c = self.config
        for pipe in (self.base, self.refiner):
            if pipe is None:
                continue
            pipe.set_progress_bar_config(disable=True)
            if c.cpu_offload and self.device.type == "cuda":
                pipe.enable_model_cpu_offload()
            else:
                pipe.to(self.device)
            if self._use_xformers():
                pipe.enable_xformers_memory_efficient_attention()
            if c.compile:
                pipe.unet = torch.compile(pipe.unet)
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

    def _text(self, request: Request, target: str) -> tuple[dict, list[str]]:
        n = request.num_images
        if target not in self.encoder.targets:
            note = f"the Korean encoder has no '{target}' head: the {target} ran with an empty prompt"
            return {"prompt": [""] * n, "negative_prompt": [""] * n}, [note]
        cond = self.encoder.encode([request.prompt] * n, target)
        uncond = self.encoder.encode([request.negative_prompt] * n, target)
        text = {"prompt_embeds": cond.prompt_embeds, "negative_prompt_embeds": uncond.prompt_embeds}
        if cond.pooled_prompt_embeds is not None:
            text |= {"pooled_prompt_embeds": cond.pooled_prompt_embeds, "negative_pooled_prompt_embeds": uncond.pooled_prompt_embeds}
        return text, []

    def __call__(
        self, request: Request, progress: Progress | None = None, cancel: threading.Event | None = None
    ) -> Result:
        """Generate `request.num_images` images; `progress(step, total)` after every denoising step."""
        request = self.validate(request)
        seeds = [(request.seed + i) % 2**32 for i in range(request.num_images)]
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

        common = dict(num_inference_steps=request.steps, callback_on_step_end=on_step)
        started = time.perf_counter()
        with self._lock, torch.inference_mode():
            generators = [torch.Generator().manual_seed(s) for s in seeds]
            text, notes = self._text(request, "base")
            # Without the refiner the base writes the final images; with it, the base hands over pixels in [0, 1]
            # (the refiner's VAE need not be the base's, as with the real SD2 and SDXL checkpoints).
            output_type = "pt" if request.refiner else "pil"
            if request.init_image is None:
                images = self.base(**text, height=request.size, width=request.size, generator=generators, output_type=output_type, guidance_scale=request.guidance, **common).images
            else:
                init = [request.init_image] * request.num_images
                images = self.img2img(**text, image=init, strength=request.strength, generator=generators, output_type=output_type, guidance_scale=request.guidance, **common).images
            if request.refiner:
                text, refiner_notes = self._text(request, "refiner")
                notes += refiner_notes
                generators = [torch.Generator().manual_seed(s) for s in seeds]
                images = self.refiner(
                    **text, image=images, strength=request.refiner_strength, guidance_scale=self.refiner_guidance(request), generator=generators, output_type="pil", **common
                ).images
        return Result(images, seeds, [self.parameters(request, s) for s in seeds], notes, time.perf_counter() - started)

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
            "models": {"config": c.name, "base": c.base, "refiner": c.refiner if request.refiner else None, "korean_encoder": c.korean_encoder},
        }
        if request.refiner:
            parameters["refiner_strength"] = request.refiner_strength
            parameters["refiner_guidance"] = self.refiner_guidance(request)
        if request.init_image is not None:
            parameters["strength"] = request.strength
        return parameters

