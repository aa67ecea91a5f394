"""Retrieval quality of the PostgreSQL store next to the embedded one, on the same corpus.

The corpus (SciFact, or any BEIR directory) is ingested once into an embedded data directory and
once into a PostgreSQL database; the second ingest reuses the first one's vectors, so both
stores hold identical chunks and vectors and differ only in their search code. Each store is
scored with ``eval.retrieval``'s own evaluation (dense, lexical, and hybrid with the default
fusion); the PostgreSQL store twice, once per lexical side: BM25 from term statistics kept in
tables, and full-text search (``ts_rank`` over a GIN index).

Run it as ``python -m eval.retrieval_postgres --beir ../shared/datasets/scifact
--database-url postgresql://… --report-dir reports/postgres-retrieval``.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eval.retrieval import (
    DEFAULT_DENSE_WEIGHT,
    DEFAULT_FUSION,
    Setting,
    _evaluate,
    _limit,
)
from eval.retrieval_data import load_dataset, to_documents
from index.embedding import Embedder, SpanEmbeddings, load_embedder
from index.ingest import IndexWriter
from index.store import EmbeddedStore, Snapshot

SETTINGS = [Setting("dense", "dense"), Setting("bm25", "bm25"),
            Setting("hybrid", DEFAULT_FUSION, DEFAULT_DENSE_WEIGHT)]


class _RememberingEmbedder:
    """Wraps an embedder and answers repeated ``embed_with_spans`` calls from memory."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self._seen: dict[tuple[str, tuple[tuple[int, int], ...]], SpanEmbeddings] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed(texts)

    def embed_with_spans(self, texts: Sequence[str],
                         spans: Sequence[Sequence[tuple[int, int]]]) -> list[SpanEmbeddings]:
        keys = [(t, tuple(s)) for t, s in zip(texts, spans, strict=True)]
        todo = [i for i, k in enumerate(keys) if k not in self._seen]
        if todo:
            fresh = self.inner.embed_with_spans([texts[i] for i in todo], [spans[i] for i in todo])
            for i, out in zip(todo, fresh, strict=True):
                self._seen[keys[i]] = out
        return [self._seen[k] for k in keys]

    def count_word_pieces(self, text: str) -> int:
        return self.inner.count_word_pieces(text)


def run(beir_dir: Path, database_url: str, report_dir: Path | None,
        limit_queries: int | None = None, embedder_kind: str = "onnx") -> dict[str, Any]:
    """Ingest into both stores, score every (store, lexical side, setting); return the report."""
    from index.store.postgres import PostgresStore

    dataset = load_dataset(Path(beir_dir))
    embedder = _RememberingEmbedder(load_embedder(embedder_kind))
    documents = to_documents(dataset.corpus, outlet=dataset.name)
    test_qrels = _limit(dataset.qrels, limit_queries)
    rows: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="groundqa-pg-eval-") as tmp:
        embedded = EmbeddedStore(Path(tmp) / "data")
        started = time.perf_counter()
        IndexWriter(embedded, embedder).apply(add=documents)
        timings["ingest_embedded_s"] = time.perf_counter() - started
        database = PostgresStore(database_url)
        started = time.perf_counter()
        IndexWriter(database, embedder).apply(add=documents, wait_seconds=60)
        timings["ingest_postgres_s"] = time.perf_counter() - started  # vectors reused

        stores: list[tuple[str, Snapshot, Any]] = [
            ("embedded (bm25s)", embedded.open(embedder), None),
            ("postgres bm25 (term tables)", database.open(embedder), "bm25"),
            ("postgres full-text (ts_rank, GIN)", database.open(embedder), "fts")]
        for label, snapshot, lexical in stores:
            if lexical is not None:
                database.lexical = lexical
            results = _evaluate(snapshot, embedder, dataset.queries, test_qrels, SETTINGS)
            for setting in SETTINGS:
                rows.append({"store": label, "setting": setting.label, **results[setting]})
        chunks = stores[0][1].chunk_count
        database.close()
    report = {"dataset": dataset.name, "source": str(beir_dir), "documents": len(documents),
              "chunks": chunks, "test_queries": len(test_qrels), "embedder": embedder.name,
              "timings": timings, "results": rows}
    markdown = render(report)
    print(markdown)  # noqa: T201
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "report.json").write_text(json.dumps(report, indent=2))
        (report_dir / "report.md").write_text(markdown + "\n")
    return report


def render(report: dict[str, Any]) -> str:
    """The report as a Markdown table of nDCG@10, Recall@100 and ms per query."""
    def fmt(value: float) -> str:
        return "n/a" if math.isnan(value) else f"{value:.4f}"

    lines = [f"Retrieval on {report['dataset']} test ({report['test_queries']} queries, "
             f"{report['documents']} documents, {report['chunks']} chunks)", "",
             "| store | setting | nDCG@10 | Recall@100 | ms/query |", "|---|---|---|---|---|"]
    for row in report["results"]:
        lines.append(f"| {row['store']} | {row['setting']} | {fmt(row['ndcg@10'])} | "
                     f"{fmt(row['recall@100'])} | {row['ms_per_query']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beir", type=Path, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--report-dir", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--embedder", default="onnx")
    args = parser.parse_args()
    run(args.beir, args.database_url, args.report_dir, args.limit, args.embedder)


if __name__ == "__main__":
    main()
