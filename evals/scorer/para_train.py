"""Out-of-fold runs with the reworded questions (squad-paraphrased-dev) in the training data.

    .venv/bin/python evals/scorer/dump.py                     # once
    .venv/bin/python evals/scorer/para_train.py [variant ...]

The 200 reworded questions are rewordings of sample questions, one per paragraph, 12-13 per
article. Here they join the training data with the SQuAD sample and the unanswerable
questions, with article-level folds as everywhere: a reworded question is still scored by a
bundle that never saw its article (nor the original question it rewords, which lives in the
same article). Variants differ in the weight of a reworded question in every fit.
"""

from __future__ import annotations

import sys

import numpy as np
from experiments import O, fmt, save_curves, summarize
from experiments import load_all as load_sets
from harness import CACHE, Dump, pointwise_recipe, prepare

from rag import tradeoff
from rag.fitting import Recipe, apply_bundle, article_folds, concat, mark_reworded, train_bundle
from rag.scorer import QUESTION_FEATURES
from rag.training import choose_threshold

VARIANTS = {f"para-w{w:g}": pointwise_recipe(reworded_weight=w) for w in (1, 3, 5, 10, 15, 25)}
# Stage 1 (selection) with a larger reworded weight than stage 2 and the calibration.
VARIANTS |= {f"para-w5-s1w{w:g}": pointwise_recipe(reworded_weight_s1=w) for w in (10, 25, 50)}
# Stage 1 trained listwise (softmax over each question's candidates), second-sentence margin.
VARIANTS |= {
    f"para-w5-list-c{c:g}-m{m:g}": Recipe(stage1_loss="listwise", c_sentence=c, margin=m)
    for c in (0.1, 1)
    for m in (3, 4.5)
}
# The shipped recipe, stage 2 without the best and second logits as such (their margin and
# softmax share stay): a listwise logit's level is not anchored.
VARIANTS["para-w5-list-noabs"] = Recipe(
    question_features=tuple(f for f in QUESTION_FEATURES if f not in ("top", "second"))
)


def _stitch(p, parts):
    o = O()
    o.correct = np.zeros(p.n, bool)
    o.gold_rank = np.zeros(p.n, int)
    o.words = np.zeros(p.n, int)
    prob = np.zeros(p.n)
    for out, pr, m in parts:
        o.correct[m], o.gold_rank[m], o.words[m], prob[m] = (
            out.correct[m],
            out.gold_rank[m],
            out.words[m],
            pr[m],
        )
    return o, prob


def _part(o, prob, sl):
    out = O()
    out.correct, out.gold_rank, out.words = o.correct[sl], o.gold_rank[sl], o.words[sl]
    return out, prob[sl]


def learned_with_para(data, recipe, extra: dict | None = None, *, base=True, also=()):
    """Out-of-fold outcomes of every set, trained on the SQuAD sample, its unanswerable
    questions, the reworded questions (unless not ``base``) and ``extra`` ({set name: dump},
    each also scored out of fold under its name). The sets of ``data`` named in ``also``
    (and the base three when not trained on) are scored out of fold without training."""
    dumps = {}
    if base:
        dumps = {n: Dump.load(CACHE / n) for n in ("squad", "v2")}
        dumps["para"] = mark_reworded(Dump.load(CACHE / "para"))
    else:
        also = ("squad", "v2", "para", *also)
    dumps |= extra or {}
    train = prepare(concat(list(dumps.values())))
    articles = np.array([q["article"] for q in train.d.qinfo])
    folds = article_folds(data["squad"].articles(), data["v2"].articles())
    parts, bundles = [], []
    for k, fold in enumerate(folds):
        b = train_bundle(train, [f for i, f in enumerate(folds) if i != k], recipe)
        bundles.append((fold, b))
        out, pr = apply_bundle(train, b, recipe)
        parts.append((out, pr, np.isin(articles, fold)))
    o, prob = _stitch(train, parts)
    sets, start = {}, 0
    for name, d in dumps.items():
        sets[name] = _part(o, prob, slice(start, start + len(d.qinfo)))
        start += len(d.qinfo)
    for name in ("squad_on_seed", *also):
        p = data[name]
        arts = np.array(p.articles())
        sets[name] = _stitch(
            p, [(*apply_bundle(p, b, recipe), np.isin(arts, fold)) for fold, b in bundles]
        )
    full = train_bundle(train, folds, recipe)
    for name in ("reworded", "seed"):
        out, pr = apply_bundle(data[name], full, recipe)
        sets[name] = (out, pr, np.array([bool(q["answers"]) for q in data[name].d.qinfo]))
    sets["prob"] = True
    return sets


def default_threshold(sets, *, both_floors: bool = False) -> float:
    """The threshold rule (rag.training.choose_threshold) on the out-of-fold SQuAD sample:
    stop 15's (the SQuAD floor alone) or, with ``both_floors``, the shipped one (also the
    reworded questions' floor)."""
    (sq, sq_p), (_, v2_p), (pa, pa_p) = sets["squad"], sets["v2"], sets["para"]
    prob = np.concatenate([sq_p, v2_p])
    right = np.concatenate([sq.correct, np.zeros(len(v2_p), bool)])
    answerable = np.arange(len(prob)) < len(sq_p)
    reworded = (pa_p, pa.correct) if both_floors else None
    return choose_threshold(prob, right, answerable, reworded=reworded)


def curve_rows(name, sets):
    """SQuAD and paraphrased answer-correct at 0, 10, ..., 90 % abstention on SQuAD 2.0."""
    (sq, sq_p), (_, v2_p), (pa, pa_p) = sets["squad"], sets["v2"], sets["para"]
    rows = []
    for share in np.arange(0, 0.91, 0.1):
        pt = tradeoff.correct_at_abstention(sq_p, sq.correct, v2_p, share)
        rows.append(
            f"| {name} | {share:.0%} | {pt.threshold:.3f} | {pt.answer_correct:.3f} | "
            f"{np.mean(pa.correct & (pa_p >= pt.threshold)):.3f} |"
        )
    return rows


def variant_rows(name, sets, thresholds=(0.39,), *, rule=default_threshold, extend=None):
    """A variant's metric rows at the ``rule`` threshold and at ``thresholds``
    (``extend(row, sets, t)`` adds columns), and its curve rows."""
    rows = []
    for t in (rule(sets), *thresholds):
        row = summarize(name, sets, t)
        rows.append(extend(row, sets, t) if extend else row)
    return rows, curve_rows(name, sets)


def report(names, evaluate, extra=()) -> None:
    """Print each variant's rows as it finishes (``evaluate(name)`` -> rows, curve rows),
    then every row and the curves."""
    rows, curves = [], []
    for name in names:
        r, c = evaluate(name)
        rows += r
        curves += c
        print(fmt(r, extra), flush=True)
    print(fmt(rows, extra))
    print("| variant | v2 abstain | threshold | SQuAD answer-correct | paraphrased |")
    print("|---|---|---|---|---|")
    print("\n".join(curves))


def main(names):
    data = load_sets()
    rows = []
    for name in names or list(VARIANTS):
        sets = learned_with_para(data, VARIANTS[name])
        for t in (default_threshold(sets), 0.3, 0.4, 0.5, 0.6):
            rows.append(summarize(name, sets, t))
        save_curves(name, sets)
    print(fmt(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
