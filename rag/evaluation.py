"""Run question sets through the assistant and report where and why answers fail.

A question set is JSONL, one question a line (format and metric definitions:
``evals/README.md``). ``run_eval`` answers every question in-process with ``Assistant.ask``
(one model load), scores the answers, and writes ``report.json``, ``report.md``,
``results.jsonl`` and PNG plots under ``evals/reports/<name>/``. ``score_results`` is the one
scorer: the report's numbers are what it computes from ``results.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
import string
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from rag.errors import BadInputError
from rag.retrieval import DEFAULT_MODE, MODES

#: Depths at which hit@k is reported; MRR is cut at the deepest.
HIT_KS = (1, 3, 5, 10)
MRR_DEPTH = 10
#: Evals retrieve 10 passages: the answer only uses the best 5, so this adds hit@10 for free.
DEFAULT_K = 10
DEFAULT_REPORTS = Path("evals/reports")
DEFAULT_CACHE = Path(".cache/indexes")
FIELDS = ("id", "question", "answers", "source", "span", "kind")
CRITERION = (
    "balanced accuracy = (share of answerable questions answered + share of unanswerable "
    "questions abstained) / 2, maximised over the midpoints between observed confidences; "
    "ties go to the lower threshold"
)
#: Columns of the terminal and markdown tables: (metric key, header).
COLUMNS = (
    ("n", "n"),
    ("hit@1", "hit@1"),
    ("hit@3", "hit@3"),
    ("hit@5", "hit@5"),
    ("hit@10", "hit@10"),
    ("mrr@10", "MRR@10"),
    ("answer_correct", "correct"),
    ("median_words", "words"),
    ("abstain_unanswerable", "abstain"),
    ("false_abstention", "false-abst"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p95_ms", "p95 ms"),
)
LEGEND = (
    "hit@k, MRR@10: gold passage among the first k citations. correct: shown answer holds a "
    "gold answer (answerable).\nwords: median words shown. abstain: unanswerable abstained. "
    "false-abst: answerable abstained. p50/p95: latency."
)
_MARKER = re.compile(r" \[\d+\](?= |$)")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SPEC = re.compile(r"^(?P<mode>[a-z0-9_]+)(?:@k=(?P<k>\d+))?$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


# --------------------------------------------------------------------------- question sets


@dataclass(frozen=True)
class Question:
    """One line of a question set.

    Attributes:
        answers: acceptable answers; ``()`` means the documents do not answer the question
            (the assistant should abstain); None means no gold answer was given.
        source, span: the gold document (path relative to the seeds folder) and the
            character range of the passage that answers the question, when known.
        kind: a free label used to break the metrics down.
        line: 1-based line of the question set it was read from.
    """

    id: str
    question: str
    answers: tuple[str, ...] | None = None
    source: str | None = None
    span: tuple[int, int] | None = None
    kind: str | None = None
    line: int = 0

    @property
    def answerable(self) -> bool:
        return bool(self.answers)

    @property
    def unanswerable(self) -> bool:
        return self.answers == ()


def load_question_set(path: Path | str) -> list[Question]:
    """Read and validate a JSONL question set; every line is checked before anything runs.

    Raises:
        BadInputError: the file is missing or unreadable, holds no question, or a line is not
            valid; the message names the file and the line.

    Returns:
        The questions in file order, with unique ids (``line-<n>`` when a line has none).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BadInputError(f"question set not found: {path}") from None
    except UnicodeDecodeError:
        raise BadInputError(f"{path} is not UTF-8 text: save it as UTF-8 JSONL") from None
    except OSError as e:
        raise BadInputError(f"cannot read question set {path}: {e.strerror or e}") from None
    questions: list[Question] = []
    seen: dict[str, int] = {}
    # split("\n"), not splitlines(): U+2028 and friends may sit inside JSON strings.
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            q = _parse_line(line, lineno)
        except BadInputError as e:
            raise BadInputError(f"{path}, line {lineno}: {e}") from None
        if q.id in seen:
            raise BadInputError(
                f"{path}, line {lineno}: id {q.id!r} is already used on line {seen[q.id]}"
            )
        seen[q.id] = lineno
        questions.append(q)
    if not questions:
        raise BadInputError(f"{path} holds no questions: write one JSON object a line")
    return questions


def _parse_line(line: str, lineno: int) -> Question:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise BadInputError(f"not valid JSON ({e.msg}, column {e.colno})") from None
    if not isinstance(obj, dict):
        raise BadInputError(
            f'expected a JSON object like {{"question": "..."}}, got {type(obj).__name__}'
        )
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        raise BadInputError(
            f"unknown field {', '.join(map(repr, unknown))} (fields: {', '.join(FIELDS)})"
        )
    question = obj.get("question")
    if question is None:
        raise BadInputError('missing "question"')
    if not isinstance(question, str):
        raise BadInputError(f'"question" must be a string, got {question!r}')
    if not question.strip():
        raise BadInputError('"question" is empty')

    qid = obj.get("id")
    if qid is None:
        qid = f"line-{lineno}"
    elif isinstance(qid, bool) or not isinstance(qid, str | int) or not str(qid).strip():
        raise BadInputError(f'"id" must be a non-empty string or a number, got {qid!r}')

    answers = obj.get("answers")
    if answers is not None:
        if not isinstance(answers, list) or not all(
            isinstance(a, str) and a.strip() for a in answers
        ):
            raise BadInputError(
                '"answers" must be a list of non-empty strings ([] means the documents do not '
                f"answer it), got {answers!r}"
            )
        answers = tuple(answers)

    source = obj.get("source")
    if source is not None and (not isinstance(source, str) or not source.strip()):
        raise BadInputError(f'"source" must be a file name in the seeds folder, got {source!r}')

    span = obj.get("span")
    if span is not None:
        if (
            not isinstance(span, list)
            or len(span) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in span)
            or not 0 <= span[0] < span[1]
        ):
            raise BadInputError(f'"span" must be [start, end] with 0 <= start < end, got {span!r}')
        if source is None:
            raise BadInputError('"span" needs a "source" (the document it points into)')
        span = (span[0], span[1])

    if answers == () and source is not None:
        raise BadInputError(
            '"answers" is [] (the documents do not answer it) but a gold "source" is given: '
            "drop one of them"
        )

    kind = obj.get("kind")
    if kind is not None and (not isinstance(kind, str) or not kind.strip()):
        raise BadInputError(f'"kind" must be a non-empty string, got {kind!r}')

    return Question(
        id=str(qid).strip(),
        question=question.strip(),
        answers=answers,
        source=source,
        span=span,
        kind=kind,
        line=lineno,
    )


def check_against_index(questions: Sequence[Question], index, *, path: Path | str) -> None:
    """Check every gold source and span against the index's documents before running.

    Raises:
        BadInputError: naming the line of the first question whose source is not indexed or
            whose span runs past the end of its document.
    """
    docs = index.documents
    for q in questions:
        if q.source is None:
            continue
        if q.source not in docs:
            hint = ", ".join(sorted(docs)[:5]) + (", ..." if len(docs) > 5 else "")
            raise BadInputError(
                f"{path}, line {q.line}: source {q.source!r} is not in the index at "
                f"{index.path}/ (it holds: {hint or 'nothing'}); pass the right --seeds"
            )
        if q.span is not None and q.span[1] > len(docs[q.source].text):
            raise BadInputError(
                f"{path}, line {q.line}: span {list(q.span)} runs past the end of {q.source} "
                f"({len(docs[q.source].text)} characters)"
            )


def list_question_sets(evals_dir: Path | str = "evals") -> list[Path]:
    """Every question set (``*.jsonl``) under ``evals_dir``, reports left out, sorted."""
    evals_dir = Path(evals_dir)
    if not evals_dir.is_dir():
        return []
    return sorted(
        p
        for p in evals_dir.rglob("*.jsonl")
        if "reports" not in p.relative_to(evals_dir).parts and p.is_file()
    )


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunSpec:
    """One configuration to evaluate: a retrieval mode and how many passages to retrieve."""

    mode: str
    k: int
    label: str


def parse_runs(spec: str | Sequence[str], *, k: int = DEFAULT_K) -> list[RunSpec]:
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
        runs.append(RunSpec(mode=m["mode"], k=depth, label=item))
    if not runs:
        raise BadInputError("no runs given: for example --compare hybrid,dense,bm25")
    return runs


@dataclass(frozen=True)
class CitedSpan:
    """Where one citation points: the passage (``start``/``end``) and its sentence."""

    source: str
    start: int
    end: int
    highlight: tuple[int, int]


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
    #: The scorer model: "full model", or the fold model that never saw the article.
    scored_by: str = "full model"
    #: For an answerable question it abstained on: the answer it would have shown (so the
    #: trade-off curve can move the threshold without asking again).
    answer_if_answered: str | None = None

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
            "scored_by": self.scored_by,
            "answer_if_answered": self.answer_if_answered,
        }


def strip_markers(answer: str) -> str:
    """The shown answer without its `` [n]`` citation markers."""
    return " ".join(_MARKER.sub("", answer).split())


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lowercase, delete punctuation, drop a/an/the, squeeze spaces.

    Punctuation is ASCII ``string.punctuation`` (as in SQuAD's script) plus every Unicode
    punctuation character, so ``New York’s`` matches ``New York's``.
    """
    text = text.lower()
    text = "".join(
        ch for ch in text if ch not in string.punctuation and not unicodedata.category(ch)[0] == "P"
    )
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_correct(answer: str, answers: Sequence[str] | None, abstained: bool) -> bool | None:
    """Whether a shown answer is right.

    Returns:
        For an answerable question: True iff the assistant answered and the normalised
        answer contains a normalised gold answer as whole words. For an unanswerable one
        (``answers == []``): True iff it abstained. None when there is no gold answer.
    """
    if answers is None:
        return None
    if not answers:
        return abstained
    if abstained:
        return False
    shown = f" {normalize_answer(strip_markers(answer))} "
    golds = (normalize_answer(a) for a in answers)
    return any(f" {g} " in shown for g in golds if g)


def gold_rank(
    citations: Iterable[CitedSpan | Mapping], source: str | None, span: Sequence[int] | None
) -> int | None:
    """1-based position of the first citation from ``source`` whose passage overlaps ``span``.

    Returns:
        None when there is no gold source or no citation matches; with a source and no span,
        any citation of the source matches.
    """
    if source is None:
        return None
    for n, c in enumerate(citations, start=1):
        c_source, start, end = (
            (c["source"], c["start"], c["end"])
            if isinstance(c, Mapping)
            else (c.source, c.start, c.end)
        )
        if c_source != source:
            continue
        if span is None or (start < span[1] and span[0] < end):
            return n
    return None


def _result(
    run: RunSpec, q: Question, answer, threshold: float, if_answered: str | None = None
) -> QuestionResult:
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
        scored_by=answer.scored_by,
        answer_if_answered=if_answered,
    )


# --------------------------------------------------------------------------- scoring


def score_results(results: Iterable[Mapping]) -> dict:
    """Metrics of one run, computed from raw fields only (``results.jsonl`` lines will do).

    Correctness, gold rank and words are recomputed from ``answer``, ``answers``,
    ``abstained``, ``citations``, ``source`` and ``span``; stored ``correct`` and
    ``gold_rank`` fields are ignored. Shares are rounded to 4 decimals, latencies to 0.1 ms;
    a metric with no question to measure it on is None.

    Returns:
        ``n``, ``answerable``, ``unanswerable``, ``with_gold_source``, ``hit@1/3/5/10``,
        ``mrr@10``, ``answer_correct``, ``median_words``, ``abstain_unanswerable``,
        ``false_abstention``, ``latency_p50_ms``, ``latency_p95_ms``.
    """
    import numpy as np

    recs = list(results)
    answerable = [r for r in recs if r.get("answers")]
    unanswerable = [r for r in recs if r.get("answers") == []]
    with_gold = [r for r in answerable if r.get("source")]
    ranks = [gold_rank(r["citations"], r["source"], r.get("span")) for r in with_gold]
    correct = [answer_correct(r["answer"], r["answers"], r["abstained"]) for r in answerable]
    words = [len(strip_markers(r["answer"]).split()) for r in answerable if not r["abstained"]]
    latency = [float(r["latency_ms"]) for r in recs]

    def share(flags: list[bool]) -> float | None:
        return round(sum(flags) / len(flags), 4) if flags else None

    metrics: dict = {
        "n": len(recs),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "with_gold_source": len(with_gold),
    }
    for k in HIT_KS:
        metrics[f"hit@{k}"] = share([r is not None and r <= k for r in ranks])
    metrics[f"mrr@{MRR_DEPTH}"] = (
        round(sum(1 / r for r in ranks if r is not None and r <= MRR_DEPTH) / len(ranks), 4)
        if ranks
        else None
    )
    metrics["answer_correct"] = share(correct)
    metrics["median_words"] = float(statistics.median(words)) if words else None
    metrics["abstain_unanswerable"] = share([r["abstained"] for r in unanswerable])
    metrics["false_abstention"] = share([r["abstained"] for r in answerable])
    metrics["latency_p50_ms"] = round(float(np.percentile(latency, 50)), 1) if latency else None
    metrics["latency_p95_ms"] = round(float(np.percentile(latency, 95)), 1) if latency else None
    metrics.update(score_tradeoff(recs))
    return metrics


def score_tradeoff(results: Iterable[Mapping]) -> dict:
    """The abstention trade-off of a set that mixes answerable and unanswerable questions
    (``rag.tradeoff``): AUROC of the confidence between right answers and unanswerable
    questions, answer-correct at 50 % and 80 % abstention on the unanswerable ones, and the
    expected calibration error of the confidence as a probability that the best answer is
    right. The best answer of an abstention is ``answer_if_answered``. All None when the set
    lacks either kind."""
    from rag import tradeoff

    recs = list(results)
    keys = ("auroc", "answer_correct_at_50_abstention", "answer_correct_at_80_abstention", "ece")
    answerable = [r for r in recs if r.get("answers")]
    unanswerable = [r for r in recs if r.get("answers") == []]
    if not answerable or not unanswerable:
        return dict.fromkeys(keys)

    def right(r: Mapping) -> bool:
        shown = r.get("answer_if_answered") if r["abstained"] else r["answer"]
        return bool(shown) and bool(answer_correct(shown, r["answers"], False))

    a_conf = [float(r["confidence"]) for r in answerable]
    a_right = [right(r) for r in answerable]
    u_conf = [float(r["confidence"]) for r in unanswerable]
    out = {
        "auroc": tradeoff.auroc([c for c, ok in zip(a_conf, a_right, strict=True) if ok], u_conf)
    }
    for share in (50, 80):
        point = tradeoff.correct_at_abstention(a_conf, a_right, u_conf, share / 100)
        out[f"answer_correct_at_{share}_abstention"] = point.answer_correct
    conf = a_conf + u_conf
    out["ece"] = (
        tradeoff.ece(conf, a_right + [False] * len(u_conf))
        if all(0.0 <= c <= 1.0 for c in conf)
        else None
    )
    return {k: None if v is None else round(float(v), 4) for k, v in out.items()}


def score_by_kind(results: Iterable[Mapping]) -> dict[str, dict]:
    """``score_results`` per ``kind`` (``(none)`` for questions without one); {} without kinds."""
    recs = list(results)
    if not any(r.get("kind") for r in recs):
        return {}
    kinds = sorted({r.get("kind") or "(none)" for r in recs})
    return {
        kind: score_results([r for r in recs if (r.get("kind") or "(none)") == kind])
        for kind in kinds
    }


def check_floors(metrics: Mapping, floors: Mapping) -> list[str]:
    """Compare one run's metrics with floors ``{"min": {...}, "max": {...}}``.

    ``min`` holds lowest acceptable values (hit@5, answer_correct, ...), ``max`` highest ones
    (false_abstention, ...).

    Returns:
        One line per metric out of bounds (or not measured); empty when all hold.
    """
    unknown = set(floors) - {"min", "max"}
    if unknown:
        raise BadInputError(f"floors take 'min' and 'max' only, got {', '.join(sorted(unknown))}")
    failures = []
    for bound, limits in floors.items():
        for name, limit in limits.items():
            value = metrics.get(name)
            if value is None:
                failures.append(f"{name}: not measured (floor {bound} {limit})")
            elif bound == "min" and value < limit:
                failures.append(f"{name} = {value:.4g} is below the floor {limit}")
            elif bound == "max" and value > limit:
                failures.append(f"{name} = {value:.4g} is above the ceiling {limit}")
    return failures


def load_floors(path: Path | str) -> dict:
    """Read a floors file (JSON ``{"min": {metric: value}, "max": {...}}``)."""
    path = Path(path)
    try:
        floors = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"floors file not found: {path}") from None
    except (OSError, ValueError) as e:
        raise BadInputError(f"cannot read floors file {path}: {e}") from None
    if not isinstance(floors, dict) or not all(isinstance(v, dict) for v in floors.values()):
        raise BadInputError(f'{path}: expected {{"min": {{metric: value}}, "max": {{...}}}}')
    check_floors({}, floors)  # validates the keys
    return floors


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """An abstention threshold chosen on a question set (criterion: ``CRITERION``).

    Attributes:
        answered: share of answerable questions whose confidence is >= threshold.
        abstained: share of unanswerable questions whose confidence is < threshold.
    """

    threshold: float
    answered: float
    abstained: float
    balanced_accuracy: float
    n_answerable: int
    n_unanswerable: int
    criterion: str = CRITERION

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate_threshold(answerable: Sequence[float], unanswerable: Sequence[float]) -> Calibration:
    """Pick the threshold that best separates answerable from unanswerable confidences.

    Raises:
        BadInputError: either group is empty, or every confidence is the same.

    Returns:
        The midpoint between two observed confidences with the highest balanced accuracy,
        the lowest such threshold on a tie.
    """
    import numpy as np

    if not answerable or not unanswerable:
        raise BadInputError(
            "--calibrate needs answerable and unanswerable questions (answers: []) in the set, "
            f"got {len(answerable)} and {len(unanswerable)}"
        )
    a = np.sort(np.asarray(answerable, dtype=float))
    u = np.sort(np.asarray(unanswerable, dtype=float))
    values = np.unique(np.concatenate([a, u]))
    if len(values) < 2:
        raise BadInputError("cannot calibrate: every question has the same confidence")
    candidates = (values[:-1] + values[1:]) / 2
    answered = (len(a) - np.searchsorted(a, candidates, side="left")) / len(a)
    abstained = np.searchsorted(u, candidates, side="left") / len(u)
    balanced = np.round((answered + abstained) / 2, 12)
    best = int(np.argmax(balanced))  # first maximum = lowest threshold
    return Calibration(
        threshold=float(candidates[best]),
        answered=round(float(answered[best]), 4),
        abstained=round(float(abstained[best]), 4),
        balanced_accuracy=round(float(balanced[best]), 4),
        n_answerable=len(a),
        n_unanswerable=len(u),
    )


def write_calibration(index_dir: Path | str, calibration: Calibration, **extra) -> Path:
    """Store ``calibration`` as the index's ``calibration.json`` (read by ``rag ask`` and the UI).

    Returns:
        The path written; the file is replaced atomically.
    """
    from rag.store import CALIBRATION

    index_dir = Path(index_dir)
    data = {**calibration.to_dict(), "created_at": _now(), **extra}
    target = index_dir / CALIBRATION
    tmp = index_dir / f".{CALIBRATION}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


# --------------------------------------------------------------------------- index


def cached_index_dir(
    seeds: Path | str, settings=None, *, cache_dir: Path | str = DEFAULT_CACHE
) -> Path:
    """Where the index of ``seeds`` under ``settings`` lives in the cache.

    Returns:
        ``<cache_dir>/<folder name>-<10 hex>``, the hash covering the folder's absolute path
        and every index setting, so another folder or setting never reuses the index.
    """
    from rag.settings import IndexSettings

    settings = settings or IndexSettings()
    seeds = Path(seeds).resolve()
    key = json.dumps({"seeds": str(seeds), "settings": settings.to_dict()}, sort_keys=True)
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:10]
    return Path(cache_dir) / f"{seeds.name}-{digest}"


def prepare_index(
    seeds: Path | str,
    *,
    settings=None,
    cache_dir: Path | str = DEFAULT_CACHE,
    progress: bool = False,
    warn: Callable[[str], None] | None = None,
):
    """Build or refresh the cached index of ``seeds`` (a no-op when nothing changed).

    Returns:
        (index folder, ``BuildReport``).
    """
    from rag.settings import IndexSettings
    from rag.store import build_index

    settings = settings or IndexSettings()
    index_dir = cached_index_dir(seeds, settings, cache_dir=cache_dir)
    report = build_index(seeds, index_dir, settings=settings, progress=progress, warn=warn)
    return index_dir, report


def _scorer_summary(assistant, recs: list[dict]) -> dict:
    """Which answer-scorer models scored the primary run, and the weights' training data."""
    from collections import Counter

    primary = recs[0]["run"] if recs else None
    used = Counter(r.get("scored_by", "full model") for r in recs if r["run"] == primary)
    training = assistant.scorer.meta.get("training", {})
    return {
        "data_hash": training.get("data_hash"),
        "folds": len(training.get("folds", [])),
        "scored_by": dict(sorted(used.items())),
    }


def _index_summary(index, index_dir: Path) -> dict:
    m = index.manifest
    return {
        "path": _display(index_dir),
        "built_at": m.get("built_at"),
        "settings": m.get("settings"),
        "model": m.get("model"),
        "counts": m.get("counts"),
        "documents": {
            s: {"chunks": d.get("chunks"), "characters": d.get("characters")}
            for s, d in sorted(m.get("documents", {}).items())
        },
    }


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class EvalReport:
    """What ``run_eval`` measured and where it wrote it.

    Attributes:
        rows: one metrics dict per run (``score_results`` plus ``run``, ``mode``, ``k``), in
            the order the runs were given; the first is the primary run.
        by_kind: per run label, ``score_by_kind`` of its results ({} when the set has no kinds).
        markdown: the text of ``report.md``.
        plots: the PNG files written.
        threshold, threshold_source: the abstention threshold used and where it came from
            (``explicit``, ``calibrated on this set``, ``index calibration.json``, ``default``).
    """

    name: str
    rows: list[dict]
    by_kind: dict[str, dict]
    report_dir: Path
    markdown: str
    plots: list[Path]
    threshold: float
    threshold_source: str
    index_dir: Path
    calibration: Calibration | None = None

    def table(self) -> str:
        """The terminal table: one row per run, then the primary run by kind."""
        lines = [_text_table("run", [(r["run"], r) for r in self.rows])]
        primary = self.rows[0]["run"]
        kinds = self.by_kind.get(primary) or {}
        if kinds:
            lines.append("")
            lines.append(_text_table(f"kind ({primary})", list(kinds.items())))
        lines.append("")
        lines.append(LEGEND)
        return "\n".join(lines)


def _fmt(key: str, value) -> str:
    if value is None:
        return "-"
    if key in ("n", "answerable", "unanswerable"):
        return str(value)
    if key.startswith("latency"):
        return f"{value:.0f}"
    if key == "median_words":
        return f"{value:g}"
    return f"{value:.3f}"


def _text_table(first: str, rows: list[tuple[str, Mapping]]) -> str:
    header = [first] + [h for _, h in COLUMNS]
    body = [[label] + [_fmt(k, m.get(k)) for k, _ in COLUMNS] for label, m in rows]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    out = []
    for r in [header, *body]:
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def _md_table(first: str, rows: list[tuple[str, Mapping]]) -> str:
    header = [first] + [h for _, h in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, m in rows:
        lines.append("| " + " | ".join([label] + [_fmt(k, m.get(k)) for k, _ in COLUMNS]) + " |")
    return "\n".join(lines)


def _md_cell(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def _rank_text(r: Mapping) -> str:
    if not r.get("source"):
        return "no gold source"
    rank = gold_rank(r["citations"], r["source"], r.get("span"))
    return f"{rank} of {len(r['citations'])}" if rank else f"not in top {r['k']}"


def _scorer_line(scorer: Mapping) -> str:
    used = scorer.get("scored_by") or {}
    folds = sum(n for why, n in used.items() if why.startswith("fold"))
    full = used.get("full model", 0)
    line = f"- Answer scorer: {full} questions scored by the shipped model"
    if folds:
        line += (
            f", {folds} by the fold model that never saw their article (the question or its "
            "article was in the scorer's training data; article-level folds)"
        )
    return line


def _worst_misses(recs: list[dict], limit: int) -> list[dict]:
    """Answerable questions answered wrongly: gold passage not retrieved first, then the
    deeper the gold passage ranked, then the more confident the wrong answer."""
    misses = [
        r
        for r in recs
        if r.get("answers") and not answer_correct(r["answer"], r["answers"], r["abstained"])
    ]

    def key(r):
        rank = gold_rank(r["citations"], r["source"], r.get("span")) if r.get("source") else None
        return (rank is None, rank or 0, r["confidence"])

    return sorted(misses, key=key, reverse=True)[:limit]


def _markdown(
    *,
    name: str,
    meta: dict,
    rows: list[dict],
    by_kind: dict[str, dict],
    recs: list[dict],
    plots: list[Path],
    misses: int = 20,
) -> str:
    primary = rows[0]["run"]
    idx = meta["index"]
    counts = idx.get("counts") or {}
    s = idx.get("settings") or {}
    git = meta["git"]
    commit = f"`{(git.get('commit') or 'unknown')[:12]}`"
    if git.get("dirty"):
        commit += " with uncommitted changes to " + ", ".join(
            f"`{f}`" for f in git.get("changed", [])
        )
    lines = [
        f"# Eval report: {name}",
        "",
        f"- Question set: `{meta['question_set']}` ({rows[0]['n']} questions: "
        f"{rows[0]['answerable']} answerable, {rows[0]['unanswerable']} unanswerable)",
        f"- Index: `{idx['path']}`, built {idx.get('built_at')}: {counts.get('documents')} "
        f"documents, {counts.get('chunks')} chunks; model {s.get('model')}, "
        f"{s.get('chunk_tokens')} tokens/chunk, overlap {s.get('overlap_sentences')} sentence(s)",
        f"- Abstention threshold: {meta['threshold']:.4f} ({meta['threshold_source']}), "
        "on the calibrated probability that the shown answer is right",
        _scorer_line(meta.get("scorer") or {}),
        f"- Git commit: {commit}; run at {meta['created_at']}",
        "",
        "## Results",
        "",
        _md_table("run", [(r["run"], r) for r in rows]),
        "",
        " ".join(LEGEND.split()) + " Definitions: `evals/README.md`.",
    ]
    if meta.get("calibration"):
        c = meta["calibration"]
        lines += [
            "",
            "## Calibration",
            "",
            f"Threshold {c['threshold']:.4f} chosen on `{primary}`: answers "
            f"{c['answered']:.1%} of answerable questions, abstains on {c['abstained']:.1%} of "
            f"unanswerable ones (balanced accuracy {c['balanced_accuracy']:.3f}). Criterion: "
            f"{c['criterion']}. Stored in `{c['path']}`.",
        ]
    kinds = by_kind.get(primary) or {}
    if kinds:
        lines += ["", f"## By kind ({primary})", "", _md_table("kind", list(kinds.items()))]
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{p.stem}]({p.name})" for p in plots]
    primary_recs = [r for r in recs if r["run"] == primary]
    worst = _worst_misses(primary_recs, misses)
    lines += ["", f"## Worst misses ({primary})", ""]
    if worst:
        lines += [
            "Answerable questions whose shown answer holds no gold answer: gold passage not "
            "retrieved first, then by how deep it ranked, then by confidence.",
            "",
            "| id | question | gold answer | shown | gold passage rank | confidence |",
            "|---|---|---|---|---|---|",
        ]
        for r in worst:
            shown = "(abstained)" if r["abstained"] else strip_markers(r["answer"])
            lines.append(
                f"| {_md_cell(r['id'])} | {_md_cell(r['question'])} | "
                f"{_md_cell(' / '.join(r['answers']))} | {_md_cell(shown)} | "
                f"{_rank_text(r)} | {r['confidence']:.3f} |"
            )
    else:
        lines.append("None: every answerable question was answered correctly.")
    false_answers = sorted(
        (r for r in primary_recs if r.get("answers") == [] and not r["abstained"]),
        key=lambda r: -r["confidence"],
    )[:10]
    if any(r.get("answers") == [] for r in primary_recs):
        lines += ["", f"## Answered although the documents do not answer it ({primary})", ""]
        if false_answers:
            lines += ["| id | question | shown | confidence |", "|---|---|---|---|"]
            for r in false_answers:
                lines.append(
                    f"| {_md_cell(r['id'])} | {_md_cell(r['question'])} | "
                    f"{_md_cell(strip_markers(r['answer']))} | {r['confidence']:.3f} |"
                )
        else:
            lines.append("None: the assistant abstained on every unanswerable question.")
    return "\n".join(lines) + "\n"


def _plots(
    report_dir: Path, *, name: str, rows: list[dict], recs: list[dict], threshold: float
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    if any(r.get("hit@1") is not None for r in rows):
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for r in rows:
            ax.plot(HIT_KS, [r[f"hit@{k}"] or 0 for k in HIT_KS], marker="o", label=r["run"])
        ax.set_xticks(HIT_KS)
        ax.set_xlabel("k (citations looked at)")
        ax.set_ylabel("hit@k (share of questions)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(f"{name}: gold passage among the first k citations", fontsize="medium")
        fig.tight_layout()
        path = report_dir / "hit_at_k.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)

    primary = rows[0]["run"]
    prim = [r for r in recs if r["run"] == primary]
    groups = [
        ("answerable", [r["confidence"] for r in prim if r.get("answers")]),
        ("unanswerable", [r["confidence"] for r in prim if r.get("answers") == []]),
        ("no gold answer", [r["confidence"] for r in prim if r.get("answers") is None]),
    ]
    groups = [(label, xs) for label, xs in groups if xs]
    if groups:
        import numpy as np

        values = [x for _, xs in groups for x in xs] + [threshold]
        bins = np.linspace(min(values), max(values), 31)
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for label, xs in groups:
            # density, not counts: the groups differ a lot in size
            ax.hist(xs, bins=bins, alpha=0.55, density=True, label=f"{label} (n={len(xs)})")
        ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
        if not any(label == "unanswerable" for label, _ in groups):
            ax.plot([], [], " ", label="no unanswerable questions in the set")
        ax.set_xlabel("confidence (best sentence score); abstain left of the threshold")
        ax.set_ylabel("density")
        ax.legend(fontsize="small")
        ax.set_title(f"{name} ({primary}): confidence", fontsize="medium")
        fig.tight_layout()
        path = report_dir / "confidence.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    written += _tradeoff_plots(
        report_dir, name=name, primary=primary, recs=prim, threshold=threshold
    )
    return written


def _right_if_answered(r: Mapping) -> bool:
    shown = r.get("answer_if_answered") if r["abstained"] else r["answer"]
    return bool(shown) and bool(answer_correct(shown, r["answers"], False))


def _tradeoff_plots(
    report_dir: Path, *, name: str, primary: str, recs: list[dict], threshold: float
) -> list[Path]:
    """For a set with answerable and unanswerable questions: the trade-off curve and the
    reliability diagram (``rag.tradeoff``)."""
    import matplotlib.pyplot as plt

    from rag import tradeoff

    answerable = [r for r in recs if r.get("answers")]
    unanswerable = [r for r in recs if r.get("answers") == []]
    if not answerable or not unanswerable:
        return []
    a_conf = [float(r["confidence"]) for r in answerable]
    a_right = [_right_if_answered(r) for r in answerable]
    u_conf = [float(r["confidence"]) for r in unanswerable]
    points = tradeoff.curve(a_conf, a_right, u_conf)
    here = tradeoff.point_at(a_conf, a_right, u_conf, threshold)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot([p.abstain_unanswerable for p in points], [p.answer_correct for p in points])
    ax.plot([here.abstain_unanswerable], [here.answer_correct], "ko",
            label=f"threshold {threshold:.3f}")  # fmt: skip
    auroc = tradeoff.auroc([c for c, ok in zip(a_conf, a_right, strict=True) if ok], u_conf)
    ax.set_xlabel(f"abstention on unanswerable questions (n={len(u_conf)})")
    ax.set_ylabel(f"answer-correct on answerable (n={len(a_conf)})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(f"{name} ({primary}): trade-off over all thresholds, AUROC {auroc:.3f}",
                 fontsize="medium")  # fmt: skip
    fig.tight_layout()
    curve_path = report_dir / "tradeoff.png"
    fig.savefig(curve_path)
    plt.close(fig)
    conf = a_conf + u_conf
    if not all(0.0 <= c <= 1.0 for c in conf):
        return [curve_path]
    right = a_right + [False] * len(u_conf)
    bins = tradeoff.reliability(conf, right)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.bar([(b.low + b.high) / 2 for b in bins], [b.share_right for b in bins],
           width=0.09, alpha=0.6, label="share right")  # fmt: skip
    ax.plot([b.mean_probability for b in bins], [b.share_right for b in bins], "o-",
            label="mean probability vs share right")  # fmt: skip
    ax.set_xlabel("probability that the best answer is right")
    ax.set_ylabel("share right")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small")
    ax.set_title(f"{name}: reliability, ECE {tradeoff.ece(conf, right):.3f}", fontsize="medium")
    fig.tight_layout()
    reliability_path = report_dir / "reliability.png"
    fig.savefig(reliability_path)
    plt.close(fig)
    return [curve_path, reliability_path]


def _git_info() -> dict:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    diff = git("diff", "--name-only", "HEAD")
    changed = sorted(diff.splitlines()) if diff else []
    # A report made with uncommitted changes names them: the commit alone is not the code.
    return {"commit": commit, "dirty": bool(changed) if diff is not None else None,
            "changed": changed}  # fmt: skip


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _display(path: Path | str) -> str:
    """``path`` relative to the working directory when it lies inside it."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def set_documents(questions_path: Path | str) -> Path | None:
    """The documents a question set comes with: ``<set>-corpus/`` beside ``<set>.jsonl``,
    else ``corpus/`` beside it; None when it has none (it is asked of the main index)."""
    path = Path(questions_path)
    for corpus in (path.parent / f"{path.stem}-corpus", path.parent / "corpus"):
        if corpus.is_dir():
            return corpus
    return None


def default_name(questions_path: Path | str) -> str:
    """Report name for a question set: its folder's name, plus the file's stem unless
    the file is called ``questions.jsonl`` (``evals/squad-sample/smoke.jsonl`` ->
    ``squad-sample-smoke``)."""
    path = Path(questions_path).resolve()
    folder = path.parent.name or "eval"
    return folder if path.stem == "questions" else f"{folder}-{path.stem}"


# --------------------------------------------------------------------------- run_eval


def run_eval(
    questions_path: Path | str,
    *,
    seeds: Path | str | None = None,
    index: Path | str = "index",
    k: int = DEFAULT_K,
    mode: str = DEFAULT_MODE,
    modes: str | Sequence[str] | None = None,
    threshold: float | None = None,
    name: str | None = None,
    reports_dir: Path | str = DEFAULT_REPORTS,
    calibrate: bool = False,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    settings=None,
    cache_dir: Path | str = DEFAULT_CACHE,
    build_progress: bool = False,
    warn: Callable[[str], None] | None = None,
    assistant=None,
) -> EvalReport:
    """Answer every question of a set, score the answers and write the report.

    Args:
        seeds: a documents folder: its index is built (or refreshed) in ``cache_dir`` and
            ``index`` is not used. None: use the index at ``index`` as it is.
        k: passages retrieved per question (hit@k is measured up to it).
        mode, modes: the run, or several runs to compare (``"hybrid,dense,bm25"`` or a list;
            ``MODE@k=N`` sets another depth). The first run is the primary one (worst misses,
            confidence plot, calibration).
        threshold: abstain below this confidence (default: the index's calibrated threshold,
            else the scorer's default).
        name: report folder under ``reports_dir`` (default: ``default_name``).
        calibrate: choose the threshold on this set (``calibrate_threshold``) from the primary
            run's confidences, store it in the index's ``calibration.json`` and report with it.
        limit: run the first ``limit`` questions only.
        progress: called with (questions done, questions total) across all runs.
        settings: ``IndexSettings`` for an index built from ``seeds`` (default: the defaults).
        assistant: an ``Assistant`` already serving ``index`` (the UI's), used instead of
            loading the index again when the run is on that index.

    Raises:
        BadInputError: a bad question set, run list, name or option combination, before any
            question runs.

    Returns:
        The EvalReport; ``report_dir`` holds report.json, report.md, results.jsonl, PNGs.
    """
    from rag.answer import Assistant

    questions_path = Path(questions_path)
    if limit is not None and limit < 1:
        raise BadInputError(f"limit must be >= 1, got {limit}")
    if k < 1:
        raise BadInputError(f"k must be >= 1, got {k}")
    if calibrate and threshold is not None:
        raise BadInputError("--calibrate chooses the threshold: leave out --threshold")
    runs = parse_runs(modes if modes is not None else [mode], k=k)
    name = name or default_name(questions_path)
    if not _NAME.match(name):
        raise BadInputError(f"report name must be a plain folder name, got {name!r}")
    questions = load_question_set(questions_path)
    if limit is not None:
        questions = questions[:limit]
    if calibrate:
        n_ans = sum(q.answerable for q in questions)
        n_un = sum(q.unanswerable for q in questions)
        if not n_ans or not n_un:
            raise BadInputError(
                f"--calibrate needs answerable and unanswerable questions (answers: []); "
                f"{questions_path} has {n_ans} and {n_un}"
            )

    if seeds is not None:
        index_dir, _ = prepare_index(
            seeds, settings=settings, cache_dir=cache_dir, progress=build_progress, warn=warn
        )
    else:
        index_dir = Path(index)
    if assistant is None or assistant.index_dir != index_dir:
        assistant = Assistant(index_dir)
    check_against_index(questions, assistant.index, path=questions_path)

    if threshold is None:
        used, source = assistant.threshold_source()
    else:
        used, source = threshold, "explicit"

    calibration, cal_meta = None, None
    git = _git_info()
    with _one_torch_thread():
        by_run = _ask_all(assistant, runs, questions, threshold=used, progress=progress)
        if calibrate:
            prim = by_run[runs[0].label]
            calibration = calibrate_threshold(
                [r.confidence for r in prim if r.answers],
                [r.confidence for r in prim if r.answers == ()],
            )
            path = write_calibration(
                index_dir,
                calibration,
                question_set=_display(questions_path),
                run=runs[0].label,
                previous_threshold=used,
                git_commit=git["commit"],
            )
            used, source = calibration.threshold, "calibrated on this set"
            cal_meta = {**calibration.to_dict(), "path": _display(path)}
            by_run = _apply_threshold(assistant, runs, questions, by_run, threshold=used)

    recs = [r.to_dict() for run in runs for r in by_run[run.label]]
    rows = []
    by_kind = {}
    for run in runs:
        run_recs = [r for r in recs if r["run"] == run.label]
        rows.append({"run": run.label, "mode": run.mode, "k": run.k, **score_results(run_recs)})
        by_kind[run.label] = score_by_kind(run_recs)

    report_dir = Path(reports_dir) / name
    report_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("hit_at_k.png", "confidence.png", "tradeoff.png", "reliability.png"):
        (report_dir / stale).unlink(missing_ok=True)
    with (report_dir / "results.jsonl").open("w", encoding="utf-8") as f:
        for rec in recs:
            f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
    plots = _plots(report_dir, name=name, rows=rows, recs=recs, threshold=used)
    meta = {
        "name": name,
        "question_set": _display(questions_path),
        "questions": len(questions),
        "limit": limit,
        "created_at": _now(),
        "git": git,
        "python": sys.version.split()[0],
        "index": _index_summary(assistant.index, index_dir),
        "seeds": None if seeds is None else _display(seeds),
        "threshold": used,
        "threshold_source": source,
        "scorer": _scorer_summary(assistant, recs),
        "calibration": cal_meta,
        "runs": [{"run": r.label, "mode": r.mode, "k": r.k} for r in runs],
    }
    report = {
        **meta,
        "metrics": rows,
        "by_kind": by_kind,
        "plots": [p.name for p in plots],
        "definitions": "evals/README.md",
    }
    (report_dir / "report.json").write_text(
        json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    markdown = _markdown(name=name, meta=meta, rows=rows, by_kind=by_kind, recs=recs, plots=plots)
    (report_dir / "report.md").write_text(markdown, encoding="utf-8")
    return EvalReport(
        name=name,
        rows=rows,
        by_kind=by_kind,
        report_dir=report_dir,
        markdown=markdown,
        plots=plots,
        threshold=used,
        threshold_source=source,
        index_dir=index_dir,
        calibration=calibration,
    )


def _ask_all(
    assistant,
    runs: Sequence[RunSpec],
    questions: Sequence[Question],
    *,
    threshold: float,
    progress: Callable[[int, int], None] | None,
) -> dict[str, list[QuestionResult]]:
    """Every question through every run, in order; ``progress`` counts across runs."""
    total, done = len(questions) * len(runs), 0
    by_run: dict[str, list[QuestionResult]] = {}
    for run in runs:
        # Untimed first question: lazy set-up (BM25 arrays, torch kernels) is not latency.
        assistant.ask(questions[0].question, k=run.k, mode=run.mode, threshold=threshold)
        out = []
        for q in questions:
            answer = _ask(assistant, q, run, threshold)
            out.append(_result(run, q, answer, threshold, _if_answered(assistant, q, run, answer)))
            done += 1
            if progress:
                progress(done, total)
        by_run[run.label] = out
    return by_run


def _ask(assistant, q: Question, run: RunSpec, threshold: float):
    """Ask ``q`` as ``rag ask`` would, except that a question the answer scorer was trained
    on (or one whose gold source is a training article) is scored by the fold model that
    never saw its article: the report never scores a model on its own training data."""
    docs = assistant.index.documents
    source_hash = docs[q.source].content_hash if q.source in docs else None
    model, why = assistant.scorer.for_question(q.question, q.source, source_hash)
    return assistant.ask(
        q.question,
        k=run.k,
        mode=run.mode,
        threshold=threshold,
        id=q.id,
        model=model,
        scored_by=why,
    )


def _if_answered(assistant, q: Question, run: RunSpec, answer) -> str | None:
    """The answer an abstention on an answerable question would have shown."""
    if not (answer.abstained and q.answerable):
        return None
    return _ask(assistant, q, run, 0.0).answer


def _apply_threshold(
    assistant,
    runs: Sequence[RunSpec],
    questions: Sequence[Question],
    by_run: dict[str, list[QuestionResult]],
    *,
    threshold: float,
) -> dict[str, list[QuestionResult]]:
    """The results as a run at ``threshold`` would give them.

    Only the questions whose abstention the new threshold flips are asked again (confidence
    does not depend on the threshold); their answer text and citation order change, and must
    be exactly what ``rag ask`` shows.
    """
    from dataclasses import replace

    by_id = {q.id: q for q in questions}
    out: dict[str, list[QuestionResult]] = {}
    for run in runs:
        fixed = []
        for r in by_run[run.label]:
            if (r.confidence < threshold) != r.abstained:
                q = by_id[r.id]
                a = _ask(assistant, q, run, threshold)
                fixed.append(_result(run, q, a, threshold, _if_answered(assistant, q, run, a)))
            else:
                fixed.append(replace(r, threshold=threshold))
        out[run.label] = fixed
    return out


@contextmanager
def _one_torch_thread():
    """Embed questions on one torch thread while the eval runs.

    One short question is too small to share between threads: on our 2-core machines, with
    anything else running, two threads made each question ~5x slower (110 ms vs 24 ms).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------- CLI


def register_cli(sub, common, retrieval) -> None:
    """Add ``rag eval`` to the ``rag`` command (called by ``rag.cli``)."""
    p = sub.add_parser(
        "eval",
        help="run a question set and report where and why answers fail",
        description="Answer every question of a JSONL question set, print a table of metrics "
        "and write report.json, report.md, results.jsonl and plots under "
        "evals/reports/<name>/ (definitions: evals/README.md).",
    )
    # Same flags as `rag ask`, other defaults: without --seeds the index is used as it is, and
    # 10 passages are retrieved (the answer uses the best 5 either way) to measure hit@10.
    # None marks "not given" (--seeds with --index, --mode with --compare are refused).
    common(
        p,
        seeds=None,
        seeds_help="documents folder: build or refresh its index in .cache/indexes/ and "
        "evaluate on it (default: use --index as it is)",
        index=None,
    )
    retrieval(p, k=DEFAULT_K)
    p.set_defaults(mode=None, func=cmd_eval)
    p.add_argument("questions", type=Path, metavar="QUESTIONS", help="question set (JSONL)")
    p.add_argument(
        "--compare",
        metavar="RUNS",
        help="comma-separated runs to compare on one index: modes, optionally MODE@k=N "
        "(for example hybrid,dense,bm25,dense@k=1)",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="choose the abstention threshold on this set and store it in the index",
    )
    p.add_argument("--threshold", type=float, help="abstain below this confidence")
    p.add_argument("--name", help="report folder name (default: from the question set)")
    p.add_argument(
        "--reports",
        type=Path,
        default=DEFAULT_REPORTS,
        metavar="DIR",
        help=f"where report folders go (default: {DEFAULT_REPORTS}/)",
    )
    p.add_argument("--limit", type=int, metavar="N", help="run the first N questions only")
    p.add_argument(
        "--floors",
        type=Path,
        metavar="FILE",
        help='fail (exit 1) when the first run misses these floors: {"min": {...}, "max": {...}}',
    )
    p.add_argument("--chunk-tokens", type=int, help="with --seeds: chunk budget in cl100k tokens")
    p.add_argument("--overlap", type=int, help="with --seeds: sentences of overlap between chunks")


def cmd_eval(args) -> int:
    from rag.cli import warn_if_stale
    from rag.settings import IndexSettings

    if args.compare and args.mode:
        raise BadInputError("give --mode or --compare, not both")
    if args.seeds is not None and args.index is not None:
        raise BadInputError(
            "--seeds evaluates on its own cached index: leave out --index "
            "(or run `rag index --seeds DIR --index DIR` and pass --index only)"
        )
    overrides = {"chunk_tokens": args.chunk_tokens, "overlap_sentences": args.overlap}
    if args.seeds is None and any(v is not None for v in overrides.values()):
        raise BadInputError("--chunk-tokens and --overlap need --seeds (the index is built then)")
    floors = load_floors(args.floors) if args.floors else None
    settings = IndexSettings().overridden(**overrides) if args.seeds is not None else None
    index = args.index or Path("index")
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty and (done == total or done % 10 == 0):
            end = "\n" if done == total else ""
            print(f"\reval: {done}/{total} answers", end=end, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    report = run_eval(
        args.questions,
        seeds=args.seeds,
        index=index,
        k=args.k,
        mode=args.mode or DEFAULT_MODE,
        modes=args.compare,
        threshold=args.threshold,
        name=args.name,
        reports_dir=args.reports,
        calibrate=args.calibrate,
        limit=args.limit,
        progress=progress,
        settings=settings,
        build_progress=tty,
        warn=lambda m: print(f"warning: {m}", file=sys.stderr),
    )
    if args.seeds is None:
        warn_if_stale(Path("seeds"), index, fix="run `rag index` (or pass --seeds)")
    print(report.table())
    print()
    print(f"threshold {report.threshold:.4f} ({report.threshold_source})")
    if report.calibration:
        c = report.calibration
        print(
            f"calibrated: threshold {c.threshold:.4f} answers {c.answered:.1%} of "
            f"{c.n_answerable} answerable and abstains on {c.abstained:.1%} of "
            f"{c.n_unanswerable} unanswerable questions (balanced accuracy "
            f"{c.balanced_accuracy:.3f}); stored in {_display(report.index_dir)}/calibration.json"
        )
    print(f"report: {_display(report.report_dir)}/report.md ({time.perf_counter() - t0:.0f}s)")
    if floors:
        failures = check_floors(report.rows[0], floors)
        for f in failures:
            print(f"rag: floor missed: {f}", file=sys.stderr)
        if failures:
            return 1
    return 0
