"""The extractive answerer: select evidence sentences, compose a cited answer, or abstain.

Retrieval gives passages; every sentence of those passages (plus the corpus-wide nearest
sentences by their stored vectors) is scored on meaning (cosine with the question), on
coverage of the question's key terms and on whether it holds the kind of fact asked for.
The answer quotes the best sentences verbatim, each attributed and cited. A sentence that
matches the question but lacks the asked-for fact pulls in its neighbour that has it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

import numpy as np

from index.lexical import tokenize
from index.search import Passage
from index.store import Filters, IndexSnapshot, SentenceRecord
from service.question import (
    AnswerType,
    QuestionAnalysis,
    aliases,
    find_numbers,
    has_type_evidence,
)


class AbstainReason(StrEnum):
    """Why the service declined to answer."""

    NO_RELEVANT_PASSAGES = "no_relevant_passages"
    INSUFFICIENT_SUPPORT = "insufficient_support"
    MISSING_KEY_TERMS = "missing_key_terms"
    ANSWER_TYPE_NOT_FOUND = "answer_type_not_found"


@dataclass(frozen=True)
class AnswerPolicy:
    """Weights and calibrated bars of evidence selection (see eval/calibration in README)."""

    weight_dense: float = 1.0
    weight_coverage: float = 0.6
    weight_named: float = 0.3
    weight_document_names: float = 0.3  # the article has the question's names and source
    weight_type: float = 0.15
    weight_passage: float = 0.15
    max_sentences: int = 3
    relative_keep: float = 0.85  # keep further sentences scoring this close to the best
    typed_fallback: float = 0.75  # a sentence with the asked-for fact may lead when this close
    redundancy_cosine: float = 0.92
    corpus_sentence_candidates: int = 24
    # Abstention bars, calibrated on eval/questions/seed.jsonl (README "Abstention").
    min_dense: float = 0.25  # below this with little term overlap: nothing relevant
    min_coverage: float = 0.5
    min_named_coverage: float = 0.6  # share of the question's names the source document has
    min_content_coverage: float = 0.2  # share of its other key terms the evidence has…
    content_dense_floor: float = 0.5  # …unless the evidence is this close in meaning
    min_evidence: float = 0.5  # bar for best_dense + evidence_coverage_weight * coverage
    evidence_coverage_weight: float = 0.5


@dataclass
class Evidence:
    """A candidate sentence with what its score is made of."""

    sentence: SentenceRecord
    text: str
    dense: float
    coverage: float
    named_coverage: float
    type_match: bool
    passage_score: float
    score: float = 0.0
    neighbour_of: int | None = None  # row of the sentence this one completes
    context_row: int | None = None  # previous sentence that supplies its subject ("Most of them")


@dataclass
class SelectedSentence:
    """A sentence of the answer: the quote it reproduces and its attribution."""

    evidence: Evidence
    attribution: str | None


@dataclass
class Decision:
    """The answerer's outcome before formatting."""

    answerable: bool
    reason: AbstainReason | None
    selected: list[SelectedSentence] = field(default_factory=list)
    conflicts: list[ConflictGroup] = field(default_factory=list)
    best: Evidence | None = None
    features: dict[str, float] = field(default_factory=dict)


@dataclass
class ConflictGroup:
    """Different figures for the same quantity from different sources."""

    about: str
    members: list[tuple[str, Evidence]]  # (figure as written, evidence)


_TERM_MIN_PREFIX = 4
# "Collective Security Treaty Organization (CSTO)", "the Islamic Movement of Uzbekistan (IMU)"
_ACRONYM_DEFINITION = re.compile(
    r"((?:[A-Z][\w'’-]*\s+(?:(?:of|the|and|for)\s+)*){1,7}[A-Z][\w'’-]*)[”\"]?\s*\(([A-Z]{2,6})\)"
)


def _term_matches(term: str, tokens: set[str]) -> bool:
    if term in tokens or any(alias in tokens for alias in aliases(term)):
        return True
    if len(term) < _TERM_MIN_PREFIX:
        return False
    # "tajik" ~ "tajikistan", "afghan" ~ "afghanistan", "russia" ~ "russian".
    return any(
        len(tok) >= _TERM_MIN_PREFIX and (tok.startswith(term) or term.startswith(tok))
        for tok in tokens
    )


class SentenceTable:
    """Per-snapshot sentence texts, tokens and term weights, computed once."""

    def __init__(self, snapshot: IndexSnapshot) -> None:
        self.snapshot = snapshot
        self.by_row: dict[int, SentenceRecord] = {}
        self.by_doc: dict[str, list[SentenceRecord]] = {}
        texts: dict[str, str] = {}
        for row in snapshot.chunk_rows():
            for sentence in snapshot.chunk_sentences(row):
                self.by_row[sentence.row] = sentence
        for sentence in sorted(self.by_row.values(), key=lambda s: (s.doc_id, s.start)):
            self.by_doc.setdefault(sentence.doc_id, []).append(sentence)
        for doc_id in self.by_doc:
            texts[doc_id] = snapshot.document(doc_id)["text"]
        self.doc_text = texts
        self._doc_tokens: dict[str, set[str]] = {}
        self._term_weights: dict[str, float] = {}
        self._paragraphs: dict[tuple[str, int], tuple[set[str], str]] = {}
        rows = sorted(self.by_row)
        self.text = {r: texts[self.by_row[r].doc_id][self.by_row[r].start:self.by_row[r].end]
                     for r in rows}
        tokenised = tokenize([self.text[r] for r in rows]) if rows else []
        self.tokens = {r: set(t) for r, t in zip(rows, tokenised, strict=True)}
        self._expand_acronyms(rows)
        self.position = {s.row: i for sents in self.by_doc.values() for i, s in enumerate(sents)}
        # Inverse document frequency over sentences: rare terms matter more for coverage.
        df: dict[str, int] = {}
        for toks in self.tokens.values():
            for tok in toks:
                df[tok] = df.get(tok, 0) + 1
        n = max(len(self.tokens), 1)
        self.idf = {tok: float(np.log(1 + n / c)) for tok, c in df.items()}
        self.default_idf = float(np.log(1 + n))

    def _expand_acronyms(self, rows: Sequence[int]) -> None:
        """Let a sentence that says "IMU" also match "Islamic Movement of Uzbekistan" when the
        article defines the acronym somewhere ("the Islamic Movement of Uzbekistan (IMU)")."""
        for doc_id, text in self.doc_text.items():
            definitions: dict[str, set[str]] = {}
            for match in _ACRONYM_DEFINITION.finditer(text):
                acronym = match.group(2)
                words = re.findall(r"[A-Za-z][\w'’-]*", match.group(1))
                # Keep as many trailing capitalised words as the acronym has letters.
                capitals = [i for i, w in enumerate(words) if w[0].isupper()]
                start = capitals[-len(acronym)] if len(capitals) >= len(acronym) else 0
                long_form = " ".join(words[start:])
                if long_form[:1] == acronym[:1]:
                    definitions[acronym] = set(tokenize([long_form])[0])
            if not definitions:
                continue
            for sentence in self.by_doc.get(doc_id, []):
                sentence_text = self.text[sentence.row]
                for acronym, long_tokens in definitions.items():
                    if re.search(rf"\b{re.escape(acronym)}\b", sentence_text):
                        self.tokens[sentence.row] |= long_tokens

    def weights(self, terms: Sequence[str]) -> dict[str, float]:
        """IDF weights of question terms (unknown terms get the highest weight)."""
        out = {}
        for term in terms:
            weight = self.idf.get(term) or self._term_weights.get(term)
            if weight is None:
                matches = [v for k, v in self.idf.items()
                           if len(term) >= _TERM_MIN_PREFIX and len(k) >= _TERM_MIN_PREFIX
                           and (k.startswith(term) or term.startswith(k))]
                weight = max(matches) if matches else self.default_idf
                if len(self._term_weights) < 100_000:
                    self._term_weights[term] = weight
            out[term] = weight
        return out

    def doc_tokens(self, doc_id: str) -> set[str]:
        """BM25 tokens of a document's text, title and outlet (cached)."""
        cached = self._doc_tokens.get(doc_id)
        if cached is None:
            meta = self.snapshot.document_meta(doc_id)
            cached = set(tokenize([f"{meta['title']} {meta['outlet']} {self.doc_text[doc_id]}"])[0])
            self._doc_tokens[doc_id] = cached
        return cached

    def paragraph(self, sentence: SentenceRecord) -> tuple[set[str], str]:
        """Tokens and text of the paragraph holding ``sentence`` (cached)."""
        text = self.doc_text[sentence.doc_id]
        start = text.rfind("\n", 0, sentence.start) + 1
        end = text.find("\n", sentence.end)
        end = len(text) if end < 0 else end
        key = (sentence.doc_id, start)
        cached = self._paragraphs.get(key)
        if cached is None:
            cached = (set(tokenize([text[start:end]])[0]), text[start:end])
            self._paragraphs[key] = cached
        return cached

    def previous(self, sentence: SentenceRecord) -> SentenceRecord | None:
        """The sentence just before, when it is in the same paragraph."""
        for other in self.neighbours(sentence):
            if other.start < sentence.start:
                return other
        return None

    def neighbours(self, sentence: SentenceRecord) -> list[SentenceRecord]:
        """The sentences just before and after, in the same paragraph."""
        siblings = self.by_doc[sentence.doc_id]
        i = self.position[sentence.row]
        text = self.doc_text[sentence.doc_id]
        out = []
        for j in (i - 1, i + 1):
            if 0 <= j < len(siblings):
                other = siblings[j]
                lo, hi = sorted([(sentence.start, sentence.end), (other.start, other.end)])
                if "\n" not in text[lo[1]:hi[0]]:
                    out.append(other)
        return out


def format_published(published: str | None) -> str:
    """"2023-01" → "January 2023"; "2022-03-07" → "7 March 2022"; None → "undated"."""
    if not published:
        return "undated"
    parts = published.split("-")
    try:
        if len(parts) == 1:
            return parts[0]
        month = date(2000, int(parts[1]), 1).strftime("%B")
        if len(parts) == 2:
            return f"{month} {parts[0]}"
        return f"{int(parts[2])} {month} {parts[0]}"
    except ValueError:
        return published


def attribution_for(outlet: str, title: str, published: str | None) -> str:
    """"Nezavisimaya Gazeta (January 2023) reports:" style lead-in for a quoted sentence."""
    source = outlet if outlet and outlet.lower() != "unknown outlet" else f"The article “{title}”"
    return f"{source} ({format_published(published)}) reports:"


_UNIT_WORD = re.compile(r"[A-Za-z][A-Za-z-]+")


def _figure_unit(text: str, start: int, end: int) -> str | None:
    """The noun a figure counts ("6,500 militants" → "militant"), looking a few words ahead."""
    after = text[end:end + 60]
    after = re.sub(r"^\s*(thousand|million|billion)\b", "", after, flags=re.I)
    words = _UNIT_WORD.findall(after)[:4]
    skip = {"of", "the", "additional", "armed", "more", "than", "about", "some", "various",
            "from", "in", "people", "men", "new"}
    function_words = {"are", "is", "were", "was", "that", "and", "have", "has", "had", "to",
                      "at", "on", "by", "for", "with", "who", "which", "this", "these", "it"}
    for word in words:
        lower = word.lower()
        if lower in function_words:
            return None
        if lower in skip:
            if lower in ("people", "men"):
                return "people"
            continue
        return lower
    return None


def _stem(word: str) -> str:
    tokens = tokenize([word])[0]
    return tokens[0] if tokens else word


# Head-count nouns: figures counting any of these are counting the same armed people.
_PERSONNEL_WORDS = ("militants", "fighters", "terrorists", "people", "men", "insurgents",
                    "members", "jihadists", "gunmen", "extremists", "radicals")
_PERSONNEL: set[str] = set()


def _personnel_stems() -> set[str]:
    if not _PERSONNEL:
        _PERSONNEL.update(_stem(w) for w in _PERSONNEL_WORDS)
    return _PERSONNEL


def _same_quantity(unit_a: str | None, unit_b: str | None) -> bool:
    if unit_a is None or unit_b is None:
        return True  # "Most of them – 4 thousand – are…": the count's noun is elsewhere
    stem_a, stem_b = _stem(unit_a), _stem(unit_b)
    if stem_a == stem_b or "people" in (unit_a, unit_b):
        return True  # "estimated at 1,200 people" counts whatever the sentence is about
    personnel = _personnel_stems()
    return stem_a in personnel and stem_b in personnel


def answers_type(text: str, analysis: QuestionAnalysis) -> bool:
    """Whether ``text`` holds the kind of fact asked for.

    "Who ran the survey?" may be answered by an organisation; "Who is the minister?" (a role
    is named) needs a person.
    """
    if has_type_evidence(text, analysis.answer_type):
        return True
    return (analysis.answer_type == AnswerType.PERSON and not analysis.focus_terms
            and has_type_evidence(text, AnswerType.ORGANIZATION))


class Answerer:
    """Select evidence from retrieved passages and decide whether and how to answer."""

    def __init__(self, snapshot: IndexSnapshot, policy: AnswerPolicy | None = None) -> None:
        self.snapshot = snapshot
        self.policy = policy or AnswerPolicy()
        self.sentences = SentenceTable(snapshot)
        self._document_coverage_cache: dict[tuple[QuestionAnalysis, str], tuple[float, float]] = {}

    # -- coverage -----------------------------------------------------------------------------
    def coverage(self, analysis: QuestionAnalysis, tokens: set[str],
                 text: str) -> tuple[float, float]:
        """(key-term coverage, named-term coverage) of a text; acronyms count as named terms."""
        weights = self.sentences.weights(analysis.key_terms)
        key_hit = sum(weights[t] for t in analysis.key_terms if _term_matches(t, tokens))
        key_total = sum(weights[t] for t in analysis.key_terms)
        named_weights = [weights.get(t, self.sentences.default_idf) for t in analysis.named_terms]
        named_hit = sum(w for t, w in zip(analysis.named_terms, named_weights, strict=True)
                        if _term_matches(t, tokens))
        named_total = sum(named_weights)
        for acronym in analysis.acronyms:
            weight = self.sentences.default_idf
            found = bool(re.search(rf"\b{re.escape(acronym)}[A-Z]*\b", text)) or any(
                alias in tokens for alias in aliases(acronym.lower()))
            key_total += weight
            named_total += weight
            if found:
                key_hit += weight
                named_hit += weight
        key = key_hit / key_total if key_total else 1.0
        named = named_hit / named_total if named_total else 1.0
        return key, named

    # -- candidates ---------------------------------------------------------------------------
    def _allowed_sentence_rows(self, filters: Filters) -> np.ndarray | None:
        rows = self.snapshot.allowed_rows(filters)
        if rows is None:
            return None
        allowed_docs = {self.snapshot.chunk(int(r)).doc_id for r in rows}
        sentence_rows = (s.row for d in allowed_docs for s in self.sentences.by_doc.get(d, []))
        return np.array(sorted(sentence_rows), dtype=np.int64)

    def candidates(self, analysis: QuestionAnalysis, query_vector: np.ndarray,
                   passages: Sequence[Passage], filters: Filters) -> list[Evidence]:
        """Score the sentences of the passages and the corpus-wide nearest sentences."""
        passage_score: dict[int, float] = {}
        for passage in passages:
            for row in self._rows_in_chunk(passage):
                passage_score[row] = max(passage_score.get(row, 0.0), passage.score)
        vectors = self.snapshot.sentence_vectors
        if len(vectors):
            allowed = self._allowed_sentence_rows(filters)
            pool = allowed if allowed is not None else np.arange(len(vectors))
            if len(pool):
                sims = vectors[pool] @ query_vector
                top = np.argsort(-sims)[: self.policy.corpus_sentence_candidates]
                for i in top:
                    passage_score.setdefault(int(pool[i]), 0.0)
        return [self._evidence(row, analysis, query_vector, p_score)
                for row, p_score in passage_score.items()]

    def _rows_in_chunk(self, passage: Passage) -> list[int]:
        chunk = passage.chunk
        return [s.row for s in self.sentences.by_doc.get(chunk.doc_id, [])
                if s.start >= chunk.start and s.end <= chunk.end]

    def _evidence(self, row: int, analysis: QuestionAnalysis, query_vector: np.ndarray,
                  passage_score: float) -> Evidence:
        sentence = self.sentences.by_row[row]
        text = self.sentences.text[row]
        tokens = self.sentences.tokens[row]
        dense = float(self.snapshot.sentence_vectors[row] @ query_vector)
        coverage, named = self.coverage(analysis, tokens, text)
        context_row = None
        previous = self.sentences.previous(sentence)
        if previous is not None and (coverage < 1.0 or named < 1.0):
            # Pronouns point back: "Most of them – 4 thousand – are…" needs the sentence before.
            ctx_tokens = tokens | self.sentences.tokens[previous.row]
            ctx_text = self.sentences.text[previous.row] + " " + text
            ctx_coverage, ctx_named = self.coverage(analysis, ctx_tokens, ctx_text)
            if ctx_coverage >= coverage + 0.15 or ctx_named > named:
                coverage = coverage + 0.8 * (ctx_coverage - coverage)
                named = named + 0.8 * (ctx_named - named)
                context_row = previous.row
        if named < 1.0:
            # Names set up earlier in the paragraph ("Saudi Arabia closed its embassy…")
            # still apply to its later sentences ("Diplomats … were transferred to Islamabad").
            paragraph_tokens, paragraph_text = self.sentences.paragraph(sentence)
            _, paragraph_named = self.coverage(analysis, paragraph_tokens, paragraph_text)
            named = max(named, 0.9 * paragraph_named)
        type_match = answers_type(text, analysis)
        _, document_named = self._document_coverage(analysis, sentence.doc_id)
        p = self.policy
        score = (p.weight_dense * dense + p.weight_coverage * coverage
                 + p.weight_named * named + p.weight_type * float(type_match)
                 + p.weight_passage * passage_score
                 + p.weight_document_names * document_named)
        return Evidence(sentence, text, dense, coverage, named, type_match, passage_score, score,
                        context_row=context_row)

    # -- decision -----------------------------------------------------------------------------
    def decide(self, analysis: QuestionAnalysis, query_vector: np.ndarray,
               passages: Sequence[Passage], filters: Filters) -> Decision:
        """Pick the evidence for an answer, or a reason to abstain."""
        if not passages:
            return Decision(False, AbstainReason.NO_RELEVANT_PASSAGES)
        candidates = self.candidates(analysis, query_vector, passages, filters)
        if not candidates:
            return Decision(False, AbstainReason.NO_RELEVANT_PASSAGES)
        candidates.sort(key=lambda e: e.score, reverse=True)
        best = candidates[0]
        if analysis.answer_type != AnswerType.OTHER and not best.type_match:
            # The closest sentence lacks the kind of fact asked for; a nearly as close one
            # that has it answers better ("Interior Ministry…" vs "Interior Minister X…").
            typed = next((c for c in candidates[1:] if c.type_match
                          and c.score >= self.policy.typed_fallback * best.score
                          and c.coverage >= self.policy.typed_fallback * best.coverage
                          and c.named_coverage >= self.policy.typed_fallback * best.named_coverage),
                         None)
            if typed is not None and not self._neighbour_has_type(best, analysis):
                candidates.remove(typed)
                candidates.insert(0, typed)
                best = typed
        chosen = self._complete_with_neighbours(best, analysis, query_vector)
        features = self.abstention_features(analysis, chosen, candidates)
        reason = self._abstain_reason(analysis, features)
        if reason is not None:
            return Decision(False, reason, best=best, features=features)

        selected_rows = {e.sentence.row for e in chosen}
        for other in candidates[1:]:
            if len(chosen) >= self.policy.max_sentences:
                break
            if other.sentence.row in selected_rows:
                continue
            if other.score < self.policy.relative_keep * best.score:
                break
            if analysis.answer_type != AnswerType.OTHER and not other.type_match:
                continue
            if self._redundant(other, chosen):
                continue
            chosen.append(other)
            selected_rows.add(other.sentence.row)

        conflicts = self._conflicts(analysis, chosen, candidates, best)
        for group in conflicts:
            for _, evidence in group.members:
                if evidence.sentence.row not in selected_rows:
                    chosen.append(evidence)
                    selected_rows.add(evidence.sentence.row)
        for evidence in list(chosen):
            row = evidence.context_row
            if row is not None and row not in selected_rows:
                chosen.append(self._evidence(row, analysis, query_vector, evidence.passage_score))
                selected_rows.add(row)
        return Decision(True, None, self._order(chosen), conflicts, best, features)

    def _neighbour_has_type(self, evidence: Evidence, analysis: QuestionAnalysis) -> bool:
        return any(answers_type(self.sentences.text[n.row], analysis)
                   for n in self.sentences.neighbours(evidence.sentence))

    def _complete_with_neighbours(self, best: Evidence, analysis: QuestionAnalysis,
                                  query_vector: np.ndarray) -> list[Evidence]:
        """Add the adjacent sentence when it holds the asked-for fact the best one lacks."""
        chosen = [best]
        if analysis.answer_type in (AnswerType.OTHER,):
            return chosen
        if best.type_match and not (analysis.answer_type == AnswerType.NUMBER
                                    and best.coverage < 1.0):
            return chosen
        for neighbour in self.sentences.neighbours(best.sentence):
            evidence = self._evidence(neighbour.row, analysis, query_vector, best.passage_score)
            if not evidence.type_match:
                continue
            # The neighbour must add something: the fact itself or missing key terms.
            joint = self.sentences.tokens[best.sentence.row] | self.sentences.tokens[neighbour.row]
            joint_coverage, _ = self.coverage(analysis, joint, best.text + " " + evidence.text)
            if not best.type_match or joint_coverage > best.coverage:
                evidence.neighbour_of = best.sentence.row
                chosen.append(evidence)
                break
        return chosen

    def abstention_features(self, analysis: QuestionAnalysis, chosen: Sequence[Evidence],
                            candidates: Sequence[Evidence]) -> dict[str, float]:
        """The signals the answer-or-abstain decision is made from."""
        best = chosen[0]
        joint_tokens: set[str] = set()
        for evidence in chosen:
            joint_tokens |= self.sentences.tokens[evidence.sentence.row]
        coverage, named = self.coverage(analysis, joint_tokens, " ".join(e.text for e in chosen))
        doc_coverage, doc_named = self._document_coverage(analysis, best.sentence.doc_id)
        content_terms = [t for t in analysis.key_terms if t not in analysis.named_terms]
        content_weights = self.sentences.weights(content_terms)
        context_tokens = set(joint_tokens)
        for evidence in chosen:
            if evidence.context_row is not None:
                context_tokens |= self.sentences.tokens[evidence.context_row]
        content_total = sum(content_weights.values())
        content_coverage = (sum(w for t, w in content_weights.items()
                                if _term_matches(t, context_tokens)) / content_total
                            if content_total else 1.0)
        focus_tokens = set(joint_tokens)
        for evidence in chosen:
            if evidence.context_row is not None:
                focus_tokens |= self.sentences.tokens[evidence.context_row]
        focus_match = all(_term_matches(t, focus_tokens) for t in analysis.focus_terms)
        return {
            "focus_match": float(focus_match),
            "content_coverage": content_coverage,
            "best_dense": best.dense,
            "top_dense": max(e.dense for e in candidates),
            "best_score": best.score,
            "coverage": max(coverage, best.coverage),
            "named": max(named, best.named_coverage),
            "doc_coverage": doc_coverage,
            "doc_named": doc_named,
            "type_match": float(any(e.type_match for e in chosen)),
            "typed_question": float(analysis.answer_type != AnswerType.OTHER),
            "key_terms": float(len(analysis.key_terms) + len(analysis.acronyms)),
        }

    def _abstain_reason(self, analysis: QuestionAnalysis,
                        features: dict[str, float]) -> AbstainReason | None:
        p = self.policy
        if features["top_dense"] < p.min_dense and features["coverage"] < p.min_coverage:
            return AbstainReason.NO_RELEVANT_PASSAGES
        if features["doc_named"] < p.min_named_coverage:
            return AbstainReason.MISSING_KEY_TERMS
        if features["typed_question"] and not features["type_match"]:
            return AbstainReason.ANSWER_TYPE_NOT_FOUND
        if not features["focus_match"]:
            return AbstainReason.ANSWER_TYPE_NOT_FOUND
        # Paraphrases share few words with the article but stay close in meaning; near-miss
        # questions are caught above (names absent, asked-for kind of fact absent).
        if (features["content_coverage"] < p.min_content_coverage
                and features["best_dense"] < p.content_dense_floor):
            # Only the names match ("How much does Kazakhstan spend on defence?" against a
            # sentence that merely mentions Kazakhstan).
            return AbstainReason.INSUFFICIENT_SUPPORT
        evidence = features["best_dense"] + p.evidence_coverage_weight * features["coverage"]
        if evidence < p.min_evidence:
            return AbstainReason.INSUFFICIENT_SUPPORT
        return None

    def _document_coverage(self, analysis: QuestionAnalysis, doc_id: str) -> tuple[float, float]:
        """Coverage of the question by a whole document, its title and outlet included.

        Names the question uses to pin down the fact (a person, an institute, the outlet)
        often sit elsewhere in the article than the sentence that states the fact.
        """
        key = (analysis, doc_id)
        cached = self._document_coverage_cache.get(key)
        if cached is not None:
            return cached
        if len(self._document_coverage_cache) > 10_000:
            self._document_coverage_cache.clear()
        result = self._document_coverage_uncached(analysis, doc_id)
        self._document_coverage_cache[key] = result
        return result

    def _document_coverage_uncached(self, analysis: QuestionAnalysis,
                                    doc_id: str) -> tuple[float, float]:
        tokens = self.sentences.doc_tokens(doc_id)
        meta = self.snapshot.document_meta(doc_id)
        text = f"{meta['title']} {meta['outlet']} {self.sentences.doc_text[doc_id]}"
        coverage, named = self.coverage(analysis, tokens, text)
        if analysis.source_terms:
            # The source a question names ("according to the Lansing Institute") must be in
            # the article: it counts like a name.
            weights = self.sentences.weights(analysis.source_terms)
            hit = sum(weights[t] for t in analysis.source_terms if _term_matches(t, tokens))
            source = hit / sum(weights.values())
            named = min(named, source) if analysis.named_terms or analysis.acronyms else source
        return coverage, named

    def _redundant(self, candidate: Evidence, chosen: Sequence[Evidence]) -> bool:
        vectors = self.snapshot.sentence_vectors
        for evidence in chosen:
            similarity = float(vectors[candidate.sentence.row] @ vectors[evidence.sentence.row])
            if similarity >= self.policy.redundancy_cosine:
                return True
            if candidate.text.strip().casefold() == evidence.text.strip().casefold():
                return True
        return False

    def _conflicts(self, analysis: QuestionAnalysis, chosen: list[Evidence],
                   candidates: Sequence[Evidence], best: Evidence) -> list[ConflictGroup]:
        """Figures for the same quantity that differ between the chosen evidence and others."""
        if analysis.answer_type != AnswerType.NUMBER:
            return []
        figures: list[tuple[float, str, str | None, Evidence]] = []
        pool = list(chosen) + [c for c in candidates[:12]
                               if c.score >= 0.8 * best.score and c not in chosen
                               and c.coverage >= 0.6 * best.coverage]
        for evidence in pool:
            figure = self._figure_for(analysis, evidence)
            if figure is not None:
                figures.append((*figure, evidence))
        if not figures:
            return []
        anchor = next((f for f in figures if f[3] is best), figures[0])
        group = [f for f in figures if _same_quantity(f[2], anchor[2])]
        by_value: dict[float, tuple[str, Evidence]] = {}
        for value, written, _, evidence in group:
            by_value.setdefault(value, (written, evidence))
        docs = {e.sentence.doc_id for _, e in by_value.values()}
        if len(by_value) < 2 or len(docs) < 2:
            return []
        unit = anchor[2] or "the figure asked about"
        about = f"number of {unit}" if anchor[2] else unit
        return [ConflictGroup(about=about, members=list(by_value.values()))]

    def _figure_for(self, analysis: QuestionAnalysis,
                    evidence: Evidence) -> tuple[float, str, str | None] | None:
        """The figure in a sentence that the question is about: the one whose surrounding
        words cover most of the question's key terms."""
        best: tuple[float, float, str, str | None] | None = None
        text = evidence.text
        for mention in find_numbers(text):
            if mention.is_year or mention.is_percent or mention.value < 10:
                continue
            window = text[max(0, mention.start - 60): mention.end + 60]
            tokens = set(tokenize([window])[0])
            relevance, _ = self.coverage(analysis, tokens, window)
            unit = _figure_unit(text, mention.start, mention.end)
            asked = unit is not None and any(
                _term_matches(_stem(unit), {t}) for t in analysis.key_terms)
            if asked:
                relevance += 1.0  # "6,000 militants" when militants are asked about
            if best is None or relevance > best[0]:
                best = (relevance, mention.value, mention.text, unit)
        return None if best is None else (best[1], best[2], best[3])

    def _order(self, chosen: list[Evidence]) -> list[SelectedSentence]:
        """Best first; sentences of one document stay together and in reading order."""
        doc_order: list[str] = []
        for evidence in chosen:
            if evidence.sentence.doc_id not in doc_order:
                doc_order.append(evidence.sentence.doc_id)
        out: list[SelectedSentence] = []
        for doc_id in doc_order:
            group = sorted((e for e in chosen if e.sentence.doc_id == doc_id),
                           key=lambda e: e.sentence.start)
            meta = self.snapshot.document_meta(doc_id)
            for i, evidence in enumerate(group):
                attribution = attribution_for(meta["outlet"], meta["title"], meta["published"]) \
                    if i == 0 else None
                out.append(SelectedSentence(evidence, attribution))
        return out


def merge_decisions(answerer: Answerer, decisions: Sequence[Decision]) -> Decision:
    """One decision for a question asked in parts: the evidence of every answered part."""
    answered = [d for d in decisions if d.answerable]
    if not answered:
        return decisions[0]
    seen: set[int] = set()
    evidence: list[Evidence] = []
    for decision in answered:
        for selected in decision.selected:
            if selected.evidence.sentence.row not in seen:
                seen.add(selected.evidence.sentence.row)
                evidence.append(selected.evidence)
    conflicts = [c for d in answered for c in d.conflicts]
    return Decision(True, None, answerer._order(evidence), conflicts, answered[0].best,
                    answered[0].features)
