"""Train the VAE (`AutoencoderKL`, 64×64×3 → 16×16×4) and set its latent scaling factor.

It is fully convolutional, so it trains on random 32×32 crops (4× cheaper) and runs on whole 64×64 images.
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
        print("attribute accuracy on reconstructions:", {n: round(v, 4) for n, v in zip(ATTRIBUTES, right.float().mean(0).tolist())})


@torch.no_grad()
def scaling_factor(model: AutoencoderKL, count: int = 2000) -> float:
    """1 / std of the latents, so the diffusion models see roughly unit-variance inputs (as SD's 0.18215)."""
    scenes = render_set(count, seed=778)
    latents = model.encode(scenes.batch(torch.arange(count))).latent_dist.mean
    return 1.0 / latents.std().item()


def main(steps: int = 2000, batch_size: int = 32, lr: float = 1e-3, kl_weight: float = 1e-6) -> None:
    generator = setup(seed=3)
    scenes = load_scenes(RUNS / "data")
    model = vae()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    for step in (bar := tqdm(range(steps), desc="vae")):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, lr, 100, steps)
        index = torch.randint(len(scenes), (batch_size,), generator=generator)
        images = random_crops(scenes.batch(index), generator)
        posterior = model.encode(images).latent_dist
        recon = model.decode(posterior.sample(generator)).sample
        loss = F.mse_loss(recon, images) + 0.5 * F.l1_loss(recon, images) + kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.5f}")
    model.register_to_config(scaling_factor=scaling_factor(model))
    print(f"latent scaling factor: {model.config.scaling_factor:.4f}")
    report(model)
    model.save_pretrained(OUT)
    print(f"saved {OUT}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    main(**vars(parser.parse_args()))
