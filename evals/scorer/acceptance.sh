#!/bin/sh
# Issue 8 acceptance through `rag eval` (reports under evals/scorer/reports/), then the
# trade-off of the SQuAD sample against the SQuAD 2.0 unanswerable questions.
# Run from the repository root after `make install` and `rag index`.
set -e
RAG=${RAG:-.venv/bin/rag}
R=evals/scorer/reports
SQ=evals/squad-sample/corpus
$RAG eval evals/squad-sample/questions.jsonl --seeds $SQ --reports $R
$RAG eval evals/squad-v2-unanswerable/questions.jsonl --seeds $SQ --reports $R
$RAG eval evals/squad-paraphrased-dev/questions.jsonl --seeds $SQ --reports $R
$RAG index
$RAG eval evals/seed-reworded/questions.jsonl --reports $R
$RAG eval evals/seed/questions.jsonl --reports $R
$RAG eval evals/squad-on-seed/questions.jsonl --reports $R
.venv/bin/python evals/scorer/acceptance.py $R
