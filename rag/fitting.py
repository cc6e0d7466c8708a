"""The pieces of the answer scorer's training: candidate features of question sets against an
index (``Dump``, ``dump_questions``), the selection they lead to (``prepare``, ``select``),
article-level folds, the logistic fits and Platt calibration, and the two-stage recipe
(``Recipe``, ``train_bundle``, ``apply_bundle``).

``rag.training`` (``make scorer``) puts them together into ``rag/scorer.json``; its names are
importable from there too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rag.evaluation import Question, answer_correct
from rag.retrieval import Retriever
from rag.scorer import (
    HEADING_LOGIT,
    QUESTION_FEATURES,
    SENTENCE_FEATURES,
    choose,
    members,
    question_row,
    sentence_features,
)

#: Chunks whose sentences are candidates (the answer's re-ranking depth).
DEPTH = 20


@dataclass
class Dump:
    """Candidate features of a list of questions against one index.

    ``x`` stacks every question's candidate rows; ``q_of[i]`` is the question of row i.
    Per question: ``qinfo[j]`` (id, question, answers, source, span, article, q facts, hits).
    Per row: ``texts``, ``keys``, ``hit_of``, ``gold`` (holds a gold answer), ``in_span``.
    """

    x: np.ndarray
    q_of: np.ndarray
    hit_of: np.ndarray
    gold: np.ndarray
    in_span: np.ndarray
    texts: list[str]
    keys: list[tuple[str, int, int]]
    qinfo: list[dict] = field(default_factory=list)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            path.with_suffix(".npz"),
            x=self.x,
            q_of=self.q_of,
            hit_of=self.hit_of,
            gold=self.gold,
            in_span=self.in_span,
        )
        meta = {"texts": self.texts, "keys": self.keys, "qinfo": self.qinfo}
        path.with_suffix(".json").write_text(json.dumps(meta, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> Dump:
        arrays = np.load(path.with_suffix(".npz"))
        meta = json.loads(path.with_suffix(".json").read_text())
        return cls(
            x=arrays["x"],
            q_of=arrays["q_of"],
            hit_of=arrays["hit_of"],
            gold=arrays["gold"],
            in_span=arrays["in_span"],
            texts=meta["texts"],
            keys=[tuple(k) for k in meta["keys"]],
            qinfo=meta["qinfo"],
        )


def holds_answer(text: str, answers) -> bool:
    """Whether ``text`` holds a gold answer as ``rag eval`` counts it (normalised, whole words)."""
    return bool(answers) and bool(answer_correct(text, answers, False))


def dump_questions(
    retriever: Retriever,
    questions: list[Question],
    *,
    articles: dict[str, str] | None = None,
    batch: int = 64,
    progress=None,
    without_gold: bool = False,
) -> Dump:
    """Retrieve (hybrid, ``DEPTH`` chunks) and compute the candidate features of every
    question. ``articles``: question id -> article for questions without a ``source``.

    ``without_gold``: ask each question as if its gold paragraph were not in the index (the
    chunks overlapping its span are dropped from the hits, the others' ranks close up), which
    turns an answerable question into an on-topic one the documents no longer answer. Every
    question is marked ``no_gold`` (see ``Recipe.no_gold_weight``).
    """
    index = retriever.index
    xs, q_of, hit_of, gold, in_span, texts, keys, qinfo = [], [], [], [], [], [], [], []
    for start in range(0, len(questions), batch):
        part = questions[start : start + batch]
        vectors, tokens = retriever.embedder.encode_queries([q.question for q in part])
        for q, qv, qt in zip(part, vectors, tokens, strict=True):
            hits = retriever.search(q.question, k=DEPTH, question_vector=qv)
            if without_gold:
                hits = _without_gold(hits, q)
            cands = sentence_features(retriever, q.question, qv, hits, question_tokens=qt)
            j = len(qinfo)
            answers = list(q.answers) if q.answers is not None else None
            for key, h, row in zip(cands.keys, cands.hit_of, cands.x, strict=True):
                text = index.documents[key[0]].text[key[1] : key[2]]
                xs.append(row)
                q_of.append(j)
                hit_of.append(h)
                texts.append(text)
                keys.append(key)
                gold.append(holds_answer(text, answers))
                in_span.append(in_gold(q.source, q.span, key))
            qinfo.append(
                {
                    "id": q.id,
                    "question": q.question,
                    "answers": answers,
                    "source": q.source,
                    "span": list(q.span) if q.span else None,
                    "kind": q.kind,
                    "article": q.source or (articles or {}).get(q.id),
                    "q": cands.q,
                    "hits": [[h.chunk.source, h.chunk.start, h.chunk.end] for h in hits],
                    **({"no_gold": True} if without_gold else {}),
                }
            )
        if progress:
            progress(min(start + batch, len(questions)), len(questions))
    width = len(SENTENCE_FEATURES)
    return Dump(
        x=np.asarray(xs, dtype=float).reshape(-1, width),
        q_of=np.asarray(q_of, dtype=int),
        hit_of=np.asarray(hit_of, dtype=int),
        gold=np.asarray(gold, dtype=bool),
        in_span=np.asarray(in_span, dtype=bool),
        texts=texts,
        keys=keys,
        qinfo=qinfo,
    )


def in_gold(source: str | None, span, key: tuple[str, int, int]) -> bool:
    """Whether ``key`` (source, start, end) overlaps the gold passage ``span`` of ``source``
    (any part of ``source`` when ``span`` is None)."""
    return source == key[0] and (span is None or (key[1] < span[1] and span[0] < key[2]))


def _without_gold(hits: list, q: Question) -> list:
    """``hits`` without the chunks that overlap ``q``'s gold span, ranks renumbered as if
    those chunks were not in the index."""

    def is_gold(h) -> bool:
        return in_gold(q.source, q.span, (h.chunk.source, h.chunk.start, h.chunk.end))

    gone = [h for h in hits if is_gold(h)]

    def closed(rank: int | None, attr: str) -> int | None:
        if rank is None:
            return None
        return rank - sum(1 for g in gone if (r := getattr(g, attr)) is not None and r < rank)

    return [
        replace(
            h,
            rank=n,
            dense_rank=closed(h.dense_rank, "dense_rank"),
            bm25_rank=closed(h.bm25_rank, "bm25_rank"),
        )
        for n, h in enumerate((h for h in hits if not is_gold(h)), start=1)
    ]


# --------------------------------------------------------------------------- selection


@dataclass
class Prepared:
    """A dump with per-question row ranges and chunk membership precomputed."""

    d: Dump
    rows: list[np.ndarray]
    member_rows: list[list[list[int]]]  # per question, per hit: local row indices

    @property
    def n(self) -> int:
        return len(self.d.qinfo)

    def articles(self) -> list[str | None]:
        return [q["article"] for q in self.d.qinfo]


def prepare(d: Dump) -> Prepared:
    """Per-question row ranges and chunk membership of a dump."""
    starts = {}
    for i, j in enumerate(d.q_of):
        starts.setdefault(int(j), i)
    rows = []
    for j in range(len(d.qinfo)):
        a = starts.get(j)
        if a is None:
            rows.append(np.arange(0, 0))
            continue
        b = a
        while b < len(d.q_of) and d.q_of[b] == j:
            b += 1
        rows.append(np.arange(a, b))
    member_rows = []
    for j, q in enumerate(d.qinfo):
        keys = [d.keys[i] for i in rows[j]]
        member_rows.append(members(keys, [tuple(h) for h in q["hits"]]))
    return Prepared(d, rows, member_rows)


@dataclass
class Outcome:
    correct: np.ndarray  # shown answer holds a gold answer (False for unanswerable)
    gold_rank: np.ndarray  # 0 = not among the k citations
    words: np.ndarray
    qx: np.ndarray  # question features
    top: np.ndarray  # top candidate score (baseline confidence)


def select(
    p: Prepared,
    scores: np.ndarray,
    *,
    margin: float,
    k: int = 10,
    rank_prior: float = 0.0,
    max_words: int = 80,
    max_sentences: int = 2,
) -> Outcome:
    d = p.d
    n = p.n
    correct = np.zeros(n, dtype=bool)
    gold = np.zeros(n, dtype=int)
    words = np.zeros(n, dtype=int)
    qx = np.zeros((n, len(QUESTION_FEATURES)))
    top = np.full(n, -np.inf)
    for j, q in enumerate(d.qinfo):
        r = p.rows[j]
        s = scores[r]
        texts = [d.texts[i] for i in r]
        hits = q["hits"]
        bonus = np.array([rank_prior / (h + 1) for h in range(len(hits))]) if rank_prior else None
        c = choose(
            s,
            texts,
            p.member_rows[j],
            margin=margin,
            max_words=max_words,
            max_sentences=max_sentences,
            chunk_bonus=bonus,
        )
        shown = " ".join(texts[i] for i in c.shown)
        correct[j] = holds_answer(shown, q["answers"])
        words[j] = len(shown.split())
        top[j] = s[c.shown[0]] if c.shown else -np.inf
        cited = list(dict.fromkeys(c.shown_hits))
        order = list(c.order[:k])
        citations = cited + [h for h in order if h not in cited]
        if q["source"]:
            for rank, h in enumerate(citations, start=1):
                if in_gold(q["source"], q["span"], hits[h]):
                    gold[j] = rank
                    break
        qx[j] = question_row(q["question"], d.x[r], s, q["q"], texts, p.member_rows[j])
    return Outcome(correct, gold, words, qx, top)


# --------------------------------------------------------------------------- folds


def article_folds(answerable: list[str], unanswerable: list[str], n: int = 4) -> list[list[str]]:
    """Articles in ``n`` folds: the articles without unanswerable questions one per fold in
    sorted order, then the others round-robin in sorted order (each fold gets some of both).

    Returns:
        ``n`` sorted lists of article names; every article in exactly one.
    """
    with_un = sorted(set(unanswerable))
    without = sorted(set(answerable) - set(with_un))
    folds: list[list[str]] = [[] for _ in range(n)]
    for i, a in enumerate(without + with_un):
        folds[i % n].append(a)
    return [sorted(f) for f in folds]


# --------------------------------------------------------------------------- models


def _standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and standard deviation (1 for a constant column)."""
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    return x.mean(axis=0), scale


def fit_logistic(
    x: np.ndarray, y: np.ndarray, *, c: float = 1.0, weight: np.ndarray | None = None
) -> dict:
    """Logistic regression on standardised columns, exported as plain arrays.

    Returns:
        ``{"coef": [...], "intercept": b}`` on the RAW columns (the standardisation folded
        in), so ``logit = x @ coef + intercept``.
    """
    from sklearn.linear_model import LogisticRegression

    mean, scale = _standardisation(x)
    model = LogisticRegression(C=c, max_iter=1000, tol=1e-6)
    model.fit((x - mean) / scale, y.astype(int), sample_weight=weight)
    coef = model.coef_[0] / scale
    intercept = float(model.intercept_[0] - coef @ mean)
    return {"coef": [float(v) for v in coef], "intercept": intercept}


def fit_listwise(
    x: np.ndarray,
    y: np.ndarray,
    group: np.ndarray,
    *,
    c: float = 1.0,
    weight: np.ndarray | None = None,
    null: np.ndarray | None = None,
) -> dict:
    """A linear score trained listwise (a conditional logit): for each group (one question's
    candidates) that holds a positive, minus the log of the softmax share of its positives,
    summed with ``weight`` (per row, constant within a group), plus ``||coef||^2 / (2c)`` on
    standardised columns (``C`` as in sklearn). Rows of a group must be contiguous.

    With ``null`` (per row, constant within a group), every group also has a "no answer"
    option whose logit is one learned constant (unregularised), and a group marked ``null``
    has that option, not any of its rows, as its positive. The sentence logits are then
    anchored: the intercept subtracts the null logit, so a sentence's logit is positive when
    it beats "no answer".

    Returns:
        ``{"coef": [...], "intercept": b}`` on the raw columns, as ``fit_logistic`` gives
        them; without ``null``, ``b`` only undoes the standardisation (a softmax ignores a
        constant).
    """
    from scipy.optimize import minimize

    def bounds(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        first = np.r_[True, g[1:] != g[:-1]]
        return np.flatnonzero(first), np.cumsum(first) - 1

    mean, scale = _standardisation(x)
    starts, gid = bounds(group)
    is_null = np.zeros(len(y), bool) if null is None else np.asarray(null, bool)
    keep = ((np.add.reduceat(y.astype(float), starts) > 0) | is_null[starts])[gid]
    xs, pos, group = (x[keep] - mean) / scale, y[keep].astype(float), group[keep]
    w_row = np.ones(len(pos)) if weight is None else np.asarray(weight, dtype=float)[keep]
    starts, gid = bounds(group)
    w_group, g_null = w_row[starts], is_null[keep][starts].astype(float)
    pos = pos * (1 - g_null[gid])  # a null group's positive is the null option only
    k = xs.shape[1]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        coef, b = theta[:k], (theta[k] if null is not None else 0.0)
        s = xs @ coef
        m = np.maximum.reduceat(s, starts)
        if null is not None:
            m = np.maximum(m, b)
        e = np.exp(s - m[gid])
        e_null = np.exp(b - m) if null is not None else np.zeros(len(starts))
        z_all = np.add.reduceat(e, starts) + e_null
        z_pos = np.add.reduceat(e * pos, starts) + e_null * g_null
        value = np.sum(w_group * (np.log(z_all) - np.log(z_pos))) + coef @ coef / (2 * c)
        share = e / z_all[gid] - e * pos / z_pos[gid]
        grad = xs.T @ (w_group[gid] * share) + coef / c
        if null is None:
            return value, grad
        grad_b = np.sum(w_group * (e_null / z_all - e_null * g_null / z_pos))
        return value, np.r_[grad, grad_b]

    options = {"maxiter": 2000, "gtol": 1e-8}
    theta0 = np.zeros(k + (null is not None))
    res = minimize(loss, theta0, jac=True, method="L-BFGS-B", options=options)
    coef = res.x[:k] / scale
    b = res.x[k] if null is not None else 0.0
    return {"coef": [float(v) for v in coef], "intercept": float(-coef @ mean - b)}


def logit(model: dict, x: np.ndarray) -> np.ndarray:
    return x @ np.asarray(model["coef"]) + model["intercept"]


def sentence_logits(p: Prepared, stage1: dict, recipe: Recipe) -> np.ndarray:
    """Stage-1 logits of every row of ``p``, as ``rag.scorer.Model.sentence_logits`` gives
    them (the heading rule included)."""
    x = p.d.x[:, _cols(recipe.sentence_features, SENTENCE_FEATURES)]
    heading = p.d.x[:, SENTENCE_FEATURES.index("heading")]
    return logit(stage1, x) - HEADING_LOGIT * heading


def fit_platt(z: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> dict:
    """``p = sigmoid(a * z + b)`` fitted by maximum likelihood (almost no regularisation)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e6, max_iter=2000, tol=1e-10)
    model.fit(z.reshape(-1, 1), y.astype(int), sample_weight=weight)
    return {"a": float(model.coef_[0, 0]), "b": float(model.intercept_[0])}


def platt(cal: dict, z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(cal["a"] * z + cal["b"])))


# --------------------------------------------------------------------------- the recipe


@dataclass(frozen=True)
class Recipe:
    """What a model bundle is trained with (the defaults are the shipped recipe)."""

    sentence_features: tuple[str, ...] = SENTENCE_FEATURES
    question_features: tuple[str, ...] = QUESTION_FEATURES
    c_sentence: float = 1.0
    c_question: float = 1.0
    #: A second sentence is shown when its stage-1 logit is within this of the first: 4.5
    #: on the listwise scale, whose logits spread about 1.7 times as far as the pointwise
    #: ones that had 3.0.
    margin: float = 4.5
    #: Fixed stage-1 weights (the hand score, for comparison) instead of learned ones.
    fixed_stage1: dict | None = None
    #: Weight in every fit of a reworded question (``qinfo["reworded"]``, see
    #: ``mark_reworded``) against 1 for the others.
    reworded_weight: float = 5.0
    #: Stage 1's loss: "pointwise" (logistic regression per sentence) or "listwise"
    #: (softmax over each question's candidates, ``fit_listwise``).
    stage1_loss: str = "listwise"
    #: The reworded questions' weight in the stage-1 fit only, when it differs.
    reworded_weight_s1: float | None = None
    #: Weight in the stage-2 fit of a question asked without its gold paragraph
    #: (``dump_questions(without_gold=True)``); 0 leaves them out of training altogether.
    #: They never train stage 1 (no candidate is in the gold paragraph).
    no_gold_weight: float = 0.0
    #: Whether they also take part in the calibration (with the same weight).
    no_gold_calibrate: bool = False
    #: With ``stage1_loss="listwise-null"`` (a "no answer" option in every question's
    #: softmax, the positive of the unanswerable ones), their weight in the stage-1 fit.
    null_weight: float = 1.0

    def __post_init__(self) -> None:
        losses = ("pointwise", "listwise", "listwise-null")
        if self.stage1_loss not in losses:
            raise ValueError(f"stage1_loss must be one of {losses}, got {self.stage1_loss!r}")


def mark_reworded(d: Dump) -> Dump:
    """Mark every question of ``d`` as reworded (it gets ``Recipe.reworded_weight``)."""
    for q in d.qinfo:
        q["reworded"] = True
    return d


def is_reworded(p: Prepared) -> np.ndarray:
    return np.array([bool(q.get("reworded")) for q in p.d.qinfo])


def is_no_gold(p: Prepared) -> np.ndarray:
    return np.array([bool(q.get("no_gold")) for q in p.d.qinfo])


def question_weights(p: Prepared, recipe: Recipe, *, stage1: bool = False) -> np.ndarray:
    """Each question's weight in the fits (in stage 1's with ``stage1``):
    ``recipe.reworded_weight`` (or ``reworded_weight_s1``) for reworded ones,
    ``recipe.no_gold_weight`` for those asked without their gold paragraph."""
    reworded = recipe.reworded_weight
    if stage1 and recipe.reworded_weight_s1 is not None:
        reworded = recipe.reworded_weight_s1
    w = np.where(is_reworded(p), reworded, 1.0)
    return np.where(is_no_gold(p), recipe.no_gold_weight, w)


def concat(dumps: list[Dump]) -> Dump:
    """One dump holding the questions of several (same index)."""
    offset, q_of = 0, []
    for d in dumps:
        q_of.append(d.q_of + offset)
        offset += len(d.qinfo)
    return Dump(
        x=np.concatenate([d.x for d in dumps]),
        q_of=np.concatenate(q_of),
        hit_of=np.concatenate([d.hit_of for d in dumps]),
        gold=np.concatenate([d.gold for d in dumps]),
        in_span=np.concatenate([d.in_span for d in dumps]),
        texts=[t for d in dumps for t in d.texts],
        keys=[k for d in dumps for k in d.keys],
        qinfo=[q for d in dumps for q in d.qinfo],
    )


def _cols(names, all_names) -> np.ndarray:
    return np.array([all_names.index(n) for n in names], dtype=int)


def _fit_stage1(p: Prepared, qmask: np.ndarray, recipe: Recipe) -> dict:
    answerable = np.array([bool(q["answers"]) for q in p.d.qinfo])
    with_null = recipe.stage1_loss == "listwise-null"
    rows = (qmask & (answerable | with_null) & ~is_no_gold(p))[p.d.q_of]
    x = p.d.x[rows][:, _cols(recipe.sentence_features, SENTENCE_FEATURES)]
    y = p.d.gold[rows] & p.d.in_span[rows]
    weight = question_weights(p, recipe, stage1=True)
    weight = np.where(answerable, weight, weight * recipe.null_weight)[p.d.q_of[rows]]
    if recipe.stage1_loss == "pointwise":
        return fit_logistic(x, y, c=recipe.c_sentence, weight=weight)
    null = ~answerable[p.d.q_of[rows]] if with_null else None
    return fit_listwise(x, y, p.d.q_of[rows], c=recipe.c_sentence, weight=weight, null=null)


def train_bundle(p: Prepared, inner_folds: list[list[str]], recipe: Recipe) -> dict:
    """Train stage 1, stage 2 and the calibration on the articles of ``inner_folds``.

    Stage 2 learns from stage-1 logits that are out-of-fold over ``inner_folds``, and the
    calibration from stage-2 logits out-of-fold over them, so both see what a new article
    looks like. Questions of other articles are never read.
    """
    articles = np.array([q["article"] or "" for q in p.d.qinfo])
    no_gold = is_no_gold(p)
    in_a = np.isin(articles, [a for f in inner_folds for a in f])
    if not recipe.no_gold_weight:
        in_a &= ~no_gold
    in_cal = in_a if recipe.no_gold_calibrate else in_a & ~no_gold
    s1_oof = np.zeros(len(p.d.x))
    for fold in inner_folds:
        test = np.isin(articles, fold)
        model = recipe.fixed_stage1 or _fit_stage1(p, in_a & ~test, recipe)
        rows = test[p.d.q_of]
        s1_oof[rows] = sentence_logits(p, model, recipe)[rows]
    stage1 = recipe.fixed_stage1 or _fit_stage1(p, in_a, recipe)
    out = select(p, s1_oof, margin=recipe.margin)
    qcols = _cols(recipe.question_features, QUESTION_FEATURES)
    qx, y = out.qx[:, qcols], out.correct
    w = question_weights(p, recipe)
    z_oof = np.zeros(p.n)
    for fold in inner_folds:
        test = np.isin(articles, fold)
        train = in_a & ~test
        model = fit_logistic(qx[train], y[train], c=recipe.c_question, weight=w[train])
        z_oof[test] = logit(model, qx[test])
    stage2 = fit_logistic(qx[in_a], y[in_a], c=recipe.c_question, weight=w[in_a])
    calibration = fit_platt(z_oof[in_cal], y[in_cal], w[in_cal])
    return {
        "articles": sorted(a for f in inner_folds for a in f),
        "stage1": stage1,
        "stage2": stage2,
        "calibration": calibration,
    }


def apply_bundle(p: Prepared, bundle: dict, recipe: Recipe) -> tuple[Outcome, np.ndarray]:
    """The outcome of every question of ``p`` under ``bundle``, and its probabilities."""
    out = select(p, sentence_logits(p, bundle["stage1"], recipe), margin=recipe.margin)
    qx = out.qx[:, _cols(recipe.question_features, QUESTION_FEATURES)]
    return out, platt(bundle["calibration"], logit(bundle["stage2"], qx))
