"""The QA evaluation end to end with a fake client and checker, the CLI, and the seed questions."""

from __future__ import annotations

import enum
import json
import math
import re
import sys
import types
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import eval.clients as clients_module
import eval.qa as qa_module
from eval.cli import app
from eval.clients import AskFailed, HttpAskClient, InProcessAskClient, ServiceUnreachable
from eval.metrics import answer_contains, normalise_answer
from eval.qa import check_gates, parse_gate, run_qa_eval
from eval.questions import QUESTION_TYPES, QuestionFileError, load_questions

ROOT = Path(__file__).resolve().parents[3]
SEED = ROOT / "eval" / "questions" / "seed.jsonl"
ARTICLES = ROOT / "corpus" / "articles"

# ------------------------------------------------------------------ fakes

DOCS = {
    "d1": "The CSTO estimates 6.5 thousand fighters in Afghanistan. Most are near Tajikistan.",
    "d2": "Russia promised more than $100 million for a border outpost.",
}


class FakeLabel(enum.StrEnum):
    SUPPORTED = "supported"
    UNSUPPORTED = "unsupported"


@dataclass
class FakeResult:
    label: FakeLabel
    score: float


class FakeChecker:
    """Supported iff every normalised word of the claim occurs in the quotes."""

    def __init__(self) -> None:
        self.calls = 0

    def check(self, claim: str, quotes: list[str]) -> FakeResult:
        self.calls += 1
        words = set(normalise_answer(claim).split())
        ok = bool(quotes) and words <= set(normalise_answer(" ".join(quotes)).split())
        return FakeResult(FakeLabel.SUPPORTED if ok else FakeLabel.UNSUPPORTED, float(ok))


def span(doc_id: str, quote: str, shift: int = 0) -> dict[str, Any]:
    start = DOCS[doc_id].index(quote) + shift
    return {"start": start, "end": start + len(quote)}


def answered(answer: str, citations: list[dict[str, Any]], passages: list[str]) -> dict[str, Any]:
    """A response whose single sentence is the whole answer, citing every citation."""
    return {
        "answerable": True,
        "answer": answer,
        "sentences": [
            {"start": 0, "end": len(answer), "citations": [{"id": c["id"]} for c in citations]}
        ],
        "citations": citations,
        "passages": [
            {"doc_id": d, "chunk_id": f"{d}#0", "text": "", "score": 1.0} for d in passages
        ],
    }


def abstained(passages: list[str]) -> dict[str, Any]:
    return {
        "answerable": False,
        "abstain_reason": "not_in_articles",
        "answer": "The articles do not contain this information.",
        "sentences": [],
        "citations": [],
        "passages": [
            {"doc_id": d, "chunk_id": f"{d}#0", "text": "", "score": 0.1} for d in passages
        ],
    }


Q1 = "How many IS fighters are in Afghanistan?"
Q2 = "What did Russia promise for the outpost?"
Q3 = "Where are most fighters?"
Q4 = "What is the capital of Australia?"
Q5 = "Who won the 2022 World Cup?"

QUOTE1 = "The CSTO estimates 6.5 thousand fighters in Afghanistan."
QUOTE2 = "Russia promised more than $100 million"

RESPONSES: dict[str, dict[str, Any]] = {
    # Correct, valid, supported; gold doc at rank 2.
    Q1: answered(
        "The CSTO estimates 6.5 thousand fighters [1].",
        [{"id": 1, "doc_id": "d1", "quote": QUOTE1, "source_span": span("d1", QUOTE1)}],
        ["d2", "d1"],
    ),
    # Correct answer, but the citation's span is off by one character.
    Q2: answered(
        "Russia promised $100 million [1].",
        [{"id": 1, "doc_id": "d2", "quote": QUOTE2, "source_span": span("d2", QUOTE2, shift=1)}],
        ["d2"],
    ),
    # Abstains although the articles answer it; gold doc not retrieved.
    Q3: abstained(["d2"]),
    # Correct abstention.
    Q4: abstained(["d1"]),
    # Answers an unanswerable question with a valid but unsupporting citation.
    Q5: answered(
        "Argentina won the World Cup [1].",
        [{"id": 1, "doc_id": "d1", "quote": QUOTE1, "source_span": span("d1", QUOTE1)}],
        ["d1"],
    ),
}

QUESTIONS = [
    {"id": "t1", "question": Q1, "answerable": True, "answers": ["6,500"], "gold_doc_ids": ["d1"],
     "type": "factoid"},
    {"id": "t2", "question": Q2, "answerable": True, "answers": ["100 million dollars"],
     "gold_doc_ids": ["d2"], "type": "factoid"},
    {"id": "t3", "question": Q3, "answerable": True, "answers": ["Tajikistan"],
     "gold_doc_ids": ["d1"], "type": "paraphrase"},
    {"id": "t4", "question": Q4, "answerable": False, "type": "unanswerable"},
    {"id": "t5", "question": Q5, "answerable": False, "type": "unanswerable"},
]  # fmt: skip


class FakeClient:
    """Canned /v1/ask responses; counts document fetches."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    def ask(self, question: str, top_k: int) -> dict[str, Any]:
        self.asked.append((question, top_k))
        if question not in RESPONSES:
            raise AskFailed("422: question rejected")
        return json.loads(json.dumps(RESPONSES[question]))

    def document_text(self, doc_id: str) -> str:
        return DOCS[doc_id]


def write_questions(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def questions_file(tmp_path: Path) -> Path:
    return write_questions(tmp_path / "questions.jsonl", QUESTIONS)


# ------------------------------------------------------------------ run_qa_eval


def test_run_qa_eval_scores_hand_checked(questions_file: Path, tmp_path: Path) -> None:
    client = FakeClient()
    report = run_qa_eval(questions_file, client, tmp_path / "out", top_k=3, checker=FakeChecker())
    m = report.metrics

    assert [k for _, k in client.asked] == [3] * 5
    # Answerable t1, t2 contain the gold, t3 abstained.
    assert m["answer_contains"] == pytest.approx(2 / 3)
    # should-abstain [F, F, F, T, T] vs abstained [F, F, T, T, F].
    assert m["abstention_precision"] == pytest.approx(1 / 2)
    assert m["abstention_recall"] == pytest.approx(1 / 2)
    assert m["abstention_balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    # t1, t2, t5 each: 1 marker + 1 sentence citation + 1 quote; t2's quote is broken.
    assert m["citation_validity"] == pytest.approx(8 / 9)
    # t1 and t2 supported, t5 not (its sentence invents a winner).
    assert m["citation_recall"] == pytest.approx(2 / 3)
    assert m["citation_precision"] == pytest.approx(2 / 3)
    assert m["groundedness"] == pytest.approx(2 / 3)
    # Gold doc ranks: t1 2nd, t2 1st, t3 missing; t4/t5 have no gold docs.
    assert m["retrieval_hit_at_k"] == pytest.approx(2 / 3)
    assert m["retrieval_mrr"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert 0 <= m["latency_p50_ms"] <= m["latency_p95_ms"]

    by_id = {r.id: r for r in report.results}
    assert not by_id["t1"].failed and not by_id["t4"].failed
    assert any("quote != document_text" in p for p in by_id["t2"].problems)
    assert any("abstained" in p for p in by_id["t3"].problems)
    assert any("cannot answer" in p for p in by_id["t5"].problems)
    assert any("not supported by its citations" in p for p in by_id["t5"].problems)
    assert [r.id for r in report.failures] == ["t2", "t3", "t5"]
    assert report.by_type["unanswerable"]["abstain_rate"] == 0.5
    assert math.isnan(report.by_type["unanswerable"]["answer_contains"])


def test_reports_are_written_as_strict_json_and_markdown(
    questions_file: Path, tmp_path: Path
) -> None:
    report = run_qa_eval(questions_file, FakeClient(), tmp_path / "out", checker=FakeChecker())
    assert report.json_path == tmp_path / "out" / "report.json"

    def no_nan(token: str) -> None:
        raise AssertionError(f"non-standard JSON constant {token}")

    data = json.loads(report.json_path.read_text(), parse_constant=no_nan)
    assert data["metrics"]["citation_validity"] == pytest.approx(8 / 9)
    assert data["metrics"]["answer_contains"] == pytest.approx(2 / 3)
    assert len(data["results"]) == 5
    assert data["results"][3]["answer_f1"] is None  # NaN (unanswerable) is written as null

    markdown = report.markdown_path.read_text()  # type: ignore[union-attr]
    assert "| citation_validity | 0.889 |" in markdown
    assert "## Failures (3)" in markdown
    assert "### t2 (factoid, answerable): " + Q2 in markdown
    assert "- answer: Russia promised $100 million [1]." in markdown
    assert "### t1 " not in markdown


def test_failed_ask_is_recorded_not_raised(tmp_path: Path) -> None:
    rows = [*QUESTIONS, {"id": "t6", "question": "Unknown?", "answerable": True, "answers": ["x"]}]
    path = write_questions(tmp_path / "q.jsonl", rows)
    report = run_qa_eval(path, FakeClient(), None, checker=FakeChecker())
    assert report.errors == 1
    failed = report.results[-1]
    assert failed.problems == ["ask failed: 422: question rejected"]
    assert failed.answer_contains == 0.0
    # Errors count as wrong answers but are left out of abstention and latency.
    assert report.metrics["answer_contains"] == pytest.approx(2 / 4)
    assert report.metrics["abstention_precision"] == pytest.approx(1 / 2)
    assert report.json_path is None


def test_default_checker_is_used_without_a_checker(
    monkeypatch: pytest.MonkeyPatch, questions_file: Path
) -> None:
    fake = FakeChecker()
    monkeypatch.setattr(qa_module, "default_checker", lambda: fake)
    report = run_qa_eval(questions_file, FakeClient(), None)
    assert fake.calls > 0
    assert report.metrics["citation_recall"] == pytest.approx(2 / 3)


# ------------------------------------------------------------------ question files


def test_load_questions_reports_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(QUESTIONS[0]) + "\n\n{not json\n")
    with pytest.raises(QuestionFileError, match=r"q\.jsonl:3: not JSON"):
        load_questions(path)
    path.write_text(json.dumps({"id": "x", "question": "Q?", "answerable": True}) + "\n")
    with pytest.raises(QuestionFileError, match=r":1: answerable question needs"):
        load_questions(path)
    path.write_text(json.dumps(QUESTIONS[0]) + "\n" + json.dumps(QUESTIONS[0]) + "\n")
    with pytest.raises(QuestionFileError, match=r":2: duplicate id 't1'"):
        load_questions(path)
    path.write_text(json.dumps({"id": "x", "question": "Q?"}) + "\n")
    with pytest.raises(QuestionFileError, match=r"missing required field 'answerable'"):
        load_questions(path)
    with pytest.raises(QuestionFileError, match="no such file"):
        load_questions(tmp_path / "absent.jsonl")


def test_gates() -> None:
    assert parse_gate("answer_contains=0.8", maximum=False) == ("answer_contains", 0.8)
    assert parse_gate("latency_p95_ms=2000", maximum=True) == ("latency_p95_ms", 2000.0)
    for spec, maximum, message in [
        ("bogus=1", False, "unknown metric"),
        ("answer_contains", False, "NAME=VALUE"),
        ("answer_contains=high", False, "not a number"),
        ("latency_p95_ms=100", False, "--fail-over"),
        ("groundedness=0.5", True, "--fail-under"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_gate(spec, maximum=maximum)
    metrics = {"answer_contains": 0.5, "groundedness": math.nan, "latency_p95_ms": 300.0}
    assert check_gates(metrics, [("answer_contains", 0.5)], [("latency_p95_ms", 300)]) == []
    failures = check_gates(
        metrics, [("answer_contains", 0.6), ("groundedness", 0.1)], [("latency_p95_ms", 200)]
    )
    assert failures == [
        "answer_contains = 0.500 < 0.6",
        "groundedness is n/a (required >= 0.1)",
        "latency_p95_ms = 300.0 > 200",
    ]


# ------------------------------------------------------------------ CLI


@pytest.fixture
def fake_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """Route the CLI's in-process client and default checker to the fakes."""
    monkeypatch.setattr(clients_module, "InProcessAskClient", lambda data_dir: FakeClient())
    monkeypatch.setattr(qa_module, "default_checker", FakeChecker)


runner = CliRunner()


def test_cli_qa_passing_gates(fake_service: None, questions_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["qa", "--questions", str(questions_file), "--report-dir", str(tmp_path / "r"),
         "--fail-under", "citation_validity=0.5", "--fail-over", "latency_p95_ms=60000"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "citation_validity" in result.stdout
    assert "0.889" in result.stdout
    assert (tmp_path / "r" / "report.md").is_file()


def test_cli_qa_failing_gate_exits_1(fake_service: None, questions_file: Path) -> None:
    result = runner.invoke(
        app, ["qa", "--questions", str(questions_file), "--fail-under", "citation_validity=1.0"]
    )
    assert result.exit_code == 1
    assert "gate failed: citation_validity = 0.889 < 1" in result.stderr


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ('{"id": "a", "question": "Q?", "answerable": false}\n{oops\n', [], r":2: not JSON"),
        (None, [], "no such file"),
        ("", ["--fail-under", "accuracy=0.5"], "unknown metric 'accuracy'"),
        ("", ["--fail-under", "latency_p95_ms=10"], "use --fail-over|gate it with --fail-over"),
    ],
)
def test_cli_qa_bad_input_exits_2_with_one_line(
    fake_service: None,
    questions_file: Path,
    tmp_path: Path,
    content: str | None,
    extra: list[str],
    message: str,
) -> None:
    path = questions_file
    if content is None:
        path = tmp_path / "absent.jsonl"
    elif content:
        path = tmp_path / "bad.jsonl"
        path.write_text(content)
    result = runner.invoke(app, ["qa", "--questions", str(path), *extra])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert re.search(message, lines[0])
    assert "Traceback" not in result.output


def test_cli_unreachable_service_exits_2(questions_file: Path) -> None:
    # Nothing listens on port 9 (discard) on loopback in the test environment.
    result = runner.invoke(
        app, ["qa", "--questions", str(questions_file), "--url", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot reach http://127.0.0.1:9")


def test_cli_retrieval_and_checker_delegate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: dict[str, tuple[Any, ...]] = {}

    def fake_retrieval(beir_dir: Path, modes: list[str], report_dir: Path | None) -> dict:
        calls["retrieval"] = (beir_dir, modes, report_dir)
        return {"bm25": {"ndcg@10": 0.5, "recall@100": 0.9}}

    def fake_checker(wice: Path, climate: Path | None, report_dir: Path | None,
                     use_model: bool = True) -> dict:
        calls["checker"] = (wice, climate, report_dir)
        calls["checker_compare"] = (use_model,)
        return {"wice": {"balanced_accuracy": 0.7}}

    monkeypatch.setitem(
        sys.modules, "eval.retrieval", types.SimpleNamespace(run_retrieval_eval=fake_retrieval)
    )
    monkeypatch.setitem(
        sys.modules, "eval.checker", types.SimpleNamespace(run_checker_eval=fake_checker)
    )
    result = runner.invoke(app, ["retrieval", "--beir", str(tmp_path), "--mode", "bm25"])
    assert result.exit_code == 0, result.output
    assert calls["retrieval"] == (tmp_path, ["bm25"], None)
    result = runner.invoke(app, ["retrieval", "--beir", str(tmp_path)])
    assert calls["retrieval"][1] == ["dense", "bm25", "hybrid"]

    wice = tmp_path / "wice.jsonl"
    wice.write_text("")
    result = runner.invoke(app, ["checker", "--wice", str(wice)])
    assert result.exit_code == 0, result.output
    assert calls["checker"] == (wice, None, None) and calls["checker_compare"] == (True,)
    assert runner.invoke(app, ["checker", "--wice", str(wice), "--no-compare"]).exit_code == 0
    assert calls["checker_compare"] == (False,)
    assert "wice" in result.stdout and "0.700" in result.stdout

    assert runner.invoke(app, ["retrieval", "--beir", str(tmp_path / "no")]).exit_code == 2
    assert runner.invoke(app, ["retrieval", "--beir", str(tmp_path), "--mode", "x"]).exit_code == 2
    assert runner.invoke(app, ["checker", "--wice", str(tmp_path / "no.jsonl")]).exit_code == 2


# ------------------------------------------------------------------ clients


def test_http_client_posts_and_caches_documents() -> None:
    seen: list[tuple[str, str, dict[str, str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, dict(request.headers)))
        if request.url.path == "/v1/ask":
            body = json.loads(request.content)
            return httpx.Response(200, json={"answer": body["question"], "top": body["top_k"]})
        if request.url.path == "/v1/documents/d1":
            return httpx.Response(200, json={"doc_id": "d1", "text": "Body"})
        return httpx.Response(404, json={"error": {"code": "document_not_found", "message": "no"}})

    client = HttpAskClient("http://svc/", api_key="k", transport=httpx.MockTransport(handler))
    assert client.ask("Q?", 4) == {"answer": "Q?", "top": 4}
    assert client.document_text("d1") == client.document_text("d1") == "Body"
    assert [(m, p) for m, p, _ in seen] == [("POST", "/v1/ask"), ("GET", "/v1/documents/d1")]
    assert seen[0][2]["authorization"] == "Bearer k"
    with pytest.raises(AskFailed, match="404: no"):
        client.document_text("zz")


def test_http_client_auth_and_transport_errors_stop_the_run() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "bad key"}})

    with pytest.raises(ServiceUnreachable, match="bad key"):
        HttpAskClient("http://svc", transport=httpx.MockTransport(refuse)).ask("Q?", 5)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ServiceUnreachable, match="cannot reach http://svc"):
        HttpAskClient("http://svc", transport=httpx.MockTransport(down)).ask("Q?", 5)


def test_in_process_client_uses_the_service_interface(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    built: list[Any] = []

    class Settings:
        def __init__(self, data_dir: Path) -> None:
            self.data_dir = data_dir

    class AskRequest:
        def __init__(self, question: str, top_k: int,
                     min_confidence: float | None = None) -> None:
            self.question, self.top_k = question, top_k

    class Response:
        def __init__(self, request: AskRequest) -> None:
            self.request = request

        def model_dump(self, mode: str) -> dict[str, Any]:
            return {"mode": mode, "question": self.request.question, "top_k": self.request.top_k}

    class QAService:
        @classmethod
        def from_settings(cls, settings: Settings) -> QAService:
            built.append(settings.data_dir)
            return cls()

        def ask(self, request: AskRequest) -> Response:
            return Response(request)

        def get_document(self, doc_id: str) -> Any:
            if doc_id == "obj":
                return types.SimpleNamespace(text="object text")
            return {"text": "dict text"}

    monkeypatch.setitem(sys.modules, "service.config", types.SimpleNamespace(Settings=Settings))
    monkeypatch.setitem(sys.modules, "service.core", types.SimpleNamespace(QAService=QAService))
    monkeypatch.setitem(
        sys.modules, "service.schemas", types.SimpleNamespace(AskRequest=AskRequest)
    )
    client = InProcessAskClient(tmp_path)
    assert client.ask("Q?", 2) == {"mode": "json", "question": "Q?", "top_k": 2}
    assert client.document_text("obj") == "object text"
    assert client.document_text("dct") == "dict text"
    assert built == [tmp_path]  # built once, lazily


# ------------------------------------------------------------------ the seed question set


def _ws(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture(scope="module")
def seed_questions() -> list[Any]:
    return load_questions(SEED)


@pytest.fixture(scope="module")
def raw_articles() -> dict[str, str]:
    return {p.stem: _ws(p.read_text(encoding="utf-8")) for p in ARTICLES.glob("*.txt")}


def test_seed_set_composition(seed_questions: list[Any]) -> None:
    counts = Counter(q.type for q in seed_questions)
    assert len(seed_questions) >= 55
    assert set(counts) <= set(QUESTION_TYPES)
    assert counts["factoid"] >= 20 and counts["paraphrase"] >= 8
    assert counts["multi_doc"] >= 5 and counts["conflict"] >= 5
    assert counts["near_miss"] >= 6 and counts["unanswerable"] >= 6
    for q in seed_questions:
        assert q.answerable == (q.type not in ("near_miss", "unanswerable")), q.id
        if q.type in ("multi_doc", "conflict"):
            assert len(q.gold_quotes) >= 2, q.id


def test_seed_gold_quotes_are_in_their_articles(
    seed_questions: list[Any], raw_articles: dict[str, str]
) -> None:
    for q in seed_questions:
        assert set(q.gold_doc_ids) <= set(raw_articles), q.id
        assert bool(q.gold_doc_ids) == q.answerable, q.id
        for quote in q.gold_quotes:
            assert any(_ws(quote) in raw_articles[d] for d in q.gold_doc_ids), (q.id, quote)
        # Each gold document contributes evidence.
        for doc_id in q.gold_doc_ids:
            assert any(_ws(quote) in raw_articles[doc_id] for quote in q.gold_quotes), (
                q.id,
                doc_id,
            )


def test_seed_answers_are_grounded_in_gold_quotes_or_docs(
    seed_questions: list[Any], raw_articles: dict[str, str]
) -> None:
    for q in seed_questions:
        if not q.answerable:
            assert not q.answers, q.id
            continue
        evidence = [" ".join(q.gold_quotes)] + [raw_articles[d] for d in q.gold_doc_ids]
        for answer in q.answers:
            assert any(answer_contains(text, [answer]) for text in evidence), (q.id, answer)


def test_seed_quotes_survive_the_corpus_cleaning(seed_questions: list[Any]) -> None:
    loader = pytest.importorskip("corpus.loader")
    cleaned = {p.stem: _ws(loader.load_file(p).text) for p in ARTICLES.glob("*.txt")}
    for q in seed_questions:
        for quote in q.gold_quotes:
            assert any(_ws(quote) in cleaned[d] for d in q.gold_doc_ids), (q.id, quote)
