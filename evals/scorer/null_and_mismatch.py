"""Out-of-fold runs of two stop-17 tries (research log, "Stop 17"):

- a "no answer" option in stage 1's softmax (``Recipe(stage1_loss="listwise-null")``): the
  unanswerable questions train selection too, with that option as their target;
- mismatch features of the best sentence in stage 2 (``MISMATCH``): a capitalised word of
  the question missing from the sentence and its neighbours, a number of the question
  missing from the sentence, question words (4+ letters) absent from the sentence's window
  that have a near-spelling in the sentence (``difflib``, ratio >= 0.75, not a mere
  inflection: 1774 / 1777, Beibniz / Leibniz), whether one of those is a name or a number,
  and whether the question says "non".

    .venv/bin/python evals/scorer/dump.py                     # once
    .venv/bin/python evals/scorer/null_and_mismatch.py [variant ...]

The mismatch features are computed from the dumped texts by wrapping
``rag.features.question_row`` (the product's code is not changed by this script's import
alone: ``main`` patches ``rag.fitting`` for the run). Data and folds as ``para_train.py``.
"""

from __future__ import annotations

import difflib
import math
import re
import sys

import numpy as np
from experiments import load_all as load_sets
from para_train import learned_with_para, report, variant_rows

import rag.fitting
from rag import features
from rag.fitting import Recipe

MISMATCH = ("name_miss_window", "number_miss_sent", "near_miss", "near_miss_rare", "q_non")
WITH_MISMATCH = features.QUESTION_FEATURES + MISMATCH
_NON = re.compile(r"\bnon\b|\bnon-", re.IGNORECASE)

VARIANTS = {"shipped": Recipe()}
VARIANTS |= {
    f"null-w{w:g}": Recipe(stage1_loss="listwise-null", null_weight=w) for w in (0.25, 1, 3)
}
VARIANTS["mismatch-sent"] = Recipe(question_features=features.QUESTION_FEATURES + MISMATCH[:2])
VARIANTS["mismatch-near"] = Recipe(question_features=features.QUESTION_FEATURES + MISMATCH[2:])
VARIANTS["mismatch-all"] = Recipe(question_features=WITH_MISMATCH)


def _words(text: str) -> list[str]:
    return features._TOKEN.findall(text)


def mismatch(question: str, logits: np.ndarray, texts: list[str], member_rows) -> list[float]:
    """``MISMATCH`` of a question whose candidates ``texts`` scored ``logits``."""
    words = _words(question)
    names = {w.lower() for w in words[1:] if w[0].isupper()}
    numbers = {w.lower() for w in words if any(c.isdigit() for c in w)}
    values = dict.fromkeys(MISMATCH, 0.0)
    values["q_non"] = float(bool(_NON.search(question)))
    if len(logits):
        best = int(np.argmax(logits))
        chunk = next((rows for rows in member_rows if best in rows), [best])
        i = chunk.index(best)
        window = {w.lower() for k in chunk[max(0, i - 1) : i + 2] for w in _words(texts[k])}
        sentence = {w.lower() for w in _words(texts[best])}
        values["name_miss_window"] = float(bool(names - window))
        values["number_miss_sent"] = float(bool(numbers - sentence))
        pool = [w for w in sentence if len(w) >= 3]
        near = set()
        for w in {w.lower() for w in words if len(w) >= 4} - window:
            m = difflib.get_close_matches(w, pool, n=1, cutoff=0.75)
            if m and not (m[0].startswith(w[:-1]) or w.startswith(m[0][:-1])):
                near.add(w)
        values["near_miss"] = math.log1p(len(near))
        values["near_miss_rare"] = float(bool(near & (names | numbers)))
    return [values[k] for k in MISMATCH]


def _patch() -> None:
    row = features.question_row

    def with_mismatch(question, x, logits, q, texts, member_rows):
        extra = mismatch(question, logits, texts, member_rows)
        return np.r_[row(question, x, logits, q, texts, member_rows), extra]

    rag.fitting.question_row = with_mismatch
    rag.fitting.QUESTION_FEATURES = WITH_MISMATCH


def main(names):
    _patch()
    data = load_sets()
    report(
        names or list(VARIANTS),
        lambda name: variant_rows(name, learned_with_para(data, VARIANTS[name])),
    )


if __name__ == "__main__":
    main(sys.argv[1:])
