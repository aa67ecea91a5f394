"""Schema fuzzing: schemathesis against the service's own OpenAPI document, every route.

Runs the ``st`` CLI (pinned in the dev extras) against a real server on a throwaway copy of
the seed index, with all checks except ``positive_data_acceptance``: a schema-valid request
can still be refused for what JSON Schema cannot say, a date range whose start is after its
end, or an upload whose content is a binary format (PNG, PDF, …). The schema says everything
else the server checks (integral ``top_k``, calendar dates, a visible character and the length
limit of a question, a user message in a chat), so a run with that check reports only those
two (see README "Threat model and guarantees"). Everything else must hold: no 5xx, every
status, content type, header and body as documented, schema-invalid requests refused, 405s
with a correct Allow header.
Mutating routes do run (POST/DELETE documents), so afterwards the index must still be whole.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from index.embedding import SentenceTransformerEmbedder
from index.store import IndexSnapshot
from tests.reliability.conftest import copy_index, run_server

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.model]

MIN_CASES = 1000
SEED = 20240501


def test_fuzzed_api_has_no_5xx_and_conforms_to_its_schema(
        seed_index_dir: Path, tmp_path: Path,
        real_embedder: SentenceTransformerEmbedder) -> None:
    data_dir = copy_index(seed_index_dir, tmp_path / "data")
    report = tmp_path / "schemathesis.json"
    st = Path(sys.executable).with_name("st")
    with run_server(data_dir, tmp_path / "server.log") as server:
        # One worker: hypothesis' internal caches are not thread-safe (a KeyError inside the
        # tool with -w 2). A fixed seed makes a failure reproducible with the same command.
        run = subprocess.run(
            [str(st), "run", f"{server.url}/openapi.json", "--checks", "all",
             "--exclude-checks", "positive_data_acceptance", "--max-examples", "60",
             "--workers", "1", "--seed", str(SEED), "--continue-on-failure",
             "--report", "json", "--report-json-path", str(report)],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )
        output = run.stdout[-6000:] + run.stderr[-2000:]
        assert report.exists(), output
        result = json.loads(report.read_text())
        assert result["operations"]["tested"] == result["operations"]["total"] >= 9, output
        assert result["operations"]["errored"] == 0, output
        assert result["test_cases"]["generated"] >= MIN_CASES, output
        assert result["failures"] == [] and result["errors"] == [], output
        assert run.returncode == 0, output

        # Fuzzing added and deleted documents; what is left must be a whole, servable index.
        with server.client() as client:
            ready = client.get("/readyz").json()
            listed = client.get("/v1/documents").json()
            assert listed["index_version"] == ready["index_version"]
            for doc in listed["documents"]:
                response = client.get(f"/v1/documents/{doc['doc_id']}")
                assert response.status_code == 200, response.text
                assert len(response.json()["text"]) == doc["length"]
            answer = client.post("/v1/ask", json={"question": "Who closed an embassy in Kabul?"})
            assert answer.status_code == 200, answer.text
    snapshot = IndexSnapshot.open(data_dir, real_embedder)
    assert snapshot.version == ready["index_version"]
    assert snapshot.document_count == len(listed["documents"]) == ready["documents"]
    assert snapshot.vectors.ntotal == snapshot.chunk_count == ready["chunks"]
