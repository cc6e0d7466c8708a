"""A run and its records: ``RunSpec`` (a retrieval mode at a depth, parsed from
``"hybrid,dense@k=1"``) and ``QuestionResult`` (one question answered by one run: a line of
``results.jsonl``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.answer import Answer
from rag.errors import BadInputError
from rag.evaluation.metrics import CitedSpan, answer_correct, gold_rank, strip_markers
from rag.evaluation.questions import Question
from rag.retrieval import MODES, RetrievalMode

#: Passages an eval retrieves per question (``rag ask`` lists ``retrieval.DEFAULT_K`` = 5).
#: The answer draws on the best 5 either way (``answer.ANSWER_DEPTH``), so retrieving 10
#: adds hit@10 and MRR@10 without changing any answer.
EVAL_K = 10
_SPEC = re.compile(r"^(?P<mode>[a-z0-9_]+)(?:@k=(?P<k>\d+))?$")


@dataclass(frozen=True)
class RunSpec:
    """One configuration to evaluate: a retrieval mode and how many passages to retrieve."""

    mode: RetrievalMode
    k: int
    label: str


def parse_runs(spec: str | Sequence[str], *, k: int = EVAL_K) -> list[RunSpec]:
    """Parse ``"hybrid,dense,bm25"`` (or a list); ``MODE@k=N`` overrides the depth.

    Raises:
        BadInputError: an unknown mode, a bad depth, a repeated run, or nothing at all.
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    runs: list[RunSpec] = []
    for item in (s.strip() for s in items):
        if not item:
            continue
        m = _SPEC.match(item)
        if not m or m["mode"] not in MODES:
            raise BadInputError(
                f"unknown run {item!r}: use one of {', '.join(MODES)}, optionally with @k=N "
                "(for example dense@k=1)"
            )
        depth = int(m["k"]) if m["k"] else k
        if depth < 1:
            raise BadInputError(f"{item}: k must be >= 1, got {depth}")
        if any(r.label == item for r in runs):
            raise BadInputError(f"run {item!r} is listed twice")
        runs.append(RunSpec(mode=RetrievalMode(m["mode"]), k=depth, label=item))
    if not runs:
        raise BadInputError("no runs given: for example --compare hybrid,dense,bm25")
    return runs


@dataclass(frozen=True)
class QuestionResult:
    """One question answered by one run; ``to_dict()`` is a line of ``results.jsonl``."""

    run: str
    mode: str
    k: int
    id: str
    question: str
    kind: str | None
    answers: tuple[str, ...] | None
    source: str | None
    span: tuple[int, int] | None
    answer: str
    abstained: bool
    confidence: float
    threshold: float
    citations: tuple[CitedSpan, ...]
    gold_rank: int | None
    correct: bool | None
    words: int | None
    latency_ms: float

    def to_dict(self) -> dict:
        return {
            "run": self.run,
            "mode": self.mode,
            "k": self.k,
            "id": self.id,
            "question": self.question,
            "kind": self.kind,
            "answers": None if self.answers is None else list(self.answers),
            "source": self.source,
            "span": None if self.span is None else list(self.span),
            "answer": self.answer,
            "abstained": self.abstained,
            "confidence": round(self.confidence, 4),
            "threshold": round(self.threshold, 4),
            "citations": [
                {"source": c.source, "start": c.start, "end": c.end, "highlight": list(c.highlight)}
                for c in self.citations
            ],
            "gold_rank": self.gold_rank,
            "correct": self.correct,
            "words": self.words,
            "latency_ms": round(self.latency_ms, 1),
        }


def result_of(run: RunSpec, q: Question, answer: Answer, threshold: float) -> QuestionResult:
    citations = tuple(
        CitedSpan(c.source, c.start, c.end, tuple(c.highlight)) for c in answer.citations
    )
    return QuestionResult(
        run=run.label,
        mode=run.mode,
        k=run.k,
        id=q.id,
        question=q.question,
        kind=q.kind,
        answers=q.answers,
        source=q.source,
        span=q.span,
        answer=answer.answer,
        abstained=answer.abstained,
        confidence=answer.confidence,
        threshold=threshold,
        citations=citations,
        gold_rank=gold_rank(citations, q.source, q.span),
        correct=answer_correct(answer.answer, q.answers, answer.abstained),
        words=None if answer.abstained else len(strip_markers(answer.answer).split()),
        latency_ms=answer.latency_ms,
    )
