"""Train the attribute classifier that scores generated images (target: ≥ 99% per attribute on fresh scenes)."""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from tqdm import tqdm

from miniworld.components import AttributeClassifier
from miniworld.paths import EVALUATOR_DIR
from miniworld.training.data import SceneSet, load_scenes, render_set
from miniworld.training.loop import RUNS, learning_rate, setup
from miniworld.world import ATTRIBUTES


def degrade(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Blur and noise a random share of the batch, so the classifier also reads imperfect generated images."""
    b = images.shape[0]
    blurred = F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    use_blur = (torch.rand(b, 1, 1, 1, generator=generator) < 0.5).float()
    noise = torch.randn(images.shape, generator=generator) * torch.rand(b, 1, 1, 1, generator=generator) * 0.15
    return (use_blur * blurred + (1 - use_blur) * images + noise).clamp(-1, 1)


@torch.no_grad()
def accuracy(model: AttributeClassifier, scenes: SceneSet) -> dict[str, float]:
    model.eval()
    correct = torch.zeros(len(ATTRIBUTES))
    for start in range(0, len(scenes), 500):
        index = torch.arange(start, min(start + 500, len(scenes)))
        logits = model(scenes.batch(index))
        preds = torch.stack([logits[name].argmax(-1) for name in ATTRIBUTES], dim=1)
        correct += (preds == scenes.labels[index]).float().sum(0)
    model.train()
    return {name: float(c) / len(scenes) for name, c in zip(ATTRIBUTES, correct)}


def main(steps: int = 1500, batch_size: int = 128, lr: float = 2e-3) -> None:
    generator = setup(seed=1)
    scenes = load_scenes(RUNS / "data")
    fresh = render_set(2000, seed=12345)
    model = AttributeClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    for step in (bar := tqdm(range(steps), desc="evaluator")):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, lr, 100, steps)
        index = torch.randint(len(scenes), (batch_size,), generator=generator)
        logits = model(degrade(scenes.batch(index), generator))
        loss = sum(F.cross_entropy(logits[name], scenes.labels[index, k]) for k, name in enumerate(ATTRIBUTES))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    result = accuracy(model, fresh)
    print("accuracy on fresh scenes:", {k: round(v, 4) for k, v in result.items()})
    if min(result.values()) < 0.99:
        raise SystemExit("evaluator below 99% on some attribute; not saving")
    model.save_pretrained(EVALUATOR_DIR)
    print(f"saved {EVALUATOR_DIR}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1500)
    main(**vars(parser.parse_args()))
