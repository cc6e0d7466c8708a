"""Dump the SQuAD sets asked of single-article indexes, to .cache/scorer/*_single.

    .venv/bin/python evals/scorer/dump_single.py

A user's index is often one or a few documents, like the default article; the SQuAD sets are
otherwise asked of one index of all 16 articles. Here every question is asked of an index of
its own article alone (each article copied into .cache/single/ and indexed there with the
product's defaults), so its unanswerable questions are on-topic for the whole index. Same
features and layout as ``dump.py``; the three sets are ``squad_single``, ``v2_single`` and
``para_single`` (their questions in the order of the per-article indexes, by article name).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / ".cache" / "scorer"
CORPUS = ROOT / "evals/squad-sample/corpus"
SETS = {
    "squad_single": "evals/squad-sample/questions.jsonl",
    "v2_single": "evals/squad-v2-unanswerable/questions.jsonl",
    "para_single": "evals/squad-paraphrased-dev/questions.jsonl",
}


def main() -> None:
    import torch

    from rag.evaluation import load_question_set, prepare_index
    from rag.retrieval import Retriever
    from rag.store import Index
    from rag.training import concat, dump_questions

    torch.set_num_threads(1)
    articles = json.loads((ROOT / "evals/squad-v2-unanswerable/articles.json").read_text())
    questions = {name: load_question_set(ROOT / path) for name, path in SETS.items()}
    parts: dict[str, list] = {name: [] for name in SETS}
    for article in sorted(p.name for p in CORPUS.glob("*.txt")):
        t0 = time.perf_counter()
        corpus = ROOT / ".cache" / "single" / Path(article).stem / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CORPUS / article, corpus / article)
        index_dir, _ = prepare_index(corpus, cache_dir=ROOT / ".cache" / "indexes")
        retriever = Retriever(Index.load(index_dir))
        for name, qs in questions.items():
            mine = [q for q in qs if (q.source or articles.get(q.id)) == article]
            if mine:
                parts[name].append(dump_questions(retriever, mine, articles=articles))
        print(f"{article}: {time.perf_counter() - t0:.0f}s", flush=True)
    for name, dumps in parts.items():
        concat(dumps).save(OUT / name)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
