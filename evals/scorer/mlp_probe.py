"""A tiny MLP for stage 2 instead of the logistic regression, as a probe.

    .venv/bin/python evals/scorer/dump.py                     # once
    .venv/bin/python evals/scorer/mlp_probe.py [variant ...]

The issue allows "logistic regression, a tiny MLP or gradient-boosted trees"; trees were
tried early (worse than linear). Here stage 2 (the probability) is an MLP on the same
standardised question features (sklearn ``MLPClassifier``: one hidden layer of ``H`` ReLU
units, L2 ``ALPHA``, L-BFGS, fixed seed); stage 1, the calibration and the data are the
shipped recipe's. ``main`` patches ``rag.fitting``'s stage-2 fit and logit for the run.
"""

from __future__ import annotations

import sys

import numpy as np
from experiments import load_all as load_sets
from para_train import learned_with_para, report, variant_rows

import rag.fitting
from rag.fitting import Recipe

VARIANTS = {"shipped": (None, None)}
VARIANTS |= {f"mlp-h{h}-a{a:g}": (h, a) for h in (8, 32) for a in (1.0, 10.0)}


def _patch(hidden: int, alpha: float) -> None:
    from sklearn.neural_network import MLPClassifier

    linear_logit = rag.fitting.logit

    def fit(x, y, *, c=1.0, weight=None):
        mean, scale = rag.fitting._standardisation(x)
        model = MLPClassifier(
            hidden_layer_sizes=(hidden,),
            alpha=alpha,
            solver="lbfgs",
            max_iter=2000,
            random_state=0,
        )
        model.fit((x - mean) / scale, y.astype(int), sample_weight=weight)
        return {"mlp": model, "mean": mean, "scale": scale}

    def logit(model, x):
        if "mlp" not in model:
            return linear_logit(model, x)
        p = model["mlp"].predict_proba((x - model["mean"]) / model["scale"])[:, 1]
        p = np.clip(p, 1e-9, 1 - 1e-9)
        return np.log(p / (1 - p))

    rag.fitting.fit_logistic = fit
    rag.fitting.logit = logit


def main(names):
    data = load_sets()

    def evaluate(name):
        hidden, alpha = VARIANTS[name]
        if hidden:
            _patch(hidden, alpha)
        return variant_rows(name, learned_with_para(data, Recipe()))

    report(names or list(VARIANTS), evaluate)


if __name__ == "__main__":
    main(sys.argv[1:])
