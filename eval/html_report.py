"""A self-contained HTML page for an evaluation report: tables and matplotlib figures.

Every evaluation (``groundqa eval qa|retrieval|checker``) writes ``report.html`` beside its
``report.json`` and ``report.md`` so a person can read the per-question outcomes and look at the
figures without tooling. Figures are inlined as base64 PNG, so the one file can be mailed or
attached to a pull request. Questions, answers and quotes come from datasets and articles and
may hold markup: every piece of text goes through ``html.escape`` here, and only this module
writes tags (``Raw`` marks the few fragments it built itself).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Bins of the reliability diagrams (equal width over [0, 1]).
RELIABILITY_BINS = 10

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 78rem; color: #1d232b;
  padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .88rem; }
th, td { border: 1px solid #d9dee4; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f1f3f6; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; } figcaption { font-size: .85rem; color: #5b6570; max-width: 34rem; }
.verdict { font-weight: 600; white-space: nowrap; }
.ok { color: #2d5d2d; } .bad { color: #8a1f1f; } .meh { color: #7a5a00; }
.quote { color: #384250; font-size: .82rem; margin: .15rem 0; }
table.questions { width: 100%; }
table.questions td { white-space: pre-line; max-width: 32rem; overflow-wrap: anywhere; }
.muted { color: #5b6570; }
"""


@dataclass(frozen=True)
class Raw:
    """An HTML fragment this module built from escaped parts (never from outside text)."""

    markup: str


Cell = str | int | float | None | Raw


def escape(text: Any) -> str:
    """Text as HTML (quotes too, so it is safe inside attributes)."""
    return html.escape("" if text is None else str(text), quote=True)


def number(value: Any, digits: int = 3) -> str:
    """A metric for a table: ``n/a`` for NaN/None (nothing could be scored)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def verdict(text: str, kind: str) -> Raw:
    """A verdict cell: ``kind`` is ok, bad or meh (colour only; the word says it)."""
    return Raw(f'<span class="verdict {escape(kind)}">{escape(text)}</span>')


def lines(items: Iterable[str], css: str = "") -> Raw:
    """Several pieces of text in one cell, one per line."""
    cls = f' class="{escape(css)}"' if css else ""
    return Raw("".join(f"<div{cls}>{escape(item)}</div>" for item in items))


def _cell(value: Cell) -> str:
    if isinstance(value, Raw):
        return f"<td>{value.markup}</td>"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'<td class="num">{escape(number(value))}</td>'
    return f"<td>{escape('' if value is None else value)}</td>"


class HtmlReport:
    """Builds one report page section by section; ``write`` saves it."""

    def __init__(self, title: str) -> None:
        self.title = title
        self._parts: list[str] = [f"<h1>{escape(title)}</h1>"]
        self._figures: list[str] = []

    def heading(self, text: str) -> None:
        """A section heading (flushes pending figures above it)."""
        self._flush_figures()
        self._parts.append(f"<h2>{escape(text)}</h2>")

    def paragraph(self, text: str) -> None:
        """A paragraph of plain text."""
        self._flush_figures()
        self._parts.append(f"<p>{escape(text)}</p>")

    def metrics(self, values: Mapping[str, Any]) -> None:
        """A two-column table of headline metrics."""
        self.table(["metric", "value"], [[name, Raw(escape(number(v)))]
                                         for name, v in values.items()])

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Cell]],
              css: str = "") -> None:
        """A table; cells are escaped unless they are ``Raw``."""
        self._flush_figures()
        cls = f' class="{escape(css)}"' if css else ""
        head = "".join(f"<th>{escape(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
        self._parts.append(f"<table{cls}><thead><tr>{head}</tr></thead>"
                           f"<tbody>{body}</tbody></table>")

    def figure(self, fig: Any, caption: str) -> None:
        """A matplotlib figure, inlined as a PNG (figures side by side until the next text)."""
        import matplotlib.pyplot as plt

        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        plt.close(fig)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        self._figures.append(f'<figure><img alt="{escape(caption)}" '
                             f'src="data:image/png;base64,{data}">'
                             f"<figcaption>{escape(caption)}</figcaption></figure>")

    def _flush_figures(self) -> None:
        if self._figures:
            self._parts.append('<div class="figures">' + "".join(self._figures) + "</div>")
            self._figures = []

    def render(self) -> str:
        """The whole page."""
        self._flush_figures()
        return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{escape(self.title)}</title><style>{_STYLE}</style></head><body>\n"
                + "\n".join(self._parts) + "\n</body></html>\n")

    def write(self, path: Path) -> Path:
        """Write the page to ``path`` and return it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render(), encoding="utf-8")
        return path


# --------------------------------------------------------------------------------------------
# Figures (matplotlib, Agg: no display needed)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plain_label(text: str) -> str:
    """A label matplotlib shows as written (a ``$`` would otherwise start mathtext)."""
    return text.replace("$", r"\$")


def reliability_bins(confidence: Sequence[float], correct: Sequence[bool],
                     bins: int = RELIABILITY_BINS) -> list[dict[str, float]]:
    """Per equal-width bin: count, mean confidence and share correct (NaN when empty)."""
    out = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(p, y) for p, y in zip(confidence, correct, strict=True)
                  if lo <= p < hi or (b == bins - 1 and p == 1.0)]
        out.append({"lo": lo, "hi": hi, "count": float(len(inside)),
                    "mean_confidence": (sum(p for p, _ in inside) / len(inside)
                                        if inside else math.nan),
                    "accuracy": (sum(bool(y) for _, y in inside) / len(inside)
                                 if inside else math.nan)})
    return out


def reliability_figure(confidence: Sequence[float], correct: Sequence[bool], *,
                       xlabel: str = "confidence", ylabel: str = "share correct",
                       threshold: float | None = None) -> Any:
    """Mean confidence against the share correct per bin (diagonal = calibrated), with counts."""
    plt = _pyplot()
    table = reliability_bins(confidence, correct)
    filled = [row for row in table if row["count"]]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.2, 5.6), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="calibrated")
    top.plot([r["mean_confidence"] for r in filled], [r["accuracy"] for r in filled],
             marker="o", label="observed")
    if threshold is not None:
        top.axvline(threshold, color="tab:red", linewidth=1, label=f"threshold {threshold:.2f}")
    top.set_ylim(-0.02, 1.02)
    top.set_ylabel(plain_label(ylabel))
    top.legend(loc="upper left", fontsize=8)
    width = 1 / len(table)
    bottom.bar([(r["lo"] + r["hi"]) / 2 for r in table], [r["count"] for r in table],
               width=width * 0.9, color="tab:blue")
    bottom.set_xlim(0, 1)
    bottom.set_xlabel(plain_label(xlabel))
    bottom.set_ylabel("count")
    fig.tight_layout()
    return fig


def grouped_bars_figure(groups: Mapping[str, Mapping[str, float]], *,
                        ylabel: str = "score") -> Any:
    """One cluster of bars per group (x axis), one bar per metric; NaN bars are left out."""
    plt = _pyplot()
    names = list(groups)
    metrics = list(dict.fromkeys(m for g in groups.values() for m in g))
    width_in = min(9.0, max(5.2, 1.6 + 0.25 * len(names) * max(1, len(metrics))))
    fig, ax = plt.subplots(figsize=(width_in, 4.4))
    width = 0.8 / max(1, len(metrics))
    for i, metric in enumerate(metrics):
        xs = [x + i * width for x, n in enumerate(names)
              if not math.isnan(groups[n].get(metric, math.nan))]
        ys = [groups[n][metric] for n in names if not math.isnan(groups[n].get(metric, math.nan))]
        ax.bar(xs, ys, width=width, label=plain_label(metric))
    ax.set_xticks([x + width * (len(metrics) - 1) / 2 for x in range(len(names))])
    ax.set_xticklabels([plain_label(n) for n in names], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(plain_label(ylabel))
    ax.set_ylim(0, 1.05)
    # Below the axes, so it never hides a bar.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.3),
              ncol=min(4, max(1, len(metrics))), frameon=False)
    fig.tight_layout()
    return fig


def latency_figure(latencies_ms: Sequence[float], *, xlabel: str = "latency (ms)") -> Any:
    """A histogram of latencies with the median and 95th percentile marked."""
    plt = _pyplot()
    values = sorted(v for v in latencies_ms if not math.isnan(v))
    fig, ax = plt.subplots(figsize=(5.2, 4))
    if values:
        ax.hist(values, bins=min(30, max(5, len(values) // 3)), color="tab:blue")
        p50 = values[len(values) // 2]
        p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
        ax.axvline(p50, color="black", linewidth=1, label=f"p50 {p50:.1f}")
        ax.axvline(p95, color="tab:red", linewidth=1, label=f"p95 {p95:.1f}")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no timings", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(plain_label(xlabel))
    ax.set_ylabel("count")
    fig.tight_layout()
    return fig
