"""Train the VAE (`AutoencoderKL`, 64×64×3 → 16×16×4) and set its latent scaling factor.

Two phases: random 32×32 crops first (4× cheaper per step; the model is fully convolutional), then whole 64×64
images, because GroupNorm statistics of a crop (often plain background) differ from a whole scene's, and a
crop-only model smears small shapes and streaks flat backgrounds.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from tqdm import tqdm

from miniworld.components import AttributeClassifier, vae
from miniworld.paths import EVALUATOR_DIR
from miniworld.training.data import load_scenes, render_set
from miniworld.training.loop import RUNS, learning_rate, setup
from miniworld.world import ATTRIBUTES

OUT = RUNS / "vae"
CROPS_OUT = RUNS / "vae-crops"
CROP = 32


def random_crops(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    top, left = torch.randint(0, images.shape[-1] - CROP + 1, (2,), generator=generator).tolist()
    return images[..., top : top + CROP, left : left + CROP]


@torch.no_grad()
def report(model: AutoencoderKL, count: int = 1000) -> None:
    """Reconstruction error and how often the attribute classifier still reads the right scene."""
    model.eval()
    scenes = render_set(count, seed=777)
    images = scenes.batch(torch.arange(count))
    recon = torch.cat([model(images[i : i + 200]).sample for i in range(0, count, 200)]).clamp(-1, 1)
    print(f"reconstruction MSE on fresh scenes: {F.mse_loss(recon, images).item():.5f}")
    if EVALUATOR_DIR.exists():
        classifier = AttributeClassifier.from_pretrained(EVALUATOR_DIR).eval()
        logits = classifier(recon)
        right = torch.stack([logits[n].argmax(-1) for n in ATTRIBUTES], 1) == scenes.labels
        print(
            "attribute accuracy on reconstructions:",
            {n: round(v, 4) for n, v in zip(ATTRIBUTES, right.float().mean(0).tolist())},
        )


@torch.no_grad()
def scaling_factor(model: AutoencoderKL, count: int = 2000) -> float:
    """1 / std of the latents, so the diffusion models see roughly unit-variance inputs (as SD's 0.18215)."""
    scenes = render_set(count, seed=778)
    latents = model.encode(scenes.batch(torch.arange(count))).latent_dist.mean
    return 1.0 / latents.std().item()


def train(
    model: AutoencoderKL, steps: int, batch_size: int, lr: float, kl_weight: float, crops: bool, seed: int
) -> None:
    generator = setup(seed)
    scenes = load_scenes(RUNS / "data")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    for step in (bar := tqdm(range(steps), desc="vae crops" if crops else "vae whole images")):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, lr, 100, steps)
        index = torch.randint(len(scenes), (batch_size,), generator=generator)
        images = scenes.batch(index)
        if crops:
            images = random_crops(images, generator)
        posterior = model.encode(images).latent_dist
        recon = model.decode(posterior.sample(generator)).sample
        loss = F.mse_loss(recon, images) + 0.5 * F.l1_loss(recon, images) + kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.5f}")


def main(crop_steps: int = 2000, whole_steps: int = 1500, kl_weight: float = 1e-6) -> None:
    if (CROPS_OUT / "config.json").exists():
        model = AutoencoderKL.from_pretrained(CROPS_OUT)
        print(f"phase 1 done before: loaded {CROPS_OUT}")
    else:
        model = vae()
        train(model, crop_steps, batch_size=32, lr=1e-3, kl_weight=kl_weight, crops=True, seed=3)
        model.save_pretrained(CROPS_OUT)
    train(model, whole_steps, batch_size=16, lr=5e-4, kl_weight=kl_weight, crops=False, seed=31)
    model.register_to_config(scaling_factor=scaling_factor(model))
    print(f"latent scaling factor: {model.config.scaling_factor:.4f}")
    report(model)
    model.save_pretrained(OUT)
    print(f"saved {OUT}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--crop-steps", type=int, default=2000)
    parser.add_argument("--whole-steps", type=int, default=1500)
    main(**vars(parser.parse_args()))
