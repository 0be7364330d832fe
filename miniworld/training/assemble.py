"""Assemble the trained parts into diffusers pipeline directories under `miniworld/weights/`.

`sd-base/` loads with `StableDiffusionPipeline.from_pretrained`, `sdxl-refiner/` with
`StableDiffusionXLImg2ImgPipeline.from_pretrained`, exactly as the real SD2 and SDXL refiner checkpoints do.
The UNets and the VAE are stored in float16 to keep the repository small; diffusers loads them as float32
unless told otherwise.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from miniworld.components import noise_scheduler
from miniworld.paths import BASE_DIR, CLIP_DIR, REFINER_DIR
from miniworld.training.diffusion import STAGES
from miniworld.training.vae import OUT as VAE_DIR


def save_atomically(pipeline: DiffusionPipeline, target: Path) -> None:
    """Write beside `target`, then swap, so an interrupted save never leaves a half-written pipeline."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipeline.save_pretrained(tmp, safe_serialization=True)
    old = target.with_name(target.name + ".old")
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def main() -> None:
    vae = AutoencoderKL.from_pretrained(VAE_DIR).half()
    tokenizer = CLIPTokenizer.from_pretrained(CLIP_DIR)
    scheduler = DPMSolverMultistepScheduler.from_config(noise_scheduler().config)
    base = StableDiffusionPipeline(
        vae=vae,
        text_encoder=CLIPTextModel.from_pretrained(CLIP_DIR),
        tokenizer=tokenizer,
        unet=UNet2DConditionModel.from_pretrained(STAGES["base"].out / "unet").half(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    save_atomically(base, BASE_DIR)
    if (STAGES["refiner"].out / "unet").exists():
        refiner = StableDiffusionXLImg2ImgPipeline(
            vae=vae,
            text_encoder=None,
            text_encoder_2=CLIPTextModelWithProjection.from_pretrained(CLIP_DIR),
            tokenizer=None,
            tokenizer_2=tokenizer,
            unet=UNet2DConditionModel.from_pretrained(STAGES["refiner"].out / "unet").half(),
            scheduler=scheduler,
            requires_aesthetics_score=True,
            force_zeros_for_empty_prompt=False,
        )
        save_atomically(refiner, REFINER_DIR)
    print(f"saved {BASE_DIR} and {REFINER_DIR}")


if __name__ == "__main__":
    main()
