# The commands in the README. `make run` and `make test` each do all set-up on a fresh machine.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run test eval index lint loadtest clean scorer scorer-check bench-scale

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first: 2.13.0 is a CPU build on local disk; any other spec pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

index: install
	$(BIN)/rag index

run: install
	$(BIN)/rag index
	$(BIN)/rag serve

test: install
	$(BIN)/python -m pytest

# index first: the seed set runs on index/ (and its calibrated threshold) as `rag ask` does.
eval: index
	$(BIN)/rag eval evals/seed/questions.jsonl --name seed --compare hybrid,dense,bm25
	$(BIN)/rag eval evals/squad-sample/questions.jsonl --seeds evals/squad-sample/corpus --name squad-sample --compare hybrid,dense,bm25,dense@k=1

# The answer scorer's weights (rag/scorer.json) from the SQuAD data in evals/: a few minutes.
scorer: install
	$(BIN)/python -m rag.training

# Retrain in memory and compare with the committed rag/scorer.json (exit 1 if it differs).
scorer-check: install
	$(BIN)/python -m rag.training --check

# 8 clients over HTTP for 60 s against `rag serve --watch` on 127.0.0.1 (a temp copy of seeds/),
# with a document added mid-way; stops by itself. Numbers: evals/reports/loadtest/.
loadtest: install
	$(BIN)/python evals/loadtest.py --out evals/reports/loadtest/loadtest.json

# Indexes of about 10k, 100k and 1M passages from copies of the SQuAD sample (its vectors
# reused): build, re-index, load, memory, disk, ask, `rag status` and page-load times with a
# growth exponent each. Bounded by BENCH_BUDGET seconds; a size projected not to fit is
# projected, not run. Report: evals/scale/reports/$(LABEL)/ (evals/scale/README.md).
SIZES        ?= 10000,100000,1000000
LABEL        ?= run
BENCH_BUDGET ?= 7200
bench-scale: install
	$(BIN)/python evals/scale/bench.py --sizes $(SIZES) --label $(LABEL) --budget $(BENCH_BUDGET)

lint: install
	$(BIN)/ruff check rag ui tests evals
	$(BIN)/ruff format --check rag ui tests evals

clean:
	rm -rf $(VENV) .pytest_cache
