"""The SQuAD-format evaluation report: JSON, Markdown and a reliability diagram (matplotlib)."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eval.squad_qa import SquadReport


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def reliability_diagram(report: SquadReport, path: Path) -> None:
    """Mean confidence against the share of right answers per bin, with the counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report.reliability if r["count"]]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    top.plot([r["mean_confidence"] for r in rows], [r["accuracy"] for r in rows], marker="o",
             label="groundqa")
    threshold = report.settings.get("min_confidence")
    if isinstance(threshold, float):
        top.axvline(threshold, color="tab:red", linewidth=1, label=f"threshold {threshold:.2f}")
    top.set_ylabel("share of right answers")
    top.set_title(textwrap.fill(f"Reliability: {report.source}", 55), fontsize=10)
    top.legend(loc="upper left")
    centres = [(i + 0.5) / len(report.reliability) for i in range(len(report.reliability))]
    bottom.bar(centres, [r["count"] for r in report.reliability],
               width=1 / len(report.reliability) * 0.9, color="tab:blue")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("questions")
    bottom.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(report: SquadReport, folder: Path) -> Path:
    """Write report.json, report.md, report.html and reliability.png; return the Markdown
    path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(_json_safe(report.to_json()), indent=1),
                                        encoding="utf-8")
    reliability_diagram(report, folder / "reliability.png")
    lines = [f"# QA evaluation on {report.source}", "",
             "Settings: " + ", ".join(f"{k}={v}" for k, v in report.settings.items()), "",
             "| metric | value |", "|---|---|"]
    lines += [f"| {name} | {_fmt(value)} |" for name, value in report.metrics.items()]
    lines += ["", "## Reliability (confidence vs right answers)", "",
              "![reliability diagram](reliability.png)", "",
              "| confidence | questions | mean confidence | share right |", "|---|---|---|---|"]
    lines += [f"| {r['bin']} | {r['count']} | {_fmt(r['mean_confidence'])} | "
              f"{_fmt(r['accuracy'])} |" for r in report.reliability]
    if report.operating_points:
        from eval.squad_qa import OPERATING_POINT_COLUMNS, OPERATING_POINT_TITLE

        lines += ["", f"## {OPERATING_POINT_TITLE}", "",
                  "| " + " | ".join(title for _, title in OPERATING_POINT_COLUMNS) + " |",
                  "|" + "---|" * len(OPERATING_POINT_COLUMNS)]
        lines += ["| " + " | ".join(_fmt(p[key]) for key, _ in OPERATING_POINT_COLUMNS) + " |"
                  for p in report.operating_points]
    wrong = [r for r in report.results if (r.golds and r.f1 < 0.5) or (not r.golds and r.answered)]
    lines += ["", f"## Wrong answers and abstentions ({len(wrong)}, first 50)", "",
              "| question | kind | gold | answer | confidence |", "|---|---|---|---|---|"]
    for r in wrong[:50]:
        gold = " / ".join(r.golds[:2]) or "(none)"
        said = r.short if r.answered else f"(abstained: {r.abstain_reason})"
        lines.append(f"| {r.question.replace('|', '/')} | {r.kind} | {gold.replace('|', '/')} | "
                     f"{said.replace('|', '/')} | {r.confidence:.2f} |")
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    from eval.html_pages import squad_page

    squad_page(report).write(folder / "report.html")
    return path
