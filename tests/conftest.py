"""Shared fixtures: the real model, real FAISS and real files on a tiny corpus.

Store-agnostic tests (answers, retrieval, the JSON contract of ``rag ask`` and the UI) take
``store_index``/``store_assistant``, parametrized over the stores in ``RAG_TEST_STORES``
(default ``faiss,milvus``; e.g. ``RAG_TEST_STORES=milvus make test``): FAISS files, and
Milvus Lite (the real engine, one ``store.db`` shared by the session: it starts once).
"""

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


#: The stores the store-agnostic tests run on.
STORES = [s.strip() for s in os.environ.get("RAG_TEST_STORES", "faiss,milvus").split(",") if s]


@pytest.fixture(scope="session")
def milvus_home(tmp_path_factory) -> Path:
    """A project folder whose ``store.db`` (Milvus Lite) the whole session shares; each index
    on it has a folder of its own name (collections are named after it)."""
    return tmp_path_factory.mktemp("milvus-home")


@pytest.fixture(scope="session")
def milvus_store(milvus_home) -> str:
    """The session's Milvus Lite store, as ``--store`` takes it (absolute path)."""
    return f"milvus://{milvus_home / 'store.db'}"


@pytest.fixture(scope="session", params=STORES)
def store_index(request, built_index, milvus_home, milvus_store) -> tuple[Path, Path, str]:
    """(seeds, index, store) of the test corpus in each store, built once. Read-only."""
    if request.param == "faiss":
        return (*built_index, "faiss")
    from rag.stores import build_store

    seeds, index = milvus_home / "any_store_seeds", milvus_home / "any_store_index"
    if not seeds.exists():
        shutil.copytree(CORPUS, seeds)
    build_store(seeds, index, store=milvus_store)
    return seeds, index, milvus_store


@pytest.fixture(scope="session")
def store_assistant(store_index):
    """An Assistant over ``store_index`` (one per store)."""
    from rag.answer import Assistant

    return Assistant(store_index[1])


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
