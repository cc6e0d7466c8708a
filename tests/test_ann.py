"""The search index for a vector set: exact below the threshold, IVF-Flat above it, and the
approximate one finds the exact top 10 (recall@10 >= 0.98) on real vectors and questions."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest
from conftest import SQUAD

from rag.ann import make_search_index
from rag.indexing import build_index
from rag.store import Index

K = 10


@pytest.fixture(scope="module")
def squad_vectors(tmp_path_factory, embedder):
    """Real sentence vectors of two SQuAD sample articles, and real questions on them."""
    articles = ["Apollo_program.txt", "Ctenophora.txt"]
    seeds = tmp_path_factory.mktemp("ann") / "seeds"
    seeds.mkdir()
    for name in articles:
        (seeds / name).write_bytes((SQUAD / "corpus" / name).read_bytes())
    index_dir = seeds.parent / "index"
    build_index(seeds, index_dir)
    index = Index.load(index_dir)
    rows = [json.loads(line) for line in (SQUAD / "questions.jsonl").open(encoding="utf-8")]
    questions = [r["question"] for r in rows if r["source"] in articles][::2]
    return np.asarray(index.sentence_vectors), embedder.encode(questions)


def test_below_the_threshold_the_index_is_exact(squad_vectors):
    vectors, _ = squad_vectors
    index = make_search_index(vectors, threshold=len(vectors) + 1)
    assert isinstance(index, faiss.IndexFlatIP) and index.ntotal == len(vectors)


def test_above_the_threshold_ivf_finds_the_exact_top_10(squad_vectors):
    vectors, questions = squad_vectors
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, want = exact.search(questions, K)
    ann = make_search_index(vectors, threshold=100)
    assert isinstance(ann, faiss.IndexIVFFlat) and ann.ntotal == len(vectors)
    assert 1 <= ann.nprobe < ann.nlist  # approximate: not every list is searched
    _, got = ann.search(questions, K)
    recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(got, want, strict=True)])
    assert len(questions) >= 50 and recall >= 0.98


def test_bad_input_is_refused_with_the_shape(squad_vectors):
    with pytest.raises(ValueError, match="2-D"):
        make_search_index(np.zeros(384, dtype=np.float32))
