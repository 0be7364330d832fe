"""Assemble the trained parts into diffusers pipeline directories under `miniworld/weights/`.

`sd-base/` loads with `StableDiffusionPipeline.from_pretrained`, `sdxl-base/` with
`StableDiffusionXLPipeline.from_pretrained` and `sdxl-refiner/` with `StableDiffusionXLImg2ImgPipeline.from_pretrained`,
exactly as the real SD2, SDXL base and SDXL refiner checkpoints do. Each is written when its UNet has been trained.
The UNets and the VAE are stored in float16 to keep the repository small; diffusers loads them as float32
unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path

from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from durable import save_directory_atomically
from miniworld.components import noise_scheduler
from miniworld.paths import BASE_DIR, CLIP_DIR, CLIP_SMALL_DIR, REFINER_DIR, SDXL_BASE_DIR
from miniworld.training.diffusion import STAGES
from miniworld.training.vae import OUT as VAE_DIR


def save_pipeline(pipeline: DiffusionPipeline, target: Path) -> None:
    """Write beside `target`, then swap, so an interrupted save never leaves a half-written pipeline."""
    save_directory_atomically(lambda tmp: pipeline.save_pretrained(tmp, safe_serialization=True), target)


def _unet(stage: str) -> UNet2DConditionModel | None:
    path = STAGES[stage].out / "unet"
    return UNet2DConditionModel.from_pretrained(path).half() if path.exists() else None


def main() -> None:
    # the VAE trained by the `vae` stage, else the one the shipped pipelines already decode with
    vae = AutoencoderKL.from_pretrained(VAE_DIR if (VAE_DIR / "config.json").exists() else BASE_DIR / "vae").half()
    tokenizer = CLIPTokenizer.from_pretrained(CLIP_DIR)
    scheduler = DPMSolverMultistepScheduler.from_config(noise_scheduler().config)
    if unet := _unet("base"):
        base = StableDiffusionPipeline(
            vae=vae,
            text_encoder=CLIPTextModel.from_pretrained(CLIP_DIR),
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        save_pipeline(base, BASE_DIR)
        print(f"saved {BASE_DIR}")
    if unet := _unet("sdxl-base"):
        sdxl = StableDiffusionXLPipeline(
            vae=vae,
            text_encoder=CLIPTextModel.from_pretrained(CLIP_SMALL_DIR),
            text_encoder_2=CLIPTextModelWithProjection.from_pretrained(CLIP_DIR),
            tokenizer=tokenizer,
            tokenizer_2=tokenizer,
            unet=unet,
            scheduler=scheduler,
            force_zeros_for_empty_prompt=False,  # trained on the towers' own empty-prompt states, as SD2 was
        )
        save_pipeline(sdxl, SDXL_BASE_DIR)
        print(f"saved {SDXL_BASE_DIR}")
    if unet := _unet("refiner"):
        refiner = StableDiffusionXLImg2ImgPipeline(
            vae=vae,
            text_encoder=None,
            text_encoder_2=CLIPTextModelWithProjection.from_pretrained(CLIP_DIR),
            tokenizer=None,
            tokenizer_2=tokenizer,
            unet=unet,
            scheduler=scheduler,
            requires_aesthetics_score=True,
            force_zeros_for_empty_prompt=False,
        )
        save_pipeline(refiner, REFINER_DIR)
        print(f"saved {REFINER_DIR}")


if __name__ == "__main__":
    main()
