"""The trade-off metric maths (rag.tradeoff) on small hand-checked cases."""

from __future__ import annotations

import pytest

from rag import tradeoff


def test_auroc_counts_pairs_and_ties_half():
    assert tradeoff.auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert tradeoff.auroc([0.1, 0.2], [0.9, 0.8]) == 0.0
    # 0.5 vs 0.5 is a tie (half), 0.9 beats both: (1 + 1 + 0.5 + 0) / 4
    assert tradeoff.auroc([0.9, 0.5], [0.5, 0.7]) == pytest.approx(0.625)
    assert tradeoff.auroc([], [0.1]) != tradeoff.auroc([], [0.1])  # nan


def test_curve_runs_from_answering_everything_to_abstaining_on_everything():
    answerable, correct, unanswerable = [0.9, 0.6, 0.3], [True, False, True], [0.2, 0.5, 0.7]
    points = tradeoff.curve(answerable, correct, unanswerable)
    assert points[0].answer_correct == pytest.approx(2 / 3) and points[0].abstain_unanswerable == 0
    assert points[-1].answer_correct == 0 and points[-1].abstain_unanswerable == 1
    abstain = [p.abstain_unanswerable for p in points]
    right = [p.answer_correct for p in points]
    assert abstain == sorted(abstain) and right == sorted(right, reverse=True)
    # 0.5 abstains on 1/3 of the unanswerable (0.2 only); 0.6 is the lowest threshold that
    # abstains on half or more (0.2 and 0.5), and it keeps 0.9 (right) and 0.6 (wrong).
    p = tradeoff.correct_at_abstention(answerable, correct, unanswerable, 0.5)
    assert p.threshold == 0.6 and p.answer_correct == pytest.approx(1 / 3)
    assert tradeoff.point_at(answerable, correct, unanswerable, 0.6) == p


def test_reliability_and_ece():
    probability = [0.05, 0.15, 0.85, 0.95]
    right = [False, False, True, False]
    bins = tradeoff.reliability(probability, right)
    assert [b.n for b in bins] == [1, 1, 1, 1]
    # |0.05-0| + |0.15-0| + |0.85-1| + |0.95-0|, over 4
    assert tradeoff.ece(probability, right) == pytest.approx((0.05 + 0.15 + 0.15 + 0.95) / 4)
    assert tradeoff.ece([0.7] * 10, [True] * 7 + [False] * 3) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        tradeoff.reliability([1.5], [True])
    with pytest.raises(ValueError, match="differ in length"):
        tradeoff.ece([0.5], [True, False])
