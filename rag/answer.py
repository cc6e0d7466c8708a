"""Answer a question with the exact sentences of the documents, each with its citation.

How sentences are scored: every sentence of the retrieved chunks gets
``W_DENSE * cosine(question, sentence) + W_LEXICAL * lexical(question, sentence)``, where
``lexical`` is the IDF-weighted share of the question's terms found in the sentence (stemmed,
stop words dropped). The best sentence is shown; a second when it scores within
``SECOND_MARGIN`` of the first. The weights were chosen on the SQuAD sample (README).

When the evidence is weak (the best sentence's score under the threshold) the assistant
abstains: it says the documents do not contain the answer and still lists the nearest passages.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from threading import Lock

import numpy as np

from rag.chunking import Span
from rag.errors import BadInputError
from rag.retrieval import DEFAULT_MODE, Hit, Retriever, check_question, terms
from rag.store import Index

W_DENSE = 0.5
W_LEXICAL = 0.5
SECOND_MARGIN = 0.1
#: Sentences are drawn from the best ANSWER_DEPTH hits only, so asking for more passages
#: (``-k 10`` in an eval) lists more citations without changing the answer.
ANSWER_DEPTH = 5
#: Abstain below this confidence. Chosen by measurement (README "Abstention");
#: ``rag eval --calibrate`` stores an index-specific value that takes precedence.
DEFAULT_THRESHOLD = 0.35
ABSTAIN_TEXT = "The documents do not contain an answer to this question."


@dataclass(frozen=True)
class Citation:
    """Where a shown sentence (or a nearest passage) comes from.

    ``start``/``end`` delimit ``excerpt`` (the retrieved chunk) and ``highlight`` the
    supporting sentence, all in the document's canonical text:
    ``document[start:end] == excerpt`` and ``start <= highlight[0] < highlight[1] <= end``.
    """

    n: int
    source: str
    start: int
    end: int
    line_start: int
    line_end: int
    page: int | None
    excerpt: str
    highlight: tuple[int, int]
    score: float


@dataclass(frozen=True)
class Answer:
    """The reply to one question; ``to_dict()`` is the CLI's JSON contract."""

    question: str
    answer: str
    abstained: bool
    citations: tuple[Citation, ...]
    confidence: float
    latency_ms: float
    id: str | None = None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained,
            "citations": [{**asdict(c), "highlight": list(c.highlight)} for c in self.citations],
            "confidence": round(self.confidence, 4),
            "latency_ms": round(self.latency_ms, 1),
        }


@dataclass(frozen=True)
class _Scored:
    hit: Hit
    span: Span
    score: float


class Assistant:
    """Loads an index once and answers questions from it.

    Safe to share between threads; ``reload()`` swaps in a rebuilt index without a restart.
    """

    def __init__(
        self, index_dir: Path | str = "index", *, model: str | None = None,
        threshold: float | None = None,
    ) -> None:  # fmt: skip
        self.index_dir = Path(index_dir)
        self._model = model
        self._threshold = threshold
        self._lock = Lock()
        self.reload()

    def reload(self) -> None:
        """Load the index from disk again (after ``rag index``)."""
        index = Index.load(self.index_dir, model=self._model)
        retriever = Retriever(index)
        with self._lock:
            self.retriever = retriever

    @property
    def index(self) -> Index:
        return self.retriever.index

    @property
    def threshold(self) -> float:
        if self._threshold is not None:
            return self._threshold
        calibrated = self.index.calibrated_threshold()
        return DEFAULT_THRESHOLD if calibrated is None else calibrated

    def ask(
        self,
        question: str,
        *,
        k: int = 5,
        mode: str = DEFAULT_MODE,
        max_sentences: int = 2,
        threshold: float | None = None,
        id: str | None = None,
    ) -> Answer:
        """Answer ``question`` with at most ``max_sentences`` verbatim sentences.

        Returns:
            An Answer whose citations come best first: one per shown sentence (``[n]`` in the
            answer text), then the other retrieved passages with their best sentence.
        """
        t0 = time.perf_counter()
        question = check_question(question)
        if max_sentences < 1:
            raise BadInputError(f"max_sentences must be >= 1, got {max_sentences}")
        retriever = self.retriever
        threshold = self.threshold if threshold is None else threshold
        qv = retriever.embed_question(question)
        hits = retriever.search(question, k=k, mode=mode, question_vector=qv)
        scored = score_sentences(retriever, question, qv, hits[:ANSWER_DEPTH])
        confidence = scored[0].score if scored else 0.0
        abstained = confidence < threshold

        chosen: list[_Scored] = []
        if not abstained:
            chosen = [
                s for s in scored[:max_sentences] if s.score >= scored[0].score - SECOND_MARGIN
            ]
        index = retriever.index
        citations: list[Citation] = []
        for s in chosen:
            citations.append(_citation(index, len(citations) + 1, s.hit, s.span, s.score))
        cited = {s.hit.chunk.id for s in chosen}
        rest = [h for h in hits if h.chunk.id not in cited]
        for hit, s in zip(
            rest, score_sentences(retriever, question, qv, rest, best_per_hit=True), strict=True
        ):
            citations.append(_citation(index, len(citations) + 1, hit, s.span, s.score))

        if abstained:
            text = ABSTAIN_TEXT + (" The nearest passages are listed below." if citations else "")
        else:
            text = " ".join(
                f"{index.documents[c.source].text[c.highlight[0] : c.highlight[1]]} [{c.n}]"
                for c in citations[: len(chosen)]
            )
        latency = (time.perf_counter() - t0) * 1000
        return Answer(question, text, abstained, tuple(citations), confidence, latency, id)


def score_sentences(
    retriever: Retriever,
    question: str,
    qv: np.ndarray,
    hits: list[Hit],
    *,
    best_per_hit: bool = False,
) -> list[_Scored]:
    """Every distinct sentence of ``hits``, scored and sorted best first.

    With ``best_per_hit``: instead, the best sentence of each hit, in the order of ``hits``.
    """
    index = retriever.index
    q_terms = set(terms(question))
    q_weight = sum(retriever.idf.get(t, retriever.default_idf) for t in q_terms) or 1.0
    out: dict[tuple[str, int, int], _Scored] = {}
    best: list[_Scored] = []
    for hit in hits:
        doc = index.documents[hit.chunk.source]
        mine = []
        for a, b in hit.chunk.sentences:
            key = (doc.source, a, b)
            if key not in out:  # overlap: the same sentence in two chunks is scored once
                dense = float(index.sentence_vectors[index.sentence_rows[key]] @ qv)
                shared = q_terms.intersection(terms(doc.text[a:b]))
                lexical = (
                    sum(retriever.idf.get(t, retriever.default_idf) for t in shared) / q_weight
                )
                out[key] = _Scored(hit, (a, b), W_DENSE * dense + W_LEXICAL * lexical)
            mine.append(_Scored(hit, (a, b), out[key].score))
        best.append(max(mine, key=lambda s: s.score))
    if best_per_hit:
        return best
    return sorted(out.values(), key=lambda s: -s.score)


def _citation(index: Index, n: int, hit: Hit, span: Span, score: float) -> Citation:
    chunk = hit.chunk
    doc = index.documents[chunk.source]
    return Citation(
        n=n,
        source=chunk.source,
        start=chunk.start,
        end=chunk.end,
        line_start=doc.line_of(chunk.start),
        line_end=doc.line_of(max(chunk.start, chunk.end - 1)),
        page=doc.page_of(span[0]),
        excerpt=chunk.text,
        highlight=span,
        score=round(score, 4),
    )
