"""Assign each unanswerable SQuAD 2.0 question the article it was written against.

The questions carry no source. The SQuAD 2.0 dev file is ordered by article (and this copy
keeps that order), so the articles form 12 contiguous runs. Each question votes for the
articles of its 5 best retrieved passages (hybrid retrieval over the sample's corpus, weight
1/rank); a Viterbi pass then finds the labelling that agrees best with the votes while
switching article as rarely as possible (a switch costs ``SWITCH`` votes). The result must be
12 runs, one per article, each article once: the script fails otherwise.

Usage (from the repository root; builds or reuses the cached index of the corpus)::

    python evals/squad-v2-unanswerable/assign_articles.py

Writes ``articles.json`` beside this file: {question id: article file name}.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORPUS = ROOT / "evals" / "squad-sample" / "corpus"
SWITCH = 30.0
TOP = 5


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from rag.evaluation import load_question_set, prepare_index
    from rag.retrieval import Retriever
    from rag.store import Index

    questions = load_question_set(HERE / "questions.jsonl")
    index_dir, _ = prepare_index(CORPUS, cache_dir=ROOT / ".cache" / "indexes")
    retriever = Retriever(Index.load(index_dir))
    articles = sorted(retriever.index.documents)
    col = {a: i for i, a in enumerate(articles)}
    votes = np.zeros((len(questions), len(articles)))
    vectors = retriever.embedder.encode([q.question for q in questions])
    for i, (q, qv) in enumerate(zip(questions, vectors, strict=True)):
        for hit in retriever.search(q.question, k=TOP, question_vector=qv):
            votes[i, col[hit.chunk.source]] += 1.0 / hit.rank
    # Viterbi: score = sum of votes for the label, minus SWITCH per change of label.
    n, m = votes.shape
    best = votes[0].copy()
    back = np.zeros((n, m), dtype=int)
    for i in range(1, n):
        stay = best
        j = int(np.argmax(best))
        switch = best[j] - SWITCH
        back[i] = np.where(stay >= switch, np.arange(m), j)
        best = np.maximum(stay, switch) + votes[i]
    labels = [int(np.argmax(best))]
    for i in range(n - 1, 0, -1):
        labels.append(int(back[i, labels[-1]]))
    labels.reverse()
    runs = [(articles[k], len(list(g))) for k, g in itertools.groupby(labels)]
    names = [a for a, _ in runs]
    if len(runs) != 12 or len(set(names)) != 12:
        print(f"expected 12 runs of distinct articles, got {runs}", file=sys.stderr)
        return 1
    agree = float(np.mean([np.argmax(v) == k for v, k in zip(votes, labels, strict=True)]))
    out = {q.id: articles[k] for q, k in zip(questions, labels, strict=True)}
    (HERE / "articles.json").write_text(json.dumps(out, indent=0, sort_keys=True) + "\n")
    for a, count in runs:
        print(f"{count:5d}  {a}")
    print(f"top-voted article agrees with the assigned one for {agree:.1%} of questions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
