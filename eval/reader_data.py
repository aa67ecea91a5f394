"""Data for the span reader: SQuAD 2.0 / NewsQA loading, deterministic splits, training examples,
BM25 hard negatives, and SQuAD-style scoring (EM/F1, no-answer accuracy).

Windowing is :func:`service.answer.reader.make_windows`, the same code the runtime reader uses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import string
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from service.answer.reader import Reading, SpanReader, Window, batch_arrays, make_windows

logger = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)

SPLIT_RULES = {
    "squad": "fold A = articles 0-4 (train), fold B = articles 5-9 (held-out test)",
    "newsqa": "story key = first question id; int(sha1(key), 16) % 10 < 6 -> train, else held-out",
    "dev": "training contexts with int(sha1('dev:' + context key), 16) % 10 == 0 -> dev",
    "train_share": "with --train-share s < 1, only training contexts with "
                   "int(sha1('share:' + context key), 16) % 1000 < round(1000 s) are trained on",
    "passages": "contexts cut into chunks of ~120 words (the product's passage length); a "
                "question's answer chunk is its answer example, another chunk of its context "
                "its own no-answer example",
    "negatives": "BM25 (bm25s, stemmed) top chunk of ~120 words from a different context of the "
                 "same pool that contains none of the question's normalised gold answers",
}
CHUNK_WORDS = 120  # about the product's 160 tiktoken-token chunks


@dataclass(frozen=True)
class Question:
    """One question; ``answers`` are (text, char start) pairs, empty when unanswerable."""

    qid: str
    text: str
    answers: tuple[tuple[str, int], ...]
    impossible: bool
    plausible: tuple[str, ...] = ()


@dataclass
class Context:
    """A SQuAD paragraph or a NewsQA story with its questions."""

    key: str
    source: str
    text: str
    questions: list[Question] = field(default_factory=list)


@dataclass(frozen=True)
class Example:
    """A training window: token ids, where the passage starts, and the answer token positions."""

    input_ids: tuple[int, ...]
    context_start: int
    start: int
    end: int
    kind: str  # answer | own-negative | impossible | hard-negative


@dataclass(frozen=True)
class EvalItem:
    """A question read over one passage; ``golds`` empty means the right output is no answer."""

    qid: str
    question: str
    passage: str
    golds: tuple[str, ...]
    kind: str


def _hash(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest(), 16)


def _parse_qas(context: str, qas: list[dict[str, Any]]) -> list[Question]:
    questions = []
    for qa in qas:
        answers = []
        for answer in qa.get("answers", []):
            start, text = int(answer["answer_start"]), answer["text"]
            if context[start:start + len(text)] == text and text.strip():
                answers.append((text, start))
        impossible = bool(qa.get("is_impossible", False))
        if not answers and not impossible:
            logger.warning("question %s: no answer found at its offset, skipped", qa["id"])
            continue
        plausible = tuple(a["text"] for a in qa.get("plausible_answers", []))
        questions.append(Question(qa["id"], qa["question"].strip(), tuple(answers), impossible,
                                  plausible))
    return questions


def load_squad(path: Path) -> list[list[Context]]:
    """SQuAD 2.0 JSON → one list of paragraph contexts per article (article order kept)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    articles = []
    for a, article in enumerate(data):
        contexts = []
        for p, paragraph in enumerate(article["paragraphs"]):
            ctx = Context(f"squad:{a}:{p}", "squad", paragraph["context"])
            ctx.questions = _parse_qas(paragraph["context"], paragraph["qas"])
            contexts.append(ctx)
        articles.append(contexts)
    return articles


def load_newsqa(path: Path) -> list[Context]:
    """NewsQA (MRQA, SQuAD layout) → one context per story, keyed by its first question id."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    stories = []
    for story in data:
        for paragraph in story["paragraphs"]:
            if not paragraph["qas"]:
                continue
            ctx = Context(f"newsqa:{paragraph['qas'][0]['id']}", "newsqa", paragraph["context"])
            ctx.questions = _parse_qas(paragraph["context"], paragraph["qas"])
            stories.append(ctx)
    return stories


def newsqa_is_train(ctx: Context) -> bool:
    """The deterministic NewsQA split: 6/10 of stories train, 4/10 held out."""
    return _hash(ctx.key.split(":", 1)[1]) % 10 < 6


def is_dev(ctx: Context) -> bool:
    """About 1/10 of training contexts are kept for checkpoint choice and threshold calibration."""
    return _hash(f"dev:{ctx.key}") % 10 == 0


@dataclass
class Splits:
    """All contexts by role."""

    train: list[Context]
    dev: list[Context]
    squad_test: list[Context]
    newsqa_test: list[Context]


def in_share(ctx: Context, share: float) -> bool:
    """Whether a training context is in a deterministic `share` of them (learning curves)."""
    return _hash(f"share:{ctx.key}") % 1000 < round(share * 1000)


def make_splits(squad: Path, newsqa: Path, limit: int | None = None,
                train_share: float = 1.0) -> Splits:
    """Fold A + NewsQA train stories (minus dev) / dev / SQuAD fold B / NewsQA held-out.

    `train_share` < 1 trains on that share of the training contexts (picked by hash) and
    leaves dev and both held-out sets as they are, so runs on less data stay comparable.
    """
    articles = load_squad(squad)
    stories = load_newsqa(newsqa)
    fold_a = [c for contexts in articles[:5] for c in contexts]
    fold_b = [c for contexts in articles[5:10] for c in contexts]
    train_pool = fold_a + [s for s in stories if newsqa_is_train(s)]
    train = [c for c in train_pool if not is_dev(c)]
    if train_share < 1.0:
        train = [c for c in train if in_share(c, train_share)]
    splits = Splits(train, [c for c in train_pool if is_dev(c)],
                    fold_b, [s for s in stories if not newsqa_is_train(s)])
    if limit:  # smoke runs: a few contexts of every kind
        for name in ("train", "dev", "squad_test", "newsqa_test"):
            items = getattr(splits, name)
            setattr(splits, name, items[:limit // 2] + items[-(limit - limit // 2):])
    return splits


# ---------------------------------------------------------------------------------------------
# SQuAD scoring


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def f1_score(prediction: str, gold: str) -> float:
    """SQuAD token F1 (both empty → 1)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def best_scores(prediction: str, golds: Sequence[str]) -> tuple[float, float]:
    """(EM, F1) against the best gold; no golds means the answer should be empty."""
    references = list(golds) or [""]
    em = max(float(normalize_answer(prediction) == normalize_answer(g)) for g in references)
    return em, max(f1_score(prediction, g) for g in references)


# ---------------------------------------------------------------------------------------------
# Chunks and hard negatives


@dataclass(frozen=True)
class Chunk:
    """About ``CHUNK_WORDS`` words of one context (what the product's retriever returns)."""

    context_key: str
    text: str


def chunk_spans(text: str, words: int = CHUNK_WORDS) -> list[tuple[int, int]]:
    """Character spans of consecutive chunks of about ``words`` words (at least one)."""
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    if not spans:
        return [(0, len(text))]
    parts = max(1, round(len(spans) / words))
    size = -(-len(spans) // parts)
    return [(spans[begin][0], spans[min(len(spans), begin + size) - 1][1])
            for begin in range(0, len(spans), size)]


def chunk_contexts(contexts: Sequence[Context], words: int = CHUNK_WORDS) -> list[Chunk]:
    """Cut contexts into consecutive word chunks (SQuAD paragraphs mostly stay whole)."""
    return [Chunk(ctx.key, ctx.text[begin:end]) for ctx in contexts
            for begin, end in chunk_spans(ctx.text, words)]


class NegativeFinder:
    """BM25 over a pool of chunks: the best chunk from another context without the answer."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        import bm25s
        import Stemmer

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG at import
        self.chunks = list(chunks)
        self._stemmer = Stemmer.Stemmer("english")
        self._retriever = bm25s.BM25()
        self._retriever.index(self._tokenize([c.text for c in self.chunks]), show_progress=False)
        self._vocab = dict(self._retriever.vocab_dict)
        self._normalised = [f" {normalize_answer(c.text)} " for c in self.chunks]

    def _tokenize(self, texts: list[str]) -> Any:
        import bm25s

        return bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, return_ids=False,
                              show_progress=False)

    def find(self, question: Question, context_key: str, rng: random.Random | None = None,
             among: int = 3) -> Chunk | None:
        """A top chunk (random among the ``among`` best when ``rng``) or None."""
        tokens = [t for t in self._tokenize([question.text])[0] if t in self._vocab]
        if not tokens:
            return None
        scores = np.asarray(self._retriever.get_scores(tokens))
        golds = [normalize_answer(a) for a, _ in question.answers] + [
            normalize_answer(p) for p in question.plausible]
        golds = [f" {g} " for g in golds if g]
        valid: list[Chunk] = []
        for index in np.argsort(-scores)[:50]:
            if scores[index] <= 0:
                break
            chunk = self.chunks[int(index)]
            if chunk.context_key == context_key:
                continue
            if any(g in self._normalised[int(index)] for g in golds):
                continue
            valid.append(chunk)
            if len(valid) >= (among if rng else 1):
                break
        if not valid:
            return None
        return rng.choice(valid) if rng else valid[0]


# ---------------------------------------------------------------------------------------------
# Training examples and evaluation items


def label_window(window: Window, start: int, end: int) -> tuple[int, int] | None:
    """Token positions of the char span [start, end) if the window holds all of it."""
    offsets = window.offsets
    if not offsets or offsets[0][0] > start or offsets[-1][1] < end:
        return None
    first = next(i for i, (_, e) in enumerate(offsets) if e > start)
    last = max(i for i, (b, _) in enumerate(offsets) if b < end)
    if last < first:
        return None
    return window.context_start + first, window.context_start + last


def build_examples(tokenizer: Any, contexts: Sequence[Context], finder: NegativeFinder,
                   seed: int, hard_rate: float) -> list[Example]:
    """Answer windows (all), one own no-answer window per question, impossible questions, and
    hard negatives (a retrieved chunk of another context) for ``hard_rate`` of the questions.

    Contexts are read as the product reads them: cut into chunks of about ``CHUNK_WORDS``
    words (a SQuAD paragraph mostly stays whole, a news story becomes several chunks), so the
    reader learns on the passage lengths it is given at run time and the own no-answer windows
    are other chunks of the same story."""
    rng = random.Random(seed)
    examples: list[Example] = []
    for ctx in contexts:
        spans = chunk_spans(ctx.text)
        passages = [ctx.text[begin:end] for begin, end in spans]
        for q in ctx.questions:
            windows = make_windows(tokenizer, q.text, passages)
            if q.impossible:
                examples += [Example(w.input_ids, w.context_start, 0, 0, "impossible")
                             for w in windows]
                continue
            text, start = q.answers[0]
            negatives, found = [], False
            for w in windows:
                begin, end = spans[w.passage]
                label = label_window(w, start - begin, start - begin + len(text))
                if label:
                    examples.append(Example(w.input_ids, w.context_start, *label, "answer"))
                    found = True
                elif end <= start or begin >= start + len(text):
                    # no part of the answer: one cut by a chunk boundary is neither
                    negatives.append(w)
            if negatives and found:
                w = rng.choice(negatives)
                examples.append(Example(w.input_ids, w.context_start, 0, 0, "own-negative"))
            if rng.random() < hard_rate:
                chunk = finder.find(q, ctx.key, rng)
                if chunk is not None:
                    w = make_windows(tokenizer, q.text, [chunk.text])[0]
                    examples.append(Example(w.input_ids, w.context_start, 0, 0, "hard-negative"))
    return examples


def make_batches(examples: list[Example], batch_size: int, seed: int) -> list[list[int]]:
    """Length-bucketed batches: shuffle, sort within blocks of 50 batches, shuffle batches."""
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    block = batch_size * 50
    batches = []
    for begin in range(0, len(order), block):
        part = sorted(order[begin:begin + block], key=lambda i: len(examples[i].input_ids))
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(examples: list[Example], indices: list[int]) -> dict[str, Any]:
    """A padded torch batch, built by the runtime reader's own :func:`batch_arrays`."""
    import torch

    rows = [examples[i] for i in indices]
    batch = {k: torch.from_numpy(v) for k, v in batch_arrays(rows).items()}
    batch["start_positions"] = torch.tensor([r.start for r in rows])
    batch["end_positions"] = torch.tensor([r.end for r in rows])
    return batch


def eval_items(contexts: Sequence[Context], finder: NegativeFinder | None = None,
               negative_rate: float = 0.0, seed: int = 0) -> list[EvalItem]:
    """Every question over its own context; plus, for ``negative_rate`` of the answerable ones,
    over the top BM25 chunk of another context (gold: no answer)."""
    rng = random.Random(seed)
    items = []
    for ctx in contexts:
        for q in ctx.questions:
            golds = tuple(a for a, _ in q.answers) if not q.impossible else ()
            items.append(EvalItem(q.qid, q.text, ctx.text, golds, "impossible" if q.impossible
                                  else "answer"))
            if finder is not None and not q.impossible and rng.random() < negative_rate:
                chunk = finder.find(q, ctx.key)
                if chunk is not None:
                    items.append(EvalItem(q.qid, q.text, chunk.text, (), "distractor"))
    return items


@dataclass(frozen=True)
class Prediction:
    """A reading reduced to what scoring needs: best span, its margin over no-answer, and the
    (EM, F1) of answering with it and of answering nothing."""

    item: EvalItem
    text: str
    margin: float
    answered: tuple[float, float]
    empty: tuple[float, float]


def predict(read: Callable[[str, Sequence[str]], list[Reading]],
            items: Sequence[EvalItem]) -> list[Prediction]:
    """Read every item's passage with ``read`` (question, passages) → readings."""
    predictions = []
    for item in items:
        reading = read(item.question, [item.passage])[0]
        best = reading.spans[0] if reading.spans else None
        margin = best.score - reading.null_score if best else float("-inf")
        text = best.text if best else ""
        predictions.append(Prediction(item, text, margin, best_scores(text, item.golds),
                                      best_scores("", item.golds)))
    return predictions


def _pct(values: Sequence[float]) -> float:
    return round(100 * float(np.mean(values)), 2) if len(values) else float("nan")


def score(predictions: Sequence[Prediction], threshold: float = 0.0) -> dict[str, Any]:
    """EM/F1 (answer when margin > threshold), by kind; no-answer accuracy; forced-answer F1."""
    result: dict[str, Any] = {"n": len(predictions), "threshold": round(threshold, 3)}
    chosen = [p.answered if p.margin > threshold else p.empty for p in predictions]
    result["em"] = _pct([c[0] for c in chosen])
    result["f1"] = _pct([c[1] for c in chosen])
    for kind in sorted({p.item.kind for p in predictions}):
        group = [(p, c) for p, c in zip(predictions, chosen, strict=True) if p.item.kind == kind]
        block: dict[str, Any] = {"n": len(group)}
        if kind == "answer":
            block.update(em=_pct([c[0] for _, c in group]), f1=_pct([c[1] for _, c in group]),
                         forced_em=_pct([p.answered[0] for p, _ in group]),
                         forced_f1=_pct([p.answered[1] for p, _ in group]),
                         abstained=_pct([float(p.margin <= threshold) for p, _ in group]))
        else:
            block["no_answer_accuracy"] = _pct([float(p.margin <= threshold) for p, _ in group])
        result[kind] = block
    return result


def best_threshold(predictions: Sequence[Prediction]) -> float:
    """The no-answer margin threshold that maximises overall F1 (SQuAD 2.0's best_f1_thresh)."""
    margins = np.array([p.margin for p in predictions], dtype=np.float64)
    answered = np.array([p.answered[1] for p in predictions])
    empty = np.array([p.empty[1] for p in predictions])
    candidates = sorted({0.0, *(round(float(m), 2) for m in margins
                                if np.isfinite(m) and abs(m) < 20)})
    return max(candidates, key=lambda t: (float(np.where(margins > t, answered, empty).sum()),
                                          -abs(t)))


def heldout_items(splits: Splits) -> dict[str, list[EvalItem]]:
    """SQuAD fold B over its paragraphs; NewsQA held-out over whole stories and distractors."""
    finder = NegativeFinder(chunk_contexts(splits.newsqa_test))
    news = eval_items(splits.newsqa_test, finder, negative_rate=1.0)
    return {"squad_fold_b": eval_items(splits.squad_test),
            "newsqa_heldout": [i for i in news if i.kind == "answer"],
            "newsqa_distractors": [i for i in news if i.kind == "distractor"]}


def evaluate_model(model: Path, items: dict[str, list[EvalItem]], threshold: float,
                   threads: int, every: int = 1
                   ) -> tuple[dict[str, Any], dict[str, list[Prediction]]]:
    """Scores of the ONNX model on every ``every``-th item of each set, at threshold 0 and at
    ``threshold``; also the predictions (aligned with ``items[name][::every]``)."""
    reader = SpanReader.load(model, threads=threads)
    results: dict[str, Any] = {}
    predictions: dict[str, list[Prediction]] = {}
    for name, group in items.items():
        started = time.monotonic()
        predictions[name] = predict(reader.read, group[::every])
        results[name] = {"at_0": score(predictions[name]),
                         "calibrated": score(predictions[name], threshold),
                         "seconds": round(time.monotonic() - started, 1)}
        logger.info("%s %s (n=%d): F1 %.2f at 0, %.2f at %.2f", model.name, name,
                    len(predictions[name]), results[name]["at_0"]["f1"],
                    results[name]["calibrated"]["f1"], threshold)
    return results, predictions


def ms_per_passage(model: Path, passages: list[str], question: str, threads: int) -> float:
    """Wall-clock ms per passage for one read of ``passages`` (median of 15 runs)."""
    reader = SpanReader.load(model, threads=threads)
    for _ in range(3):
        reader.read(question, passages)
    runs = []
    for _ in range(15):
        started = time.perf_counter()
        reader.read(question, passages)
        runs.append(time.perf_counter() - started)
    return round(1000 * float(np.median(runs)) / len(passages), 2)
