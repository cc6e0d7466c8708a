"""Kernel pooling (KNRM) of the question-sentence token similarities, as a probe.

    .venv/bin/python evals/scorer/kernel_probe.py dump    # ~4 min: re-dumps the six sets
    .venv/bin/python evals/scorer/kernel_probe.py run     # out of fold, as para_train.py

The six late-interaction features keep each question word's *best* match (MaxSim). KNRM's
kernels keep how many pieces of the sentence match it at each level: for each question
content piece and kernel (mean ``MUS``, width ``SIGMA``; the first one near-exact), the soft
count of the sentence's stored pieces, ``log1p`` of it, averaged over the question's content
pieces. The dump wraps ``rag.late.features`` to compute them from the same similarity
matrix the product computes (the candidates' own pieces), so the rows line up with
``dump.py``'s; ``run`` appends them to stage 1 (every candidate) and, for the best
sentence, to stage 2, and trains the shipped recipe with and without them.
"""

from __future__ import annotations

import sys

import numpy as np
from harness import CACHE

MUS = (0.97, 0.9, 0.7, 0.5, 0.3, 0.1)
SIGMAS = (0.02, 0.1, 0.1, 0.1, 0.1, 0.1)
KERNELS = tuple(f"knrm_{m:g}" for m in MUS)
SETS = ("squad", "v2", "para", "reworded", "seed", "squad_on_seed")


def kernel_rows(q, sentences, candidates) -> np.ndarray:
    """``KERNELS`` of each candidate (``rag.late.features``'s arguments)."""
    out = np.zeros((len(candidates), len(KERNELS)))
    if not len(candidates) or not len(q.content):
        return out
    for r, c in enumerate(candidates):
        m = sentences[c]
        if not len(m):
            continue
        sim = q.pieces[q.content] @ m.T  # content pieces x the sentence's pieces
        for k, (mu, sigma) in enumerate(zip(MUS, SIGMAS, strict=True)):
            soft = np.exp(-((sim - mu) ** 2) / (2 * sigma**2)).sum(axis=1)
            out[r, k] = np.log1p(soft).mean()
    return out


def dump() -> None:
    import dump as base

    from rag import late

    captured: list[np.ndarray] = []
    original = late.features

    def wrapped(q, weights, sentences, candidates, before, after):
        captured.append(kernel_rows(q, sentences, candidates))
        return original(q, weights, sentences, candidates, before, after)

    late.features = wrapped
    for name in SETS:
        captured.clear()
        base.main([name])
        rows = np.concatenate(captured) if captured else np.zeros((0, len(KERNELS)))
        np.save(CACHE / f"knrm-{name}.npy", rows)


def run() -> None:
    from experiments import load_all as load_sets
    from para_train import learned_with_para, report, variant_rows

    import rag.fitting
    from rag import features
    from rag.fitting import Dump, Recipe

    width = len(features.SENTENCE_FEATURES)
    s_all = features.SENTENCE_FEATURES + KERNELS
    top = tuple(f"top_{k}" for k in KERNELS)
    q_all = features.QUESTION_FEATURES + top

    load = Dump.load

    def with_kernels(path):
        d = load(path)
        k = np.load(CACHE / f"knrm-{path.name}.npy")
        assert len(k) == len(d.x), path
        d.x = np.c_[d.x, k]
        return d

    row = features.question_row

    def question_row(question, x, logits, q, texts, member_rows):
        best = int(np.argmax(logits)) if len(logits) else None
        extra = x[best, width:] if best is not None else np.zeros(len(KERNELS))
        return np.r_[row(question, x[:, :width], logits, q, texts, member_rows), extra]

    Dump.load = staticmethod(with_kernels)
    rag.fitting.SENTENCE_FEATURES = s_all
    rag.fitting.QUESTION_FEATURES = q_all
    rag.fitting.question_row = question_row
    variants = {
        "shipped": Recipe(sentence_features=features.SENTENCE_FEATURES),
        "knrm-s2": Recipe(sentence_features=features.SENTENCE_FEATURES, question_features=q_all),
        "knrm-both": Recipe(sentence_features=s_all, question_features=q_all),
    }
    data = load_sets()
    report(
        sys.argv[2:] or list(variants),
        lambda name: variant_rows(name, learned_with_para(data, variants[name])),
    )


if __name__ == "__main__":
    {"dump": dump, "run": run}[sys.argv[1]]()
