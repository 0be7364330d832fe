"""Train the English CLIP (text + vision towers, contrastive loss) on scenes and their canonical captions.

It is the teacher of `ko_clip`, the text encoder of both diffusion models and the image–text scorer. The text
tower sees captions padded to 77 tokens with no attention mask, exactly as the diffusers pipelines feed it.
Training tokenizes to 16 tokens: under the causal mask every state up to the end-of-text token is the same as
with 77, so the pooled output is identical and the step is 5× cheaper.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

from miniworld.components import clip_model
from miniworld.paths import CLIP_DIR
from miniworld.tokenizer import train_clip_tokenizer
from miniworld.training.data import load_scenes, render_set
from miniworld.training.loop import RUNS, learning_rate, setup
from miniworld.world import IMAGE_SIZE, all_scenes, english_caption


def image_processor() -> CLIPImageProcessor:
    """Maps [0, 255] pixels to [-1, 1], the range the vision tower is trained on."""
    return CLIPImageProcessor(
        do_resize=True,
        size={"shortest_edge": IMAGE_SIZE},
        do_center_crop=True,
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )


TRAIN_LENGTH = 16


def tokenize(tokenizer: CLIPTokenizer, texts: list[str], length: int = TRAIN_LENGTH) -> torch.Tensor:
    return tokenizer(texts, padding="max_length", max_length=length, truncation=True, return_tensors="pt").input_ids


def contrastive_loss(
    model: CLIPModel, pixels: torch.Tensor, input_ids: torch.Tensor, same: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE where every pair with the same caption counts as a positive."""
    image = F.normalize(model.get_image_features(pixel_values=pixels).pooler_output, dim=-1)
    text = F.normalize(model.get_text_features(input_ids=input_ids).pooler_output, dim=-1)
    logits = model.logit_scale.exp() * image @ text.T
    targets = same / same.sum(1, keepdim=True)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


@torch.no_grad()
def retrieval_accuracy(model: CLIPModel, tokenizer: CLIPTokenizer, count: int = 1000) -> float:
    """Share of fresh images whose best caption, among all 900, is their own."""
    model.eval()
    scenes = render_set(count, seed=54321)
    captions = [english_caption(s) for s in all_scenes()]
    text = F.normalize(model.get_text_features(input_ids=tokenize(tokenizer, captions)).pooler_output, dim=-1)
    image = F.normalize(model.get_image_features(pixel_values=scenes.batch(torch.arange(count))).pooler_output, dim=-1)
    best = (image @ text.T).argmax(-1)
    model.train()
    return sum(captions[b] == c for b, c in zip(best.tolist(), scenes.captions())) / count


def main(steps: int = 2000, batch_size: int = 128, lr: float = 1e-3) -> None:
    generator = setup(seed=2)
    tokenizer = train_clip_tokenizer(english_caption(s) for s in all_scenes())
    scenes = load_scenes(RUNS / "data")
    input_ids = tokenize(tokenizer, scenes.captions())
    model = clip_model(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    for step in (bar := tqdm(range(steps), desc="clip")):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, lr, 100, steps)
        index = torch.randint(len(scenes), (batch_size,), generator=generator)
        ids = input_ids[index]
        same = (ids[:, None, :] == ids[None, :, :]).all(-1).float()
        loss = contrastive_loss(model, scenes.batch(index), ids, same)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    print(
        f"image→caption retrieval accuracy on fresh scenes (900 captions): {retrieval_accuracy(model, tokenizer):.4f}"
    )
    model.save_pretrained(CLIP_DIR)
    tokenizer.save_pretrained(CLIP_DIR)
    image_processor().save_pretrained(CLIP_DIR)
    print(f"saved {CLIP_DIR}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    main(**vars(parser.parse_args()))
