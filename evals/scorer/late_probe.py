"""Probe: does late interaction (token-level MaxSim with MiniLM) help the probability?

    .venv/bin/python evals/scorer/late_probe.py     (after evals/scorer/dump.py)

Stage-1 logits out-of-fold over the 4 article folds; the best sentence's MaxSim score (mean
over question tokens of the best cosine with a sentence token) added to the stage-2
features; AUROC and answer-correct at 50 % abstention, stage 2 out-of-fold over the same
folds (one level of folds, as a probe).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from harness import CACHE, Dump, pointwise_recipe, prepare

import rag.fitting as T
from rag import tradeoff
from rag.embedding import Embedder


def token_vectors(model, texts: list[str]) -> list[np.ndarray]:
    out = model.encode(
        texts,
        output_value="token_embeddings",
        batch_size=64,
        convert_to_numpy=False,
        show_progress_bar=False,
    )
    vectors = []
    for e in out:
        e = e.float().numpy()[1:-1]  # [CLS] and [SEP] left out
        vectors.append(e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-9))
    return vectors


def main() -> None:
    torch.set_num_threads(1)
    train = prepare(T.concat([Dump.load(CACHE / "squad"), Dump.load(CACHE / "v2")]))
    recipe = pointwise_recipe()
    info = train.d.qinfo
    answerable = np.array([bool(q["answers"]) for q in info])
    articles = np.array([q["article"] for q in info])
    folds = T.article_folds(
        [q["article"] for q in info if q["answers"]],
        [q["article"] for q in info if not q["answers"]],
    )
    s1 = np.zeros(len(train.d.x))
    for fold in folds:
        test = np.isin(articles, fold)
        model = T._fit_stage1(train, ~test, recipe)
        rows = test[train.d.q_of]
        s1[rows] = T.sentence_logits(train, model, recipe)[rows]
    best = [r[np.argmax(s1[r])] if len(r) else -1 for r in train.rows]
    t0 = time.perf_counter()
    st = Embedder().model
    q_vectors = token_vectors(st, [q["question"] for q in info])
    s_vectors = token_vectors(st, [train.d.texts[i] if i >= 0 else "" for i in best])
    print(f"token vectors: {time.perf_counter() - t0:.0f}s", flush=True)
    maxsim = np.array(
        [
            (q @ s.T).max(1).mean() if len(q) and len(s) else 0.0
            for q, s in zip(q_vectors, s_vectors, strict=True)
        ]  # noqa: E501
    )
    out = T.select(train, s1, margin=recipe.margin)
    right = out.correct
    print(
        "MaxSim alone: AUROC",
        round(tradeoff.auroc(maxsim[answerable & right], maxsim[~answerable]), 4),
    )
    for name, x in (
        ("stage 2", out.qx),
        ("stage 2 + MaxSim", np.hstack([out.qx, maxsim[:, None]])),
    ):
        z = np.zeros(train.n)
        for fold in folds:
            test = np.isin(articles, fold)
            model = T.fit_logistic(x[~test], right[~test])
            z[test] = T.logit(model, x[test])
        auroc = tradeoff.auroc(z[answerable & right], z[~answerable])
        at50 = tradeoff.correct_at_abstention(z[answerable], right[answerable], z[~answerable], 0.5)
        print(
            f"{name}: AUROC {auroc:.4f}, answer-correct at 50% abstention {at50.answer_correct:.4f}"
        )


if __name__ == "__main__":
    main()
