"""Find the chunks that best match a question: dense (FAISS), BM25 (bm25s), or both fused."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from rag.chunking import Chunk
from rag.embedding import Embedder
from rag.errors import BadInputError, EmptyQuestionError
from rag.inputs import check_k, check_text
from rag.settings import Choice
from rag.store import Index

if TYPE_CHECKING:  # numpy loads with an index, not with this module (`rag --help`)
    import numpy as np


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
_WORD = re.compile(r"\w+", re.UNICODE)


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def terms(text: str) -> list[str]:
    """Lowercased, stop-word-free, Snowball-stemmed words: BM25's and the scorer's vocabulary."""
    stop = _stopwords()
    return _stemmer().stemWords([w for w in _WORD.findall(text.lower()) if w not in stop])


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


class Retriever:
    """Searches one loaded index. Thread-safe for concurrent ``search`` calls."""

    def __init__(self, index: Index, embedder: Embedder | None = None) -> None:
        import bm25s

        self.index = index
        self.embedder = embedder or Embedder(index.settings.model)
        chunk_terms = [terms(c.text) for c in index.chunks]
        self._bm25 = bm25s.BM25()
        if index.chunks:
            self._bm25.index(chunk_terms, show_progress=False)
        # Terms of every chunk and sentence, and each sentence's neighbours, for the scorer.
        pairs = zip(index.chunks, chunk_terms, strict=True)
        self.chunk_terms = {c.id: frozenset(ts) for c, ts in pairs}
        self.sentence_terms: dict[tuple[str, int, int], frozenset[str]] = {}
        self.previous: dict[tuple[str, int, int], tuple[str, int, int]] = {}
        self.following: dict[tuple[str, int, int], tuple[str, int, int]] = {}
        before = None
        for key in index.sentence_rows:  # document order
            doc = index.documents[key[0]]
            self.sentence_terms[key] = frozenset(terms(doc.text[key[1] : key[2]]))
            if before is not None and before[0] == key[0]:
                self.previous[key] = before
                self.following[before] = key
            before = key
        df = Counter(t for ts in chunk_terms for t in set(ts))
        n = max(len(chunk_terms), 1)
        self.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
        self.default_idf = math.log(1 + (n + 0.5) / 0.5)

    def embed_question(self, question: str) -> np.ndarray:
        return self.embedder.encode([question])[0]

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
        n = len(self.index.chunks)
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
        hits, seen = [], set()
        for i, score in ranked:
            chunk = self.index.chunks[i]
            key = " ".join(chunk.text.split())
            if key in seen:
                continue
            seen.add(key)
            hits.append(
                Hit(
                    chunk,
                    float(score),
                    float(self.index.chunk_vectors[i] @ qv),
                    len(hits) + 1,
                    ranks[0].get(i),
                    ranks[1].get(i),
                )
            )
            if len(hits) == k:
                break
        return hits

    def _dense(self, qv: np.ndarray, depth: int) -> list[tuple[int, float]]:
        scores, ids = self.index.faiss_index.search(qv[None, :].astype("float32"), depth)
        # FAISS pads with -1 when it has fewer than ``depth`` vectors: never let them through.
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def _bm25_search(self, question: str, depth: int) -> list[tuple[int, float]]:
        q = terms(question)
        if not q:
            return []
        docs, scores = self._bm25.retrieve([q], k=depth, show_progress=False, n_threads=0)
        # bm25s fills up to k with zero-score documents that share no term with the question.
        return [(int(i), float(s)) for i, s in zip(docs[0], scores[0], strict=True) if s > 0]


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
