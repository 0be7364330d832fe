"""Exact search vs Annoy vs HNSW (hnswlib) for the prompt index: build time, size, latency, recall@10.

    python -m benchmarks.search_benchmark [--sizes 10k,100k,1M] [--datasets clustered,miniworld]
                                          [--queries 1000] [--trees 16,32,64] [--out results.json]

Datasets: `clustered`, synthetic 512-d vectors in clusters of --cluster-size around random centres (queries are
fresh draws from the same clusters: their ten nearest neighbours hide among a thousand near-equals), and
`miniworld`, the project's own embeddings (demo.search.embeddings.PromptEmbedder with the shipped models) of distinct
miniworld captions, English and Korean, queried with Korean captions from templates the encoder never saw.

For each size and Annoy tree count, search_k doubles until recall@10 against exact search reaches
--target-recall (or a query gets --give-up times slower than exact search); HNSW (M=16, ef_construction=100)
doubles ef the same way. Recall counts ties as found (distinct miniworld captions can share an embedding).
Every query runs alone on one thread, as a web request does, so the latencies compare like with like; large
sizes get fewer queries (--scan-budget). The crossover is the size above which tuned Annoy answers faster than
exact search: the store's `exact_below`.

Needs `pip install -r requirements-bench.txt` (hnswlib) on top of requirements.txt.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # one thread per query, before numpy loads its BLAS

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import hnswlib  # noqa: E402
import numpy as np  # noqa: E402
from annoy import AnnoyIndex  # noqa: E402

from demo.search.index import angular_to_cosine, exact_top_k  # noqa: E402

K = 10


@dataclass
class Row:
    dataset: str
    n: int
    method: str
    setting: str
    build_s: float
    size_mb: float
    p50_ms: float
    p99_ms: float
    recall: float


def normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(
    n: int, queries: int, dim: int = 512, cluster_size: int = 100, spread: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Points scattered around n/cluster_size centres, `spread` times as far as the centres are spread themselves."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // cluster_size), dim), dtype=np.float32)

    def draw(count: int) -> np.ndarray:
        out = np.empty((count, dim), np.float32)
        for start in range(0, count, 100_000):
            size = min(100_000, count - start)
            out[start : start + size] = centres[rng.integers(len(centres), size=size)] + spread * rng.standard_normal(
                (size, dim), dtype=np.float32
            )
        return normalise(out)

    return draw(n), draw(queries)


def miniworld_captions(n: int, seed: int = 0) -> list[str]:
    """Up to `n` distinct captions: every scene's English caption, then Korean ones round-robin over scenes."""
    from miniworld.korean import TRAIN_TEMPLATES, korean_caption
    from miniworld.world import all_scenes, english_caption

    rng = random.Random(seed)
    scenes = all_scenes()
    captions = [english_caption(s) for s in scenes][:n]
    seen, misses = set(captions), 0
    while len(captions) < n and misses < 50 * len(scenes):  # stop once new distinct captions run out
        for scene in scenes:
            caption = korean_caption(scene, rng.choice(TRAIN_TEMPLATES), rng)
            misses = misses + 1 if caption in seen else 0
            if caption not in seen and len(captions) < n:
                seen.add(caption)
                captions.append(caption)
    return captions


def miniworld(sizes: list[int], queries: int, seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The project's encoder embeddings of the first n miniworld captions for each size, embedded as the sizes
    grow; Korean queries from the held-out templates. The captions' order (all scenes in English, then Korean
    round-robin) makes every prefix a fair sample."""
    from tqdm import tqdm

    from demo.search.embeddings import PromptEmbedder
    from miniworld.korean import HELDOUT_TEMPLATES, korean_caption
    from miniworld.paths import CLIP_DIR, KOREAN_ENCODER_DIR
    from miniworld.world import all_scenes

    embedder = PromptEmbedder.from_pretrained(CLIP_DIR, KOREAN_ENCODER_DIR)
    embedder.batch_size = 256
    captions = miniworld_captions(max(sizes), seed)
    rng = random.Random(seed + 1)
    asked = embedder.embed_texts(
        [korean_caption(rng.choice(all_scenes()), rng.choice(HELDOUT_TEMPLATES), rng) for _ in range(queries)]
    )
    parts: list[np.ndarray] = []
    for n in sorted({min(n, len(captions)) for n in sizes}):
        done = sum(len(part) for part in parts)
        for i in tqdm(range(done, n, 4096), desc=f"embedding captions {done:,}–{n:,}"):
            chunk = captions[i : min(i + 4096, n)]
            order = np.argsort([len(c) for c in chunk], kind="stable")  # batches of like lengths pad less
            part = np.empty((len(chunk), embedder.dim), np.float32)
            part[order] = embedder.embed_texts([chunk[j] for j in order])
            parts.append(part)
        yield np.concatenate(parts), asked


def latencies(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """(results, per-query seconds) for queries answered one at a time."""
    results, seconds = [], []
    for query in queries:
        start = time.perf_counter()
        results.append(search(query))
        seconds.append(time.perf_counter() - start)
    return [np.asarray(r, dtype=np.int64) for r in results], np.array(seconds)


@dataclass
class Truth:
    """Exact search's answer to every query: the tenth best score, below which a result does not count."""

    vectors: np.ndarray
    queries: np.ndarray
    kth: np.ndarray

    def recall(self, found: list[np.ndarray]) -> float:
        """Recall@10 that counts ties: the miniworld set has captions whose embeddings coincide."""
        hits = [
            np.count_nonzero(self.vectors[np.unique(f)] @ q >= kth - 1e-5)
            for f, q, kth in zip(found, self.queries, self.kth)
        ]
        return float(np.mean(hits)) / K


def row(
    dataset: str,
    method: str,
    setting: str,
    build_s: float,
    size: int,
    seconds: np.ndarray,
    found: list[np.ndarray],
    truth: Truth,
) -> Row:
    ms = seconds * 1000
    p50, p99 = np.percentile(ms, [50, 99])
    return Row(
        dataset, len(truth.vectors), method, setting, build_s, size / 2**20, float(p50), float(p99), truth.recall(found)
    )


def datasets(name: str, sizes: list[int], args: argparse.Namespace) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(vectors, queries) for each size, skipping sizes miniworld has too few distinct captions for."""
    if name == "clustered":
        for n in sizes:
            yield clustered(n, args.queries, args.dim, args.cluster_size, args.spread)
    elif name == "miniworld":
        yield from miniworld(sizes, args.queries)
    else:
        raise SystemExit(f"unknown dataset {name!r}: clustered or miniworld")


def ground_truth(vectors: np.ndarray, queries: np.ndarray) -> Truth:
    """The tenth best score of every query, a block of queries per matrix product."""
    kth = [
        np.partition(vectors @ queries[start : start + 100].T, -K, axis=0)[-K] for start in range(0, len(queries), 100)
    ]
    return Truth(vectors, queries, np.concatenate(kth))


def bench_exact(dataset: str, truth: Truth) -> Row:
    found, seconds = latencies(lambda q: exact_top_k(truth.vectors, q, K)[0], truth.queries)
    return row(dataset, "exact (numpy)", "matmul", 0.0, truth.vectors.nbytes, seconds, found, truth)


def bench_annoy(
    dataset: str, truth: Truth, trees: list[int], target: float, give_up_ms: float, jobs: int, folder: Path
) -> list[Row]:
    """For each tree count, the smallest search_k (doubling from trees·k) that reaches `target`; the doubling stops
    early once a query takes longer than `give_up_ms` (exact search is faster there anyway)."""
    vectors, queries, rows = truth.vectors, truth.queries, []
    for count in trees:
        path = folder / f"annoy-{count}.ann"
        index = AnnoyIndex(vectors.shape[1], "angular")
        index.on_disk_build(str(path))
        start = time.perf_counter()
        for i, vector in enumerate(vectors):
            index.add_item(i, vector.tolist())
        index.build(count, n_jobs=jobs)
        build_s = time.perf_counter() - start
        search_k = count * K
        while True:
            found, seconds = latencies(
                lambda q, index=index, search_k=search_k: index.get_nns_by_vector(q.tolist(), K, search_k=search_k),
                queries,
            )
            result = row(
                dataset,
                "annoy",
                f"trees={count} search_k={search_k}",
                build_s,
                path.stat().st_size,
                seconds,
                found,
                truth,
            )
            if result.recall >= target or search_k >= len(vectors) or result.p50_ms > give_up_ms:
                break
            search_k *= 2
        # Scores as the store computes them, checked once: Annoy's angular distance → cosine.
        ids, distances = index.get_nns_by_vector(queries[0].tolist(), 1, search_k=search_k, include_distances=True)
        assert abs(angular_to_cosine(np.array(distances))[0] - float(vectors[ids[0]] @ queries[0])) < 1e-3
        index.unload()
        path.unlink()
        rows.append(result)
    return rows


def bench_hnsw(dataset: str, truth: Truth, target: float, jobs: int, folder: Path) -> Row:
    """M=16, ef_construction=100; the smallest ef (doubling from k) that reaches `target`."""
    vectors, queries = truth.vectors, truth.queries
    index = hnswlib.Index(space="ip", dim=vectors.shape[1])
    start = time.perf_counter()
    index.init_index(max_elements=len(vectors), M=16, ef_construction=100, random_seed=0)
    index.add_items(vectors, np.arange(len(vectors)), num_threads=jobs)
    build_s = time.perf_counter() - start
    path = folder / "hnsw.bin"
    index.save_index(str(path))
    index.set_num_threads(1)
    ef = K
    while True:
        index.set_ef(ef)
        found, seconds = latencies(lambda q: index.knn_query(q, k=K)[0][0], queries)
        result = row(dataset, "hnswlib", f"M=16 ef={ef}", build_s, path.stat().st_size, seconds, found, truth)
        if result.recall >= target or ef >= len(vectors):
            break
        ef *= 2
    path.unlink()
    return result


def crossover(rows: list[Row], target: float) -> str:
    """Where tuned Annoy starts answering faster (p50) than exact search, interpolated on log scales."""
    points = []
    for n in sorted({r.n for r in rows}):
        exact = next(r.p50_ms for r in rows if r.n == n and r.method.startswith("exact"))
        annoy = [r.p50_ms for r in rows if r.n == n and r.method == "annoy" and r.recall >= target]
        if annoy:
            points.append((n, math.log(min(annoy) / exact)))
    if not points:
        return "Annoy did not reach the target recall"
    for (n0, r0), (n1, r1) in zip(points, points[1:]):
        if r0 >= 0 > r1:
            at = math.exp(math.log(n0) + (math.log(n1) - math.log(n0)) * r0 / (r0 - r1))
            return f"≈ {at:,.0f} vectors (exact faster at {n0:,}, Annoy faster at {n1:,})"
    if points[0][1] < 0:
        return f"Annoy is faster already at {points[0][0]:,} vectors, the smallest size measured"
    return f"exact is faster at every size measured (up to {points[-1][0]:,} vectors)"


def table(rows: list[Row]) -> str:
    lines = [
        f"{'dataset':<10} {'n':>9} {'method':<14} {'setting':<28} {'build s':>8} {'size MB':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'recall@10':>9}"
    ]
    for r in rows:
        lines.append(
            f"{r.dataset:<10} {r.n:>9,} {r.method:<14} {r.setting:<28} {r.build_s:>8.1f} {r.size_mb:>8.1f} "
            f"{r.p50_ms:>7.2f} {r.p99_ms:>7.2f} {r.recall:>9.3f}"
        )
    return "\n".join(lines)


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * scale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10k,100k,1M", help="comma-separated vector counts (k and M suffixes)")
    parser.add_argument("--datasets", default="clustered,miniworld")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=512, help="dimensions of the clustered vectors")
    parser.add_argument("--cluster-size", type=int, default=1000, help="clustered: vectors per cluster")
    parser.add_argument(
        "--spread", type=float, default=0.5, help="clustered: spread within a cluster / between centres"
    )
    parser.add_argument("--trees", default="16,32,64", help="Annoy tree counts to try")
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument(
        "--scan-budget",
        type=float,
        default=3e8,
        help="at most this many vectors scanned by exact search per size: fewer queries at 1M",
    )
    parser.add_argument(
        "--give-up",
        type=float,
        default=3.0,
        help="stop raising Annoy's search_k once its p50 is this many times exact search's",
    )
    parser.add_argument("--build-jobs", type=int, default=1, help="threads for building the indexes (-1: all)")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    trees = [int(t) for t in args.trees.split(",")]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        for dataset in args.datasets.split(","):
            for vectors, queries in datasets(dataset, sizes, args):
                queries = queries[: max(1, min(len(queries), int(args.scan_budget // len(vectors))))]
                print(
                    f"{dataset}: {len(vectors):,} × {vectors.shape[1]}, {len(queries)} queries",
                    file=sys.stderr,
                    flush=True,
                )
                truth = ground_truth(vectors, queries)
                these = [bench_exact(dataset, truth)]
                give_up_ms = args.give_up * these[0].p50_ms
                these += bench_annoy(
                    dataset, truth, trees, args.target_recall, give_up_ms, args.build_jobs, Path(folder)
                )
                these.append(bench_hnsw(dataset, truth, args.target_recall, args.build_jobs, Path(folder)))
                print(table(these).split("\n", 1)[1], file=sys.stderr, flush=True)
                rows += these
            print(
                f"{dataset}: crossover {crossover([r for r in rows if r.dataset == dataset], args.target_recall)}",
                file=sys.stderr,
            )
    print(table(rows))
    print()
    for dataset in args.datasets.split(","):
        print(f"crossover ({dataset}): {crossover([r for r in rows if r.dataset == dataset], args.target_recall)}")
    if args.out:
        args.out.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
