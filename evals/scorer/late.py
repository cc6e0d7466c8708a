"""Late interaction (token-level MaxSim with MiniLM) for the answer scorer: dump and OOF runs.

    .venv/bin/python evals/scorer/dump.py                 # once (or copy .cache/scorer/)
    .venv/bin/python evals/scorer/late.py dump            # token features of every candidate
    .venv/bin/python evals/scorer/late.py run [variant ...]
    .venv/bin/python evals/scorer/late.py bench [K ...]   # extra forward pass, p50/p95

The dump encodes every candidate sentence (and its neighbours) once, alone, as the
inference would (one batched call on the top-k sentences), and every question once; it then
computes the MaxSim features for EVERY candidate row. The experiments keep them only on the
top-k rows by stage-1 logit (as the product would compute them) and fill the others.
Same protocol as experiments.py: 4 article folds, stage 2 on OOF stage-1 logits, Platt on
OOF stage-2 logits; paraphrased and squad-on-seed by their article's fold bundle,
seed-reworded and seed by the bundle trained on all 16 articles.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from harness import CACHE, ROOT, Dump, prepare

#: Late-interaction features of one candidate sentence.
LI_FEATURES = (
    "li_mean",  # IDF-weighted mean over the question's content words of MaxSim to the sentence
    "li_min",  # the worst-aligned content word's MaxSim
    "li_low",  # IDF share of content words with MaxSim below LOW
    "li_win_mean",  # li_mean against sentence + neighbours
    "li_win_min",  # li_min against sentence + neighbours
    "li_sym",  # mean over the sentence's tokens of MaxSim to the question
)
LOW = 0.3  # about the median of li_mean on candidate rows (fixed before the OOF runs)
CORPUS = {
    "squad": "evals/squad-sample/corpus",
    "v2": "evals/squad-sample/corpus",
    "para": "evals/squad-sample/corpus",
    "reworded": "seeds",
    "seed": "seeds",
    "squad_on_seed": "seeds",
}


def token_vectors(model, texts: list[str], batch_size: int = 64) -> list[np.ndarray]:
    """Unit token vectors of every text ([CLS] and [SEP] included), float32."""
    out = model.encode(
        texts, output_value="token_embeddings", batch_size=batch_size, convert_to_numpy=False
    )
    vs = []
    for t in out:
        v = t.float().numpy()
        vs.append(v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9))
    return vs


def question_words(model, question: str, idf: dict, default: float):
    """Token rows of the question's content words (stop words and punctuation dropped), the
    word of each row (0..W-1) and each word's IDF (the BM25 vocabulary's)."""
    from rag.terms import terms

    enc = model.tokenizer(
        question, truncation=True, max_length=model.max_seq_length, return_offsets_mapping=True
    )
    rows, word_of, weights, seen = [], [], [], {}
    for i, w in enumerate(enc.word_ids()):
        if w is None:
            continue
        if w not in seen:
            # the whole word of this piece
            spans = [
                o for o, ww in zip(enc["offset_mapping"], enc.word_ids(), strict=True) if ww == w
            ]
            ts = terms(question[spans[0][0] : spans[-1][1]])
            if not ts:
                seen[w] = -1
                continue
            seen[w] = len(weights)
            weights.append(max(idf.get(t, default) for t in ts))
        if seen[w] >= 0:
            rows.append(i)
            word_of.append(seen[w])
    return np.array(rows, int), np.array(word_of, int), np.array(weights, float)


def word_maxsim(qt: np.ndarray, word_of: np.ndarray, n_words: int, st: np.ndarray) -> np.ndarray:
    """Per content word: mean over its pieces of the max cosine to any token of ``st``."""
    m = (qt @ st.T).max(axis=1)
    s = np.bincount(word_of, m, minlength=n_words)
    return s / np.bincount(word_of, minlength=n_words)


def li_row(mw: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    if not len(w):
        return 1.0, 1.0, 0.0
    ws = w.sum()
    return float(mw @ w / ws), float(mw.min()), float(w[mw < LOW].sum() / ws)


def dump(names: list[str]) -> None:
    import torch

    from rag.embedding import Embedder
    from rag.evaluation import prepare_index
    from rag.retrieval import Retriever
    from rag.store import Index

    torch.set_num_threads(1)
    model = Embedder().model
    retrievers = {}
    qcache: dict[str, np.ndarray] = {}
    for name in names or list(CORPUS):
        t0 = time.perf_counter()
        corpus = CORPUS[name]
        if corpus not in retrievers:
            index_dir, _ = prepare_index(ROOT / corpus, cache_dir=ROOT / ".cache" / "indexes")
            r = Retriever(Index.load(index_dir))
            keys = list(r.index.sentence_keys())
            texts = [r.index.documents[k[0]].text[k[1] : k[2]] for k in keys]
            vecs = token_vectors(model, texts)
            # sentence tokens without [CLS]/[SEP]
            retrievers[corpus] = (
                r,
                {k: v[1:-1] if len(v) > 2 else v for k, v in zip(keys, vecs, strict=True)},
            )
            print(
                f"{corpus}: {len(keys)} sentences encoded, {time.perf_counter() - t0:.0f}s",
                flush=True,
            )
        r, svec = retrievers[corpus]
        d = Dump.load(CACHE / name)
        qs = [q["question"] for q in d.qinfo]
        missing = [q for q in dict.fromkeys(qs) if q not in qcache]
        for q, v in zip(missing, token_vectors(model, missing), strict=True):
            qcache[q] = v
        out = np.zeros((len(d.x), len(LI_FEATURES)))
        rows_of: dict[int, list[int]] = {}
        for i, j in enumerate(d.q_of):
            rows_of.setdefault(int(j), []).append(i)
        for j, q in enumerate(qs):
            rows = rows_of.get(j, [])
            if rows:
                out[rows] = question_li(
                    model, r, svec, qcache[q], q, [tuple(d.keys[i]) for i in rows]
                )
        np.save(CACHE / f"li_{name}.npy", out)
        print(
            f"{name}: {len(qs)} questions, {len(out)} rows, {time.perf_counter() - t0:.0f}s",
            flush=True,
        )


def question_li(model, r, svec, qv, question, keys) -> np.ndarray:
    """LI_FEATURES of the candidate sentences ``keys`` (one matmul for all of them)."""
    rows, word_of, w = question_words(model, question, r.idf, r.default_idf)
    need = list(dict.fromkeys(keys + [n for k in keys for n in r.neighbours(k) if n]))
    col = {k: i for i, k in enumerate(need)}
    mats = [svec[k] for k in need]
    lens = np.array([len(m) for m in mats])
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    t = np.concatenate(mats)
    qall = qv[1:-1]
    sim = qall @ t.T  # question tokens (no specials) x candidate tokens
    sym = np.add.reduceat(sim.max(axis=0), starts) / lens
    out = np.zeros((len(keys), len(LI_FEATURES)))
    kc = np.array([col[k] for k in keys])
    out[:, 5] = sym[kc]
    if not len(w):
        out[:, [0, 1, 3, 4]] = 1.0
        return out
    seg = np.maximum.reduceat(sim[rows - 1], starts, axis=1)  # content tokens x keys
    win = seg[:, kc].copy()
    for side in (0, 1):
        idx = [col.get(r.neighbours(k)[side], -1) for k in keys]
        has = np.array([i >= 0 for i in idx])
        if has.any():
            win[:, has] = np.maximum(win[:, has], seg[:, np.array(idx)[has]])
    avg = np.zeros((len(w), len(rows)))
    avg[word_of, np.arange(len(rows))] = 1.0
    avg /= avg.sum(axis=1, keepdims=True)
    ws = w.sum()
    for m, c in ((avg @ seg[:, kc], 0), (avg @ win, 3)):
        out[:, c] = w @ m / ws
        out[:, c + 1] = m.min(axis=0)
        if c == 0:
            out[:, 2] = w @ (m < LOW) / ws
    return out


# --------------------------------------------------------------------------- OOF runs

Q_LI = (
    "top_li_mean",
    "top_li_min",
    "top_li_low",
    "top_li_win_mean",
    "top_li_win_min",
    "top_li_sym",
)
Q_LI_K = ("topk_li_mean_max", "topk_li_win_min_max")  # best of the top TOPK rows
TOPK = 3
S1_K = 5  # stage-1 variants: LI on the top S1_K rows by the hand score, the rest filled
S1_LI = LI_FEATURES + ("li_absent",)


def attach(p, name: str | list[str], s1_k: int | None) -> None:
    """Give a Prepared dump its LI rows (``p.li``) and, for stage-1 variants, extra x columns."""
    from harness import hand_score

    names = [name] if isinstance(name, str) else name
    li = np.concatenate([np.load(CACHE / f"li_{n}.npy") for n in names])
    p.li = li
    if s1_k is None:
        return
    extra = np.zeros((len(li), len(S1_LI)))
    hand = hand_score(p.d.x[:, :20])
    for r in p.rows:
        if not len(r):
            continue
        top = r[np.argsort(-hand[r], kind="stable")[:s1_k]] if s1_k else r
        extra[top, : len(LI_FEATURES)] = li[top]
        rest = np.setdiff1d(r, top)
        extra[rest, -1] = 1.0
    p.d.x = np.hstack([p.d.x[:, :20], extra])


def li_question(p, scores: np.ndarray) -> np.ndarray:
    out = np.zeros((p.n, len(Q_LI) + len(Q_LI_K)))
    for j, r in enumerate(p.rows):
        if not len(r):
            out[j] = [0, 0, 1, 0, 0, 0, 0, 0]
            continue
        order = r[np.argsort(-scores[r], kind="stable")]
        best, top = order[0], order[:TOPK]
        out[j, : len(Q_LI)] = p.li[best]
        out[j, len(Q_LI)] = p.li[top, 0].max()
        out[j, len(Q_LI) + 1] = p.li[top, 4].max()
    return out


def patch(stage1: bool) -> None:
    """Point rag.fitting at the extended feature lists (experiment only)."""
    import rag.fitting as T
    import rag.scorer as S

    base_select = getattr(T, "_base_select", T.select)
    T._base_select = base_select
    base_q = S.QUESTION_FEATURES
    ext_q = base_q + Q_LI + Q_LI_K

    def select(p, scores, **kw):
        T.QUESTION_FEATURES = base_q
        try:
            out = base_select(p, scores, **kw)
        finally:
            T.QUESTION_FEATURES = ext_q
        out.qx = np.hstack([out.qx, li_question(p, scores)])
        return out

    T.select = select
    T.QUESTION_FEATURES = ext_q
    if stage1:
        T.SENTENCE_FEATURES = S.SENTENCE_FEATURES + S1_LI


def run(names: list[str]) -> None:
    import experiments as E
    from harness import pointwise_recipe as Recipe

    import rag.scorer as S

    base_q, base_s = S.QUESTION_FEATURES, S.SENTENCE_FEATURES
    variants = {
        "lr-all": (Recipe(), None),
        "li-s2": (Recipe(question_features=base_q + Q_LI), None),
        "li-s2-mean": (Recipe(question_features=base_q + ("top_li_mean",)), None),
        "li-s2-min": (Recipe(question_features=base_q + ("top_li_min", "top_li_win_min")), None),
        "li-s2k": (Recipe(question_features=base_q + Q_LI + Q_LI_K), None),
        "li-s1s2": (
            Recipe(sentence_features=base_s + S1_LI, question_features=base_q + Q_LI),
            S1_K,
        ),
        "li-s1s2-k3": (
            Recipe(sentence_features=base_s + S1_LI, question_features=base_q + Q_LI),
            3,
        ),
        "li-s1s2-k8": (
            Recipe(sentence_features=base_s + S1_LI, question_features=base_q + Q_LI),
            8,
        ),
        "li-s1": (Recipe(sentence_features=base_s + S1_LI), S1_K),
        "li-s1all-s2": (  # upper bound: LI on every candidate (not affordable at inference)
            Recipe(sentence_features=base_s + S1_LI, question_features=base_q + Q_LI),
            0,
        ),
    }
    for name in names:
        recipe, s1_k = variants[name]
        patch(stage1=s1_k is not None)
        data = E.load_all()
        for n in ("squad", "v2", "para", "reworded", "seed", "squad_on_seed"):
            attach(data[n], n, s1_k)
        attach(data["train"], ["squad", "v2"], s1_k)
        t0 = time.perf_counter()
        sets, full, _ = E.learned(data, recipe)
        rows = [E.summarize(name, sets, t) for t in (0.3, 0.4, 0.5, 0.6)]
        coefs = {
            "stage1": dict(zip(recipe.sentence_features, full["stage1"]["coef"], strict=True)),
            "stage2": dict(zip(recipe.question_features, full["stage2"]["coef"], strict=True)),
        }
        print(name, json.dumps(coefs, default=lambda v: round(float(v), 3)))
        E.save_curves(name, sets)
        (CACHE / f"rows-{name}.json").write_text(json.dumps(rows))
        print(E.fmt(rows), f"\n({time.perf_counter() - t0:.0f}s)", flush=True)


def table(names: list[str]) -> None:
    """The threshold table and the curves of saved runs (rows-*.json, curves-*.json)."""
    import experiments as E

    rows = [r for n in names for r in json.loads((CACHE / f"rows-{n}.json").read_text())]
    print(E.fmt(rows))
    levels = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    curves = {n: json.loads((CACHE / f"curves-{n}.json").read_text()) for n in names}

    def at(points, level):
        return next((c for _, c, a in points if a >= level - 1e-9), None)

    for key, lv in (("squad", levels), ("para", levels), ("reworded", [i / 8 for i in range(7)])):
        print(f"\n{key}: answer-correct vs abstention on the unanswerable\n")
        print("| abstain | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for level in lv:
            cells = [at(curves[n][key], level) for n in names]
            print(f"| {level:.1%} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")


def bench(ks: list[int], n: int = 100) -> None:
    """Warm latency of the extra forward pass (one torch thread, as ``rag eval`` runs) on
    the first ``n`` paraphrased questions: question + its top-k candidates by the hand score
    in one batched call plus the numpy MaxSim, interleaved with the question-embedding call
    ``ask`` already makes, so the ratio of the two holds however loaded the machine is."""
    import torch
    from harness import hand_score

    from rag.embedding import Embedder

    torch.set_num_threads(1)
    model = Embedder().model
    d = Dump.load(CACHE / "para")
    p = prepare(d)
    hand = hand_score(d.x)
    qs = []
    for j, q in enumerate(d.qinfo[:n]):
        r = p.rows[j]
        top = r[np.argsort(-hand[r], kind="stable")]
        qs.append((q["question"], [d.texts[i] for i in top]))
    token_vectors(model, ["warm up"] + qs[0][1][:5])
    for k in ks or [3, 5]:
        base, extra = [], []
        for q, texts in qs:
            t = time.perf_counter()
            model.encode([q], normalize_embeddings=True, convert_to_numpy=True)
            base.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            vs = token_vectors(model, [q] + texts[:k], batch_size=16)
            qv = vs[0][1:-1]
            sim = qv @ np.concatenate([v[1:-1] for v in vs[1:]]).T
            sim.max(axis=1), sim.max(axis=0)
            extra.append((time.perf_counter() - t) * 1000)
        b50, b95 = np.percentile(base, [50, 95])
        e50, e95 = np.percentile(extra, [50, 95])
        print(
            f"k={k}: question embedding p50 {b50:.1f} / p95 {b95:.1f} ms; extra pass "
            f"(question + top-{k}) p50 {e50:.1f} / p95 {e95:.1f} ms; ratio of p50s {e50 / b50:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "dump":
        dump(args)
    elif cmd == "run":
        run(args)
    elif cmd == "bench":
        bench([int(a) for a in args])
    elif cmd == "table":
        table(args)
