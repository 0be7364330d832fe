"""Evaluators the trainer calls and the CLI prints: token MSE/cosine, pooled cosine, Korean→English recall@k."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ko_clip.dataset import Pair
from ko_clip.modeling import KoreanStudent

TeacherOutputs = Callable[[str, list[str]], tuple[torch.Tensor, torch.Tensor | None]]


def recall_at(
    student: torch.Tensor, teacher: torch.Tensor, truth: torch.Tensor, ks: tuple[int, ...] = (1, 5), chunk: int = 1024
) -> dict[str, float]:
    """Share of rows whose true English sentence (`truth` indexes `teacher`) is among the k most similar.

    Rows are ranked `chunk` at a time, so memory holds a chunk × m block, never the n × m similarity matrix.
    """
    student, teacher = F.normalize(student, dim=-1), F.normalize(teacher, dim=-1)
    ranks = []
    for start in range(0, len(student), chunk):
        similarity = student[start : start + chunk] @ teacher.T
        ranks.append((similarity > similarity.gather(1, truth[start : start + chunk, None])).sum(1))
    rank = torch.cat(ranks)
    return {f"recall@{k}": float((rank < k).float().mean()) for k in ks}


@torch.no_grad()
def embedding_metrics(
    model: KoreanStudent,
    tokenize: Callable[[list[str]], dict],
    pairs: list[Pair],
    teacher: TeacherOutputs,
    batch_size: int = 256,
) -> dict[str, dict[str, float]]:
    """Per target: token MSE and cosine to the teacher, and (pooled targets) pooled cosine and recall@1/@5.

    Student and teacher see `batch_size` pairs at a time and the token metrics are sums carried over the batches:
    memory stays bounded on a validation split of any size (5% of the real corpus is ~80k pairs).
    """
    was_training = model.training
    model.eval()
    english = sorted({p.en for p in pairs})
    row = {sentence: i for i, sentence in enumerate(english)}
    truth = torch.tensor([row[p.en] for p in pairs])
    sums: dict[str, dict[str, float]] = {}  # per target: squared error, token cosines, and how many of each
    student_pooled: dict[str, list[torch.Tensor]] = {}
    english_pooled: dict[str, torch.Tensor] = {}  # the teacher's pooled embedding of each distinct English sentence
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start : start + batch_size]
        for name, (tokens, pooled) in model(**tokenize([p.ko for p in batch])).items():
            target_tokens, target_pooled = teacher(name, [p.en for p in batch])
            tokens = tokens.float().cpu()
            total = sums.setdefault(name, dict.fromkeys(("squared", "elements", "cosine", "tokens"), 0.0))
            total["squared"] += float(F.mse_loss(tokens, target_tokens, reduction="sum"))
            total["elements"] += tokens.numel()
            total["cosine"] += float(F.cosine_similarity(tokens, target_tokens, dim=-1).sum())
            total["tokens"] += tokens.shape[0] * tokens.shape[1]
            if pooled is not None:
                assert target_pooled is not None  # a head with a pooled output has a pooled target
                student_pooled.setdefault(name, []).append(pooled.float().cpu())
                vectors = english_pooled.setdefault(name, torch.empty(len(english), target_pooled.shape[-1]))
                vectors[truth[start : start + len(batch)]] = target_pooled.float()
    report: dict[str, dict[str, float]] = {}
    for name, total in sums.items():
        metrics = {"token_mse": total["squared"] / total["elements"], "token_cosine": total["cosine"] / total["tokens"]}
        if name in student_pooled:
            pooled = torch.cat(student_pooled[name])
            metrics["pooled_cosine"] = float(F.cosine_similarity(pooled, english_pooled[name][truth], dim=-1).mean())
            metrics |= recall_at(pooled, english_pooled[name], truth)
        report[name] = metrics
    model.train(was_training)
    return report


def format_metrics(report: dict[str, dict[str, float]]) -> str:
    columns = ["token_mse", "token_cosine", "pooled_cosine", "recall@1", "recall@5"]
    lines = [f"{'target':<10}" + "".join(f"{c:>15}" for c in columns)]
    for name, metrics in report.items():
        lines.append(f"{name:<10}" + "".join(f"{metrics[c]:>15.4f}" if c in metrics else f"{'—':>15}" for c in columns))
    return "\n".join(lines)
