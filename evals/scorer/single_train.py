"""Out-of-fold runs with the SQuAD sets also asked of single-article indexes
(``dump_single.py``): does training on that regime, where every unanswerable question is
on-topic for the whole index, make the probability hold on a one-document index?

    .venv/bin/python evals/scorer/dump.py; .venv/bin/python evals/scorer/dump_single.py
    .venv/bin/python evals/scorer/single_train.py [variant ...]

Variants differ in what the bundles are trained on (article folds as everywhere, the two
copies of a question in the same fold): ``multi`` the shipped data (the 16-article index),
``single`` the single-article copies only, ``both`` the two. Every variant is scored out of
fold on both regimes; ``*_1`` columns are the single-article regime at the same threshold.
The threshold is the shipped rule on the multi-article regime, whatever the training.
"""

from __future__ import annotations

import functools
import sys

import numpy as np
from experiments import load_all as load_sets
from harness import CACHE, Dump, load
from para_train import (
    curve_rows,
    default_threshold,
    learned_with_para,
    report,
    variant_rows,
)

from rag import tradeoff
from rag.fitting import Recipe, mark_reworded

SINGLE = ("squad_single", "v2_single", "para_single")
EXTRA = ("squad_ac_1", "v2_abstain_1", "auroc_1", "ac@50_1", "para_ac_1")


def _single_dumps() -> dict:
    dumps = {n: Dump.load(CACHE / n) for n in SINGLE}
    mark_reworded(dumps["para_single"])
    return dumps


def run(data, variant: str, recipe: Recipe):
    if variant == "multi":
        return learned_with_para(data, recipe, also=SINGLE)
    return learned_with_para(data, recipe, extra=_single_dumps(), base=variant == "both")


def single_row(row: dict, sets, t: float) -> dict:
    (sq, sq_p), (_, v2_p), (pa, pa_p) = (sets[n] for n in SINGLE)
    row["squad_ac_1"] = float(np.mean(sq.correct & (sq_p >= t)))
    row["v2_abstain_1"] = float(np.mean(v2_p < t))
    row["auroc_1"] = tradeoff.auroc(sq_p[sq.correct], v2_p)
    row["ac@50_1"] = tradeoff.correct_at_abstention(sq_p, sq.correct, v2_p, 0.5).answer_correct
    row["para_ac_1"] = float(np.mean(pa.correct & (pa_p >= t)))
    return row


def main(names):
    data = load_sets() | {n: load(n) for n in SINGLE}
    rule = functools.partial(default_threshold, both_floors=True)

    def evaluate(name):
        sets = run(data, name, Recipe())
        rows, curves = variant_rows(name, sets, (0.39, 0.5), rule=rule, extend=single_row)
        single = dict(zip(("squad", "v2", "para"), (sets[n] for n in SINGLE), strict=True))
        return rows, curves + curve_rows(f"{name} (single-article regime)", single)

    report(names or ("multi", "single", "both"), evaluate, EXTRA)


if __name__ == "__main__":
    main(sys.argv[1:])
