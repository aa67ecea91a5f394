"""Retrieval data sets: BEIR-shaped folders and the SciFact release layout, read into one shape
(corpus, queries, test qrels and, where the data has them, tuning qrels), and their corpus as
groundqa documents."""

from __future__ import annotations

import ast
import csv
import io
import json
import tokenize
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from corpus.loader import Document

Qrels = dict[str, dict[str, int]]


@dataclass
class RetrievalDataset:
    """A BEIR-shaped dataset: corpus (id → title, text), queries, test and tuning qrels."""

    name: str
    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: Qrels
    tuning_qrels: Qrels = field(default_factory=dict)
    tuning_split: str | None = None


def _read_qrels(lines: Sequence[str]) -> Qrels:
    qrels: Qrels = {}
    for line in lines:
        parts = line.strip().split("\t") if "\t" in line else line.split()
        if len(parts) < 3 or parts[0] == "query-id":
            continue
        qrels.setdefault(parts[0], {})[parts[1]] = int(float(parts[2]))
    return qrels


def _read_queries(path: Path) -> dict[str, str]:
    queries = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                queries[str(row["_id"])] = str(row["text"])
    return queries


def load_beir(directory: Path) -> RetrievalDataset:
    """Read ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/test.tsv`` (+ dev/train for tuning)."""
    corpus: dict[str, tuple[str, str]] = {}
    with (directory / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                corpus[str(row["_id"])] = (str(row.get("title") or ""), str(row.get("text") or ""))
    qrels = _read_qrels((directory / "qrels" / "test.tsv").read_text().splitlines())
    tuning: Qrels = {}
    tuning_split = None
    for split in ("dev", "train"):
        path = directory / "qrels" / f"{split}.tsv"
        if path.is_file():
            tuning, tuning_split = _read_qrels(path.read_text().splitlines()), split
            break
    return RetrievalDataset(directory.name, corpus, _read_queries(directory / "queries.jsonl"),
                            qrels, tuning, tuning_split)


def parse_sentence_list(literal: str) -> list[str]:
    """Parse SciFact's abstract field, a numpy-style list repr of sentence strings.

    The field looks like ``['First.'\\n 'Second.']`` (no commas), which ``ast.literal_eval``
    would silently concatenate into one string without spaces; read the string tokens one by one.
    """
    sentences: list[str] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(literal).readline):
            if token.type == tokenize.STRING:
                sentences.append(str(ast.literal_eval(token.string)))
    except (tokenize.TokenError, SyntaxError, ValueError):
        value = ast.literal_eval(literal)
        sentences = [str(s) for s in (value if isinstance(value, list) else [value])]
    return [s.strip() for s in sentences if s.strip()]


def _claim_qrels(rows: Sequence[Mapping[str, str]]) -> Qrels:
    """Qrels from SciFact claims as BEIR builds them: cited documents plus evidence documents.

    Applied to ``claims_validation.csv`` this reproduces ``qrels-test.tsv`` exactly (339 pairs).
    """
    qrels: Qrels = {}
    for row in rows:
        doc_ids = row["cited_doc_ids"].strip("[] ").split()
        if row.get("evidence_doc_id"):
            doc_ids.append(row["evidence_doc_id"])
        for doc_id in doc_ids:
            qrels.setdefault(row["id"], {})[doc_id] = 1
    return qrels


def load_scifact(directory: Path) -> RetrievalDataset:
    """Read the SciFact release layout: ``scifact.zip``, ``queries.jsonl``, ``qrels-test.tsv``.

    The zip is read in place (never extracted into the repository). Train claims give the
    tuning qrels, so fusion weights are not picked on the test queries.
    """
    csv.field_size_limit(1 << 30)
    corpus: dict[str, tuple[str, str]] = {}
    with zipfile.ZipFile(directory / "scifact.zip") as archive:

        def rows(name: str) -> list[dict[str, str]]:
            with archive.open(name) as raw:
                return list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")))

        for row in rows("corpus_train.csv"):
            corpus[row["doc_id"]] = (row["title"].strip(),
                                     " ".join(parse_sentence_list(row["abstract"])))
        names = set(archive.namelist())
        tuning = _claim_qrels(rows("claims_train.csv")) if "claims_train.csv" in names else {}
    qrels = _read_qrels((directory / "qrels-test.tsv").read_text().splitlines())
    return RetrievalDataset("scifact", corpus, _read_queries(directory / "queries.jsonl"), qrels,
                            tuning, "train" if tuning else None)


def load_dataset(directory: Path) -> RetrievalDataset:
    """Load a BEIR directory or the SciFact release layout, whichever ``directory`` holds."""
    directory = Path(directory)
    if (directory / "corpus.jsonl").is_file():
        return load_beir(directory)
    if (directory / "scifact.zip").is_file():
        return load_scifact(directory)
    raise FileNotFoundError(
        f"{directory} holds neither a BEIR dataset (corpus.jsonl, queries.jsonl, qrels/test.tsv) "
        "nor the SciFact release (scifact.zip, queries.jsonl, qrels-test.tsv)"
    )


def to_documents(corpus: Mapping[str, tuple[str, str]], outlet: str) -> list[Document]:
    """Corpus entries as groundqa Documents: title, blank line, text."""
    documents = []
    for doc_id, (title, text) in corpus.items():
        body = f"{title}\n\n{text}" if title else text
        if body.strip():
            documents.append(Document(doc_id=doc_id, text=body, title=title or doc_id,
                                      outlet=outlet, published=None, source=f"{outlet}:{doc_id}"))
    return documents
