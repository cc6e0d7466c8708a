"""Milvus store vs FAISS/bm25s on a question set: hit@1/hit@5 and per-query latency.

    .venv/bin/python evals/milvus/compare.py            # the SQuAD sample (defaults)

Builds a FAISS index and a Milvus Lite index of the same corpus (under ``--work``), embeds
every question once, then ranks chunks with each store and mode. Gold: the question's source
and a chunk overlapping its answer span (``rag.evaluation.gold_rank``). Latency: retrieval
only (the question vector is given), per query, in ms. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from rag.embedding import Embedder
from rag.evaluation import gold_rank
from rag.indexing import build_index
from rag.milvus_indexing import build_milvus_index
from rag.milvus_store import MilvusIndex
from rag.retrieval import Retriever, fuse, terms
from rag.store import Index

DEPTH = 50  # what Retriever.search looks at for k <= 12


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=Path("evals/squad-sample/corpus"))
    p.add_argument("--questions", type=Path, default=Path("evals/squad-sample/questions.jsonl"))
    p.add_argument("--work", type=Path, default=Path(".cache/milvus-eval"))
    p.add_argument("--out", type=Path, default=Path("evals/milvus/results.json"))
    p.add_argument("--limit", type=int, default=None, help="first N questions only")
    a = p.parse_args(argv)
    questions = [json.loads(line) for line in a.questions.read_text().splitlines() if line]
    questions = [q for q in questions if q.get("answers") and q.get("source")][: a.limit]

    t = time.perf_counter()
    faiss_report = build_index(a.corpus, a.work / "faiss-index")
    faiss_build = time.perf_counter() - t
    t = time.perf_counter()
    milvus_report = build_milvus_index(
        a.corpus, a.work / "milvus_index", store=f"milvus://{a.work}/milvus.db"
    )
    milvus_build = time.perf_counter() - t
    embedder = Embedder()
    retriever = Retriever(Index.load(a.work / "faiss-index"), embedder)
    milvus = MilvusIndex.load(a.work / "milvus_index")
    vectors = embedder.encode([q["question"] for q in questions])

    def spans_faiss(hits):
        return [(h.chunk.source, h.chunk.start, h.chunk.end) for h in hits]

    def spans_milvus(ranked):
        out = []
        for row, _ in ranked:
            c = milvus.chunks[row]
            out.append((c.source, c.start, c.end))
        return out

    runs: dict[str, dict] = {}
    agree: dict[str, list[bool]] = {
        "dense top-5 identical": [],
        "bm25 top-1 identical": [],
        "bm25 top-5 identical": [],
    }

    def record(name: str, q: dict, spans, ms: float) -> None:
        r = runs.setdefault(name, {"ranks": [], "ms": []})
        cites = [{"source": s, "start": a, "end": b} for s, a, b in spans[:10]]
        r["ranks"].append(gold_rank(cites, q["source"], q.get("span")))
        r["ms"].append(ms)

    for q, qv in zip(questions, vectors, strict=True):
        text = q["question"]
        for mode in ("dense", "bm25", "hybrid"):
            t = time.perf_counter()
            hits = retriever.search(text, k=10, mode=mode, question_vector=qv)
            record(f"faiss {mode}", q, spans_faiss(hits), 1e3 * (time.perf_counter() - t))
        qt = terms(text)
        t = time.perf_counter()
        dense = milvus.dense_search(qv, DEPTH)
        t_dense = 1e3 * (time.perf_counter() - t)
        t = time.perf_counter()
        bm25 = milvus.bm25_search(qt, DEPTH)
        t_bm25 = 1e3 * (time.perf_counter() - t)
        t = time.perf_counter()
        hybrid = milvus.hybrid_search(text, qv, DEPTH)
        t_hybrid = 1e3 * (time.perf_counter() - t)
        t = time.perf_counter()
        client_fused = fuse(dense, bm25)
        t_fuse = 1e3 * (time.perf_counter() - t)
        record("milvus dense", q, spans_milvus(dense[:10]), t_dense)
        record("milvus bm25", q, spans_milvus(bm25[:10]), t_bm25)
        # Design A: Milvus's RRF for the order, plus both plain searches for the ranks.
        record("milvus hybrid (Milvus RRF)", q, spans_milvus(hybrid[:10]), t_hybrid)
        runs["milvus hybrid (Milvus RRF)"].setdefault("ms_with_ranks", []).append(
            t_hybrid + t_dense + t_bm25
        )
        # Design B: the two plain searches (needed for the ranks anyway), fused by us.
        record(
            "milvus hybrid (client RRF)",
            q,
            spans_milvus(client_fused[:10]),
            t_dense + t_bm25 + t_fuse,
        )
        # Agreement with the FAISS store, query by query (chunk ids: rows differ by store).
        faiss_dense = [
            h.chunk.id for h in retriever.search(text, k=5, mode="dense", question_vector=qv)
        ]
        faiss_bm25 = [
            h.chunk.id for h in retriever.search(text, k=5, mode="bm25", question_vector=qv)
        ]
        agree["dense top-5 identical"].append(
            [milvus.chunks[r].id for r, _ in dense[:5]] == faiss_dense
        )
        agree["bm25 top-1 identical"].append(
            [milvus.chunks[r].id for r, _ in bm25[:1]] == faiss_bm25[:1]
        )
        agree["bm25 top-5 identical"].append(
            [milvus.chunks[r].id for r, _ in bm25[:5]] == faiss_bm25
        )
        same = [r for r, _ in hybrid[:10]] == [r for r, _ in client_fused[:10]]
        runs["milvus hybrid (client RRF)"].setdefault("same_top10_as_milvus_rrf", []).append(same)

    table = {}
    for name, r in runs.items():
        ranks = r["ranks"]
        row = {
            "n": len(ranks),
            "hit@1": round(sum(1 for x in ranks if x == 1) / len(ranks), 4),
            "hit@5": round(sum(1 for x in ranks if x and x <= 5) / len(ranks), 4),
            "p50_ms": round(statistics.median(r["ms"]), 2),
            "p95_ms": round(float(np.percentile(r["ms"], 95)), 2),
        }
        if "ms_with_ranks" in r:
            row["p50_ms_with_both_ranks"] = round(statistics.median(r["ms_with_ranks"]), 2)
            row["p95_ms_with_both_ranks"] = round(float(np.percentile(r["ms_with_ranks"], 95)), 2)
        if "same_top10_as_milvus_rrf" in r:
            same = r["same_top10_as_milvus_rrf"]
            row["same_top10_as_milvus_rrf"] = round(sum(same) / len(same), 4)
        table[name] = row
    result = {
        "corpus": str(a.corpus),
        "questions": str(a.questions),
        "chunks": len(milvus.chunks),
        "build_s": {"faiss": round(faiss_build, 1), "milvus": round(milvus_build, 1)},
        "builds": {"faiss": str(faiss_report), "milvus": str(milvus_report)},
        "depth": DEPTH,
        "results": table,
        "agreement_with_faiss": {k: round(sum(v) / len(v), 4) for k, v in agree.items()},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"{'ranking':30} {'n':>5} {'hit@1':>6} {'hit@5':>6} {'p50 ms':>7} {'p95 ms':>7}")
    for name, row in table.items():
        print(
            f"{name:30} {row['n']:5d} {row['hit@1']:6.3f} {row['hit@5']:6.3f} "
            f"{row['p50_ms']:7.2f} {row['p95_ms']:7.2f}"
        )
    for name, share in result["agreement_with_faiss"].items():
        print(f"Milvus vs FAISS, {name}: {share:.4f} of questions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
