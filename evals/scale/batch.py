"""Embedding throughput of ``rag.embedding.Embedder`` by batch size, on real SQuAD sample
chunk texts and sentences (the texts a build embeds).

Each round encodes the same sample once per batch size, in a rotated order (so a slow spell
on a shared machine does not always hit the same size); the report gives each size's median
texts/s over the rounds and its speed relative to the best. Prints a table and writes JSON.

    python evals/scale/batch.py --index /tmp/rag-bench-scale/base/index --out REPORT.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path


def sample_texts(index_dir: Path, n_chunks: int, n_sentences: int, seed: int = 0):
    from rag.store import Index

    index = Index.load(index_dir)
    rng = random.Random(seed)
    chunks = [c.text for c in index.chunks]
    sentences = [index.documents[s].text[a:b] for s, a, b in index.sentence_rows]
    return (
        rng.sample(chunks, min(n_chunks, len(chunks))),
        rng.sample(sentences, min(n_sentences, len(sentences))),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", type=Path, required=True, help="an index of the SQuAD sample")
    p.add_argument("--sizes", default="16,32,64,128")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--chunks", type=int, default=256)
    p.add_argument("--sentences", type=int, default=768)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    from rag.embedding import Embedder

    sizes = [int(s) for s in args.sizes.split(",")]
    chunks, sentences = sample_texts(args.index, args.chunks, args.sentences)
    # "build": both in one call, as a build embeds them (sorted by length together).
    sets = {"chunks": chunks, "sentences": sentences, "build": chunks + sentences}
    Embedder().encode(sets["sentences"][:64])  # load and warm the model
    runs: dict[str, dict[int, list[float]]] = {k: {b: [] for b in sizes} for k in sets}
    cpu_runs: dict[str, dict[int, list[float]]] = {k: {b: [] for b in sizes} for k in sets}
    loads = [os.getloadavg()[0]]
    for r in range(args.rounds):
        order = sizes[r % len(sizes) :] + sizes[: r % len(sizes)]
        for kind, texts in sets.items():
            for b in order:
                t, cpu = time.perf_counter(), time.process_time()
                Embedder(batch_size=b).encode(texts)
                rate = len(texts) / (time.perf_counter() - t)
                cpu_rate = len(texts) / (time.process_time() - cpu)
                runs[kind][b].append(rate)
                cpu_runs[kind][b].append(cpu_rate)
                print(
                    f"round {r + 1} {kind:9} batch {b:3}: {rate:6.1f} texts/s "
                    f"({cpu_rate:5.1f} per CPU second)",
                    file=sys.stderr,
                )
        loads.append(os.getloadavg()[0])
    result = {"texts": {k: len(v) for k, v in sets.items()}, "rounds": args.rounds, "loads": loads}
    head = [f"{k} texts/s" for k in sets] + [f"{k} per CPU s" for k in sets]
    lines = ["| batch | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]

    def summary(rates):
        return {k: {b: statistics.median(v) for b, v in rates[k].items()} for k in sets}

    medians, cpu_medians = summary(runs), summary(cpu_runs)
    for b in sizes:
        cells = [f"{medians[k][b]:.1f}" for k in sets] + [f"{cpu_medians[k][b]:.1f}" for k in sets]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    best = max(sizes, key=medians["build"].get)
    best_cpu = max(sizes, key=cpu_medians["build"].get)
    lines.append(
        f"\nmedians of {args.rounds} rounds; best batch size for a build's texts by wall time: "
        f"{best}, by CPU "
        f"time: {best_cpu}; load average {min(loads):.1f}–{max(loads):.1f}"
    )
    result.update(
        runs=runs,
        cpu_runs=cpu_runs,
        medians=medians,
        cpu_medians=cpu_medians,
        best=best,
        best_cpu=best_cpu,
    )
    print("\n".join(lines))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
