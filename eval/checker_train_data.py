"""Training, development and evaluation pairs for the support cross-encoder.

Human-labelled pairs (binary: supported or not) from the public data sets, split by a hash of
the claim or article so that no claim is in two splits:

- WiCE dev claims: 80 % train, 20 % dev (``partially_supported`` counts as not supported).
  WiCE test is evaluation only.
- Climate-FEVER claim–sentence pairs: claims with ``sha1 % 10 < 3`` are held out for
  evaluation, ``== 3`` are dev, the rest train (SUPPORTS vs REFUTES + NOT_ENOUGH_INFO).
- QAGS CNN/DM summary sentences against their article: 80 % of articles train, 20 % dev.
  QAGS XSum is evaluation only (its articles are never trained on).
- SciFact claims with rationale sentences: SUPPORT = supported, CONTRADICT and claims with no
  rationale (against the best sentences of a cited abstract) = not; ``claims_train`` trains,
  ``claims_validation`` is dev.

Hard negatives are made from positives and from sentences of the training articles: a number,
date or actor swapped for another of the same kind from the same passage, two unrelated
sentences bridged (subject of one, predicate of the other), a hedge deleted, a statement
negated. Their positives are the sentence itself or its first clause.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import logging
import random
import re
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.jsonl import json_file
from service.support.cross_encoder import PairEncoder, select_sentences, split_sentences

logger = logging.getLogger(__name__)

SPLIT_RULES = {
    "wice": "claim-dev.jsonl: sha1('wice:' + claim) % 5 == 0 -> dev, else train; "
            "claim-test.jsonl evaluation only",
    "climate_fever": "sha1('cf:' + claim_id) % 10: < 3 held-out evaluation, == 3 dev, else train",
    "qags": "qags_cnndm.jsonl: sha1('qags:' + article[:200]) % 5 == 0 -> dev, else train; "
            "qags_xsum.jsonl evaluation only",
    "scifact": "claims_train.csv -> train, claims_validation.csv -> dev; claims_test.csv unused",
    "synthetic": "made only from the training split's positives and articles",
}
HEDGES = ("reportedly", "allegedly", "possibly", "probably", "apparently", "purportedly",
          "likely", "may", "might", "could", "suspected", "presumably", "supposedly")
_NEGATABLE = re.compile(r"\b(is|are|was|were|has|have|had|will|can|would|should|does|did|do)\b")
_SWAP_LABELS = {"PERSON", "ORG", "GPE", "NORP", "LOC", "DATE", "FAC", "EVENT"}


@dataclass(frozen=True)
class Pair:
    """One (claim, evidence) pair with a binary label and where it came from."""

    claim: str
    evidence: str
    label: int
    source: str
    kind: str = "human"


@dataclass(frozen=True)
class Claim:
    """An evaluation item: a claim, its evidence (sentences or passages), the gold label."""

    claim: str
    quotes: tuple[str, ...]
    label: int
    source: str


def _bucket(key: str, mod: int) -> int:
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) % mod


def _as_list(value: Any) -> list[Any]:
    return ast.literal_eval(value) if isinstance(value, str) else list(value)


def _fix_text(text: str) -> str:
    """Undo the UTF-8-read-as-Latin-1 damage some QAGS articles carry ("â£50,000")."""
    if "â" in text or "Ã" in text:
        try:
            return text.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return text
    return text


def _pack(sentences: Sequence[str], indices: Sequence[int]) -> str:
    """The chosen sentences, in their order."""
    return " ".join(sentences[i] for i in sorted(indices))


# -- human-labelled sources -------------------------------------------------------------------

def wice_claims(path: Path) -> list[Claim]:
    """WiCE claims with all their evidence sentences (for evaluation)."""
    return [Claim(r["claim"], tuple(str(s) for s in _as_list(r["evidence"])),
                  int(r["label"] == "supported"), "wice") for _, r in json_file(path)]


def wice_pairs(path: Path, encoder: PairEncoder) -> tuple[list[Pair], list[Claim]]:
    """(training pairs, dev claims) from WiCE dev."""
    train: list[Pair] = []
    dev: list[Claim] = []
    for _, row in json_file(path):
        claim, label = row["claim"], int(row["label"] == "supported")
        evidence = [str(s) for s in _as_list(row["evidence"])]
        if _bucket("wice:" + claim, 5) == 0:
            dev.append(Claim(claim, tuple(evidence), label, "wice"))
            continue
        groups = [sorted({i for i in g if 0 <= i < len(evidence)})
                  for g in _as_list(row["supporting_sentences"])]
        groups = [g for g in groups if g]
        if not groups:
            groups = [select_sentences(claim, evidence)]
        for group in groups[:2]:
            train.append(Pair(claim, _pack(evidence, group), label, "wice"))
        if label == 0:  # also the window the runtime would read first
            train.append(Pair(claim, encoder.windows(claim, evidence)[0], 0, "wice"))
    return train, dev


def climate_fever(path: Path) -> tuple[list[Pair], list[Claim], list[Claim]]:
    """(train pairs, dev claims, held-out evaluation claims), one claim–sentence pair each."""
    train: list[Pair] = []
    dev: list[Claim] = []
    held: list[Claim] = []
    for _, row in json_file(path):
        bucket = _bucket(f"cf:{row['claim_id']}", 10)
        for ev in row["evidences"]:
            label = int(ev["evidence_label"] == "SUPPORTS")
            if bucket < 3:
                held.append(Claim(row["claim"], (ev["evidence"],), label, "climate_fever"))
            elif bucket == 3:
                dev.append(Claim(row["claim"], (ev["evidence"],), label, "climate_fever"))
            else:
                train.append(Pair(row["claim"], ev["evidence"], label, "climate_fever"))
    return train, dev, held


def qags(path: Path, encoder: PairEncoder, *, split: bool
         ) -> tuple[list[Pair], list[Claim], list[list[str]]]:
    """(train pairs, dev-or-evaluation claims, training articles' sentences).

    ``split=False`` (XSum) returns every sentence as an evaluation claim.
    """
    train: list[Pair] = []
    held: list[Claim] = []
    articles: list[list[str]] = []
    source = "qags_cnndm" if split else "qags_xsum"
    for _, row in json_file(path):
        article = _fix_text(row["article"])
        in_dev = not split or _bucket("qags:" + row["article"][:200], 5) == 0
        sentences = split_sentences(article)
        if not in_dev:
            articles.append(sentences)
        for item in row["summary_sentences"]:
            votes = [r["response"].strip().lower() == "yes" for r in item["responses"]]
            label = int(sum(votes) * 2 > len(votes))
            claim = _fix_text(item["sentence"])
            if in_dev:
                held.append(Claim(claim, (article,), label, source))
            else:
                train.append(Pair(claim, encoder.windows(claim, [article])[0], label, source))
    return train, held, articles


def _abstract_sentences(parts: Sequence[str]) -> list[str]:
    """An abstract's sentences: the file glues them together ("migraine.However")."""
    text = " ".join(str(p) for p in parts)
    pieces = re.split(r"(?<=[a-z)\]%][.!?])(?=[A-Z])|(?<=[.!?])\s+(?=[A-Z(])", text)
    return [p.strip() for p in pieces if p.strip()]


def scifact(zip_path: Path, encoder: PairEncoder
            ) -> tuple[list[Pair], list[Claim], list[list[str]]]:
    """(train pairs, dev claims, abstracts of the training claims)."""
    csv.field_size_limit(10**9)
    with zipfile.ZipFile(zip_path) as archive:
        def rows(name: str) -> list[dict[str, str]]:
            with archive.open(name) as fh:
                return list(csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8")))

        corpus = {r["doc_id"]: _abstract_sentences(ast.literal_eval(r["abstract"]))
                  for r in rows("corpus_train.csv")}
        train_rows, dev_rows = rows("claims_train.csv"), rows("claims_validation.csv")
    train: list[Pair] = []
    dev: list[Claim] = []
    abstracts: list[list[str]] = []
    for split_rows, is_dev in ((train_rows, False), (dev_rows, True)):
        for r in split_rows:
            label_name = r["evidence_label"].strip()
            if label_name:
                doc = corpus.get(r["evidence_doc_id"].strip())
                ids = [int(i) for i in re.findall(r"\d+", r["evidence_sentences"] or "")]
                if not doc or not ids:
                    continue
                evidence = " ".join(doc[i] for i in ids if 0 <= i < len(doc))
                label = int(label_name == "SUPPORT")
            else:
                cited = re.findall(r"\d+", r["cited_doc_ids"] or "")
                doc = next((corpus[c] for c in cited if c in corpus), None)
                if not doc:
                    continue
                evidence = " ".join(doc[i] for i in select_sentences(r["claim"], doc, 3))
                label = 0
            if not evidence.strip():
                continue
            if is_dev:
                dev.append(Claim(r["claim"], (evidence,), label, "scifact"))
            else:
                train.append(Pair(r["claim"], evidence, label, "scifact"))
                abstracts.append(doc)
    unique = list({tuple(a): a for a in abstracts}.values())
    return train, dev, unique


# -- hard negatives ---------------------------------------------------------------------------

class Perturber:
    """Makes unsupported variants of a supported claim (and light positives) with spaCy."""

    def __init__(self, seed: int) -> None:
        from corpus.text import nlp

        self.nlp = nlp()
        self.rng = random.Random(seed)

    def docs(self, texts: Sequence[str]) -> list[Any]:
        """Parsed texts (batched)."""
        return list(self.nlp.pipe(list(texts), batch_size=64))

    def number_swap(self, claim: str, evidence: str) -> str | None:
        """Replace a number in the claim by another from the evidence (or a far-off value)."""
        from corpus.text.numbers import find_numbers

        mine = [m for m in find_numbers(claim) if m.kind != "score"]
        if not mine:
            return None
        target = self.rng.choice(mine)
        others = [m for m in find_numbers(evidence)
                  if m.kind == target.kind and abs(m.value - target.value) > 1e-6
                  and m.text.lower() not in claim.lower()]
        if others:
            new = self.rng.choice(others).text
        elif target.kind == "year":
            new = str(int(target.value) + self.rng.choice((-3, -2, -1, 1, 2, 5)))
        else:
            factor = self.rng.choice((0.25, 0.5, 3, 10, 250))
            value = target.value * factor
            new = f"{value:,.0f}" if value >= 10 else f"{value:.1f}"
            if target.currency:
                new = target.text[0] + new
        return claim[: target.start] + new + claim[target.end :]

    def entity_swap(self, claim_doc: Any, evidence_doc: Any) -> str | None:
        """Replace a named actor, place or date in the claim by another from the evidence."""
        claim = claim_doc.text
        mine = [e for e in claim_doc.ents if e.label_ in _SWAP_LABELS]
        self.rng.shuffle(mine)
        for ent in mine:
            others = [e.text for e in evidence_doc.ents if e.label_ == ent.label_
                      and e.text.lower() not in claim.lower()
                      and ent.text.lower() not in e.text.lower()]
            if others:
                new = self.rng.choice(others)
                return claim[: ent.start_char] + new + claim[ent.end_char :]
        return None

    @staticmethod
    def negate(claim: str) -> str | None:
        """Insert "not" after the first auxiliary verb (skip claims that are negated already)."""
        if re.search(r"\b(not|no|never|n't)\b", claim, re.IGNORECASE):
            return None
        match = _NEGATABLE.search(claim)
        if match is None:
            return None
        return claim[: match.end()] + " not" + claim[match.end() :]

    @staticmethod
    def drop_hedge(claim: str) -> str | None:
        """Delete a hedge ("reportedly", "may") the claim carries from its evidence."""
        for hedge in HEDGES:
            match = re.search(rf"\b{hedge}\s+", claim, re.IGNORECASE)
            if match:
                return claim[: match.start()] + claim[match.end() :]
        return None

    @staticmethod
    def bridge(first: Any, second: Any) -> str | None:
        """The subject of one parsed sentence with the predicate of another."""
        def split(doc: Any) -> tuple[str, str] | None:
            root = next((t for t in doc if t.dep_ == "ROOT"), None)
            if root is None or root.pos_ not in ("VERB", "AUX") or root.i < 2:
                return None
            subject = doc[: root.i].text.strip()
            predicate = doc[root.i :].text.strip()
            if len(predicate.split()) < 4:
                return None
            return subject, predicate

        a, b = split(first), split(second)
        if a is None or b is None or a[0].lower() == b[0].lower():
            return None
        return f"{a[0]} {b[1]}"

    @staticmethod
    def first_clause(claim: str) -> str | None:
        """A shorter claim the sentence entails: its part before the first comma or "and"."""
        match = re.search(r",\s|\s(?:and|but|while)\s", claim)
        if match is None:
            return None
        head = claim[: match.start()].strip()
        return head + "." if len(head.split()) >= 6 else None


def hard_negatives(positives: Sequence[Pair], articles: Sequence[Sequence[str]],
                   encoder: PairEncoder, seed: int, per_article: int = 6) -> list[Pair]:
    """Perturbed variants of supported pairs and of training-article sentences."""
    perturber = Perturber(seed)
    rng = random.Random(seed)
    out: list[Pair] = []
    # 1. From human-labelled positives: change the claim, keep the evidence.
    claim_docs = perturber.docs([p.claim for p in positives])
    evidence_docs = perturber.docs([p.evidence for p in positives])
    for pair, cdoc, edoc in zip(positives, claim_docs, evidence_docs, strict=True):
        made = [("number-swap", perturber.number_swap(pair.claim, pair.evidence)),
                ("entity-swap", perturber.entity_swap(cdoc, edoc)),
                ("negation", perturber.negate(pair.claim)),
                ("hedge-drop", perturber.drop_hedge(pair.claim)
                 if any(h in pair.evidence.lower().split() for h in HEDGES) else None)]
        variants = [(k, c) for k, c in made if c and c != pair.claim]
        for kind, claim in rng.sample(variants, min(2, len(variants))):
            assert claim is not None
            out.append(Pair(claim, pair.evidence, 0, pair.source, kind))
    # 2. From article sentences: the sentence in its window is the positive, variants negative.
    picks: list[tuple[list[str], int, int]] = []
    for sentences in articles:
        usable = [i for i, s in enumerate(sentences) if 8 <= len(s.split()) <= 45]
        if len(usable) < 4:
            continue
        for i in rng.sample(usable, min(per_article, len(usable))):
            far = [j for j in usable if abs(j - i) > 3]
            picks.append((list(sentences), i, rng.choice(far) if far else -1))
    docs = perturber.docs([s[i] for s, i, _ in picks] + [s[j] for s, _, j in picks if j >= 0])
    doc_of: dict[tuple[int, int], Any] = {}
    cursor = 0
    for s, i, _ in picks:
        doc_of[(id(s), i)] = docs[cursor]
        cursor += 1
    for s, _, j in picks:
        if j >= 0:
            doc_of[(id(s), j)] = docs[cursor]
            cursor += 1
    for sentences, i, j in picks:
        sentence = sentences[i]
        window = " ".join(sentences[max(0, i - 2) : i + 3])
        window_doc = perturber.nlp(window)
        sdoc = doc_of[(id(sentences), i)]
        kind_claims: list[tuple[str, str | None, int, str]] = [
            ("copy", sentence, 1, window),
            ("clause", perturber.first_clause(sentence), 1, window),
            ("number-swap", perturber.number_swap(sentence, window), 0, window),
            ("entity-swap", perturber.entity_swap(sdoc, window_doc), 0, window),
            ("negation", perturber.negate(sentence), 0, window),
            ("hedge-drop", perturber.drop_hedge(sentence), 0, window),
        ]
        if j >= 0:
            both = " ".join(sentences[k] for k in sorted({i, j}))
            kind_claims.append(("bridge", perturber.bridge(sdoc, doc_of[(id(sentences), j)]),
                                0, both))
        kept = [(k, c, y, e) for k, c, y, e in kind_claims if c and (y == 1 or c != sentence)]
        positives_made = [m for m in kept if m[2] == 1]
        negatives_made = [m for m in kept if m[2] == 0]
        chosen = rng.sample(positives_made, min(1, len(positives_made))) + \
            rng.sample(negatives_made, min(2, len(negatives_made)))
        for kind, claim, label, evidence in chosen:
            assert claim is not None
            out.append(Pair(claim, evidence, label, "synthetic", kind))
    logger.info("hard negatives and synthetic pairs: %s", dict(Counter(p.kind for p in out)))
    return out


@dataclass
class CheckerData:
    """Everything the trainer needs: train pairs, dev claims and the evaluation sets."""

    train: list[Pair]
    dev: list[Claim]
    evaluation: dict[str, list[Claim]]


def load_all(data_dir: Path, encoder: PairEncoder, seed: int, synthetic_articles: int = 400
             ) -> CheckerData:
    """Load every source under ``data_dir`` (the layout of ``../shared/datasets``)."""
    wice_train, wice_dev = wice_pairs(data_dir / "wice" / "claim-dev.jsonl", encoder)
    cf_train, cf_dev, cf_held = climate_fever(data_dir / "climate-fever" / "climate-fever.jsonl")
    qc_train, qc_dev, qc_articles = qags(data_dir / "qags" / "qags_cnndm.jsonl", encoder,
                                         split=True)
    _, xsum, _ = qags(data_dir / "qags" / "qags_xsum.jsonl", encoder, split=False)
    sf_train, sf_dev, sf_abstracts = scifact(data_dir / "scifact" / "scifact.zip", encoder)
    human = [p for p in wice_train + cf_train + qc_train + sf_train if p.evidence.strip()]
    rng = random.Random(seed)
    articles = qc_articles + rng.sample(sf_abstracts, min(len(sf_abstracts), 150))
    articles = articles[:synthetic_articles]
    positives = [p for p in human if p.label == 1]
    synthetic = hard_negatives(positives, articles, encoder, seed)
    train = human + synthetic
    rng.shuffle(train)
    evaluation = {"wice_test": wice_claims(data_dir / "wice" / "claim-test.jsonl"),
                  "qags_xsum": xsum, "climate_fever_heldout": cf_held}
    logger.info("train pairs %s; dev claims %s", dict(Counter((p.source, p.label) for p in train)),
                dict(Counter((c.source, c.label) for c in wice_dev + cf_dev + qc_dev + sf_dev)))
    return CheckerData(train, wice_dev + cf_dev + qc_dev + sf_dev, evaluation)
