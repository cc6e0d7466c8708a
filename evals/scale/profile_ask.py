"""Where a warm `ask` spends its time on one index: p50, then cProfile of the same asks.

    .venv/bin/python evals/scale/profile_ask.py INDEX [QUESTIONS.jsonl]

Questions: every 60th of the SQuAD sample (51), after 10 warm-ups, on one torch thread (as
`rag serve` runs). Used for the README's "Scale" breakdown at 100k passages.
"""

import cProfile
import json
import pstats
import sys
import time

import torch

from rag.answer import Assistant


def main(index: str, questions: str = "evals/squad-sample/questions.jsonl") -> None:
    torch.set_num_threads(1)
    assistant = Assistant(index)
    with open(questions, encoding="utf-8") as f:
        qs = [json.loads(line)["question"] for line in f if line.strip()][::60]
    for q in qs[:10]:
        assistant.ask(q)
    times = []
    for q in qs:
        t = time.perf_counter()
        assistant.ask(q)
        times.append(time.perf_counter() - t)
    times.sort()
    print(f"{len(qs)} asks, p50 {1000 * times[len(times) // 2]:.1f} ms")
    profile = cProfile.Profile()
    profile.enable()
    for q in qs:
        assistant.ask(q)
    profile.disable()
    pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main(*sys.argv[1:])
