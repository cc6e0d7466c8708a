"""ANN study: recall@10 against exact search, query time, build time and memory of FAISS
HNSW, IVF-Flat and IVF-PQ, on real vectors with real queries.

Vector sets:

* ``real-chunks`` / ``real-sentences``: the SQuAD sample index's own vectors (1,451 chunks,
  3,452 sentences).
* ``synth-chunks-N`` / ``synth-sentences-N``: bigger sets of *distinct* vectors grown from
  the real chunk (sentence) vectors. Exact copies (what
  ``make bench-scale`` indexes) would tie: ten copies of the best passage score the same, so
  "the" exact top 10 is arbitrary and recall@10 means nothing. Each synthetic vector is a real
  one plus noise drawn from the real vectors' own covariance,
  scaled so its cosine with its origin is about 0.85 (a close paraphrase), then normalised:
  the spread and the main directions of the corpus are kept, and no two vectors tie.

Queries are real: SQuAD sample questions embedded with ``rag.embedding.Embedder``. Recall@10
is |ANN top 10 ∩ exact top 10| / 10 averaged over the queries (exact = ``IndexFlatIP``).
Query time is the median of 200 one-question searches (how ``rag ask`` and the server
search); run with ``OMP_NUM_THREADS=1`` for one core's numbers. Prints a table and writes JSON.

    python evals/scale/ann.py --index /tmp/rag-bench-scale/base/index --sets real,synth-100k
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from rag.ann import ivf_lists, ivf_probes, make_search_index

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = ROOT / "evals" / "squad-sample" / "questions.jsonl"
K = 10
NOISE_COSINE = 0.85
#: IVF-PQ is tried from this many vectors on (its codebooks need the training points).
PQ_MIN = 50_000


def real_vectors(index_dir: Path) -> dict[str, np.ndarray]:
    from rag.store import Index

    index = Index.load(index_dir)
    return {
        "chunks": np.ascontiguousarray(index.chunk_vectors, dtype=np.float32),
        "sentences": np.ascontiguousarray(index.sentence_vectors, dtype=np.float32),
    }


def queries(n: int) -> np.ndarray:
    from rag.embedding import Embedder

    lines = QUESTIONS.read_text(encoding="utf-8").splitlines()
    qs = [json.loads(line)["question"] for line in lines if line.strip()]
    step = max(1, len(qs) // n)
    return Embedder().encode(qs[::step][:n])


def synthetic(pool: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` distinct unit vectors: pool rows plus covariance-shaped noise (cos ≈ 0.85)."""
    rng = np.random.default_rng(seed)
    cov = np.cov(pool, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    shape = vecs * np.sqrt(np.clip(vals, 0, None))  # noise = z @ shape.T ~ N(0, cov)
    # |x + s·e|² ≈ 1 + s²·tr(cov) for noise orthogonal on average: cos = 1/sqrt(that).
    s = np.sqrt((1 / NOISE_COSINE**2 - 1) / np.trace(cov))
    out = np.empty((n, pool.shape[1]), dtype=np.float32)
    for a in range(0, n, 100_000):
        b = min(n, a + 100_000)
        base = pool[rng.integers(0, len(pool), b - a)]
        v = base + s * (rng.standard_normal((b - a, pool.shape[1])) @ shape.T)
        out[a:b] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def index_bytes(index) -> int:
    with tempfile.NamedTemporaryFile(dir=os.environ.get("ANN_TMP", "/tmp")) as f:
        faiss.write_index(index, f.name)
        return os.path.getsize(f.name)


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, exact, strict=True)]))


def per_query_ms(index, q: np.ndarray, n: int = 200) -> float:
    """Median milliseconds of one-question searches (the median shrugs off preemption on a
    shared machine)."""
    times = []
    for row in q[:n]:
        t = time.perf_counter()
        index.search(row[None, :], K)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def candidates(n: int, d: int, quick: bool):
    """(name, params, build function, [(search param name, values)]) for a set of n vectors."""
    nlist = ivf_lists(n)
    hnsw_grid = [(16, 100), (32, 100), (32, 200)] if not quick else [(32, 100)]
    for m, efc in hnsw_grid:

        def build(x, m=m, efc=efc):
            idx = faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)
            idx.hnsw.efConstruction = efc
            idx.add(x)
            return idx

        yield f"HNSW M={m} efC={efc}", build, "efSearch", [16, 32, 64, 128, 256]

    def ivf_flat(x):  # what the store would build: rag.ann's recipe, threshold forced
        return make_search_index(x, threshold=1)

    probes = sorted({8, 16, 32, 64, 128, ivf_probes(nlist)})
    yield f"IVF-Flat (rag.ann) nlist={nlist}", ivf_flat, "nprobe", probes

    def ivf_pq(x, refine=False):
        idx = faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, nlist, 48, 8, faiss.METRIC_INNER_PRODUCT)
        if refine:  # re-rank PQ candidates by exact inner product: needs the full vectors
            idx = faiss.IndexRefineFlat(idx)
            idx.k_factor = 4
        idx.train(x)
        idx.add(x)
        return idx

    if n < PQ_MIN:  # 256 centroids per sub-quantizer need >= 10k training points
        return
    yield f"IVF-PQ48 nlist={nlist}", ivf_pq, "nprobe", [16, 64, 128]
    yield (
        f"IVF-PQ48+refine×4 nlist={nlist}",
        lambda x: ivf_pq(x, refine=True),
        "nprobe",
        [16, 32, 64, 128],
    )


def set_param(index, name: str, value: int) -> None:
    if name == "efSearch":
        index.hnsw.efSearch = value
    else:
        faiss.extract_index_ivf(index).nprobe = value


def study(
    name: str, x: np.ndarray, q: np.ndarray, quick: bool, methods: tuple[str, ...] = ()
) -> list[dict]:
    rows = []
    t = time.perf_counter()
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    flat_build = time.perf_counter() - t
    _, exact = flat.search(q, K)
    rows.append(
        dict(
            set=name,
            n=len(x),
            method="Flat (exact)",
            param="",
            value=None,
            recall=1.0,
            query_ms=per_query_ms(flat, q),
            build_s=flat_build,
            mb=x.nbytes / 2**20,
        )
    )
    print(f"{name}: n={len(x):,} exact {rows[-1]['query_ms']:.2f} ms/query", file=sys.stderr)
    del flat
    for method, build, param, values in candidates(len(x), x.shape[1], quick):
        if methods and not method.lower().startswith(methods):
            continue
        t = time.perf_counter()
        idx = build(x)
        build_s = time.perf_counter() - t
        mb = index_bytes(idx) / 2**20
        for v in values:
            set_param(idx, param, v)
            _, found = idx.search(q, K)
            rows.append(
                dict(
                    set=name,
                    n=len(x),
                    method=method,
                    param=param,
                    value=v,
                    recall=recall(found, exact),
                    query_ms=per_query_ms(idx, q),
                    build_s=build_s,
                    mb=mb,
                )
            )
            r = rows[-1]
            print(
                f"{name}: {method} {param}={v}: recall@10 {r['recall']:.3f} "
                f"{r['query_ms']:.2f} ms build {build_s:.1f}s {mb:.0f} MiB",
                file=sys.stderr,
            )
        del idx
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| set | n | method | search param | recall@10 | ms/query | build s | MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p = f"{r['param']}={r['value']}" if r["param"] else ""
        lines.append(
            f"| {r['set']} | {r['n']:,} | {r['method']} | {p} | {r['recall']:.3f} | "
            f"{r['query_ms']:.2f} | {r['build_s']:.1f} | {r['mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", type=Path, required=True, help="an index of the SQuAD sample")
    p.add_argument(
        "--sets",
        default="real,synth-chunks-100k,synth-sentences-250k,synth-chunks-1m",
        help="real, synth-chunks-N / synth-sentences-N (N like 100k, 1m)",
    )
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--quick-over", type=int, default=500_000, help="one HNSW build above this n")
    p.add_argument(
        "--methods", default="", help="only these, by prefix: hnsw,ivf-flat,ivf-pq (default all)"
    )
    p.add_argument("--out", type=Path, required=True, help="JSON report (a .md beside it)")
    args = p.parse_args(argv)
    real = real_vectors(args.index)
    pool = np.concatenate([real["chunks"], real["sentences"]])
    q = queries(args.queries)
    methods = tuple(m.strip().lower() for m in args.methods.split(",") if m.strip())
    rows: list[dict] = []
    for spec in args.sets.split(","):
        if spec == "real":
            for kind, x in real.items():
                rows += study(f"real-{kind}", x, q, quick=False, methods=methods)
        else:
            _, kind, size = spec.split("-")
            n = int(float(size.lower().replace("k", "e3").replace("m", "e6")))
            x = synthetic(real[kind] if kind in real else pool, n)
            rows += study(spec, x, q, quick=n > args.quick_over, methods=methods)
            del x
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"queries": len(q), "rows": rows}, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(table(rows))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
