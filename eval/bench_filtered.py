"""Filtered vector search on a large embedded index: the graph with a selector vs exact rows.

A question with a filter (outlet, date range, document ids) searches only the chunks that pass
it. Through an HNSW graph the filter is a selector: the graph is walked as usual and rows that
fail are skipped, so the fewer rows pass, the fewer true neighbours the walk reaches. The
embedded store therefore scores the passing rows exactly when there are at most
``EXACT_FILTER_ROWS`` of them, or when they are at most ``EXACT_FILTER_SHARE`` of the index and
no more than a flat index scans (``index.store.embedded.ExactRows``). This benchmark measures
both paths on the vectors of ``groundqa bench scale --vectors real`` (real MiniLM chunk vectors
of real text grown by perturbation, real questions as queries) for filters keeping a range of
row counts, and derives the store's settings (``thresholds``): the share of rows below which
the graph loses recall to the filter, and the row count below which the exact scan is faster
anyway.

Filters are random subsets of the rows (a filter on an outlet or a date range does not follow
the geometry of the vectors), one subset per row count shared by every query.
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
from eval.bench_pgvector import exact_top, recall

RECALL_DROP = 0.02  # recall@10 lost to a filter that makes the exact scan worth its cost


def run_filtered_bench(size: int = 300_000,
                       rows: Sequence[int] = (1_000, 3_000, 10_000, 30_000, 100_000),
                       queries: int = 200, datasets: Path | None = None,
                       work_dir: Path | None = None) -> dict[str, Any]:
    """Both paths at every filter size on one graph built with the store's settings."""
    import faiss

    from eval import bench_vectors
    from index.store.embedded import ExactRows
    from index.store.embedded_writer import _new_faiss_index

    if datasets is None:
        raise ValueError("the real vectors need the datasets folder (--datasets)")
    base, question_vectors = bench_vectors.base_vectors(
        datasets, work_dir or Path(tempfile.mkdtemp(prefix="groundqa-bench-filtered-")))
    data = bench_vectors.grow(base, size)
    probe = bench_vectors.sample_queries(question_vectors, queries)
    report: dict[str, Any] = {
        "benchmark": "filtered", "size": size, "machine": machine(),
        "vectors_description": bench_vectors.describe(
            len(base), len(probe), ["BBC News", "SciFact", "NewsQA", "SQuAD"]),
        "recall_drop": RECALL_DROP, "runs": []}
    load_before = load_average()
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    index: Any = _new_faiss_index(data.shape[1], "hnsw", size)  # the store's settings
    started = time.perf_counter()
    index.add_with_ids(data, np.arange(size, dtype=np.int64))
    report["build_s"] = time.perf_counter() - started
    graph: Any = faiss.downcast_index(index.index)
    report["settings"] = {"M": int(graph.hnsw.nb_neighbors(1)),
                          "efConstruction": int(graph.hnsw.efConstruction),
                          "efSearch": int(graph.hnsw.efSearch)}
    faiss.omp_set_num_threads(1)  # as the store serves queries
    exact_rows = ExactRows.of(index)
    assert exact_rows is not None
    rng = np.random.default_rng(7)
    for count in [size, *sorted(c for c in rows if c < size)]:
        allowed = None if count == size else np.sort(
            rng.choice(size, count, replace=False)).astype(np.int64)
        truth = exact_top(data, probe, allowed)
        params = None if allowed is None else faiss.SearchParameters(  # type: ignore[call-arg]
            sel=faiss.IDSelectorBatch(allowed))
        paths: dict[str, Any] = {}
        for path in ("graph", "exact") if allowed is not None else ("graph",):
            latencies, found = [], []
            for query in probe:
                t0 = time.perf_counter()
                if path == "graph":
                    _, ids = index.search(query[None, :], 10, params=params)
                    hits = [int(i) for i in ids[0] if i >= 0]
                else:
                    hits = exact_rows.search(query, allowed, 10)  # type: ignore[arg-type]
                latencies.append((time.perf_counter() - t0) * 1000.0)
                found.append(hits)
            paths[path] = {**percentiles(latencies), "recall@10": recall(found, truth)}
        report["runs"].append({"rows": count, "share": count / size, **paths})
    report["load_average_1m"] = round((load_before + load_average()) / 2, 2)
    report.update(thresholds(report))
    return report


def thresholds(report: dict[str, Any]) -> dict[str, float]:
    """The store's two settings from the measured rows (filters sorted by rows kept):

    * ``exact_filter_share``: the largest share kept at which the graph's recall@10 is more
      than ``RECALL_DROP`` below its own unfiltered recall (the walk reaches too few rows that
      pass), counting up until it no longer is;
    * ``exact_filter_rows``: the largest row count at which the exact scan is no slower than
      the graph, whatever the share.
    """
    runs = sorted((r for r in report["runs"] if "exact" in r), key=lambda r: r["rows"])
    unfiltered = next(r for r in report["runs"] if "exact" not in r)["graph"]["recall@10"]
    share = 0.0
    for run in runs:
        if run["graph"]["recall@10"] >= unfiltered - RECALL_DROP:
            break
        share = run["share"]
    rows = 0
    for run in runs:
        if run["exact"]["p50"] > run["graph"]["p50"]:
            break
        rows = run["rows"]
    return {"exact_filter_share": share, "exact_filter_rows": rows}


def filtered_markdown(report: dict[str, Any]) -> str:
    """One row per filter size: both paths' latency and recall."""
    rows = []
    for run in report["runs"]:
        graph, exact = run["graph"], run.get("exact")
        rows.append([f"{run['rows']:,}", f"{run['share']:.2%}", graph["p50"], graph["p99"],
                     graph["recall@10"], exact["p50"] if exact else "–",
                     exact["p99"] if exact else "–", exact["recall@10"] if exact else "–"])
    settings = ", ".join(f"{k}={v}" for k, v in report["settings"].items())
    return (f"Filtered search at {report['size']:,} vectors ({report['vectors_description']}; "
            f"HNSW {settings}, built in {report['build_s']:.0f} s; top 10, one thread, load "
            f"{report['load_average_1m']}):\n\n"
            + markdown_table(["rows passing", "share", "graph p50 ms", "graph p99 ms",
                              "graph recall@10", "exact p50 ms", "exact p99 ms",
                              "exact recall@10"], rows)
            + f"\n\nExact search for filters keeping up to {report['exact_filter_share']:.2%} of "
            f"the rows (the graph loses more than {report['recall_drop']} recall@10 to them) or "
            f"up to {report['exact_filter_rows']:,} rows (the exact scan is no slower).")
