"""End-to-end QA evaluation on any SQuAD-format (or MRQA) file: the contexts become the corpus.

``groundqa eval qa --squad FILE [--drop-third] [--subset …] [--url URL]`` ingests every context
as a document (or, with ``--url``, asks a server that already serves the corpus written by
``--write-corpus``), asks every question through retrieval → reader → decision, and scores short
answers (SQuAD EM/F1), "answer contains gold", abstention balanced accuracy, citation validity,
calibration (reliability table and diagram) and latency.

With ``--drop-third`` a third of the contexts (chosen by hash) is left out of the corpus and their
questions become unanswerable: the near-miss setting of a news archive, where similar stories
stay in but not the one that answers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eval.jsonl import json_lines
from eval.metrics import answer_contains

logger = logging.getLogger(__name__)

#: Subsets that keep a file's contexts apart from what the packaged reader trained on
#: (the split rules of eval/reader_data.py, written in service/answer/models/reader/).
SUBSETS = ("all", "squad-fold-b", "squad-dev", "newsqa-heldout", "newsqa-dev")
RELIABILITY_BINS = 10
#: Metrics a --fail-under gate may name with --squad (higher is better).
SQUAD_GATES = ("short_answer_em", "short_answer_f1", "answer_contains",
               "abstention_balanced_accuracy", "precision_of_answers", "citation_validity")


@dataclass(frozen=True)
class SquadContext:
    """One paragraph (SQuAD) or story (NewsQA) of the file, with its position and key."""

    key: str  # "squad:<article>:<paragraph>" or "newsqa:<first question id>" style
    article: int
    paragraph: int
    title: str
    text: str
    qas: tuple[dict[str, Any], ...]

    @property
    def doc_id(self) -> str:
        """A stable document id made from the context text."""
        return "c" + hashlib.sha1(self.text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class SquadQuestion:
    """A question to ask; ``answers`` is empty when the corpus cannot answer it."""

    qid: str
    question: str
    answers: tuple[str, ...]
    doc_id: str
    kind: str  # answerable | impossible (the file says so) | dropped (context left out)

    @property
    def answerable(self) -> bool:
        """Whether the corpus holds an answer."""
        return bool(self.answers)


@dataclass
class SquadSet:
    """The corpus contexts and the questions asked over them."""

    corpus: list[SquadContext]
    questions: list[SquadQuestion]
    dropped: int = 0


_MRQA_MARKER = re.compile(r"\s*\[(?:PAR|DOC|SEP)\]\s*")
_MRQA_TITLE = re.compile(r"\[TLE\]\s*(.*?)\s*(?=\[(?:PAR|DOC|SEP|TLE)\]|$)", re.S)


def _mrqa_text(context: str) -> tuple[str, str | None]:
    """An MRQA context as plain text (its ``[PAR]``/``[DOC]``/``[SEP]`` markers as paragraph
    breaks, ``[TLE]`` titles kept as lines) and its first title."""
    title = _MRQA_TITLE.search(context)
    text = context.replace("[TLE]", "\n\n")
    text = _MRQA_MARKER.sub("\n\n", text).strip()
    return re.sub(r"\n{3,}", "\n\n", text), (title.group(1).strip() or None) if title else None


def load_mrqa(path: Path) -> list[SquadContext]:
    """Every context of an MRQA shared-task file (JSON lines, optionally gzipped: a header line,
    then ``{id, context, qas: [{qid, question, answers: [str]}]}`` per context). Gold answers
    are matched as strings, so the markers may become paragraph breaks."""
    import gzip

    opener = gzip.open if str(path).endswith(".gz") else open
    out: list[SquadContext] = []
    dataset = "MRQA"
    with opener(path, "rt", encoding="utf-8") as lines:
        for number, row in json_lines(lines, lambda n: f"line {n}"):
            if not isinstance(row, dict):
                raise ValueError(f"line {number}: not a JSON object")
            if "header" in row:
                dataset = str((row["header"] or {}).get("dataset") or dataset)
                continue
            if not isinstance(row.get("context"), str) or not isinstance(row.get("qas"), list):
                raise ValueError(f"line {number}: an MRQA row needs 'context' and 'qas'")
            text, title = _mrqa_text(row["context"])
            qas = tuple({"id": str(qa.get("qid") or qa.get("id") or f"{number}:{i}"),
                         "question": str(qa.get("question", "")),
                         "answers": [{"text": str(a)} for a in qa.get("answers", [])]}
                        for i, qa in enumerate(row["qas"]) if str(qa.get("question", "")).strip())
            if not text or not qas:
                continue
            key = f"mrqa:{row.get('id') or number}"
            out.append(SquadContext(key, len(out), 0, title or f"{dataset} {len(out) + 1}",
                                    text, qas))
    return out


def load_contexts(path: Path) -> list[SquadContext]:
    """Every context of a SQuAD-format JSON file, or of an MRQA JSON-lines file
    (``.jsonl``/``.jsonl.gz``: TriviaQA, NaturalQuestions, HotpotQA, ... in the MRQA release)."""
    if str(path).endswith((".jsonl", ".jsonl.gz")):
        return load_mrqa(Path(path))
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ValueError(f"{path}: not a SQuAD-format file (no top-level 'data' list)")
    out = []
    for a, article in enumerate(data["data"]):
        for p, paragraph in enumerate(article.get("paragraphs", [])):
            qas = tuple(paragraph.get("qas", []))
            context = paragraph.get("context", "")
            if not context.strip() or not qas:
                continue
            key = f"squad:{a}:{p}" if len(article["paragraphs"]) > 1 else f"newsqa:{qas[0]['id']}"
            out.append(SquadContext(key, a, p, str(article.get("title") or f"Article {a + 1}"),
                                    context, qas))
    return out


def in_subset(context: SquadContext, subset: str) -> bool:
    """Whether a context belongs to ``subset`` (see ``SUBSETS``)."""
    from eval.reader_data import Context, is_dev, newsqa_is_train

    if subset == "all":
        return True
    if context.key.startswith("mrqa:"):
        raise ValueError(f"--subset {subset} names a part of the files the reader trained on; "
                         "use --subset all with an MRQA file")
    as_trained = Context(context.key, context.key.split(":", 1)[0], context.text)
    if subset == "squad-fold-b":
        return context.article >= 5
    if subset == "squad-dev":
        return context.article < 5 and is_dev(as_trained)
    if subset == "newsqa-heldout":
        return not newsqa_is_train(as_trained)
    if subset == "newsqa-dev":
        return newsqa_is_train(as_trained) and is_dev(as_trained)
    raise ValueError(f"unknown subset {subset!r}; choose from {', '.join(SUBSETS)}")


def dropped(context: SquadContext) -> bool:
    """The third of the contexts that ``--drop-third`` leaves out (by hash of the text)."""
    return int(hashlib.sha1(b"drop:" + context.text.encode("utf-8")).hexdigest(), 16) % 3 == 0


def build_set(contexts: Sequence[SquadContext], *, drop_third: bool,
              keep: Callable[[SquadContext], bool] = lambda c: True,
              limit: int | None = None) -> SquadSet:
    """The corpus and questions: ``keep`` picks the asked contexts; the others are distractors
    only when they are passed in ``contexts`` and ``keep`` rejects them."""
    corpus, questions, n_dropped = [], [], 0
    for context in contexts:
        asked = keep(context)
        left_out = drop_third and asked and dropped(context)
        if left_out:
            n_dropped += 1
        else:
            corpus.append(context)
        if not asked:
            continue
        for qa in context.qas:
            answers = tuple(dict.fromkeys(a["text"] for a in qa.get("answers", [])
                                          if a.get("text", "").strip()))
            impossible = bool(qa.get("is_impossible")) or not answers
            kind = "dropped" if left_out else "impossible" if impossible else "answerable"
            questions.append(SquadQuestion(str(qa["id"]), str(qa["question"]).strip(),
                                           () if kind != "answerable" else answers,
                                           context.doc_id, kind))
    if limit is not None:
        step = max(1, len(questions) // limit)
        questions = questions[::step][:limit]
    return SquadSet(corpus, questions, n_dropped)


def write_corpus(squad_set: SquadSet, folder: Path, outlet: str | None = None) -> int:
    """Write the corpus as .txt files plus the manifest.json that ``groundqa ingest`` reads."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for context in squad_set.corpus:
        (folder / f"{context.doc_id}.txt").write_text(context.text, encoding="utf-8")
        entry: dict[str, Any] = {"doc_id": context.doc_id, "title": context.title}
        if outlet:
            entry["outlet"] = outlet
        manifest[f"{context.doc_id}.txt"] = entry
    (folder / "manifest.json").write_text(json.dumps({"documents": manifest}, indent=1),
                                          encoding="utf-8")
    return len(manifest)


def ingest(squad_set: SquadSet, data_dir: Path, embedder: Any, outlet: str | None = None) -> str:
    """Index the corpus in ``data_dir`` (incremental: unchanged contexts are not re-embedded)."""
    from corpus.errors import DocumentLoadError
    from corpus.loader import parse_document
    from index.ingest import IndexWriter
    from index.store import IndexSnapshot

    documents = []
    for context in squad_set.corpus:
        meta: dict[str, object] = {"title": context.title}
        if outlet:
            meta["outlet"] = outlet
        try:
            documents.append(parse_document(context.text.encode("utf-8"), name=context.doc_id,
                                            suffix=".txt", doc_id=context.doc_id, metadata=meta,
                                            source=context.key))
        except DocumentLoadError as exc:
            logger.warning("context %s skipped: %s", context.key, exc)
    wanted = {d.doc_id for d in documents}
    writer = IndexWriter(data_dir, embedder)
    stale: list[str] = []
    try:
        stale = [d["doc_id"] for d in IndexSnapshot.open(data_dir, embedder).documents()
                 if d["doc_id"] not in wanted]
    except Exception:  # noqa: BLE001 - no index yet
        stale = []
    result = writer.apply(add=documents, delete=stale)
    return str(result.version)


# ---------------------------------------------------------------------------------------------
# Scoring


def squad_em_f1(prediction: str, golds: Sequence[str]) -> tuple[float, float]:
    """Best exact match and token F1 over the gold answers (the official SQuAD normalisation)."""
    from eval.reader_data import best_scores

    return best_scores(prediction, golds) if golds else (0.0, 0.0)


@dataclass
class Scored:
    """One question's outcome."""

    qid: str
    question: str
    kind: str
    golds: list[str]
    answered: bool
    short: str
    confidence: float
    em: float
    f1: float
    contains: bool
    citations_valid: bool
    latency_ms: float
    abstain_reason: str | None = None
    error: str | None = None
    answer: str = ""
    #: What the answer cites (id, doc_id, outlet, published, quote), for the HTML report.
    citations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def right(self) -> bool:
        """The answer a confident system should give: gold-answerable and F1 ≥ 0.5."""
        return bool(self.golds) and self.answered and self.f1 >= 0.5


def _citations_valid(response: dict[str, Any], document_text: Callable[[str], str]) -> bool:
    for citation in response.get("citations", []):
        span = citation["source_span"]
        if document_text(citation["doc_id"])[span["start"]:span["end"]] != citation["quote"]:
            return False
    short = response.get("short_answer")
    if short:
        cited = [c for c in response["citations"] if c["id"] == short["citation"]]
        if not cited:
            return False
        text = document_text(cited[0]["doc_id"])
        span = short["source_span"]
        if text[span["start"]:span["end"]] != short["text"]:
            return False
    markers = {int(m) for m in re.findall(r"\[(\d+)\]", response.get("answer", ""))}
    return markers <= {c["id"] for c in response.get("citations", [])}


def score_response(question: SquadQuestion, response: dict[str, Any], latency_ms: float,
                   document_text: Callable[[str], str]) -> Scored:
    """Score one answer."""
    answered = bool(response.get("answerable"))
    short = (response.get("short_answer") or {}).get("text", "") if answered else ""
    if answered and not short:  # a system without short answers: its whole answer
        short = re.sub(r"\s*\[\d+\]", "", response.get("answer", ""))
    em, f1 = squad_em_f1(short, question.answers) if answered else (0.0, 0.0)
    answer_text = response.get("answer", "") if answered else ""
    contains = answer_contains(answer_text, question.answers)
    return Scored(question.qid, question.question, question.kind, list(question.answers),
                  answered, short, float(response.get("confidence") or 0.0), em, f1,
                  contains, _citations_valid(response, document_text), latency_ms,
                  response.get("abstain_reason"), answer=answer_text,
                  citations=[{k: c.get(k) for k in ("id", "doc_id", "outlet", "published",
                                                    "quote")}
                             for c in response.get("citations") or [] if isinstance(c, dict)])


def _mean(values: Sequence[float]) -> float:
    return float(statistics.fmean(values)) if values else float("nan")


def reliability(results: Sequence[Scored], bins: int = RELIABILITY_BINS) -> list[dict[str, Any]]:
    """Confidence bins: mean confidence vs share of right answers (answered or not)."""
    table = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [r for r in results if lo <= r.confidence < hi or (b == bins - 1 and
                                                                    r.confidence == 1.0)]
        table.append({"bin": f"{lo:.1f}-{hi:.1f}", "count": len(inside),
                      "mean_confidence": _mean([r.confidence for r in inside]),
                      "accuracy": _mean([float(r.right) for r in inside])})
    return table


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Weighted gap between mean confidence and accuracy over equal-width bins."""
    total = 0.0
    for b in range(bins):
        inside = (p >= b / bins) & ((p < (b + 1) / bins) | (b == bins - 1))
        if inside.any():
            total += inside.sum() * abs(p[inside].mean() - y[inside].mean())
    return float(total / max(1, len(p)))


def aggregate(results: Sequence[Scored]) -> dict[str, float]:
    """The headline metrics."""
    ok = [r for r in results if r.error is None]
    answerable = [r for r in ok if r.golds]
    unanswerable = [r for r in ok if not r.golds]
    answered = [r for r in ok if r.answered]
    tpr = _mean([float(r.answered) for r in answerable])
    tnr = _mean([float(not r.answered) for r in unanswerable])
    latencies = sorted(r.latency_ms for r in ok)
    return {
        "questions": float(len(results)), "errors": float(len(results) - len(ok)),
        "answerable": float(len(answerable)), "unanswerable": float(len(unanswerable)),
        "short_answer_em": _mean([r.em for r in answerable]),
        "short_answer_f1": _mean([r.f1 for r in answerable]),
        "short_answer_f1_when_answered": _mean([r.f1 for r in answerable if r.answered]),
        "answer_contains": _mean([float(r.contains) for r in answerable]),
        "answer_rate_answerable": tpr, "abstain_rate_unanswerable": tnr,
        "abstention_balanced_accuracy": (tpr + tnr) / 2 if unanswerable and answerable
        else float("nan"),
        "precision_of_answers": _mean([float(r.right) for r in answered]),
        "citation_validity": _mean([float(r.citations_valid) for r in ok]),
        "mean_answer_words": _mean([len(r.answer.split()) for r in answered]),
        "mean_short_answer_words": _mean([len(r.short.split()) for r in answered]),
        "expected_calibration_error": expected_calibration_error(
            np.array([r.confidence for r in ok]), np.array([float(r.right) for r in ok])),
        "latency_p50_ms": latencies[len(latencies) // 2] if latencies else float("nan"),
        "latency_p95_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
        if latencies else float("nan"),
    }


#: The operating-point table: each point's keys and their column titles, in report order.
OPERATING_POINT_COLUMNS = (
    ("min_confidence", "min_confidence"), ("short_answer_f1", "short-answer F1"),
    ("abstention_balanced_accuracy", "abstention balanced acc."),
    ("answer_rate_answerable", "answer rate (answerable)"),
    ("abstain_rate_unanswerable", "abstain rate (unanswerable)"),
    ("precision_of_answers", "precision of answers"))
OPERATING_POINT_TITLE = "Other min_confidence values (from this run's answers)"


def operating_points(results: Sequence[Scored], floor: float | None,
                     steps: int = 20) -> list[dict[str, float]]:
    """What this run would have scored at higher ``min_confidence`` values.

    An answer is given when its confidence reaches the threshold and the answer itself does not
    depend on it, so for every threshold t at or above the run's own (``floor``) the outcome is
    "answered here and confidence ≥ t". Below ``floor`` the abstained questions' answers are
    unknown, so those rows are left out; run in-process with ``--min-confidence 0`` for the
    whole curve. Unknown floor (a remote service): no rows.
    """
    if floor is None:
        return []
    ok = [r for r in results if r.error is None]
    answerable = [r for r in ok if r.golds]
    unanswerable = [r for r in ok if not r.golds]
    points = []
    for t in sorted({round(floor, 4)} | {k / steps for k in range(steps) if k / steps > floor}):
        def says(r: Scored, t: float = t) -> bool:
            return r.answered and r.confidence >= t
        tpr = _mean([float(says(r)) for r in answerable])
        tnr = _mean([float(not says(r)) for r in unanswerable])
        points.append({
            "min_confidence": t, "answer_rate_answerable": tpr, "abstain_rate_unanswerable": tnr,
            "abstention_balanced_accuracy": (tpr + tnr) / 2 if answerable and unanswerable
            else float("nan"),
            "short_answer_f1": _mean([r.f1 if says(r) else 0.0 for r in answerable]),
            "precision_of_answers": _mean([float(r.right) for r in ok if says(r)])})
    return points


def run(squad_set: SquadSet, client: Any, top_k: int = 5,
        progress: Callable[[int, int], None] | None = None) -> list[Scored]:
    """Ask every question through ``client`` (eval/clients.py) and score the answers."""
    from eval.clients import AskFailed

    results = []
    for i, question in enumerate(squad_set.questions):
        started = time.perf_counter()
        try:
            response = client.ask(question.question, top_k)
        except AskFailed as exc:
            results.append(Scored(question.qid, question.question, question.kind,
                                  list(question.answers), False, "", 0.0, 0.0, 0.0, False,
                                  False, 0.0, error=str(exc)))
            continue
        latency = (time.perf_counter() - started) * 1000.0
        results.append(score_response(question, response, latency, client.document_text))
        if progress is not None:
            progress(i + 1, len(squad_set.questions))
    return results


@dataclass
class SquadReport:
    """Metrics, the reliability table and per-question outcomes, writable to a folder."""

    source: str
    settings: dict[str, Any]
    metrics: dict[str, float]
    reliability: list[dict[str, Any]]
    results: list[Scored] = field(default_factory=list)
    #: ``operating_points``: the metrics at higher min_confidence values, from this run.
    operating_points: list[dict[str, float]] = field(default_factory=list)

    def write(self, folder: Path) -> Path:
        """report.json, report.md, report.html and reliability.png in ``folder``; returns
        the Markdown."""
        from eval.squad_report import write_report

        return write_report(self, folder)

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"source": self.source, "settings": self.settings, "metrics": self.metrics,
                "reliability": self.reliability, "operating_points": self.operating_points,
                "questions": [asdict(r) | {"right": r.right} for r in self.results]}
