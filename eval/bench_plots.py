"""One figure per benchmark report, written beside its JSON and Markdown (``<name>.png``).

Each ``_plot_<benchmark>`` draws the figure a reader wants from that table: latency against
concurrency, recall against latency for the approximate indexes, throughput per setting.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def _axes(columns: int = 1, width: float = 6.0, height: float = 4.0) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, columns, figsize=(width * columns, height), squeeze=False)
    return fig, axes[0]


def _bars(ax: Any, labels: list[str], values: list[float], ylabel: str, title: str) -> None:
    ax.bar(range(len(values)), values, color="#4c72b0")
    ax.set_xticks(range(len(values)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    for x, value in enumerate(values):
        ax.annotate(f"{value:.3g}", (x, value), ha="center", va="bottom", fontsize=8)


def _plot_query(report: dict[str, Any]) -> Any:
    corpora = report["corpora"]
    fig, axes = _axes(len(corpora))
    for ax, (corpus, entry) in zip(axes, corpora.items(), strict=True):
        lines: dict[str, list[tuple[int, float]]] = {}
        for run in entry["runs"]:
            mode = run["mode"] + ("" if "spinning" not in run else
                                  f", spinning {'on' if run['spinning'] else 'off'}")
            lines.setdefault(f"{run['route']} ({mode})", []).append(
                (run["concurrency"], run["p50"]))
        for label, points in lines.items():
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("requests in flight")
        ax.set_ylabel("p50 latency, ms")
        ax.set_title(f"{corpus} ({entry['chunks']} chunks), embedder {report['embedder']}",
                     fontsize=10)
        ax.legend(fontsize=7)
    return fig


def _plot_scale(report: dict[str, Any]) -> Any:
    fig, axes = _axes()
    ax = axes[0]
    series: dict[str, list[tuple[float, float, str]]] = {}
    for run in report["runs"]:
        params = run["params"]
        name = f"{run['size']:,} {run['index']}"
        if run["index"] == "hnsw":
            name += f" efC={params['efConstruction']}"
        label = f"efS {params['efSearch']}" if "efSearch" in params else ""
        series.setdefault(name, []).append((run["latency_ms"]["p50"], run["recall@10"], label))
    for name, points in series.items():
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
        for x, y, label in points:
            if label:
                ax.annotate(label, (x, y), fontsize=7, textcoords="offset points",
                            xytext=(3, -9))
    ax.axhline(0.98, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency per query, ms (one thread)")
    ax.set_ylabel("recall@10 against exact search")
    ax.set_title("Vector index: recall against latency", fontsize=10)
    ax.legend(fontsize=7)
    return fig


def _plot_pgvector(report: dict[str, Any]) -> Any:
    fig, axes = _axes(2)
    labels, latency, recall = [], [], []
    for engine in ("faiss", "pgvector"):
        for name, search in report[engine]["searches"].items():
            labels.append(f"{engine} {name}")
            latency.append(search["p50"])
            recall.append(search["recall@10"])
    _bars(axes[0], labels, latency, "p50 ms", f"{report['size']:,} vectors: search latency")
    _bars(axes[1], labels, recall, "recall@10", "recall against exact search")
    return fig


def _plot_middleware(report: dict[str, Any]) -> Any:
    fig, axes = _axes()
    runs = report["runs"]
    _bars(axes[0], [r["app"] for r in runs], [r["p50"] for r in runs], "p50 ms per request",
          f"GET {runs[0]['path']} through ASGI")
    return fig


def _plot_replicas(report: dict[str, Any]) -> Any:
    fig, axes = _axes(2)
    ingest = report["ingest"]
    _bars(axes[0], [f"{r['processes']} process(es)" for r in ingest],
          [r["articles_per_s"] for r in ingest], "articles/s", "ingest into one database")
    ask = report["ask"]
    _bars(axes[1], [f"{r['replicas']} replica(s), run {i + 1}" for i, r in enumerate(ask)],
          [r["throughput_rps"] for r in ask], "asks/s", "/v1/ask through the replicas")
    return fig


def _plot_ingest(report: dict[str, Any]) -> Any:
    fig, axes = _axes()
    runs = report["runs"]
    labels, values = [], []
    for run in runs:
        labels += [f"{run['embedder']} end to end", f"{run['embedder']} embedding stage",
                   f"{run['embedder']} ceiling"]
        values += [run["end_to_end_chunks_per_s"], run["embed_with_spans_chunks_per_s"],
                   run["ceiling_chunks_per_s"]]
    _bars(axes[0], labels, values, "chunks/s", f"ingest, {report['documents']} articles")
    return fig


def _plot_memory(report: dict[str, Any]) -> Any:
    fig, axes = _axes()
    mib = 2**20
    labels, values = [], []
    for corpus, entry in report["corpora"].items():
        labels += [f"{corpus}: model only", f"{corpus}: service ready"]
        values += [entry["rss_bytes"]["model_loaded"] / mib,
                   entry["rss_bytes"]["service_ready"] / mib]
    _bars(axes[0], labels, values, "RSS, MiB", f"memory, embedder {report['embedder']}")
    return fig


def _plot_peer(report: dict[str, Any]) -> Any:
    from eval.bench_peer import peer_rows

    fig, axes = _axes(2)
    rows = peer_rows(report)
    _bars(axes[0], [r[0] for r in rows], [r[1] for r in rows], "seconds", "index")
    _bars(axes[1], [r[0] for r in rows], [r[2] for r in rows], "p50 ms", "search, top 5")
    return fig


def _plot_filtered(report: dict[str, Any]) -> Any:
    fig, axes = _axes(2)
    runs = sorted((r for r in report["runs"] if "exact" in r), key=lambda r: r["rows"])
    counts = [r["rows"] for r in runs]
    for path in ("graph", "exact"):
        axes[0].plot(counts, [r[path]["p50"] for r in runs], marker="o", label=path)
        axes[1].plot(counts, [r[path]["recall@10"] for r in runs], marker="o", label=path)
    for ax, ylabel in ((axes[0], "p50 ms"), (axes[1], "recall@10")):
        ax.set_xscale("log")
        ax.set_xlabel("rows passing the filter")
        ax.set_ylabel(ylabel)
        ax.axvline(max(report["exact_filter_rows"], report["exact_filter_share"] * report["size"]),
                   color="grey", linestyle=":")
        ax.legend(fontsize=8)
    axes[0].set_title(f"filtered search, {report['size']:,} vectors", fontsize=10)
    return fig


PLOTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "query": _plot_query, "scale": _plot_scale, "pgvector": _plot_pgvector,
    "middleware": _plot_middleware, "replicas": _plot_replicas, "ingest": _plot_ingest,
    "memory": _plot_memory, "peer": _plot_peer, "filtered": _plot_filtered,
}


def write_plot(report: dict[str, Any], path: Path) -> Path | None:
    """Draw ``report``'s figure into ``path`` (PNG); None for a report without one."""
    draw = PLOTS.get(str(report.get("benchmark")))
    if draw is None:
        return None
    import matplotlib.pyplot as plt

    fig = draw(report)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
