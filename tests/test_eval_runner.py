"""Runs: the SQuAD smoke subset and the seed set in-process (real model, real FAISS), the
run list, the cached indexes, and the floors a broken setting misses."""

from __future__ import annotations

import shutil

import pytest
from conftest import ROOT, SMOKE_CORPUS, SMOKE_FLOORS

from rag.errors import BadInputError
from rag.evaluation import (
    cached_index_dir,
    check_floors,
    load_floors,
    load_question_set,
    parse_runs,
    prepare_index,
    run_eval,
)
from rag.indexing import build_index
from rag.settings import IndexSettings

SEED_SET = ROOT / "evals" / "seed" / "questions.jsonl"


SEED_FLOORS = {
    "min": {"hit@5": 0.93, "answer_correct": 0.9, "abstain_unanswerable": 0.07},
    "max": {"false_abstention": 0.08},
}


def test_runs_are_validated():
    assert [(r.mode, r.k, r.label) for r in parse_runs("hybrid, dense@k=1", k=10)] == [
        ("hybrid", 10, "hybrid"),
        ("dense", 1, "dense@k=1"),
    ]
    for bad in ("hybrid,sparse", "dense@k=0", "bm25,bm25", " , "):
        with pytest.raises(BadInputError):
            parse_runs(bad)


@pytest.mark.slow
def test_smoke_floors_hold_on_the_squad_subset(squad_smoke):
    assert [r["run"] for r in squad_smoke.rows] == ["hybrid", "dense@k=1"]
    hybrid = squad_smoke.rows[0]
    assert check_floors(hybrid, load_floors(SMOKE_FLOORS)) == [], squad_smoke.table()


@pytest.mark.slow
def test_a_broken_retrieval_setting_misses_the_floors(squad_smoke):
    broken = squad_smoke.rows[1]
    failures = check_floors(broken, load_floors(SMOKE_FLOORS))
    assert any(f.startswith("hit@5 ") for f in failures), failures
    # ...and the comparison table shows the drop.
    hybrid = squad_smoke.rows[0]
    assert broken["hit@5"] < hybrid["hit@5"] - 0.05
    assert broken["answer_correct"] < hybrid["answer_correct"]


@pytest.mark.slow
def test_the_cached_index_is_reused_when_nothing_changed(squad_smoke, tmp_path):
    cache = squad_smoke.index_dir.parent
    assert squad_smoke.index_dir == cached_index_dir(SMOKE_CORPUS, cache_dir=cache)
    again, build = prepare_index(SMOKE_CORPUS, cache_dir=cache)
    assert again == squad_smoke.index_dir and not build.written
    # Another folder (even with the same files) or other settings: another index.
    copy = tmp_path / "smoke-corpus"
    shutil.copytree(SMOKE_CORPUS, copy)
    assert cached_index_dir(copy, cache_dir=cache) != squad_smoke.index_dir
    other = IndexSettings(chunk_tokens=256)
    assert cached_index_dir(SMOKE_CORPUS, other, cache_dir=cache) != squad_smoke.index_dir


@pytest.mark.slow
def test_seed_set_smoke_on_the_real_seeds(tmp_path, embedder):
    index = tmp_path / "index"
    build_index(ROOT / "seeds", index)
    report = run_eval(SEED_SET, index=index, reports_dir=tmp_path / "reports")
    row = report.rows[0]
    assert row["n"] == len(load_question_set(SEED_SET))
    assert report.threshold_source == "default"
    assert check_floors(row, SEED_FLOORS) == [], report.table()
    assert set(report.by_kind["hybrid"]) >= {"fact", "paraphrase", "unanswerable"}
