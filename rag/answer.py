"""Answer a question with the exact sentences of the documents, each with its citation.

How an answer is chosen (README, "How answers are chosen"; the scorer: ``rag.scorer``):

1. Retrieval gives the best ``RERANK_DEPTH`` chunks (hybrid: dense + BM25, fused).
2. Every sentence of those chunks gets features (cosine with the question, IDF coverage of
   the question's terms by the sentence, its neighbours and its chunk, rare terms it misses,
   answer-type evidence, retrieval ranks, ...) and a learned logit (stage 1).
3. The chunks are re-ranked by their best sentence. The best sentence of the first
   ``ANSWER_DEPTH`` chunks is shown, and a second when its logit is within the scorer's
   margin and the answer stays within ``SECOND_MAX_WORDS`` words.
4. Question-level features (the best logit, the margin, how much of the question the best
   passage and the corpus cover, negation, names and numbers the passage lacks) give a
   calibrated **probability that the shown answer is right** (stage 2). Below the threshold
   the assistant abstains: it says the documents do not contain the answer and still lists
   the nearest passages.

The weights are trained by ``make scorer`` (``rag.training``) on SQuAD with article-level
folds; ``rag/scorer.json`` holds them as plain arrays.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from threading import Lock
from typing import TYPE_CHECKING

from rag.calibration import ThresholdSource, stored_threshold
from rag.chunking import Span
from rag.errors import BadInputError
from rag.inputs import check_k, check_threshold
from rag.retrieval import DEFAULT_K, DEFAULT_MODE, Hit, RetrievalMode, Retriever, check_question
from rag.settings import INDEX_DIR
from rag.store import IndexReader
from rag.stores import open_store

if TYPE_CHECKING:  # numpy (and the scorer, which needs it) load with an index, not with
    # this module (`rag --help`)
    from rag.scorer import Model

#: Sentences shown at most in an answer, unless the caller says otherwise.
DEFAULT_MAX_SENTENCES = 2
#: A second sentence is shown only while the whole answer stays within this many words.
SECOND_MAX_WORDS = 80
#: Sentences of this many retrieved chunks are scored and the chunks re-ranked by them.
RERANK_DEPTH = 20
#: Sentences are drawn from the best ANSWER_DEPTH hits only (the first k when k is
#: smaller, so every shown sentence is in a listed passage), so asking for more passages
#: (``-k 10`` in an eval) lists more citations without changing the answer.
ANSWER_DEPTH = 5
ABSTAIN_TEXT = "The documents do not contain an answer to this question."


def default_threshold() -> float:
    """Abstain when the probability that the shown answer is right is below this.

    Chosen on out-of-fold predictions by the recipe and stored with the weights (README,
    "Abstention"); ``rag eval --calibrate`` stores an index-specific value that takes
    precedence.
    """
    from rag.scorer import load_scorer

    return load_scorer().default_threshold


@dataclass(frozen=True)
class Citation:
    """Where a shown sentence (or a nearest passage) comes from.

    ``start``/``end`` delimit ``excerpt`` (the retrieved chunk) and ``highlight`` the
    supporting sentence, all in the document's canonical text:
    ``document[start:end] == excerpt`` and ``start <= highlight[0] < highlight[1] <= end``.
    ``page`` (PDFs) and ``location`` (the heading path of a .docx, ``slide N`` of a .pptx,
    the chapter of an .epub) name where the supporting sentence is; None when there is none.
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
    location: str | None = None

    @property
    def sentence(self) -> str:
        """The supporting sentence, verbatim."""
        return self.excerpt[self.highlight[0] - self.start : self.highlight[1] - self.start]


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
    #: How many of the first citations are quoted in ``answer`` (0 when it abstained).
    quoted: int = 0
    #: Which model scored it: "full model", or in an evaluation the fold model that never
    #: saw the question's article.
    scored_by: str = "full model"

    @property
    def probability(self) -> float:
        """Calibrated probability that the best answer is right (``confidence`` is the same
        number: it is what the threshold is compared with)."""
        return self.confidence

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained,
            "citations": [{**asdict(c), "highlight": list(c.highlight)} for c in self.citations],
            "probability": round(self.probability, 4),
            "confidence": round(self.confidence, 4),
            "latency_ms": round(self.latency_ms, 1),
        }


#: A sentence: (source, start, end) in its document's canonical text.
SentenceKey = tuple[str, int, int]


@dataclass(frozen=True)
class _Scored:
    hit: Hit
    span: Span
    score: float

    @property
    def text(self) -> str:
        """The sentence with its whitespace squeezed (how two copies are recognised)."""
        start = self.hit.chunk.start
        return " ".join(self.hit.chunk.text[self.span[0] - start : self.span[1] - start].split())


class Assistant:
    """Loads an index once and answers questions from it.

    Safe to share between threads; ``reload()`` swaps in a rebuilt index without a restart.
    """

    def __init__(
        self,
        index_dir: Path | str = INDEX_DIR,
        *,
        model: str | None = None,
        threshold: float | None = None,
    ) -> None:
        self.index_dir = Path(index_dir)
        self._model = model
        self._threshold = None if threshold is None else check_threshold(threshold)
        self._lock = Lock()
        from rag.scorer import load_scorer  # numpy: with an index, not at import

        self.scorer = load_scorer()
        self.reload()

    def reload(self) -> None:
        """Load the index from disk again (after ``rag index``)."""
        index = open_store(self.index_dir, model=self._model)
        retriever = Retriever(index)
        with self._lock:
            self.retriever = retriever

    @property
    def index(self) -> IndexReader:
        return self.retriever.index

    @property
    def threshold(self) -> float:
        return self.threshold_source()[0]

    def threshold_source(self, index: IndexReader | None = None) -> tuple[float, ThresholdSource]:
        """The abstention threshold and where it comes from: ``EXPLICIT`` (given to the
        constructor), ``INDEX`` (``rag eval --calibrate``, read afresh so a calibration made
        meanwhile applies) or ``DEFAULT``. ``index``: the one being answered from (default:
        the current one)."""
        if self._threshold is not None:
            return self._threshold, ThresholdSource.EXPLICIT
        calibrated = stored_threshold((index or self.index).path)
        if calibrated is None:
            return self.scorer.default_threshold, ThresholdSource.DEFAULT
        return calibrated, ThresholdSource.INDEX

    def ask(
        self,
        question: str,
        *,
        k: int = DEFAULT_K,
        mode: RetrievalMode | str = DEFAULT_MODE,
        max_sentences: int = DEFAULT_MAX_SENTENCES,
        threshold: float | None = None,
        id: str | None = None,
        model: Model | None = None,
        scored_by: str | None = None,
    ) -> Answer:
        """Answer ``question`` with at most ``max_sentences`` verbatim sentences.

        Args:
            model: score with this model instead of the full one (``rag eval`` passes the
                fold model that never saw the question's article); ``scored_by`` names it.

        Returns:
            An Answer whose citations come best first: one per shown sentence (``[n]`` in the
            answer text), then the other retrieved passages with their best sentence.
            ``confidence`` is the calibrated probability that the answer is right, in [0, 1];
            it abstained iff ``confidence < threshold``.
        """
        t0 = time.perf_counter()
        question = check_question(question)
        if max_sentences < 1:
            raise BadInputError(f"max_sentences must be >= 1, got {max_sentences}")
        k = check_k(k)
        retriever = self.retriever  # one index for the whole answer, even across a reload()
        if threshold is None:
            threshold = self.threshold_source(retriever.index)[0]
        threshold = check_threshold(threshold)
        from rag.scorer import choose, members, question_row, sentence_features

        scorer = self.scorer
        model = model or scorer.model
        qv, qt = retriever.embed_query(question)
        found = retriever.search(question, k=max(k, RERANK_DEPTH), mode=mode, question_vector=qv)
        head, tail = found[:RERANK_DEPTH], found[RERANK_DEPTH:]
        cands = sentence_features(retriever, question, qv, head, question_tokens=qt)
        logits = model.sentence_logits(cands.x)
        doc_text = retriever.index.documents
        texts = [doc_text[s].text[a:b] for s, a, b in cands.keys]
        member_rows = members(
            cands.keys, [(h.chunk.source, h.chunk.start, h.chunk.end) for h in head]
        )
        choice = choose(
            logits,
            texts,
            member_rows,
            max_sentences=max_sentences,
            margin=scorer.margin,
            max_words=SECOND_MAX_WORDS,
            answer_depth=min(k, ANSWER_DEPTH),
        )
        row = question_row(question, cands.x, logits, cands.q, texts, member_rows)
        probability = model.probability(row) if len(logits) else 0.0
        abstained = probability < threshold
        ranked = [head[h] for h in choice.order] + tail
        hits = [replace(h, rank=r) for r, h in enumerate(ranked, start=1)][:k]
        chosen, shown = _shown(head, hits, cands.keys, logits, member_rows, choice, abstained)
        index = retriever.index
        citations = tuple(_citation(index, n, s) for n, s in enumerate(shown, start=1))
        text = _answer_text(citations, len(chosen), abstained)
        latency = (time.perf_counter() - t0) * 1000
        return Answer(
            question,
            text,
            abstained,
            citations,
            probability,
            latency,
            id,
            len(chosen),
            scored_by or ("full model" if model is scorer.model else "given model"),
        )


def _shown(
    head: list[Hit],
    hits: list[Hit],
    keys,
    logits,
    member_rows: list[list[int]],
    choice,
    abstained: bool,
) -> tuple[list[_Scored], list[_Scored]]:
    """The chosen sentences (none when abstaining), and everything shown: the chosen ones
    first, then each other hit with its best sentence."""

    def scored(h: int, i: int) -> _Scored:
        return _Scored(head[h], keys[i][1:], _sigmoid(logits[i]))

    chosen = (
        []
        if abstained
        else [scored(h, i) for i, h in zip(choice.shown, choice.shown_hits, strict=True)]
    )
    cited = {s.hit.chunk.id for s in chosen}
    by_id = {h.chunk.id: n for n, h in enumerate(head)}
    shown = chosen + [
        scored(by_id[h.chunk.id], max(member_rows[by_id[h.chunk.id]], key=lambda i: logits[i]))
        if h.chunk.id in by_id and member_rows[by_id[h.chunk.id]]
        else _Scored(h, h.chunk.sentences[0], 0.0)
        for h in hits
        if h.chunk.id not in cited
    ]
    return chosen, shown


def _answer_text(citations: tuple[Citation, ...], n_chosen: int, abstained: bool) -> str:
    if abstained:
        return ABSTAIN_TEXT + (" The nearest passages are listed below." if citations else "")
    return " ".join(f"{c.sentence} [{c.n}]" for c in citations[:n_chosen])


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def _citation(index: IndexReader, n: int, s: _Scored) -> Citation:
    chunk, span, score = s.hit.chunk, s.span, s.score
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
        location=doc.location_of(span[0]),
    )
