"""Warm `ask` latency on one torch thread (as `rag eval` runs), p50/p95 in ms.

    .venv/bin/python evals/scorer/bench_latency.py INDEX QUESTIONS.jsonl [REPEATS]

Run it with PYTHONPATH pointing at another checkout to time that code on the same index.
"""

import json
import sys
import time

import numpy as np
import torch

from rag.answer import Assistant


def main(index: str, questions: str, repeats: int = 3) -> None:
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    assistant = Assistant(index)
    load = time.perf_counter() - t0
    qs = [json.loads(line)["question"] for line in open(questions, encoding="utf-8")]
    assistant.ask(qs[0])
    times, cpu = [], []
    for _ in range(repeats):
        for q in qs:
            t, c = time.perf_counter(), time.process_time()
            assistant.ask(q)
            times.append((time.perf_counter() - t) * 1000)
            cpu.append((time.process_time() - c) * 1000)
    p50, p95 = np.percentile(times, [50, 95])
    c50, c95 = np.percentile(cpu, [50, 95])
    print(f"  CPU time per ask (less sensitive to other load): p50 {c50:.1f} ms p95 {c95:.1f} ms")
    print(
        f"{index} {questions}: n={len(times)} p50 {p50:.1f} ms p95 {p95:.1f} ms, load {load:.1f}s"
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3)
