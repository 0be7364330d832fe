"""The model card training writes into every encoder directory (`README.md`, the hub's convention), from a summary
kept beside it (`training.json`): corpus and size, teachers and heads, recipe, steps, validation metrics, and the
probe table once `python -m ko_clip card DIR --probe PROBE.json` adds one."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ko_clip.config import TrainConfig
from ko_clip.modeling import KoreanStudent, rename_old_trunk_keys

SUMMARY = "training.json"
METRICS = ("token_mse", "token_cosine", "pooled_cosine", "recall@1", "recall@5")


def training_summary(
    config: TrainConfig, model: KoreanStudent, sizes: dict[str, int], step: int, metrics: dict, processes: int = 1
) -> dict:
    """What the card says, as data: `sizes` counts the training and validation pairs and English-only sentences."""
    parameters = sum(p.numel() for p in model.parameters())
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "corpus": config.corpus,
        "english_corpus": config.english_corpus,
        "sizes": sizes,
        "teachers": [dataclasses.asdict(t) for t in config.teachers],
        "heads": [vars(t) for t in model.config.target_specs],
        "student": dataclasses.asdict(config.student) | {"parameters": parameters, "trained_parameters": trained},
        "recipe": {
            "loss": dataclasses.asdict(config.loss),
            "augment": dataclasses.asdict(config.augment),
            "noise_words": config.noise_words,
            **{k: getattr(config, k) for k in ("steps", "batch_size", "english_batch", "lr", "warmup", "seed")},
            "weight_decay": config.weight_decay,
            "mixed_precision": config.mixed_precision,
            "processes": processes,
        },
        "step": step,
        "validation": metrics,
        "probe": None,
    }


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _probe_rows(probe: dict) -> list[list[str]]:
    """Rows of a `python -m miniworld.evaluate --probe DIR --json` report: category, Korean, English, ratio."""
    results = {**probe.get("categories", {}), **({"all": probe["all"]} if "all" in probe else {})}
    return [
        [name, f"{r['korean']['all_correct']:.1%}", f"{r['english']['all_correct']:.1%}", f"{r['ratio']:.2f}"]
        for name, r in results.items()
    ]


def model_card(summary: dict) -> str:
    heads = summary["heads"]
    recipe = summary["recipe"]
    student = rename_old_trunk_keys(summary["student"])  # a summary written before the rename
    sizes = summary["sizes"]
    loss = recipe["loss"]
    english_only = not loss.get("korean", 1)
    parts = [
        "---\nlanguage: [ko, en]\nlibrary_name: ko_clip\n"
        "tags: [text-to-image, stable-diffusion, clip, text-encoder, distillation, korean]\n---",
        "# Korean prompt encoder (ko_clip)",
        "A Korean text encoder distilled onto frozen English CLIP text towers, token by token (77×d) and pooled, so "
        "a diffusion pipeline takes Korean prompts through `prompt_embeds` / `pooled_prompt_embeds`.",
        "```python\nfrom ko_clip import KoreanPromptEncoder\n\nencoder = KoreanPromptEncoder.from_pretrained"
        '("THIS_DIRECTORY_OR_HUB_ID")\n'
        f'embeds = encoder.encode(["바닷가에서 뛰노는 강아지"], "{heads[0]["name"]}")  # .prompt_embeds, '
        ".pooled_prompt_embeds\n```",
        "## Training data",
        f"- parallel corpus: {', '.join(summary['corpus'])} — {sizes['train']:,} training pairs, "
        f"{sizes['validation']:,} validation pairs"
        + (" (English sides only: no Korean sentence was trained on)" if english_only else "")
        + (
            f"\n- English-only sentences: {', '.join(summary['english_corpus'])} — {sizes['english_only']:,}"
            if summary["english_corpus"]
            else "\n- English-only sentences: none"
        ),
        "## Teachers and heads",
        _table(
            ["head", "teacher", "subfolder", "layer", "tokens", "pooled"],
            [
                [
                    h["name"],
                    t["path"],
                    t["subfolder"] or "—",
                    t["layer"],
                    f"{h['length']}×{h['hidden_size']}",
                    str(h["pooled_size"]) if h["pooled_size"] else "—",
                ]
                for h, t in zip(heads, summary["teachers"])
            ],
        ),
        "## Student and recipe",
        f"- backbone `{student['backbone']}`, embeddings + {student['frozen_layers']} layers frozen; trunk "
        f"`{student['trunk']}` ({student['trunk_layers']} layers, width {student['trunk_width'] or 'the backbone'}); "
        f"{student['parameters'] / 1e6:.1f} M parameters, {student['trained_parameters'] / 1e6:.2f} M trained\n"
        f"- {recipe['steps']:,} steps × {recipe['batch_size']} pairs × {recipe['processes']} process(es), AdamW lr "
        f"{recipe['lr']}, warm-up {recipe['warmup']}, weight decay {recipe['weight_decay']}, "
        f"{recipe['mixed_precision']} on a GPU, seed {recipe['seed']}\n"
        f"- loss weights: token {loss['token']}, pooled {loss['pooled']}, Korean side {loss.get('korean', 1)}, "
        f"English side {loss['english']}\n"
        "- augmentations: " + ", ".join(f"{k} {v}" for k, v in recipe["augment"].items() if v not in ((), [], 0, None)),
        f"## Validation (step {summary['step']:,} of {recipe['steps']:,}: the best checkpoint)",
        _table(
            ["head", *METRICS],
            [[name, *(f"{m[c]:.4f}" if c in m else "—" for c in METRICS)] for name, m in summary["validation"].items()],
        ),
    ]
    if summary.get("probe"):
        parts += [
            "## Probe: images through the product's generator, Korean against English",
            _table(
                ["category", "Korean all-correct", "English all-correct", "Korean ÷ English"],
                _probe_rows(summary["probe"]),
            ),
        ]
    return "\n\n".join(parts) + "\n"


def card_files(summary: dict) -> dict[str, str]:
    """The files an encoder directory holds besides its weights: the card and the summary it is written from."""
    return {"README.md": model_card(summary), SUMMARY: json.dumps(summary, indent=1, ensure_ascii=False)}


def add_probe(directory: Path, probe: dict) -> None:
    """Rewrite `directory`'s card with a probe report (`miniworld.evaluate --probe DIR --json`)."""
    summary = json.loads((directory / SUMMARY).read_text(encoding="utf-8"))
    summary["probe"] = probe
    for name, text in card_files(summary).items():
        (directory / name).write_text(text, encoding="utf-8")
