"""How much of late interaction's gain survives compressing the stored sentence token vectors.

    .venv/bin/python evals/scorer/dump.py                   # once: candidate features
    .venv/bin/python evals/scorer/li_compress.py encode     # token vectors of every sentence
    .venv/bin/python evals/scorer/li_compress.py feats VARIANT ...   # LI features per variant
    .venv/bin/python evals/scorer/li_compress.py run VARIANT ...     # OOF (li-s1all-s2 recipe)
    .venv/bin/python evals/scorer/li_compress.py table VARIANT ...

A variant is ``TOKENS-PROJ-DTYPE``: TOKENS ``all`` (every word piece but [CLS]/[SEP], as
late.py) or ``content`` (only the pieces of words with a BM25 term: stop words and
punctuation dropped; a sentence without one keeps all its pieces); PROJ ``384`` (none),
``pcsD`` / ``pcqD`` (the top D eigenvectors of the uncentred second moment of the content
token vectors of the seeds/ corpus, never scored on SQuAD, or of the SQuAD sample's
corpus: unsupervised, but the articles scored here) or ``rndD`` (a seeded random
orthogonal projection); DTYPE ``f32``, ``f16`` or ``i8`` (round(127 * unit vector)). Projected
vectors are re-normalised before storing. The question's token vectors are projected the
same way (not quantised: they are never stored). The features and the recipe are late.py's
``li-s1all-s2`` (LI on every candidate, stage 1 and the best sentence's in stage 2).
"""

from __future__ import annotations

import json
import sys
import time

import late
import numpy as np
from harness import CACHE, ROOT

CORPORA = {"squad": "evals/squad-sample/corpus", "seeds": "seeds"}
SET_CORPUS = {
    "squad": "squad",
    "v2": "squad",
    "para": "squad",
    "reworded": "seeds",
    "seed": "seeds",
    "squad_on_seed": "seeds",
}
SETS = list(SET_CORPUS)


def _retriever(corpus: str):
    from rag.evaluation import prepare_index
    from rag.retrieval import Retriever
    from rag.store import Index

    index_dir, _ = prepare_index(ROOT / CORPORA[corpus], cache_dir=ROOT / ".cache" / "indexes")
    return Retriever(Index.load(index_dir))


def content_mask(tokenizer, texts: list[str], max_length: int) -> list[np.ndarray]:
    """Per text, per word piece (specials included): whether its word has a BM25 term."""
    from rag.terms import terms

    enc = tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=True)
    out = []
    for i, text in enumerate(texts):
        wids = enc.word_ids(i)
        offs = enc["offset_mapping"][i]
        span: dict[int, list[int]] = {}
        for w, (a, b) in zip(wids, offs, strict=True):
            if w is not None:
                s = span.setdefault(w, [a, b])
                s[1] = b
        keep = {w: bool(terms(text[a:b])) for w, (a, b) in span.items()}
        out.append(np.array([w is not None and keep[w] for w in wids]))
    return out


def encode() -> None:
    import torch

    from rag.embedding import Embedder

    torch.set_num_threads(1)
    model = Embedder().model
    for corpus in CORPORA:
        t0 = time.perf_counter()
        r = _retriever(corpus)
        keys = list(r.index.sentence_keys())
        texts = [r.index.documents[k[0]].text[k[1] : k[2]] for k in keys]
        vecs = late.token_vectors(model, texts)
        masks = content_mask(model.tokenizer, texts, model.max_seq_length)
        lens = np.array([len(v) for v in vecs])
        assert all(len(m) == n for m, n in zip(masks, lens, strict=True))
        np.savez(
            CACHE / f"tok_{corpus}.npz",
            vectors=np.concatenate(vecs).astype(np.float32),
            content=np.concatenate(masks),
            lens=lens,
            keys=np.array([json.dumps(k) for k in keys]),
        )
        print(
            f"{corpus}: {len(keys)} sentences, {lens.sum()} pieces, "
            f"{time.perf_counter() - t0:.0f}s",
            flush=True,
        )
    qs = {}
    for name in SETS:
        from rag.fitting import Dump

        for q in Dump.load(CACHE / name).qinfo:
            qs[q["question"]] = None
    qlist = list(qs)
    qv = late.token_vectors(model, qlist)
    np.savez(
        CACHE / "tok_questions.npz",
        vectors=np.concatenate(qv).astype(np.float32),
        lens=np.array([len(v) for v in qv]),
        questions=np.array(qlist),
    )
    print(f"questions: {len(qlist)}", flush=True)


def _load_tok(corpus: str):
    z = np.load(CACHE / f"tok_{corpus}.npz")
    lens = z["lens"]
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    return z["vectors"], z["content"], lens, starts, [tuple(json.loads(k)) for k in z["keys"]]


def projection(kind: str) -> np.ndarray | None:
    if kind == "384":
        return None
    d = int(kind[3:])
    if kind.startswith("rnd"):
        g = np.random.default_rng(0).standard_normal((384, d))
        q, _ = np.linalg.qr(g)
        return q.astype(np.float32)
    corpus = {"pcs": "seeds", "pcq": "squad"}[kind[:3]]
    v, content, *_ = _load_tok(corpus)
    x = v[content].astype(np.float64)
    w, e = np.linalg.eigh(x.T @ x)
    p = e[:, np.argsort(-w)[:d]].astype(np.float32)
    kept = np.sort(w)[::-1][:d].sum() / w.sum()
    print(f"{kind}: fitted on {len(x)} {corpus} content pieces, {kept:.3f} of the energy kept")
    return p


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)


def compress(v: np.ndarray, p: np.ndarray | None, dtype: str) -> np.ndarray:
    if p is not None:
        v = _unit(v @ p)
    if dtype == "f16":
        return v.astype(np.float16).astype(np.float32)
    if dtype == "i8":
        return np.round(v * 127).clip(-127, 127).astype(np.int8).astype(np.float32) / 127
    return v


def feats(variants: list[str]) -> None:
    import torch

    from rag.embedding import Embedder
    from rag.fitting import Dump

    torch.set_num_threads(1)
    model = Embedder().model
    zq = np.load(CACHE / "tok_questions.npz")
    qvectors = zq["vectors"]  # read once (each zq[...] reads the file again)
    qstarts = np.concatenate([[0], np.cumsum(zq["lens"])])
    qindex = {q: i for i, q in enumerate(zq["questions"])}
    retrievers = {c: _retriever(c) for c in CORPORA}
    toks = {c: _load_tok(c) for c in CORPORA}
    for variant in variants:
        t0 = time.perf_counter()
        which, proj, dtype = variant.split("-")
        p = projection(proj)
        out_dir = CACHE / "li" / variant
        out_dir.mkdir(parents=True, exist_ok=True)
        svecs, stats = {}, {}
        for c, (v, content, lens, starts, keys) in toks.items():
            svec, pieces = {}, 0
            for k, a, n in zip(keys, starts, lens, strict=True):
                rows = np.arange(a + 1, a + n - 1) if n > 2 else np.arange(a, a + n)
                if which == "content":
                    m = rows[content[rows]]
                    rows = m if len(m) else rows
                svec[k] = compress(v[rows], p, dtype)
                pieces += len(rows)
            svecs[c] = svec
            stats[c] = pieces / len(keys)
        dim = 384 if p is None else p.shape[1]
        width = {"f32": 4, "f16": 2, "i8": 1}[dtype]
        for name in SETS:
            c = SET_CORPUS[name]
            r, svec = retrievers[c], svecs[c]
            d = Dump.load(CACHE / name)
            out = np.zeros((len(d.x), len(late.LI_FEATURES)))
            rows_of: dict[int, list[int]] = {}
            for i, j in enumerate(d.q_of):
                rows_of.setdefault(int(j), []).append(i)
            for j, q in enumerate(d.qinfo):
                rows = rows_of.get(j, [])
                if not rows:
                    continue
                qi = qindex[q["question"]]
                qv = qvectors[qstarts[qi] : qstarts[qi + 1]]
                if p is not None:
                    qv = _unit(qv @ p)
                keys = [tuple(d.keys[i]) for i in rows]
                out[rows] = late.question_li(model, r, svec, qv, q["question"], keys)
            np.save(out_dir / f"li_{name}.npy", out)
        info = {
            "variant": variant,
            "pieces_per_sentence": stats,
            "dim": dim,
            "bytes_per_piece": dim * width,
            "bytes_per_sentence_squad": stats["squad"] * dim * width + 8,
        }
        (out_dir / "info.json").write_text(json.dumps(info))
        print(json.dumps(info), f"{time.perf_counter() - t0:.0f}s", flush=True)


def run(variants: list[str]) -> None:
    import experiments as E
    from harness import pointwise_recipe as Recipe

    import rag.scorer as S

    base_cache = late.CACHE
    for variant in variants:
        t0 = time.perf_counter()
        data = E.load_all()
        if variant == "lr-all":  # the shipped recipe, no LI (run it first: patch is global)
            recipe = Recipe()
        else:
            recipe = Recipe(
                sentence_features=S.SENTENCE_FEATURES + late.S1_LI,
                question_features=S.QUESTION_FEATURES + late.Q_LI,
            )
            late.CACHE = base_cache / "li" / variant
            late.patch(stage1=True)
            for n in SETS:
                late.attach(data[n], n, 0)
            late.attach(data["train"], ["squad", "v2"], 0)
        sets, _, _ = E.learned(data, recipe)
        rows = [E.summarize(variant, sets, t) for t in (0.3, 0.4, 0.5, 0.6)]
        name = variant if variant == "lr-all" else f"li-{variant}"
        E.save_curves(name, sets)
        (base_cache / f"rows-{name}.json").write_text(json.dumps(rows))
        print(E.fmt(rows), f"\n({time.perf_counter() - t0:.0f}s)", flush=True)
    late.CACHE = base_cache


def table(variants: list[str]) -> None:
    names = [v if v.startswith("lr-") else f"li-{v}" for v in variants]
    late.table(names)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"encode": lambda a: encode(), "feats": feats, "run": run, "table": table}[cmd](args)
