"""Metric maths: whether an answer is right, where the gold passage ranked, and the scores
of a run, computed from raw fields only (so ``results.jsonl`` lines can be re-scored).

Definitions: ``evals/README.md``.
"""

from __future__ import annotations

import json
import re
import statistics
import string
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import BadInputError

if TYPE_CHECKING:  # numpy loads when used, not with this module (`rag --help`)
    pass

#: Depths at which hit@k is reported; MRR is cut at the deepest.
HIT_KS = (1, 3, 5, 10)
MRR_DEPTH = 10
_MARKER = re.compile(r" \[\d+\](?= |$)")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


@dataclass(frozen=True)
class CitedSpan:
    """Where one citation points: the passage (``start``/``end``) and its sentence."""

    source: str
    start: int
    end: int
    highlight: tuple[int, int]


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
    return metrics


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
