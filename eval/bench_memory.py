"""Resident memory of the service after loading each corpus, and index bytes per chunk on disk.

Each figure comes from a fresh Python process that builds ``QAService`` (model + index) the
way ``groundqa serve`` does, so one corpus's memory never inflates another's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.bench_common import load_average, machine, markdown_table

_PROBE = """
import json, sys
from pathlib import Path
from eval.bench_common import rss_bytes
before = rss_bytes()
from index.embedding import load_embedder
embedder = load_embedder(sys.argv[2])
embedder.embed(["warm up"])
model_only = rss_bytes()
from service.config import Settings
from service.core import QAService
service = QAService(Settings(data_dir=Path(sys.argv[1]), embedder=sys.argv[2]), embedder)
from service.schemas import AskRequest
service.ask(AskRequest(question="What happened at the border?"))
print(json.dumps({"interpreter": before, "model_loaded": model_only, "service_ready": rss_bytes()}))
"""


def measure_service_rss(data_dir: Path, embedder_kind: str) -> dict[str, int]:
    """RSS (bytes) of a fresh process: bare, with the model, with the service and index."""
    output = subprocess.run([sys.executable, "-c", _PROBE, str(data_dir), embedder_kind],
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run_memory_bench(corpora: Sequence[str] = ("demo", "bbc"), embedder_kind: str = "minilm",
                     work_dir: Path | None = None) -> dict[str, Any]:
    """Memory and disk figures per corpus (indexes built in ``work_dir`` when missing)."""
    from eval.bench_query import build_index
    from index.store import DataDir

    work = work_dir or Path(tempfile.mkdtemp(prefix="groundqa-bench-memory-"))
    report: dict[str, Any] = {"benchmark": "memory", "embedder": embedder_kind,
                              "machine": machine(), "corpora": {}}
    for corpus in corpora:
        data_dir = work / f"{corpus}-{embedder_kind}"
        built = build_index(corpus, data_dir, embedder_kind)
        layout = DataDir(data_dir)
        version = layout.current_version()
        assert version is not None
        disk = layout.size_on_disk(version)
        rss = measure_service_rss(data_dir, embedder_kind)
        report["corpora"][corpus] = {
            "documents": built["documents"], "chunks": built["chunks"], "rss_bytes": rss,
            "index_increment_bytes": rss["service_ready"] - rss["model_loaded"],
            "disk_bytes": disk, "disk_bytes_per_chunk": disk / max(built["chunks"], 1),
            "files": {p.name: p.stat().st_size if p.is_file() else
                      sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
                      for p in layout.version_path(version).iterdir()},
            "load_average_1m": round(load_average(), 2),
        }
    return report


def memory_markdown(report: dict[str, Any]) -> str:
    """One row per corpus: RSS after loading, the index's share, bytes per chunk on disk."""
    mib = 2**20
    rows = [[corpus, e["documents"], e["chunks"], f"{e['rss_bytes']['model_loaded'] / mib:.0f}",
             f"{e['rss_bytes']['service_ready'] / mib:.0f}",
             f"{e['index_increment_bytes'] / mib:.1f}", f"{e['disk_bytes'] / mib:.1f}",
             f"{e['disk_bytes_per_chunk']:.0f}", e["load_average_1m"]]
            for corpus, e in report["corpora"].items()]
    return (f"Memory (embedder {report['embedder']}; fresh process per corpus):\n\n"
            + markdown_table(["corpus", "articles", "chunks", "RSS model only MiB",
                              "RSS service ready MiB", "index + service MiB",
                              "index on disk MiB", "disk bytes/chunk", "load 1m"], rows))
