"""Trade-off metrics of an abstaining assistant: pure functions over per-question scores.

Every function takes, per question, the score the assistant abstains on (``probability``,
or any score where higher means "more sure"; abstain when it is below the threshold) and
the outcome: for an answerable question whether the shown answer is right, and for an
unanswerable one nothing (the right reply is to abstain).

- ``curve``: answer-correct on the answerable questions against abstention on the
  unanswerable ones, at every threshold.
- ``auroc``: how well the score separates right answers from unanswerable questions.
- ``correct_at_abstention``: answer-correct at the lowest threshold that abstains on at
  least a given share of the unanswerable questions.
- ``reliability`` and ``ece``: predicted probability against the observed share of right
  answers, per bin, and the expected calibration error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CurvePoint:
    """One threshold: abstain when the score is below ``threshold``.

    Attributes:
        answer_correct: share of answerable questions answered (score >= threshold) with a
            right answer.
        answered: share of answerable questions answered at all.
        abstain_unanswerable: share of unanswerable questions abstained on.
    """

    threshold: float
    answer_correct: float
    answered: float
    abstain_unanswerable: float


def _arrays(scores, correct) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float)
    c = np.asarray(correct, dtype=bool)
    if s.shape != c.shape:
        raise ValueError(f"scores and outcomes differ in length: {s.shape} vs {c.shape}")
    return s, c


def curve(
    answerable: Sequence[float],
    correct: Sequence[bool],
    unanswerable: Sequence[float],
) -> list[CurvePoint]:
    """The trade-off at every distinct threshold (each observed score, plus one above all).

    Args:
        answerable: scores of the answerable questions.
        correct: whether each answerable question's shown answer is right.
        unanswerable: scores of the unanswerable questions.

    Returns:
        Points by increasing threshold: abstention on unanswerable never decreases along the
        list and answer-correct never increases.
    """
    a, c = _arrays(answerable, correct)
    u = np.asarray(unanswerable, dtype=float)
    values = np.unique(np.concatenate([a, u]))
    thresholds = np.concatenate([values, [values[-1] + 1.0 if len(values) else 1.0]])
    out = []
    for t in thresholds:
        out.append(
            CurvePoint(
                threshold=float(t),
                answer_correct=float(np.mean(c & (a >= t))) if len(a) else float("nan"),
                answered=float(np.mean(a >= t)) if len(a) else float("nan"),
                abstain_unanswerable=float(np.mean(u < t)) if len(u) else float("nan"),
            )
        )
    return out


def point_at(
    answerable: Sequence[float],
    correct: Sequence[bool],
    unanswerable: Sequence[float],
    threshold: float,
) -> CurvePoint:
    """The trade-off at one threshold."""
    a, c = _arrays(answerable, correct)
    u = np.asarray(unanswerable, dtype=float)
    return CurvePoint(
        threshold=float(threshold),
        answer_correct=float(np.mean(c & (a >= threshold))) if len(a) else float("nan"),
        answered=float(np.mean(a >= threshold)) if len(a) else float("nan"),
        abstain_unanswerable=float(np.mean(u < threshold)) if len(u) else float("nan"),
    )


def correct_at_abstention(
    answerable: Sequence[float],
    correct: Sequence[bool],
    unanswerable: Sequence[float],
    share: float,
) -> CurvePoint:
    """The point of ``curve`` with the lowest threshold that abstains on at least ``share``
    of the unanswerable questions."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    for p in curve(answerable, correct, unanswerable):
        if p.abstain_unanswerable >= share - 1e-12:
            return p
    raise ValueError("no unanswerable questions")


def auroc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half).

    Here positives are the answerable questions answered right and negatives the unanswerable
    ones.

    Returns:
        A value in [0, 1]; nan when either group is empty.
    """
    p = np.asarray(positives, dtype=float)
    n = np.asarray(negatives, dtype=float)
    if not len(p) or not len(n):
        return float("nan")
    both = np.concatenate([p, n])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(len(both))
    sorted_vals = both[order]
    # average ranks over ties (1-based)
    i = 0
    while i < len(both):
        j = i
        while j + 1 < len(both) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u_stat = ranks[: len(p)].sum() - len(p) * (len(p) + 1) / 2
    return float(u_stat / (len(p) * len(n)))


@dataclass(frozen=True)
class Bin:
    """One bin of a reliability diagram."""

    low: float
    high: float
    n: int
    mean_probability: float
    share_right: float


def reliability(probability: Sequence[float], right: Sequence[bool], bins: int = 10) -> list[Bin]:
    """Predicted probability against the observed share of right answers, in ``bins``
    equal-width bins over [0, 1] (empty bins are left out)."""
    p, r = _arrays(probability, right)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append(
                Bin(
                    float(edges[b]),
                    float(edges[b + 1]),
                    int(mask.sum()),
                    float(p[mask].mean()),
                    float(r[mask].mean()),
                )
            )
    return out


def ece(probability: Sequence[float], right: Sequence[bool], bins: int = 10) -> float:
    """Expected calibration error: the bin-size-weighted mean of
    |mean probability - share right| over ``reliability``'s bins."""
    table = reliability(probability, right, bins)
    total = sum(b.n for b in table)
    if not total:
        return float("nan")
    return float(sum(b.n * abs(b.mean_probability - b.share_right) for b in table) / total)
