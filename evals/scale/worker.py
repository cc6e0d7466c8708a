"""One measured step of ``make bench-scale``, run in a fresh process so its time and memory
are its own: ``build``, ``load`` or ``ask``. Prints one JSON line (the last line of stdout).

Only public entry points are used (``rag.indexing.build_index``, ``rag.store.Index.load``,
``rag.retrieval.Retriever``, ``rag.answer.Assistant``), so the same worker measures the
index before and after the store is reworked.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def memory_mb() -> dict[str, float]:
    """This process's resident memory now (VmRSS) and at its peak (VmHWM), in MiB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmRSS", "VmHWM"):
            out[key.lower() + "_mb"] = int(line.split()[1]) / 1024
    return out


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (inclusive method; the value itself for one sample)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def step_build(args) -> dict:
    from rag.indexing import build_index

    t0 = time.perf_counter()
    report = build_index(args.seeds, args.index, rebuild=args.rebuild)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "chunks_total": report.chunks_total,
        "chunks_embedded": report.chunks_embedded,
        "sentences_embedded": report.sentences_embedded,
        "written": report.written,
        "added": len(report.added),
        "changed": len(report.changed),
        "unchanged": len(report.unchanged),
        "line": str(report),
        **memory_mb(),
    }


def step_load(args) -> dict:
    from rag.embedding import Embedder
    from rag.retrieval import Retriever
    from rag.store import Index

    embedder = Embedder()
    _ = embedder.model  # the model's load is not the index's
    t0 = time.perf_counter()
    index = Index.load(args.index)
    t1 = time.perf_counter()
    retriever = Retriever(index, embedder)
    t2 = time.perf_counter()
    return {
        "index_load_s": t1 - t0,
        "retriever_s": t2 - t1,
        "load_s": t2 - t0,
        "chunks": len(index.chunks),
        "sentences": len(index.sentence_vectors),
        "documents": len(index.documents),
        "alive": retriever is not None,
        **memory_mb(),
    }


def step_ask(args) -> dict:
    from rag.answer import Assistant

    questions = [
        json.loads(line)["question"]
        for line in Path(args.questions).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    # Every k-th question: spread over the articles, the same ones every run.
    stride = max(1, len(questions) // (args.n + args.warmup))
    picked = questions[::stride][: args.n + args.warmup]
    t0 = time.perf_counter()
    assistant = Assistant(args.index)
    init_s = time.perf_counter() - t0
    for q in picked[: args.warmup]:
        assistant.ask(q)
    latencies, abstained = [], 0
    for q in picked[args.warmup :]:
        t = time.perf_counter()
        answer = assistant.ask(q)
        latencies.append((time.perf_counter() - t) * 1000)
        abstained += answer.abstained
    # The question's embedding alone (part of every ask, independent of the index): on a
    # busy 2-core machine torch's threads wait for each other and this can dominate.
    embed = []
    for q in picked[args.warmup :]:
        t = time.perf_counter()
        assistant.retriever.embed_question(q)
        embed.append((time.perf_counter() - t) * 1000)
    return {
        "init_s": init_s,
        "n": len(latencies),
        "embed_p50_ms": percentile(embed, 50),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "mean_ms": statistics.fmean(latencies),
        "abstained": abstained,
        **memory_mb(),
    }


STEPS = {"build": step_build, "load": step_load, "ask": step_ask}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("step", choices=sorted(STEPS))
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--seeds", type=Path)
    p.add_argument("--rebuild", action="store_true")
    p.add_argument("--questions", type=Path)
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    args = p.parse_args(argv)
    result = STEPS[args.step](args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
