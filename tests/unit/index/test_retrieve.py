"""Tests for index/retrieve.py: filters, score fields, fusion methods, and real-model retrieval."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from corpus.errors import InvalidRequest
from corpus.loader import Document
from index.embedding import HashEmbedder, SentenceTransformerEmbedder
from index.ingest import IndexWriter
from index.retrieve import RRF_K, fuse, search
from index.store import Filters, IndexSnapshot


def _doc(doc_id: str, outlet: str, published: str | None, topic: str) -> Document:
    text = (f"A report on {topic}.\n\n"
            + " ".join(f"Officials discussed {topic} matters at meeting {i} in the border region."
                       for i in range(12)))
    return Document(doc_id=doc_id, text=text, title=f"On {topic}", outlet=outlet,
                    published=published, source=f"test:{doc_id}")


DOCS = [
    _doc("jan-day", "Daily Wire Service", "2023-01-15", "water"),
    _doc("jan-month", "Monthly Review", "2023-01", "water"),
    _doc("feb-month", "Monthly Review", "2023-02", "water"),
    _doc("year-2022", "Yearbook", "2022", "water"),
    _doc("undated", "Daily Wire Service", None, "water"),
]


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> IndexSnapshot:
    data_dir = tmp_path_factory.mktemp("search-index")
    IndexWriter(data_dir, HashEmbedder()).apply(add=DOCS)
    return IndexSnapshot.open(data_dir, HashEmbedder())


def _doc_ids(snapshot: IndexSnapshot, filters: Filters | None = None,
             method: str = "convex") -> set[str]:
    hits = search(snapshot, HashEmbedder(), "water matters at the meeting", k=100,
                  filters=filters, method=method)  # type: ignore[arg-type]
    return {p.chunk.doc_id for p in hits}


# ---------------------------------------------------------------------------------------------
# Filters


def test_unfiltered_search_sees_every_document(snapshot: IndexSnapshot) -> None:
    assert _doc_ids(snapshot) == {d.doc_id for d in DOCS}


@pytest.mark.parametrize("method", ["convex", "rrf", "dense", "bm25"])
def test_outlet_filter(snapshot: IndexSnapshot, method: str) -> None:
    assert _doc_ids(snapshot, Filters(outlets=("Monthly Review",)), method) == {
        "jan-month", "feb-month"
    }
    # Outlet names match case-insensitively; several outlets are OR-ed.
    assert _doc_ids(snapshot, Filters(outlets=("monthly review", "YEARBOOK")), method) == {
        "jan-month", "feb-month", "year-2022"
    }
    assert _doc_ids(snapshot, Filters(outlets=("Nobody",)), method) == set()


@pytest.mark.parametrize(
    ("published_from", "published_to", "expected"),
    [
        # A month-precision date covers the whole month: any overlap with the range matches.
        ("2023-01-20", None, {"jan-month", "feb-month"}),
        (None, "2023-01-05", {"jan-month", "year-2022"}),
        ("2023-01-10", "2023-01-20", {"jan-day", "jan-month"}),
        ("2023-01-16", "2023-01-31", {"jan-month"}),
        ("2023-02-01", "2023-02-01", {"feb-month"}),
        ("2022-12-31", "2022-12-31", {"year-2022"}),
        ("2022-06-01", "2023-01-01", {"year-2022", "jan-month"}),
        ("2024-01-01", None, set()),
    ],
)
def test_date_filters_use_overlap(snapshot: IndexSnapshot, published_from: str | None,
                                  published_to: str | None, expected: set[str]) -> None:
    filters = Filters(published_from=published_from, published_to=published_to)
    assert _doc_ids(snapshot, filters) == expected
    # Documents without a date never match a date filter.
    assert "undated" not in _doc_ids(snapshot, filters)


def test_doc_id_filter_and_combination(snapshot: IndexSnapshot) -> None:
    assert _doc_ids(snapshot, Filters(doc_ids=("feb-month", "undated"))) == {"feb-month",
                                                                              "undated"}
    combined = Filters(doc_ids=("jan-day", "jan-month", "undated"),
                       outlets=("Daily Wire Service",), published_from="2023-01-01")
    assert _doc_ids(snapshot, combined) == {"jan-day"}
    assert _doc_ids(snapshot, Filters(doc_ids=("missing",))) == set()


def test_filtered_search_still_returns_k_results(snapshot: IndexSnapshot) -> None:
    filters = Filters(doc_ids=("feb-month",))
    chunks = [r for r in snapshot.chunk_rows() if snapshot.chunk(r).doc_id == "feb-month"]
    hits = search(snapshot, HashEmbedder(), "water", k=len(chunks), filters=filters)
    assert len(hits) == len(chunks)


# ---------------------------------------------------------------------------------------------
# Scores


def test_passages_carry_dense_lexical_and_fused_scores(snapshot: IndexSnapshot) -> None:
    embedder = HashEmbedder()
    query = "Officials discussed water matters"
    hits = search(snapshot, embedder, query, k=8, method="convex", dense_weight=0.5)
    assert [p.rank for p in hits] == list(range(1, 9))
    assert [p.score for p in hits] == sorted((p.score for p in hits), reverse=True)
    query_vector = embedder.embed([query])[0]
    lexical_all = snapshot.lexical.scores(query)
    for passage in hits:
        expected_dense = float(embedder.embed([passage.chunk.text])[0] @ query_vector)
        assert passage.dense == pytest.approx(expected_dense, abs=1e-5)
        position = snapshot.lexical.position(passage.chunk.row_id)
        assert position is not None
        assert passage.lexical == pytest.approx(float(lexical_all[position]), rel=1e-5)
        assert passage.lexical > 0
        assert 0 <= passage.score <= 1.0 + 1e-6


def test_bm25_and_dense_modes_rank_by_their_own_score(snapshot: IndexSnapshot) -> None:
    embedder = HashEmbedder()
    for method, field in (("bm25", "lexical"), ("dense", "dense")):
        hits = search(snapshot, embedder, "water border region", k=10, method=method)
        assert [p.score for p in hits] == [getattr(p, field) for p in hits]
        assert [p.score for p in hits] == sorted((p.score for p in hits), reverse=True)


def test_invalid_k_and_empty_filters(snapshot: IndexSnapshot) -> None:
    with pytest.raises(InvalidRequest):
        search(snapshot, HashEmbedder(), "water", k=0)
    assert search(snapshot, HashEmbedder(), "water", filters=Filters(outlets=("x",))) == []


def test_query_vector_is_used_when_given(snapshot: IndexSnapshot) -> None:
    embedder = HashEmbedder()
    vector = embedder.embed(["water"])[0]
    given = search(snapshot, embedder, "water", k=5, query_vector=vector)
    computed = search(snapshot, embedder, "water", k=5)
    assert [(p.chunk.chunk_id, p.score) for p in given] == [
        (p.chunk.chunk_id, p.score) for p in computed
    ]


# ---------------------------------------------------------------------------------------------
# fuse


DENSE = np.array([0.9, 0.5, 0.7, 0.1], dtype=np.float32)
LEXICAL = np.array([0.0, 8.0, 4.0, 2.0], dtype=np.float32)


def test_fuse_dense_and_bm25_pass_scores_through() -> None:
    np.testing.assert_array_equal(fuse(DENSE, LEXICAL, "dense"), DENSE)
    np.testing.assert_array_equal(fuse(DENSE, LEXICAL, "bm25"), LEXICAL)


def test_fuse_convex_mixes_cosine_with_max_normalised_bm25() -> None:
    fused = fuse(DENSE, LEXICAL, "convex", dense_weight=0.25)
    expected = 0.25 * DENSE + 0.75 * (LEXICAL / 8.0)
    np.testing.assert_allclose(fused, expected, rtol=1e-6)
    np.testing.assert_allclose(fuse(DENSE, LEXICAL, "convex", dense_weight=1.0), DENSE)
    np.testing.assert_allclose(fuse(DENSE, LEXICAL, "convex", dense_weight=0.0), LEXICAL / 8.0)
    # No lexical evidence at all: only the dense part remains (no division by zero).
    zeros = np.zeros(4, np.float32)
    np.testing.assert_allclose(fuse(DENSE, zeros, "convex", dense_weight=0.6), 0.6 * DENSE)
    assert np.argmax(fuse(DENSE, LEXICAL, "convex", dense_weight=0.5)) == 1


def test_fuse_rrf_sums_reciprocal_ranks_and_ignores_zero_bm25() -> None:
    fused = fuse(DENSE, LEXICAL, "rrf")
    dense_ranks = np.array([1, 3, 2, 4])
    lexical_ranks = np.array([4, 1, 2, 3])
    expected = 1 / (RRF_K + dense_ranks) + np.where(LEXICAL > 0, 1 / (RRF_K + lexical_ranks), 0)
    np.testing.assert_allclose(fused, expected, rtol=1e-6)
    # Ranks (3, 1) narrowly beat (2, 2) with k=60; candidate 0 gets no BM25 credit.
    assert list(np.argsort(-fused)) == [1, 2, 3, 0]
    assert fused[0] == pytest.approx(1 / (RRF_K + 1))
    # Only ranks matter: rescaling either signal changes nothing.
    np.testing.assert_allclose(fuse(DENSE * 10, LEXICAL / 3, "rrf"), fused)


def test_fuse_empty_and_unknown() -> None:
    empty = np.zeros(0, np.float32)
    for method in ("dense", "bm25", "rrf", "convex"):
        assert fuse(empty, empty, method).shape == (0,)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse(DENSE, LEXICAL, "nonsense")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The real model on the seed corpus

# Questions written for each article (paraphrased, not copied sentences).
SEED_QUESTIONS = {
    "000": [
        "Which American think tank warned that Tajikistan and Kyrgyzstan could be destabilised "
        "within a month or so?",
        "How big is the army that the Taliban have built up, according to the research note?",
        "How many extra soldiers did the Taliban defence ministry send to the northern border "
        "provinces?",
    ],
    "001": [
        "How many Islamic State fighters does the head of the CSTO Joint Staff believe are in "
        "Afghanistan?",
        "What does Knyazev think of the Islamic Movement of Uzbekistan today?",
        "Did Saudi Arabia close its embassy in Kabul?",
    ],
    "002": [
        "What did the Uzbek president say about the Qush Tepa canal and water?",
        "What happened to the Jamaat Ansarullah fighters who crossed into Badakhshan?",
        "What did leaders discuss at the Central Asian heads of state meeting in Dushanbe in "
        "September?",
    ],
    "003": [
        "Is Tajikistan's interior minister ready to confront ISIS on the Afghan border?",
        "Why does Naggar think ISIS Khorasan is focusing on Asia?",
    ],
    "004": [
        "How many militants did General Manilov say were gathered on the borders of former "
        "Soviet states with Afghanistan?",
        "Why could Washington want a crisis in Tajikistan?",
    ],
}


@pytest.fixture(scope="module")
def seed_snapshot(seed_index_dir: Path,
                  real_embedder: SentenceTransformerEmbedder) -> IndexSnapshot:
    return IndexSnapshot.open(seed_index_dir, real_embedder)


@pytest.mark.model
@pytest.mark.parametrize(
    ("prefix", "question"),
    [(prefix, q) for prefix, questions in SEED_QUESTIONS.items() for q in questions],
    ids=[f"{prefix}-q{i}" for prefix, qs in SEED_QUESTIONS.items() for i in range(len(qs))],
)
def test_seed_question_finds_its_article_in_top_3(
    seed_snapshot: IndexSnapshot, real_embedder: SentenceTransformerEmbedder,
    prefix: str, question: str,
) -> None:
    hits = search(seed_snapshot, real_embedder, question, k=3)
    assert prefix in {p.chunk.doc_id[:3] for p in hits}, [
        (p.chunk.doc_id, round(p.score, 3), p.chunk.text[:60]) for p in hits
    ]


@pytest.mark.model
def test_seed_index_is_complete(seed_snapshot: IndexSnapshot,
                                real_embedder: SentenceTransformerEmbedder) -> None:
    assert seed_snapshot.document_count == 5
    assert seed_snapshot.manifest["model"] == real_embedder.name
    assert seed_snapshot.vectors.d == real_embedder.dimension == 384
    # Stored vectors are what the model gives for the chunk text.
    row = seed_snapshot.chunk_rows()[0]
    stored = seed_snapshot.chunk_vectors([row])[0]
    fresh = real_embedder.embed([seed_snapshot.chunk(row).text])[0]
    assert float(stored @ fresh) > 0.999


@pytest.mark.model
def test_seed_filters_with_real_model(seed_snapshot: IndexSnapshot,
                                      real_embedder: SentenceTransformerEmbedder) -> None:
    question = "How many militants are near the Tajik border?"
    hits = search(seed_snapshot, real_embedder, question, k=10,
                  filters=Filters(outlets=("SouthFront",)))
    assert hits and {p.chunk.doc_id[:3] for p in hits} == {"004"}
    hits = search(seed_snapshot, real_embedder, question, k=10,
                  filters=Filters(published_from="2023-01-01", published_to="2023-02-28"))
    assert {p.chunk.doc_id[:3] for p in hits} == {"001", "003"}
