"""Train the latent diffusion UNets: the SD2-layout base, the SDXL-layout base and the SDXL-refiner-layout refiner.

Latents and text-encoder outputs are computed once and cached (`encode`), so a step costs only the UNet.
Both models learn epsilon-prediction with classifier-free-guidance dropout (10% empty caption). The refiner
sees only the low-noise end of the schedule, and learns the aesthetic-score time id from clean (6.0) versus
blurred (2.5) images, so the pipeline's negative aesthetic score steers it away from blur. The SDXL-layout base
reads two text towers side by side (`clip-small` and `clip`, penultimate layers) plus the second one's pooled
embedding and the 6 size/crop time ids, as `StableDiffusionXLPipeline` feeds it.

    python -m miniworld.training.diffusion base [--steps 4500]
    python -m miniworld.training.diffusion sdxl-base [--steps 4500]
    python -m miniworld.training.diffusion refiner [--steps 1200]
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.training_utils import EMAModel
from tqdm import tqdm
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from miniworld.components import base_unet, noise_scheduler, refiner_unet, sdxl_base_unet
from miniworld.paths import BASE_DIR, CLIP_DIR, CLIP_SMALL_DIR
from miniworld.tokenizer import MAX_LENGTH
from miniworld.training.data import load_scenes
from miniworld.training.loop import RUNS, learning_rate, load_checkpoint, save_checkpoint, setup
from miniworld.training.vae import OUT as VAE_DIR
from miniworld.world import IMAGE_SIZE

CACHE = RUNS / "cache.pt"
CLEAN_AESTHETIC, BLURRED_AESTHETIC = 6.0, 2.5
REFINER_MAX_TIMESTEP = 300


@dataclass
class Stage:
    name: str
    build: Callable[[], UNet2DConditionModel]
    lr: float
    batch_size: int
    max_timestep: int
    steps: int
    seed: int

    @property
    def out(self) -> Path:
        return RUNS / self.name


STAGES = {
    "base": Stage("base", base_unet, lr=5e-4, batch_size=64, max_timestep=1000, steps=4500, seed=4),
    "sdxl-base": Stage("sdxl-base", sdxl_base_unet, lr=5e-4, batch_size=64, max_timestep=1000, steps=4500, seed=6),
    "refiner": Stage(
        "refiner", refiner_unet, lr=5e-4, batch_size=48, max_timestep=REFINER_MAX_TIMESTEP, steps=1200, seed=5
    ),
}
# The cache's text part: what each pipeline hands its UNet (see `encode`).
TEXT_KEYS = ("base_states", "refiner_states", "refiner_pooled", "sdxl_states")


def blur(images: torch.Tensor) -> torch.Tensor:
    return F.interpolate(F.avg_pool2d(images, 4), scale_factor=4, mode="bilinear", align_corners=False)


@torch.no_grad()
def encode() -> dict[str, torch.Tensor]:
    """Latent distributions of every training scene (clean and blurred) and text states of every caption."""
    if CACHE.exists() and all(key in (cache := torch.load(CACHE)) for key in TEXT_KEYS):
        return cache
    scenes = load_scenes(RUNS / "data")
    # the VAE trained by the `vae` stage, else the one the shipped pipelines decode with
    vae = AutoencoderKL.from_pretrained(VAE_DIR if (VAE_DIR / "config.json").exists() else BASE_DIR / "vae").eval()
    means, stds, blurred = [], [], []
    for start in tqdm(range(0, len(scenes), 500), desc="encoding latents"):
        images = scenes.batch(torch.arange(start, min(start + 500, len(scenes))))
        dist = vae.encode(images).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
        blurred.append(vae.encode(blur(images)).latent_dist.mean)
    captions = scenes.captions()
    unique = [""] + sorted(set(captions))  # index 0: the empty prompt used for guidance
    tokenizer = CLIPTokenizer.from_pretrained(CLIP_DIR)
    text_encoder = CLIPTextModelWithProjection.from_pretrained(CLIP_DIR).eval()
    ids = tokenizer(unique, padding="max_length", max_length=MAX_LENGTH, truncation=True, return_tensors="pt").input_ids
    out = text_encoder(ids, output_hidden_states=True)
    small = CLIPTextModel.from_pretrained(CLIP_SMALL_DIR).eval()(ids, output_hidden_states=True)
    scale = vae.config.scaling_factor
    cache = {
        "latent_mean": torch.cat(means) * scale,
        "latent_std": torch.cat(stds) * scale,
        "blurred_mean": torch.cat(blurred) * scale,
        "caption_index": torch.tensor([unique.index(c) for c in captions]),
        # What each pipeline feeds its UNet: SD2 the last layer, the SDXL refiner the penultimate one + pooled.
        "base_states": out.last_hidden_state,
        "refiner_states": out.hidden_states[-2],
        "refiner_pooled": out.text_embeds,
        # SDXL: both towers' penultimate layers side by side; its pooled input is the second tower's (as the refiner's)
        "sdxl_states": torch.cat([small.hidden_states[-2], out.hidden_states[-2]], dim=-1),
    }
    save_checkpoint(CACHE, **cache)
    return cache


def conditioning(stage: Stage, cache: dict, caption: torch.Tensor, aesthetic: torch.Tensor) -> dict:
    """UNet keyword arguments for a batch of caption indices, as the matching diffusers pipeline builds them."""
    if stage.name == "base":
        return {"encoder_hidden_states": cache["base_states"][caption]}
    if stage.name == "sdxl-base":  # original size, crop top-left, target size
        time_ids = torch.tensor([IMAGE_SIZE, IMAGE_SIZE, 0, 0, IMAGE_SIZE, IMAGE_SIZE], dtype=torch.float32)
        return {
            "encoder_hidden_states": cache["sdxl_states"][caption],
            "added_cond_kwargs": {
                "text_embeds": cache["refiner_pooled"][caption],
                "time_ids": time_ids.repeat(len(caption), 1),
            },
        }
    time_ids = torch.tensor([IMAGE_SIZE, IMAGE_SIZE, 0, 0, 0], dtype=torch.float32).repeat(len(caption), 1)
    time_ids[:, 4] = aesthetic
    return {
        "encoder_hidden_states": cache["refiner_states"][caption],
        "added_cond_kwargs": {"text_embeds": cache["refiner_pooled"][caption], "time_ids": time_ids},
    }


def main(stage_name: str, steps: int | None = None, checkpoint_every: int = 250, threads: int = 2) -> None:
    stage = STAGES[stage_name]
    steps = steps or stage.steps
    generator = setup(seed=stage.seed, threads=threads)
    cache = encode()
    scheduler = noise_scheduler()
    unet: UNet2DConditionModel = stage.build()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=stage.lr, weight_decay=0.01)
    ema = EMAModel(unet.parameters(), decay=0.999, use_ema_warmup=True, power=0.75)
    step = 0
    if state := load_checkpoint(stage.out / "checkpoint.pt"):
        unet.load_state_dict(state["unet"])
        optimizer.load_state_dict(state["optimizer"])
        ema.load_state_dict(state["ema"])
        generator.set_state(state["generator"])
        step = state["step"]
        print(f"resumed {stage.name} at step {step}")
    n = len(cache["caption_index"])
    bar = tqdm(total=steps, initial=step, desc=stage.name)
    while step < steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, stage.lr, 200, steps)
        index = torch.randint(n, (stage.batch_size,), generator=generator)
        latents = cache["latent_mean"][index]
        latents = latents + cache["latent_std"][index] * torch.randn(latents.shape, generator=generator)
        aesthetic = torch.full((stage.batch_size,), CLEAN_AESTHETIC)
        if stage.name == "refiner":
            blurred = torch.rand(stage.batch_size, generator=generator) < 0.2
            latents[blurred] = cache["blurred_mean"][index[blurred]]
            aesthetic[blurred] = BLURRED_AESTHETIC
        caption = cache["caption_index"][index].clone()
        caption[torch.rand(stage.batch_size, generator=generator) < 0.1] = 0
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(stage.max_timestep, (stage.batch_size,), generator=generator)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        pred = unet(noisy, timesteps, **conditioning(stage, cache, caption, aesthetic)).sample
        loss = F.mse_loss(pred, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        ema.step(unet.parameters())
        step += 1
        bar.update(1)
        if step % 25 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % checkpoint_every == 0 or step == steps:
            save_checkpoint(
                stage.out / "checkpoint.pt",
                unet=unet.state_dict(),
                optimizer=optimizer.state_dict(),
                ema=ema.state_dict(),
                generator=generator.get_state(),
                step=step,
            )
    final = copy.deepcopy(unet)
    ema.copy_to(final.parameters())
    final.save_pretrained(stage.out / "unet")
    print(f"saved {stage.out / 'unet'} (EMA weights)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--steps", type=int, help="total steps (default: 4500 base and sdxl-base, 1200 refiner)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (1 beside another job)")
    args = parser.parse_args()
    main(args.stage, args.steps, threads=args.threads)
