"""Evaluators the trainer calls and the CLI prints: token MSE/cosine, pooled cosine, Korean→English recall@k."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ko_clip.dataset import Pair
from ko_clip.modeling import KoreanTextEncoder

TeacherOutputs = Callable[[str, list[str]], tuple[torch.Tensor, torch.Tensor | None]]


@torch.no_grad()
def student_outputs(
    model: KoreanTextEncoder, tokenize: Callable[[list[str]], dict], texts: list[str], batch_size: int = 256
) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    chunks = [model(**tokenize(texts[i : i + batch_size])) for i in range(0, len(texts), batch_size)]
    return {
        name: (
            torch.cat([c[name][0].float().cpu() for c in chunks]),
            None if chunks[0][name][1] is None else torch.cat([c[name][1].float().cpu() for c in chunks]),
        )
        for name in chunks[0]
    }


def recall_at(student: torch.Tensor, teacher: torch.Tensor, truth: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Share of rows whose true English sentence (`truth` indexes `teacher`) is among the k most similar."""
    similarity = F.normalize(student, dim=-1) @ F.normalize(teacher, dim=-1).T
    rank = (similarity > similarity.gather(1, truth[:, None])).sum(1)
    return {f"recall@{k}": float((rank < k).float().mean()) for k in ks}


@torch.no_grad()
def embedding_metrics(
    model: KoreanTextEncoder, tokenize: Callable[[list[str]], dict], pairs: list[Pair], teacher: TeacherOutputs
) -> dict[str, dict[str, float]]:
    """Per target: token MSE and cosine to the teacher, and (pooled targets) pooled cosine and recall@1/@5."""
    was_training = model.training
    model.eval()
    predicted = student_outputs(model, tokenize, [p.ko for p in pairs])
    english = sorted({p.en for p in pairs})
    truth = torch.tensor([english.index(p.en) for p in pairs])
    report: dict[str, dict[str, float]] = {}
    for name, (tokens, pooled) in predicted.items():
        target_tokens, _ = teacher(name, [p.en for p in pairs])
        metrics = {
            "token_mse": float(F.mse_loss(tokens, target_tokens)),
            "token_cosine": float(F.cosine_similarity(tokens, target_tokens, dim=-1).mean()),
        }
        if pooled is not None:
            _, english_pooled = teacher(name, english)
            metrics["pooled_cosine"] = float(F.cosine_similarity(pooled, english_pooled[truth], dim=-1).mean())
            metrics |= recall_at(pooled, english_pooled, truth)
        report[name] = metrics
    model.train(was_training)
    return report


def format_metrics(report: dict[str, dict[str, float]]) -> str:
    columns = ["token_mse", "token_cosine", "pooled_cosine", "recall@1", "recall@5"]
    lines = [f"{'target':<10}" + "".join(f"{c:>15}" for c in columns)]
    for name, metrics in report.items():
        lines.append(f"{name:<10}" + "".join(f"{metrics[c]:>15.4f}" if c in metrics else f"{'—':>15}" for c in columns))
    return "\n".join(lines)
