"""Answer a question with the exact sentences of the documents, each with its citation.

How sentences are scored: every sentence of the retrieved chunks gets

    W_DENSE * cosine(question, sentence)
    + W_LEXICAL * share of the question's terms in the sentence        (IDF-weighted)
    + W_CONTEXT * share of the other question terms in the sentence before
    - HEADING_PENALTY if it is a heading
    - ANSWER_TYPE_PENALTY if the question asks for a number or a name the sentence lacks

(terms: lowercased, stop words dropped, Snowball-stemmed). The context term lets "It was
built by Robert Stevenson." win after a sentence that names the lighthouse. Retrieved chunks
are then re-ranked by their best sentence (plus a small prior for the retrieval rank), the
best sentence is shown, and a second when it scores within ``SECOND_MARGIN`` of the first.
All weights were chosen on the SQuAD sample (README, "How answers are chosen").

When the evidence is weak (the best sentence's score under the threshold) the assistant
abstains: it says the documents do not contain the answer and still lists the nearest passages.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from threading import Lock
from typing import TYPE_CHECKING

from rag.calibration import ThresholdSource, stored_threshold
from rag.chunking import Span
from rag.errors import BadInputError
from rag.inputs import check_k, check_threshold
from rag.retrieval import (
    DEFAULT_K,
    DEFAULT_MODE,
    Hit,
    RetrievalMode,
    Retriever,
    check_question,
    terms,
)
from rag.settings import INDEX_DIR
from rag.store import Index

if TYPE_CHECKING:  # numpy loads with an index, not with this module (`rag --help`)
    import numpy as np

W_DENSE = 0.5
W_LEXICAL = 0.5
W_CONTEXT = 0.35
#: Sentences shown at most in an answer, unless the caller says otherwise.
DEFAULT_MAX_SENTENCES = 2
SECOND_MARGIN = 0.15
#: A second sentence is shown only while the whole answer stays within this many words.
SECOND_MAX_WORDS = 80
#: Sentences of this many retrieved chunks are scored and the chunks re-ranked by them.
RERANK_DEPTH = 20
#: Weight of the retrieval rank in the re-ranking (1/rank).
RANK_PRIOR = 0.05
#: A line without closing punctuation (a heading, a title) restates the topic but never
#: answers; it loses this much so a real sentence wins.
HEADING_PENALTY = 0.2
#: A question that asks for a number or a name, put to a sentence that adds no number or
#: name beyond the question's own ("What are the names of the eight men?" against "Eight men
#: were arrested."), costs the sentence this much.
ANSWER_TYPE_PENALTY = 0.15
#: Sentences are drawn from the best ANSWER_DEPTH hits only, so asking for more passages
#: (``-k 10`` in an eval) lists more citations without changing the answer.
ANSWER_DEPTH = 5
#: Abstain below this confidence. Chosen by measurement (README "Abstention");
#: ``rag eval --calibrate`` stores an index-specific value that takes precedence.
DEFAULT_THRESHOLD = 0.36
ABSTAIN_TEXT = "The documents do not contain an answer to this question."


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
        return self.threshold_source()[0]

    def threshold_source(self, index: Index | None = None) -> tuple[float, ThresholdSource]:
        """The abstention threshold and where it comes from: ``EXPLICIT`` (given to the
        constructor), ``INDEX`` (``rag eval --calibrate``, read afresh so a calibration made
        meanwhile applies) or ``DEFAULT``. ``index``: the one being answered from (default:
        the current one)."""
        if self._threshold is not None:
            return self._threshold, ThresholdSource.EXPLICIT
        calibrated = stored_threshold((index or self.index).path)
        if calibrated is None:
            return DEFAULT_THRESHOLD, ThresholdSource.DEFAULT
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
        k = check_k(k)
        retriever = self.retriever  # one index for the whole answer, even across a reload()
        if threshold is None:
            threshold = self.threshold_source(retriever.index)[0]
        threshold = check_threshold(threshold)
        qv = retriever.embed_question(question)
        found = retriever.search(question, k=max(k, RERANK_DEPTH), mode=mode, question_vector=qv)
        scores = score_sentences(retriever, question, qv, found)
        hits = rerank(found, scores)[:k]
        candidates = _candidates(hits[:ANSWER_DEPTH], scores)
        confidence = candidates[0].score if candidates else 0.0
        abstained = confidence < threshold

        chosen = [] if abstained else _choose(candidates, max_sentences)
        cited = {s.hit.chunk.id for s in chosen}
        shown = chosen + [_best(h, scores) for h in hits if h.chunk.id not in cited]
        index = retriever.index
        citations = tuple(_citation(index, n, s) for n, s in enumerate(shown, start=1))
        if abstained:
            text = ABSTAIN_TEXT + (" The nearest passages are listed below." if citations else "")
        else:
            text = " ".join(f"{c.sentence} [{c.n}]" for c in citations[: len(chosen)])
        latency = (time.perf_counter() - t0) * 1000
        return Answer(question, text, abstained, citations, confidence, latency, id, len(chosen))


def _candidates(hits: list[Hit], scores: dict[SentenceKey, float]) -> list[_Scored]:
    """The sentences of ``hits``, best first, each once: a sentence in two overlapping chunks
    belongs to the better-ranked chunk, and the same text in two files is kept only where it
    scores best."""
    spans: dict[SentenceKey, _Scored] = {}
    for hit in hits:
        for a, b in hit.chunk.sentences:
            key = (hit.chunk.source, a, b)
            if key not in spans:
                spans[key] = _Scored(hit, (a, b), scores[key])
    out: list[_Scored] = []
    seen: set[str] = set()
    for s in sorted(spans.values(), key=lambda s: -s.score):
        if s.text not in seen:
            seen.add(s.text)
            out.append(s)
    return out


def _choose(candidates: list[_Scored], max_sentences: int) -> list[_Scored]:
    """The best sentence, then the next ones while they score within SECOND_MARGIN of it and
    the answer stays within SECOND_MAX_WORDS."""
    chosen: list[_Scored] = []
    words = 0
    for s in candidates:
        if len(chosen) == max_sentences or s.score < candidates[0].score - SECOND_MARGIN:
            break
        n = len(s.text.split())
        if chosen and words + n > SECOND_MAX_WORDS:
            continue
        chosen.append(s)
        words += n
    return chosen


def _best(hit: Hit, scores: dict[SentenceKey, float]) -> _Scored:
    """The best-scoring sentence of ``hit`` (the first of equals)."""
    return max(
        (_Scored(hit, (a, b), scores[(hit.chunk.source, a, b)]) for a, b in hit.chunk.sentences),
        key=lambda s: s.score,
    )


def rerank(hits: list[Hit], scores: dict[SentenceKey, float]) -> list[Hit]:
    """The first RERANK_DEPTH ``hits`` re-ordered by their best sentence's score plus a prior
    for the retrieval rank; any further hits follow in retrieval order, so asking for more
    passages never reorders the first ones."""
    head, tail = hits[:RERANK_DEPTH], hits[RERANK_DEPTH:]
    key = {id(h): _best(h, scores).score + RANK_PRIOR / h.rank for h in head}
    ranked = sorted(head, key=lambda h: -key[id(h)]) + tail
    return [replace(h, rank=r) for r, h in enumerate(ranked, start=1)]


def score_sentences(
    retriever: Retriever, question: str, qv: np.ndarray, hits: list[Hit]
) -> dict[SentenceKey, float]:
    """The score of every sentence of ``hits`` (once each, however many chunks hold it)."""
    index = retriever.index
    q_terms = set(terms(question))

    def idf(term: str) -> float:
        return retriever.idf.get(term, retriever.default_idf)

    q_weight = sum(idf(t) for t in q_terms) or 1.0
    wants = expected_answer(question)
    q_words = question_words(question)
    scores: dict[SentenceKey, float] = {}
    for hit in hits:
        doc = index.documents[hit.chunk.source]
        for a, b in hit.chunk.sentences:
            key = (doc.source, a, b)
            if key in scores:
                continue
            dense = float(index.sentence_vectors[index.sentence_rows[key]] @ qv)
            shared = q_terms & retriever.sentence_terms[key]
            before = retriever.previous.get(key)
            context = (q_terms & retriever.sentence_terms[before]) - shared if before else ()
            score = (
                W_DENSE * dense
                + W_LEXICAL * sum(idf(t) for t in shared) / q_weight
                + W_CONTEXT * sum(idf(t) for t in context) / q_weight
            )
            if _is_heading(doc.text, a, b):
                score -= HEADING_PENALTY
            if wants and not _offers(wants, doc.text[a:b], q_words):
                score -= ANSWER_TYPE_PENALTY
            scores[key] = score
    return scores


_NUMBER_QUESTION = re.compile(
    r"\bhow (many|much|long|old|far|tall|high|large|big|often|fast|wide|deep|heavy)\b"
    r"|\bwhat (year|percentage|percent|share|proportion|amount|number|age|date|decade|century)\b"
    r"|\b(which|what) (year|decade|century)\b",
    re.IGNORECASE,
)
_NAME_QUESTION = re.compile(r"^\W*(who|whom|whose)\b|\bnames?\b", re.IGNORECASE)
_TOKEN = re.compile(r"[\w’'-]+")
_NUMBER_WORDS = frozenset(
    "one two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty "
    "fifty hundred hundreds thousand thousands million millions billion billions dozen dozens "
    "half twice first second third fourth fifth".split()
)


def expected_answer(question: str) -> str | None:
    """ "number" or "name" when the question plainly asks for one, else None."""
    if _NUMBER_QUESTION.search(question):
        return "number"
    if _NAME_QUESTION.search(question):
        return "name"
    return None


def question_words(question: str) -> set[str]:
    """The question's words, lowercased, as ``_offers`` compares them."""
    return {w.lower() for w in _TOKEN.findall(question)}


def _offers(wants: str, sentence: str, q_words: set[str]) -> bool:
    """Whether ``sentence`` holds a number (or a capitalised name) the question does not."""
    words = _TOKEN.findall(sentence)
    if wants == "number":
        return any(
            (any(c.isdigit() for c in w) or w.lower() in _NUMBER_WORDS) and w.lower() not in q_words
            for w in words
        )
    # A capitalised word past the first one that the question does not already say.
    return any(w[0].isupper() and w.lower() not in q_words for w in words[1:])


_CLOSERS = tuple(".!?:;\"')]”’»…")


def _is_heading(text: str, a: int, b: int) -> bool:
    """A title or heading: a short whole line that does not end like a sentence, followed by
    a blank line, the end, or a line that starts like a new block (not "O\n2 is ...")."""
    if text[a:b].endswith(_CLOSERS) or len(text[a:b].split()) > 15:
        return False
    if a > 0 and text[a - 1] != "\n":
        return False
    after = text[b : b + 2]
    return (
        after in ("", "\n")
        or after == "\n\n"
        or (after[0] == "\n" and not after[1].islower() and not after[1].isdigit())
    )


def _citation(index: Index, n: int, s: _Scored) -> Citation:
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
