"""Retrieval: RRF fusion, one hit per distinct passage, no FAISS padding, any k."""

from __future__ import annotations

import shutil

import pytest

from rag.answer import Assistant
from rag.errors import BadInputError
from rag.indexing import build_index
from rag.retrieval import MODES, RRF_K, RetrievalMode, Retriever, fuse
from rag.store import Index


def test_same_passage_in_two_files_is_shown_once(seeds_copy, tmp_path):
    shutil.copy(seeds_copy / "volcanoes.txt", seeds_copy / "volcanoes-copy.txt")
    build_index(seeds_copy, tmp_path / "index")
    answer = Assistant(tmp_path / "index").ask("When did Eyjafjallajökull erupt?", k=20)
    # A passage is listed from one file only (two shown sentences may share a passage: one
    # citation per shown sentence), and no (passage, sentence) pair is listed twice.
    source_of: dict[str, str] = {}
    for c in answer.citations:
        assert source_of.setdefault(" ".join(c.excerpt.split()), c.source) == c.source
    pairs = [(" ".join(c.excerpt.split()), c.highlight) for c in answer.citations]
    assert len(pairs) == len(set(pairs))
    sentences = [
        c.excerpt[c.highlight[0] - c.start : c.highlight[1] - c.start] for c in answer.citations[:2]
    ]
    assert len(sentences) == len(set(sentences))


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_k_larger_than_the_corpus(store_assistant, mode):
    n = len(store_assistant.index.chunks)
    answer = store_assistant.ask("When did Eyjafjallajökull erupt?", k=n + 100, mode=mode)
    ids = [(c.source, c.start, c.end, c.highlight) for c in answer.citations]
    assert 0 < len(ids) <= n + 2 and len(ids) == len(set(ids))
    assert all(c.start >= 0 for c in answer.citations)


def test_hybrid_is_the_reciprocal_rank_fusion_of_dense_and_bm25(store_assistant):
    retriever = store_assistant.retriever
    question = "When did Eyjafjallajökull erupt?"
    n = len(retriever.index.chunks)
    dense = [h.chunk.id for h in retriever.search(question, k=n, mode="dense")]
    bm25 = [h.chunk.id for h in retriever.search(question, k=n, mode="bm25")]
    assert bm25 and len(bm25) < len(dense)  # BM25 skips chunks that share no term

    def rrf(chunk_id: str) -> float:
        return sum(1 / (RRF_K + r.index(chunk_id) + 1) for r in (dense, bm25) if chunk_id in r)

    hybrid = retriever.search(question, k=n, mode="hybrid")
    assert {h.chunk.id for h in hybrid} == set(dense) | set(bm25)
    for h in hybrid:
        assert h.score == pytest.approx(rrf(h.chunk.id))
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)
    assert [h.rank for h in hybrid] == list(range(1, len(hybrid) + 1))


def test_fuse_sums_reciprocal_ranks_and_keeps_first_seen_order_on_ties():
    fused = fuse([(7, 0.9), (3, 0.5)], [(9, 12.0), (3, 4.0)])
    assert [i for i, _ in fused] == [3, 7, 9]
    assert fused[0][1] == pytest.approx(2 / (RRF_K + 2))  # second in both beats first in one
    assert fused[1][1] == fused[2][1] == pytest.approx(1 / (RRF_K + 1))  # a tie: 7 came first


def test_a_passage_stored_under_two_files_is_one_hit(seeds_copy, tmp_path, embedder):
    shutil.copy(seeds_copy / "volcanoes.txt", seeds_copy / "volcanoes-copy.txt")
    build_index(seeds_copy, tmp_path / "index")
    retriever = Retriever(Index.load(tmp_path / "index"), embedder)
    for mode in MODES:
        hits = retriever.search("When did Eyjafjallajökull erupt?", k=50, mode=mode)
        texts = [" ".join(h.chunk.text.split()) for h in hits]
        assert len(texts) == len(set(texts)), mode
        assert hits[0].chunk.source == "volcanoes.txt", mode  # the better-ranked copy


def test_faiss_padding_never_becomes_a_hit(assistant):
    """FAISS answers a search deeper than the index with -1 rows: they must not pass."""
    retriever = assistant.retriever
    n = len(retriever.index.chunks)
    qv = retriever.embed_question("When did Eyjafjallajökull erupt?")
    rows = retriever._dense(qv, n + 10)
    assert len(rows) == n and all(0 <= i < n for i, _ in rows)


def test_a_bad_mode_names_the_valid_ones(assistant):
    with pytest.raises(BadInputError, match="mode must be one of hybrid, dense, bm25, got 'magic'"):
        assistant.retriever.search("Who?", mode="magic")
    assert RetrievalMode.from_str("bm25") is RetrievalMode.BM25 == "bm25"


# --- issue 9 (hardening) -----------------------------------------------------------


def test_retriever_made_directly_checks_k_too(built_index, embedder):
    retriever = Retriever(Index.load(built_index[1]), embedder)
    with pytest.raises(BadInputError, match="k must be >= 1, got -1"):
        retriever.search("tides", k=-1)
