"""Shared fixtures: the real model, real FAISS and real files on a tiny corpus."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "corpus"
SQUAD = ROOT / "evals" / "squad-sample"
SMOKE_SET = SQUAD / "smoke.jsonl"
SMOKE_CORPUS = SQUAD / "smoke-corpus"
SMOKE_FLOORS = SQUAD / "smoke-floors.json"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The tiny test corpus (read-only: copy it before changing anything)."""
    return CORPUS


@pytest.fixture(scope="session")
def embedder():
    from rag.embedding import Embedder

    e = Embedder()
    _ = e.model  # load once for the whole session
    return e


@pytest.fixture(scope="session")
def built_index(tmp_path_factory, embedder) -> tuple[Path, Path]:
    """(seeds, index) for the test corpus, built once. Treat both as read-only."""
    from rag.indexing import build_index

    base = tmp_path_factory.mktemp("built")
    seeds, index = base / "seeds", base / "index"
    shutil.copytree(CORPUS, seeds)
    build_index(seeds, index)
    return seeds, index


@pytest.fixture(scope="session")
def assistant(built_index):
    from rag.answer import Assistant

    return Assistant(built_index[1])


@pytest.fixture
def seeds_copy(tmp_path) -> Path:
    """A private, writable copy of the test corpus."""
    dest = tmp_path / "seeds"
    shutil.copytree(CORPUS, dest)
    return dest


def run_rag(*args: str, input: str | None = None, cwd: Path | None = None, timeout: int = 300):
    """Run the real ``rag`` command (``python -m rag``) and return the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "rag", *map(str, args)],
        input=input,
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


@pytest.fixture(scope="session")
def rag_cli():
    return run_rag


@pytest.fixture(scope="session")
def squad_smoke(tmp_path_factory, embedder):
    """The SQuAD smoke subset: hybrid at k=10 (today's setting) and dense at k=1 (broken).

    Run once, read by the runner tests (floors, cache) and the report tests (numbers).
    """
    from rag.evaluation import run_eval

    base = tmp_path_factory.mktemp("squad-smoke")
    return run_eval(
        SMOKE_SET,
        seeds=SMOKE_CORPUS,
        modes="hybrid,dense@k=1",
        reports_dir=base / "reports",
        cache_dir=base / "cache",
    )
