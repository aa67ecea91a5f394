"""FAISS exact vs HNSW vs IVF: build time, size, recall@10 and latency at a given size.

By default the vectors are real MiniLM chunk vectors of real text, grown to the size asked by
perturbation, and the queries are real questions (``eval/bench_vectors.py``): that is where
the recall of an approximate index means what it will mean on a news archive. ``--vectors
clustered`` keeps the synthetic clustered set (recall is near 1.0 on it by construction, so it
measures speed only). Recall@10 is against the exact (flat) results; latency is single-query,
one FAISS thread, as the service runs it. HNSW is measured at several ``efSearch`` values on
one build, the shipped value among them.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eval.bench_common import load_average, machine, markdown_table, percentiles

DIMENSION = 384


def clustered_vectors(count: int, dimension: int = DIMENSION, centres: int = 2000,
                      latent: int = 32, spread: float = 0.5, seed: int = 0) -> np.ndarray:
    """``count`` unit vectors around ``centres`` cluster centres on a ``latent``-d subspace.

    Text embeddings vary along far fewer directions than they have; i.i.d. 384-d noise
    would make every cluster a ball of equidistant points, where "the" top 10 is a coin toss
    and recall measures nothing. A shared random projection (plus a little full-rank noise)
    keeps neighbourhoods structured.
    """
    rng = np.random.default_rng(0)  # the same subspace and centres for data and queries
    projection = rng.standard_normal((latent, dimension)).astype(np.float32) / latent**0.5
    middle = rng.standard_normal((centres, latent)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((count, dimension), np.float32)
    step = 100_000
    for begin in range(0, count, step):
        n = min(step, count - begin)
        which = rng.integers(0, centres, n)
        points = middle[which] + spread * rng.standard_normal((n, latent)).astype(np.float32)
        block = points @ projection
        block += 0.05 * rng.standard_normal((n, dimension)).astype(np.float32) / dimension**0.5
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[begin : begin + n] = block
    return out


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean share of the true top-k ids that ``found`` returned in its top k."""
    hits = [len(set(f[:k].tolist()) & set(t[:k].tolist())) / k for f, t in zip(found, truth,
                                                                            strict=True)]
    return float(np.mean(hits)) if hits else float("nan")


def _index(kind: str, count: int, ef_construction: int | None = None) -> Any:
    import faiss

    from index.store.embedded_writer import _new_faiss_index

    if kind in ("flat", "hnsw"):
        index: Any = _new_faiss_index(DIMENSION, kind, count)  # the service's own settings
        if kind == "hnsw" and ef_construction is not None:
            inner: Any = faiss.downcast_index(index.index)
            inner.hnsw.efConstruction = ef_construction
        return index
    if kind == "ivf":
        lists = int(4 * np.sqrt(count))
        quantiser = faiss.IndexFlatIP(DIMENSION)
        inner = faiss.IndexIVFFlat(quantiser, DIMENSION, lists, faiss.METRIC_INNER_PRODUCT)
        inner.nprobe = 32
        return faiss.IndexIDMap2(inner)
    raise ValueError(kind)


def _search(index: Any, probe: np.ndarray) -> tuple[np.ndarray, list[float]]:
    latencies, found = [], []
    for row in probe:
        t0 = time.perf_counter()
        _, hit = index.search(row[None, :], 10)
        latencies.append((time.perf_counter() - t0) * 1000.0)
        found.append(hit[0])
    return np.stack(found), latencies


def run_scale_bench(sizes: Sequence[int] = (100_000,), kinds: Sequence[str] = ("flat", "hnsw",
                                                                             "ivf"),
                    queries: int = 200, build_threads: int | None = None,
                    vectors: str = "real", datasets: Path | None = None,
                    work_dir: Path | None = None,
                    ef_search: Sequence[int] = (64, 128, 256, 512),
                    ef_construction: Sequence[int] = ()) -> dict[str, Any]:
    """Build each index kind at each size; record build time, size, recall@10 and latency.

    HNSW is built once per ``ef_construction`` value (none given: the service's own for the
    size), each graph searched at every ``ef_search`` value and the one the service would use.
    """
    import faiss

    from index.store.embedded_writer import hnsw_ef_construction, hnsw_ef_search

    report: dict[str, Any] = {"benchmark": "scale", "dimension": DIMENSION,
                              "machine": machine(), "vectors": vectors, "runs": []}
    if vectors == "real":
        from eval import bench_vectors

        if datasets is None:
            raise ValueError("real vectors need the datasets folder (--datasets)")
        base, question_vectors = bench_vectors.base_vectors(
            datasets, work_dir or Path(tempfile.mkdtemp(prefix="groundqa-bench-scale-")))
        report["vectors_description"] = bench_vectors.describe(
            len(base), queries, ["BBC News", "SciFact", "NewsQA", "SQuAD"])
    for size in sizes:
        ef_values = sorted({*ef_search, hnsw_ef_search(size)})
        if vectors == "real":
            data = bench_vectors.grow(base, size)
            probe = bench_vectors.sample_queries(question_vectors, queries)
        else:
            data = clustered_vectors(size)
            probe = clustered_vectors(queries, seed=size + 1)
        ids = np.arange(size, dtype=np.int64)
        truth: np.ndarray | None = None
        shipped_efc = hnsw_ef_construction(size)
        builds = [(kind, efc) for kind in kinds for efc in (
            (ef_construction or [shipped_efc]) if kind == "hnsw" else [None])]
        for kind, efc in builds:
            faiss.omp_set_num_threads(build_threads or os.cpu_count() or 1)
            load_before = load_average()
            index = _index(kind, size, efc)
            started = time.perf_counter()
            inner: Any = faiss.downcast_index(index.index)
            if kind == "ivf":
                sample = data[np.random.default_rng(1).choice(size, min(size, 100 * inner.nlist),
                                                              replace=False)]
                inner.train(sample)
            index.add_with_ids(data, ids)
            build = time.perf_counter() - started
            memory = len(faiss.serialize_index(index))
            faiss.omp_set_num_threads(1)  # as index/retrieve.py serves queries
            settings: list[dict[str, int]] = [{}]
            if kind == "hnsw":
                settings = [{"efSearch": ef} for ef in ef_values]
            for setting in settings:
                params: dict[str, int] = {}
                if kind == "hnsw":
                    inner.hnsw.efSearch = setting["efSearch"]
                    params = {"M": int(inner.hnsw.nb_neighbors(1)),
                              "efConstruction": int(inner.hnsw.efConstruction),
                              "efSearch": setting["efSearch"],
                              "shipped": int(setting["efSearch"] == hnsw_ef_search(size)
                                             and efc == shipped_efc)}
                elif kind == "ivf":
                    params = {"nlist": int(inner.nlist), "nprobe": int(inner.nprobe)}
                found_array, latencies = _search(index, probe)
                if kind == "flat":
                    truth = found_array
                recall = recall_at_k(found_array, truth) if truth is not None else float("nan")
                report["runs"].append({
                    "size": size, "index": kind, "build_s": build, "index_bytes": memory,
                    "bytes_per_vector": memory / size, "recall@10": recall,
                    "latency_ms": percentiles(latencies), "params": params,
                    "load_average_1m": round((load_before + load_average()) / 2, 2),
                })
            del index
    return report


def scale_markdown(report: dict[str, Any]) -> str:
    """Table of build time, size, recall and latency per index kind and size."""
    rows = [[r["size"], r["index"],
             ", ".join(f"{k}={v}" for k, v in r["params"].items() if k != "shipped")
             + (" (shipped)" if r["params"].get("shipped") else ""),
             r["build_s"], f"{r['index_bytes'] / 2**20:.0f}",
             r["recall@10"], r["latency_ms"]["p50"], r["latency_ms"]["p99"],
             r["load_average_1m"]] for r in report["runs"]]
    what = report.get("vectors_description") or "synthetic clustered 384-d unit vectors"
    return (f"Vector index at scale ({what}; inner product, recall@10 vs exact, single-query "
            "latency on one thread):\n\n"
            + markdown_table(["vectors", "index", "settings", "build s", "size MiB",
                              "recall@10", "p50 ms", "p99 ms", "load 1m"], rows))
