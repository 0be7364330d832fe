"""Train the English CLIPs (text + vision towers, contrastive loss) on scenes and their canonical captions.

`clip` is the teacher of `ko_clip`, the text encoder of every diffusion model and the image–text scorer.
`clip-small` is a second, narrower and shallower CLIP trained from another seed with the same tokenizer: the
SDXL-layout base reads both text towers side by side, as SDXL reads CLIP ViT-L and OpenCLIP bigG. The text
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

from miniworld.components import SMALL_TEXT_DIM, clip_model
from miniworld.paths import CLIP_DIR, CLIP_SMALL_DIR
from miniworld.tokenizer import train_clip_tokenizer
from miniworld.training.data import load_scenes, render_set
from miniworld.training.loop import RUNS, learning_rate, load_checkpoint, save_checkpoint, setup
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


def main(steps: int = 2000, batch_size: int = 128, lr: float = 1e-3, small: bool = False) -> None:
    """`small`: the second text tower's CLIP (into `clip-small/`, the tokenizer of `clip/`), else the teacher's."""
    generator = setup(seed=3 if small else 2)
    if small:
        tokenizer = CLIPTokenizer.from_pretrained(CLIP_DIR)
    else:
        tokenizer = train_clip_tokenizer(english_caption(s) for s in all_scenes())
    out = CLIP_SMALL_DIR if small else CLIP_DIR
    scenes = load_scenes(RUNS / "data")
    input_ids = tokenize(tokenizer, scenes.captions())
    size = {"text_dim": SMALL_TEXT_DIM, "text_layers": 3} if small else {}
    model = clip_model(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, **size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    checkpoint = RUNS / out.name / "checkpoint.pt"
    start = 0
    if state := load_checkpoint(checkpoint):
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        start = state["step"]
        print(f"resumed {out.name} at step {start}")
    for step in (bar := tqdm(range(start, steps), initial=start, total=steps, desc=out.name)):
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
        if (step + 1) % 250 == 0:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step + 1}
            save_checkpoint(checkpoint, **state, generator=generator.get_state())
    print(
        f"image→caption retrieval accuracy on fresh scenes (900 captions): {retrieval_accuracy(model, tokenizer):.4f}"
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    image_processor().save_pretrained(out)
    print(f"saved {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--small", action="store_true", help="train the second text tower's CLIP (clip-small/)")
    main(**vars(parser.parse_args()))
