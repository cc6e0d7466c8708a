"""Experiment harness over the feature dumps in .cache/scorer/ (evals/scorer/dump.py).

Everything here is out-of-fold: a question is scored by models that never saw its article.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from rag.fitting import Recipe  # noqa: E402
from rag.scorer import SENTENCE_FEATURES  # noqa: E402
from rag.training import Dump, Outcome, Prepared, prepare, select  # noqa: E402,F401


def pointwise_recipe(**changes) -> Recipe:
    """The recipe before stop 16 (stage 1 pointwise, second-sentence margin 3.0) with
    ``changes``: every variant logged before the listwise section was run with it."""
    return Recipe(**{"stage1_loss": "pointwise", "margin": 3.0, **changes})


def load(name: str) -> Prepared:
    return prepare(Dump.load(CACHE / name))


CACHE = ROOT / ".cache" / "scorer"
COL = {n: i for i, n in enumerate(SENTENCE_FEATURES)}


def hand_score(x: np.ndarray) -> np.ndarray:
    """Today's hand-weighted sentence score, from the dumped features."""
    return (
        0.5 * x[:, COL["cos"]]
        + 0.5 * x[:, COL["cov"]]
        + 0.35 * x[:, COL["cov_prev"]]
        - 0.2 * x[:, COL["heading"]]
        - 0.15 * x[:, COL["type_miss"]]
    )
