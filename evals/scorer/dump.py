"""Dump candidate features of every question set once, to .cache/scorer/ (experiments read them).

.venv/bin/python evals/scorer/dump.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / ".cache" / "scorer"
SETS = {
    # name: (question set, corpus)
    "squad": ("evals/squad-sample/questions.jsonl", "evals/squad-sample/corpus"),
    "v2": ("evals/squad-v2-unanswerable/questions.jsonl", "evals/squad-sample/corpus"),
    "para": ("evals/squad-paraphrased-dev/questions.jsonl", "evals/squad-sample/corpus"),
    "reworded": ("evals/seed-reworded/questions.jsonl", "seeds"),
    "seed": ("evals/seed/questions.jsonl", "seeds"),
    "squad_on_seed": ("evals/squad-sample/questions.jsonl", "seeds"),
    # The SQuAD sample asked as if each question's gold paragraph were not in the index.
    "squad_nogold": ("evals/squad-sample/questions.jsonl", "evals/squad-sample/corpus"),
}


def main(names: list[str]) -> None:
    import torch

    from rag.evaluation import load_question_set, prepare_index
    from rag.retrieval import Retriever
    from rag.store import Index
    from rag.training import dump_questions

    torch.set_num_threads(1)
    articles = json.loads((ROOT / "evals/squad-v2-unanswerable/articles.json").read_text())
    retrievers = {}
    for name in names or list(SETS):
        qpath, corpus = SETS[name]
        if corpus not in retrievers:
            index_dir, _ = prepare_index(ROOT / corpus, cache_dir=ROOT / ".cache" / "indexes")
            retrievers[corpus] = Retriever(Index.load(index_dir))
        t0 = time.perf_counter()
        questions = load_question_set(ROOT / qpath)
        d = dump_questions(
            retrievers[corpus], questions, articles=articles, without_gold=name.endswith("nogold")
        )
        d.save(OUT / name)
        print(
            f"{name}: {len(questions)} questions, {len(d.x)} candidates, "
            f"{time.perf_counter() - t0:.0f}s",
            flush=True,
        )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(sys.argv[1:])
