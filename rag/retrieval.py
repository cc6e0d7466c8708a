"""Find the chunks that best match a question: dense (FAISS), BM25 (bm25s), or both fused."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from rag.chunking import Chunk
from rag.embedding import Embedder
from rag.errors import BadInputError, EmptyQuestionError
from rag.inputs import check_k, check_text
from rag.settings import Choice
from rag.store import Index, IndexReader, SentenceKey, faiss_module
from rag.terms import terms

__all__ = ["DEFAULT_K", "DEFAULT_MODE", "MODES", "Hit", "Retriever", "RetrievalMode", "terms"]

if TYPE_CHECKING:  # numpy loads with an index, not with this module (`rag --help`)
    import numpy as np

    from rag.late import QuestionTokens


class RetrievalMode(Choice):
    """How chunks are ranked: fused (RRF), dense vectors (FAISS) or BM25 (bm25s)."""

    HYBRID = "hybrid"
    DENSE = "dense"
    BM25 = "bm25"


#: The modes' names, in the order the CLI and the UI list them.
MODES = tuple(m.value for m in RetrievalMode)
#: Chosen on the SQuAD sample (evals/reports): see README "Retrieval".
DEFAULT_MODE = RetrievalMode.HYBRID
#: Passages retrieved and listed by ``rag ask``, ``rag serve`` and ``Assistant.ask`` when the
#: caller does not say (``rag eval`` retrieves ``evaluation.EVAL_K``).
DEFAULT_K = 5
#: Reciprocal rank fusion constant (Cormack et al., 2009).
RRF_K = 60


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk.

    Attributes:
        score: the ranking score of the mode (RRF for hybrid, cosine for dense, BM25 for bm25).
        dense: cosine similarity of question and chunk, whatever the mode.
        rank: 1-based position in the results.
        dense_rank, bm25_rank: 1-based position of the chunk in the dense and the BM25
            ranking (whatever the mode), None when it is not among their first
            ``SEARCH_DEPTH``-or-so results. The answer scorer reads them.
    """

    chunk: Chunk
    score: float
    dense: float
    rank: int
    dense_rank: int | None = None
    bm25_rank: int | None = None


#: Terms of candidate sentences and chunks kept between questions (each a small frozenset).
TERM_CACHE = 16384


class Retriever:
    """Searches one loaded index. Thread-safe for concurrent ``search`` calls.

    Nothing corpus-wide is derived here: BM25 and the IDF table are read from the index,
    and the terms of a sentence or a chunk are derived when the answer scorer first asks
    for them (``sentence_terms``, ``chunk_terms``), then kept in a bounded cache.
    """

    def __init__(self, index: IndexReader, embedder: Embedder | None = None) -> None:
        self.index = index
        self.embedder = embedder or Embedder(index.settings.model)
        #: term -> IDF over the chunks (a read-only Mapping; see ``Index.idf``).
        self.idf: Mapping[str, float] = _Idf(index)
        self.default_idf = index.default_idf
        self.sentence_terms = lru_cache(maxsize=TERM_CACHE)(self._sentence_terms)
        self.chunk_terms = lru_cache(maxsize=TERM_CACHE)(self._chunk_terms)
        if isinstance(index, Index):
            # FAISS cuts OpenMP to one thread when first used. Done at the first search, it
            # moved the vectors of questions embedded after it by ~1e-7 from the first one's,
            # so the same question could get two probabilities; now every question comes after.
            faiss_module()

    def _sentence_terms(self, key: SentenceKey) -> frozenset[str]:
        """The terms of sentence ``(source, start, end)``."""
        return frozenset(terms(self.index.documents[key[0]].text[key[1] : key[2]]))

    @staticmethod
    def _chunk_terms(chunk: Chunk) -> frozenset[str]:
        """The terms of ``chunk`` (those its BM25 row was built from)."""
        return frozenset(terms(chunk.text))

    def neighbours(self, key: SentenceKey) -> tuple[SentenceKey | None, SentenceKey | None]:
        """The sentences before and after ``key`` in its document (None at its ends)."""
        return self.index.neighbours(key)

    def embed_question(self, question: str) -> np.ndarray:
        return self.embedder.encode_question(question)

    def embed_query(self, question: str) -> tuple[np.ndarray, QuestionTokens]:
        """The question's unit vector (as ``embed_question``) and, from the same forward
        pass, its token vectors for the answer scorer (``rag.late``)."""
        return self.embedder.encode_query(question)

    def search(
        self,
        question: str,
        *,
        k: int = DEFAULT_K,
        mode: RetrievalMode | str = DEFAULT_MODE,
        question_vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """The ``k`` best chunks for ``question``, best first.

        Returns:
            At most ``min(k, number of chunks)`` hits with distinct texts (the same passage
            stored under two files is returned once, under the better-ranked one).
        """
        question = check_question(question)
        k = check_k(k)
        mode = RetrievalMode.from_str(mode, what="mode")
        n = len(self.index.chunks)  # a count: rows need not run 0..n-1 (``IndexReader``)
        if n == 0:
            return []
        qv = self.embed_question(question) if question_vector is None else question_vector
        depth = min(n, max(50, 4 * k))  # look deeper than k: duplicates are dropped below
        # Both rankings always: the answer scorer reads each chunk's dense and BM25 rank.
        dense, bm25 = self._dense(qv, depth), self._bm25_search(question, depth)
        ranked = {
            RetrievalMode.DENSE: dense,
            RetrievalMode.BM25: bm25,
            RetrievalMode.HYBRID: fuse(dense, bm25),
        }[mode]
        ranks = (
            {i: r for r, (i, _) in enumerate(dense, start=1)},
            {i: r for r, (i, _) in enumerate(bm25, start=1)},
        )
        return self._distinct(ranked, qv, k, ranks)

    def _distinct(
        self,
        ranked: list[tuple[int, float]],
        qv: np.ndarray,
        k: int,
        ranks: tuple[dict[int, int], dict[int, int]],
    ) -> list[Hit]:
        """The first ``k`` of ``ranked`` (chunk row, score) whose texts differ, as Hits;
        ``ranks`` are each row's dense and BM25 rank."""
        picked, seen = [], set()
        for i, score in ranked:
            chunk = self.index.chunks[i]
            key = " ".join(chunk.text.split())
            if key in seen:
                continue
            seen.add(key)
            picked.append((i, score, chunk))
            if len(picked) == k:
                break
        if not picked:
            return []
        # One read of the picked rows' vectors (one round trip on a Milvus store).
        cosines = self.index.chunk_vectors[[i for i, _, _ in picked]] @ qv
        return [
            Hit(chunk, float(score), float(cos), n, ranks[0].get(i), ranks[1].get(i))
            for n, ((i, score, chunk), cos) in enumerate(zip(picked, cosines, strict=True), 1)
        ]

    def _dense(self, qv: np.ndarray, depth: int) -> list[tuple[int, float]]:
        return self.index.dense_search(qv, depth)

    def _bm25_search(self, question: str, depth: int) -> list[tuple[int, float]]:
        return self.index.bm25_search(terms(question), depth)


class _Idf(Mapping):
    """term -> IDF of the terms some chunk holds, looked up in the index on demand."""

    def __init__(self, index: IndexReader) -> None:
        self._index = index
        self._cache = lru_cache(maxsize=TERM_CACHE)(index.document_frequency)

    def __getitem__(self, term: str) -> float:
        if not self._cache(term):
            raise KeyError(term)
        return self._index.idf(term)

    def __contains__(self, term: object) -> bool:
        return isinstance(term, str) and self._cache(term) > 0

    def __iter__(self) -> Iterator[str]:
        return self._index.vocabulary()

    def __len__(self) -> int:
        return sum(1 for _ in self)


def fuse(*rankings: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: each item scores the sum of ``1 / (RRF_K + rank)`` over the
    rankings it appears in (ranks from 1).

    Returns:
        (item, fused score) pairs, best first; ties keep the order of first appearance.
    """
    fused: dict[int, float] = {}
    for results in rankings:
        for r, (i, _) in enumerate(results, start=1):
            fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + r)
    return sorted(fused.items(), key=lambda item: -item[1])


def check_question(question: object) -> str:
    """The question stripped.

    Raises:
        EmptyQuestionError: no text.
        BadInputError: not a string, or text holding an undecodable byte or a lone
            surrogate (refused rather than repaired: see ``rag.inputs``).
    """
    if question is not None and not isinstance(question, str):
        raise BadInputError(f"the question must be text, got {type(question).__name__}")
    if not question or not question.strip():
        raise EmptyQuestionError("the question is empty: type a question")
    return check_text(question.strip())
