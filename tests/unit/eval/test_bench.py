"""The benchmark programs' pure parts and a tiny end-to-end run of `groundqa bench scale`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from eval.bench_cli import app
from eval.bench_common import corpus_questions, markdown_table, percentiles, uncached
from eval.bench_scale import clustered_vectors, recall_at_k
from eval.bench_vectors import grow
from index.store.embedded_writer import hnsw_ef_search


def test_percentiles_and_empty() -> None:
    figures = percentiles([float(v) for v in range(1, 101)])
    assert figures["n"] == 100 and math.isclose(figures["p50"], 50.5)
    assert figures["p99"] > figures["p95"] > figures["p50"]
    assert math.isnan(percentiles([])["p50"])


def test_uncached_questions_differ_but_clean_to_the_same_words() -> None:
    from service.core import clean_question

    first, second = uncached("Who is it?", 1), uncached("Who is it?", 2)
    assert first != second != "Who is it?"
    assert clean_question(first, 100).replace("\u200b", "") == "Who is it?"


def test_markdown_table_formats_numbers() -> None:
    table = markdown_table(["a", "b"], [[1.23456, float("nan")], [123.456, None]])
    assert "| 1.235 | n/a |" in table and "| 123.5 | – |" in table


def test_demo_questions_come_from_the_seed_file() -> None:
    questions = corpus_questions("demo")
    assert len(questions) >= 50 and all(q.strip() for q in questions)


def test_clustered_vectors_are_unit_and_recall_is_scored() -> None:
    data = clustered_vectors(500, dimension=16, centres=10, latent=4)
    assert data.shape == (500, 16)
    assert np.allclose(np.linalg.norm(data, axis=1), 1.0, atol=1e-5)
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    assert recall_at_k(np.array([[1, 2, 9], [4, 5, 6]]), truth, k=3) == (2 / 3 + 1) / 2


def test_bench_scale_writes_json_and_markdown(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["scale", "--sizes", "3000", "--queries", "10",
                                      "--vectors", "clustered", "--ef-search", "16,64",
                                      "--report-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "scale-clustered.json").read_text())
    kinds = {run["index"] for run in report["runs"]}
    assert kinds == {"flat", "hnsw", "ivf"}
    flat = [run for run in report["runs"] if run["index"] == "flat"]
    assert flat[0]["recall@10"] == 1.0
    hnsw = {run["params"]["efSearch"]: run for run in report["runs"] if run["index"] == "hnsw"}
    assert set(hnsw) == {16, 64, hnsw_ef_search(3000)}
    assert [run["params"]["shipped"] for _, run in sorted(hnsw.items())].count(1) == 1
    assert all(0.0 <= run["recall@10"] <= 1.0 for run in hnsw.values())
    assert (tmp_path / "scale-clustered.md").read_text().startswith("Vector index at scale")
    assert (tmp_path / "scale-clustered.png").read_bytes().startswith(b"\x89PNG")


def test_bench_scale_real_vectors_need_the_datasets(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["scale", "--report-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--datasets" in result.output


def test_grown_vectors_keep_the_base_and_stay_unit_and_distinct() -> None:
    rng = np.random.default_rng(3)
    base = rng.standard_normal((50, 8)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    grown = grow(base, 400)
    assert grown.shape == (400, 8)
    assert np.array_equal(grown[:50], base)
    assert np.allclose(np.linalg.norm(grown, axis=1), 1.0, atol=1e-5)
    assert len(np.unique(grown.round(6), axis=0)) == 400
    # Every new point stays near a real one: closer to its nearest base vector than random
    # unit vectors are on average.
    nearest = (grown[50:] @ base.T).max(axis=1)
    assert nearest.mean() > 0.8


def test_bench_rejects_unknown_values(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["scale", "--indexes", "lsh", "--report-dir",
                                      str(tmp_path)])
    assert result.exit_code == 2


def test_bench_scale_builds_one_graph_per_ef_construction(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["scale", "--sizes", "2000", "--queries", "10",
                                      "--vectors", "clustered", "--indexes", "hnsw",
                                      "--ef-search", "32", "--ef-construction", "40,120",
                                      "--report-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "scale-clustered.json").read_text())
    graphs = {run["params"]["efConstruction"] for run in report["runs"]
              if run["index"] == "hnsw"}
    assert graphs == {40, 120}
    # Neither is the service's own graph, so no row claims to be what it ships.
    assert not any(run["params"].get("shipped") for run in report["runs"])


def test_bench_middleware_measures_the_app_against_a_bare_route(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["middleware", "--requests", "200", "--rounds", "1",
                                      "--report-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "middleware.json").read_text())
    runs = {run["app"]: run for run in report["runs"]}
    assert len(runs) == 3 and all(run["n"] == 200 and run["p50"] > 0 for run in runs.values())
    assert runs["bare FastAPI (the route only)"]["added_p50_ms"] == 0
    assert (tmp_path / "middleware.md").read_text().startswith("HTTP layers per request")
    assert (tmp_path / "middleware.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.model
def test_bench_replicas_ingest_splits_the_articles_between_processes(
        postgres_server: Any) -> None:
    """Two ingest processes (real ONNX embedder) on one database write every demo article
    once; the report table shows both runs."""
    import psycopg

    from eval.bench_replicas import _ingest, _new_database, replicas_markdown

    url = _new_database(postgres_server.get_uri(), "gq_test_bench_replicas")
    run = _ingest(url, "demo", 5, 2)
    assert run["processes"] == 2 and len(run["process_s"]) == 2
    assert run["articles_per_s"] > 0
    with psycopg.connect(url) as conn:
        live = conn.execute("SELECT count(DISTINCT doc_id) FROM gq_documents "
                            "WHERE removed_in IS NULL").fetchone()
    assert live == (5,)
    report = {"corpus": "demo", "embedder": "onnx", "machine": {"cores": 2}, "ingest": [run],
              "ask": [{"replicas": 2, "requests": 10, "concurrency": 2, "errors": 0,
                       "throughput_rps": 3.0, "p50_ms": [100.0, 110.0],
                       "load_average_1m": 1.0}]}
    table = replicas_markdown(report)
    assert "| 2 | 5 |" in table and "100 / 110" in table


def _latency(p50: float) -> dict[str, float]:
    return {"n": 10, "p50": p50, "p95": p50 * 2, "p99": p50 * 3, "mean": p50}


# The smallest report of each benchmark's shape, as its run_* function writes it.
SAMPLE_REPORTS: dict[str, dict[str, Any]] = {
    "filtered": {"benchmark": "filtered", "size": 1000, "exact_filter_rows": 10,
                 "exact_filter_share": 0.05, "runs": [
        {"rows": 1000, "share": 1.0, "graph": {**_latency(1.0), "recall@10": 0.99}},
        *({"rows": n, "share": n / 1000, "graph": {**_latency(1.0), "recall@10": 0.5},
           "exact": {**_latency(0.5), "recall@10": 1.0}} for n in (10, 100))]},
    "query": {"benchmark": "query", "embedder": "onnx", "corpora": {"demo": {
        "chunks": 42, "runs": [{"mode": "http", "spinning": False, "route": "ask",
                                "concurrency": c, **_latency(10.0 * c)} for c in (1, 8)]}}},
    "pgvector": {"benchmark": "pgvector", "size": 1000, **{engine: {"searches": {
        "none": {**_latency(1.0), "recall@10": 0.99},
        "1%": {**_latency(2.0), "recall@10": 0.5}}} for engine in ("faiss", "pgvector")}},
    "replicas": {"benchmark": "replicas", "ingest": [
        {"processes": n, "articles_per_s": 2.0 * n} for n in (1, 2)], "ask": [
        {"replicas": n, "throughput_rps": 5.0} for n in (1, 2)]},
    "ingest": {"benchmark": "ingest", "documents": 3, "runs": [{
        "embedder": "onnx", "end_to_end_chunks_per_s": 50.0,
        "embed_with_spans_chunks_per_s": 60.0, "ceiling_chunks_per_s": 62.0}]},
    "memory": {"benchmark": "memory", "embedder": "onnx", "corpora": {"demo": {
        "rss_bytes": {"model_loaded": 300 * 2**20, "service_ready": 400 * 2**20}}}},
    "peer": {"benchmark": "peer", "groundqa": [
        {"embedder": "onnx", "ingest_s": 10.0, "search_ms": _latency(5.0)}],
        "peers": {"txtai": {"version": "9", "index_s": 12.0, "search_ms": _latency(7.0),
                            "search": "hybrid"},
                  "haystack": {"error": "did not run"}}},
}


@pytest.mark.parametrize("name", sorted(SAMPLE_REPORTS))
def test_every_benchmark_report_gets_its_figure(name: str, tmp_path: Path) -> None:
    from eval.bench_common import write_report

    write_report(tmp_path, name, SAMPLE_REPORTS[name], "table")
    assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG")


def test_a_report_without_a_figure_still_writes_json_and_markdown(tmp_path: Path) -> None:
    from eval.bench_common import write_report

    write_report(tmp_path, "other", {"benchmark": "something else"}, "table")
    assert (tmp_path / "other.json").is_file() and (tmp_path / "other.md").is_file()
    assert not (tmp_path / "other.png").exists()


def test_filtered_thresholds_follow_the_measured_recall_and_latency() -> None:
    from eval.bench_filtered import thresholds

    def run(rows: int, graph_ms: float, graph_recall: float, exact_ms: float) -> dict[str, Any]:
        return {"rows": rows, "share": rows / 100_000,
                "graph": {**_latency(graph_ms), "recall@10": graph_recall},
                "exact": {**_latency(exact_ms), "recall@10": 1.0}}

    report = {"runs": [
        {"rows": 100_000, "share": 1.0, "graph": {**_latency(1.0), "recall@10": 0.97}},
        run(500, 1.0, 0.40, 0.2), run(1_000, 1.0, 0.80, 0.9), run(2_000, 1.0, 0.94, 1.6),
        run(5_000, 1.0, 0.96, 4.0), run(20_000, 1.0, 0.90, 15.0)]}
    # Recall is back within 0.02 of unfiltered at 5,000 rows: the share stops below it, even
    # though a wider filter loses recall again; the scan is no slower up to 1,000 rows.
    assert thresholds(report) == {"exact_filter_share": 0.02, "exact_filter_rows": 1_000}
