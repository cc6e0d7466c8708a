"""Out-of-fold runs with synthetic on-topic negatives: every SQuAD sample question asked as if
its gold paragraph were not in the index (``dump_questions(without_gold=True)``).

    .venv/bin/python evals/scorer/dump.py                     # once (squad_nogold included)
    .venv/bin/python evals/scorer/nogold_train.py [variant ...]

The negatives join the shipped training data (SQuAD sample, unanswerable questions, reworded
questions at weight 5) in the stage-2 fit only, at the variant's weight; article-level folds
as everywhere, so a question is scored by a bundle that saw neither its article nor that
article's no-gold copies. Their label is the shown answer's rightness (another paragraph may
still hold the gold answer). ``nogold_abstain``: out-of-fold share of the no-gold questions
whose shown answer is wrong that are abstained on (higher is better).
"""

from __future__ import annotations

import sys

import numpy as np
from experiments import load_all as load_sets
from experiments import save_curves
from harness import CACHE, Dump, pointwise_recipe
from para_train import learned_with_para, report, variant_rows

VARIANTS = {"nogold-w0": pointwise_recipe()}
for _w in (0.25, 0.5, 1, 2):
    VARIANTS[f"nogold-w{_w:g}"] = pointwise_recipe(no_gold_weight=_w)
    VARIANTS[f"nogold-w{_w:g}-cal"] = pointwise_recipe(no_gold_weight=_w, no_gold_calibrate=True)


EXTRA = ("nogold_abstain", "nogold_right")


def learned_with_nogold(data, recipe):
    nogold = Dump.load(CACHE / "squad_nogold")
    assert all(q.get("no_gold") for q in nogold.qinfo)
    return learned_with_para(data, recipe, extra={"nogold": nogold})


def main(names):
    data = load_sets()

    def nogold_columns(row, sets, t):
        ng, ng_p = sets["nogold"]
        row["nogold_abstain"] = float(np.mean(ng_p[~ng.correct] < t))
        row["nogold_right"] = float(np.mean(ng.correct))
        return row

    def evaluate(name):
        sets = learned_with_nogold(data, VARIANTS[name])
        save_curves(name, sets)
        return variant_rows(name, sets, (0.3, 0.4, 0.5), extend=nogold_columns)

    report(names or list(VARIANTS), evaluate, EXTRA)


if __name__ == "__main__":
    main(sys.argv[1:])
