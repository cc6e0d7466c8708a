"""The Milvus store on Milvus Lite (the real engine, no mocks), with the real model, on the
tiny corpus: build, search, incremental update and delete, tamper detection, a kill -9 during
the Milvus write, and the same rankings as the FAISS store.

One Milvus Lite folder serves the session (its engine starts once, in this process); each
test's index folder has its own name, so its collections are its own. The kill -9 test
builds in child processes, on a Lite folder of its own (Lite admits one process a folder).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import CORPUS, ROOT

from rag.answer import Assistant
from rag.errors import BadInputError, IndexDamagedError, IndexMismatchError, RagError
from rag.indexing import build_index
from rag.milvus_indexing import build_milvus_index
from rag.milvus_store import (
    MilvusIndex,
    StoreKind,
    StoreSpec,
    connect,
    index_name,
    literal,
    read_milvus_manifest,
)
from rag.retrieval import Retriever, terms
from rag.store import Index, IndexReader
from rag.stores import build_store, open_store
from rag.watch import IndexSync

QUESTION = "Who built the Bell Rock Lighthouse?"


@pytest.fixture
def project(milvus_home, tmp_path, monkeypatch, request) -> Path:
    """cwd = the shared project folder; ``seeds`` a private copy; the index folder is named
    after the test (relative paths, as ``make run`` passes them)."""
    monkeypatch.chdir(milvus_home)
    name = "ix_" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")
    seeds = Path(name + "_seeds")
    shutil.copytree(CORPUS, seeds)
    return Path(name)


STORE = "milvus://store.db"


def _rows(index: MilvusIndex, source: str) -> list[int]:
    got = index.client.query(
        index.collections.chunks,
        filter=f"source == {literal(source)}",
        output_fields=["row"],
    )
    return sorted(int(r["row"]) for r in got)


def _all_rows(index: MilvusIndex, collection: str) -> int:
    return len(index.client.query(collection, filter="row >= 0", output_fields=["row"]))


@pytest.fixture(scope="session")
def milvus_built(milvus_home, embedder):
    """(seeds, index folder) of the tiny corpus in the shared Milvus Lite, built once."""
    cwd = os.getcwd()
    os.chdir(milvus_home)
    try:
        shutil.copytree(CORPUS, "shared_seeds")
        build_milvus_index("shared_seeds", "shared_index", store=STORE)
    finally:
        os.chdir(cwd)
    return milvus_home / "shared_seeds", milvus_home / "shared_index"


@pytest.fixture
def milvus_index(milvus_built, milvus_home, monkeypatch) -> MilvusIndex:
    monkeypatch.chdir(milvus_home)
    return MilvusIndex.load("shared_index")


def test_store_spec_parses_the_three_forms_and_names_them_in_errors():
    assert StoreSpec.parse(None).kind is StoreKind.FAISS
    assert StoreSpec.parse("faiss").kind is StoreKind.FAISS
    lite = StoreSpec.parse("milvus://data/rag.db")
    assert lite.kind is StoreKind.MILVUS_LITE
    assert lite.client_uri == str(Path("data/rag.db").resolve())
    server = StoreSpec.parse("http://milvus.internal:19530/")
    assert server.kind is StoreKind.MILVUS_SERVER and server.client_uri.endswith(":19530")
    for bad in ("milvus://data/rag", "ftp://x", "Milvus", "http://"):
        with pytest.raises(BadInputError, match="milvus://PATH.db"):
            StoreSpec.parse(bad)


def test_build_records_the_store_in_both_manifests(milvus_built, milvus_home):
    _, index_dir = milvus_built
    m = json.loads((index_dir / "manifest.json").read_text())
    assert m["store"] == STORE and m["milvus"]["generation"] == 1
    assert set(m["documents"]) == {"bees.md", "lighthouse.html", "tides.pdf", "volcanoes.txt"}
    assert (index_dir / "terms-1.json").is_file()
    assert not list(index_dir.glob("*.faiss"))
    os.chdir(milvus_home)
    assert read_milvus_manifest(STORE, "shared_index") == m
    assert isinstance(open_store(index_dir), MilvusIndex)


def test_searches_put_the_right_chunk_first(milvus_index, embedder):
    qv = embedder.encode([QUESTION])[0]
    for ranked in (
        milvus_index.dense_search(qv, 5),
        milvus_index.bm25_search(terms(QUESTION), 5),
        milvus_index.hybrid_search(QUESTION, qv, 5),
    ):
        assert ranked, "no hit"
        top = milvus_index.chunks[ranked[0][0]]
        assert top.source == "lighthouse.html" and "Bell Rock" in top.text
    dense = milvus_index.dense_search(qv, 5)
    assert [s for _, s in dense] == sorted((s for _, s in dense), reverse=True)
    assert milvus_index.bm25_search(terms("zzz qqq"), 5) == []
    # Chunks cite exact spans of their documents; vectors are the ones searched.
    for row, cosine in dense:
        c = milvus_index.chunks[row]
        assert c.text == milvus_index.documents[c.source].text[c.start : c.end]
        assert abs(float(milvus_index.chunk_vectors[row] @ qv) - cosine) < 1e-4


def test_sentence_rows_neighbours_and_idf(milvus_index, built_index):
    faiss = Index.load(built_index[1])
    retriever = Retriever(faiss)
    assert milvus_index.default_idf == pytest.approx(retriever.default_idf)
    for term, idf in retriever.idf.items():
        assert milvus_index.idf(term) == pytest.approx(idf), term
    keys = list(faiss.sentence_keys())
    assert len(keys) == milvus_index.manifest["counts"]["sentences"]
    for key in keys:
        row = milvus_index.sentence_row(key)
        assert row is not None
        same = milvus_index.sentence_vectors[row] @ faiss.sentence_vectors[faiss.sentence_row(key)]
        assert float(same) > 0.9999
        assert milvus_index.neighbours(key) == faiss.neighbours(key)
        # the same stored token vectors (rag.late), to the last bit
        faiss_tokens = faiss.sentence_tokens[[faiss.sentence_row(key)]][0]
        assert np.array_equal(milvus_index.sentence_tokens[[row]][0], faiss_tokens)
    assert milvus_index.sentence_row(("bees.md", 0, 1)) is None
    assert milvus_index.sentence_row(("nothing.txt", 0, 5)) is None


def test_same_rankings_as_the_faiss_store(milvus_index, built_index, embedder):
    """Dense: the same top 5 in the same order; BM25: the same best chunk."""
    retriever = Retriever(Index.load(built_index[1]), embedder)
    for q in (
        QUESTION,
        "When did Eyjafjallajökull erupt?",
        "How many eggs can a queen lay?",
        "What causes the tides?",
    ):
        qv = embedder.encode([q])[0]
        faiss_dense = [h.chunk.id for h in retriever.search(q, k=5, mode="dense")]
        milvus_dense = [milvus_index.chunks[r].id for r, _ in milvus_index.dense_search(qv, 5)]
        assert milvus_dense == faiss_dense, q
        faiss_bm25 = retriever.search(q, k=1, mode="bm25")
        milvus_bm25 = milvus_index.bm25_search(terms(q), 5)
        assert milvus_index.chunks[milvus_bm25[0][0]].id == faiss_bm25[0].chunk.id, q


def test_same_scorer_features_as_the_faiss_store(milvus_index, built_index, embedder):
    from rag.features import sentence_features

    stores = (Retriever(Index.load(built_index[1]), embedder), Retriever(milvus_index, embedder))
    for q in (QUESTION, "How many eggs can a queen lay?", "What causes the tides?"):
        qv, qt = embedder.encode_query(q)
        got = []
        for r in stores:
            hits = r.search(q, k=5, mode="dense", question_vector=qv)
            got.append(sentence_features(r, q, qv, hits, question_tokens=qt))
        assert got[0].keys == got[1].keys, q
        assert np.allclose(got[0].x, got[1].x, atol=1e-6), q


def test_an_unchanged_rebuild_writes_nothing(milvus_built, milvus_home, monkeypatch):
    monkeypatch.chdir(milvus_home)
    report = build_milvus_index("shared_seeds", "shared_index", store=STORE)
    assert not report.written and report.chunks_embedded == 0
    assert MilvusIndex.load("shared_index").generation == 1


def test_one_changed_file_replaces_only_its_rows(project, embedder):
    seeds = Path(f"{project}_seeds")
    build_store(seeds, project, store=STORE)
    before = MilvusIndex.load(project)
    others = {s: _rows(before, s) for s in ("bees.md", "tides.pdf", "volcanoes.txt")}
    old_rows = _rows(before, "lighthouse.html")
    path = seeds / "lighthouse.html"
    path.write_text(path.read_text().replace("Robert Stevenson", "Grace Darling"))

    report = build_store(seeds, project)  # the store the index names
    assert report.changed == ("lighthouse.html",) and report.written
    assert not report.full_rebuild and report.chunks_embedded <= 2
    after = MilvusIndex.load(project)
    assert after.generation == 2
    assert {s: _rows(after, s) for s in others} == others  # untouched
    new_rows = _rows(after, "lighthouse.html")
    assert new_rows and not set(new_rows) & set(old_rows)  # old rows deleted, not hidden
    assert _all_rows(after, after.collections.chunks) == len(after.chunks)
    assert "Grace Darling" in after.documents["lighthouse.html"].text
    qv = embedder.encode([QUESTION])[0]
    top = after.chunks[after.hybrid_search(QUESTION, qv, 5)[0][0]]
    assert "Grace Darling" in top.text
    # The answer path reads rows with gaps (the changed file's rows are new ids past the end).
    assert max(new_rows) >= len(after.chunks)
    answer = Assistant(project).ask(QUESTION)
    assert "Grace Darling" in answer.answer and answer.citations[0].source == "lighthouse.html"
    assert after.idf("grace") < after.default_idf  # the new term is counted
    assert not Path(project, "terms-1.json").exists()


def test_a_live_sync_rebuilds_a_milvus_index_in_milvus_and_swaps_it_in(project):
    """The UI's Rebuild, the API and the watcher (``IndexSync``) keep the index's store."""
    seeds = Path(f"{project}_seeds")
    build_store(seeds, project, store=STORE)
    assistant = Assistant(project)
    path = seeds / "lighthouse.html"
    path.write_text(path.read_text().replace("Robert Stevenson", "Grace Darling"))
    record = IndexSync(seeds, project, assistant=assistant).run("ui")
    assert record.ok and record.swapped and record.report.changed == ("lighthouse.html",)
    assert isinstance(assistant.index, MilvusIndex) and assistant.index.generation == 2
    assert "Grace Darling" in assistant.ask(QUESTION).answer


def test_both_stores_offer_the_one_read_interface(milvus_index, built_index):
    assert isinstance(milvus_index, IndexReader)
    assert isinstance(Index.load(built_index[1]), IndexReader)


def test_a_deleted_file_is_gone_and_the_terms_match_a_fresh_build(project, milvus_home):
    seeds = Path(f"{project}_seeds")
    build_store(seeds, project, store=STORE)
    (seeds / "bees.md").unlink()
    report = build_store(seeds, project, store=STORE)
    assert report.removed == ("bees.md",)
    index = MilvusIndex.load(project)
    assert "bees.md" not in index.documents and _rows(index, "bees.md") == []
    assert _all_rows(index, index.collections.sentences) == index.manifest["counts"]["sentences"]
    fresh = Path(f"{project}_fresh")
    build_store(seeds, fresh, store=STORE)
    assert index.df == MilvusIndex.load(fresh).df
    assert index.sentence_row(("bees.md", 0, 10)) is None


def test_file_names_with_quotes_and_accents_survive_filters(project):
    """Sources go into Milvus filter expressions: quotes, backslashes and non-ASCII letters
    (which JSON would write as \\u escapes Milvus does not know) must round-trip."""
    seeds = Path(f"{project}_seeds")
    name = 'Eyjafjallajökull\'s "eruption" \\ notes.txt'
    (seeds / "volcanoes.txt").rename(seeds / name)
    build_store(seeds, project, store=STORE)
    with (seeds / name).open("a", encoding="utf-8") as f:
        f.write("\nAsh closed the airspace over Europe for six days.\n")
    report = build_store(seeds, project, store=STORE)
    assert report.changed == (name,)
    index = MilvusIndex.load(project)
    assert "six days" in index.documents[name].text
    assert _rows(index, name) and index.vector_cache_for([name])
    top = index.chunks[index.bm25_search(terms("ash airspace Europe"), 3)[0][0]]
    assert top.source == name


def test_a_tampered_document_text_is_refused(project):
    seeds = Path(f"{project}_seeds")
    build_store(seeds, project, store=STORE)
    index = MilvusIndex.load(project)
    client, name = index.client, index.collections.documents
    row = client.query(name, filter='source == "volcanoes.txt"', output_fields=["*"])[0]
    row["data"] = row["data"].replace("2010", "2011")
    client.upsert(name, [{k: v for k, v in row.items() if k != "id"}])
    with pytest.raises(IndexDamagedError, match="does not match its hash"):
        MilvusIndex.load(project).documents["volcanoes.txt"]
    # The next build repairs nothing by itself (the seeds did not change); --rebuild does.
    build_store(seeds, project, store=STORE, rebuild=True)
    assert "2010" in MilvusIndex.load(project).documents["volcanoes.txt"].text


def test_clear_errors(project, built_index):
    seeds = Path(f"{project}_seeds")
    build_store(seeds, project, store=STORE)
    with pytest.raises(IndexMismatchError, match="lives in milvus://store.db"):
        build_milvus_index(seeds, project, store="milvus://other.db")
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        MilvusIndex.load(project, model="some/other-model")
    with pytest.raises(IndexMismatchError, match="FAISS"):
        MilvusIndex.load(built_index[1])
    other = Path("elsewhere") / project.name  # another folder of the same name
    other.parent.mkdir(exist_ok=True)
    with pytest.raises(RagError, match="already holds an index named"):
        build_store(seeds, other, store=STORE)


def test_an_index_moves_between_stores_only_when_told(project):
    """A Milvus folder is not "damaged" to the FAISS reader, a plain FAISS build refuses it,
    and --store moves it (a full build there, said in a warning, the old rows removed) with
    the same answer."""
    seeds = Path(f"{project}_seeds")
    build_store(seeds, project, store=STORE)
    with pytest.raises(IndexMismatchError, match=r"in Milvus \(milvus://store.db\)"):
        Index.load(project)
    with pytest.raises(IndexMismatchError, match="--store faiss"):
        build_index(seeds, project)
    in_milvus = Assistant(project).ask(QUESTION).to_dict()
    warned: list[str] = []
    moved = build_store(seeds, project, store="faiss", warn=warned.append)
    assert moved.full_rebuild and moved.written
    assert warned == [f"{project}/ moves from milvus://store.db to faiss: rebuilding it there"]
    assert isinstance(open_store(project), Index)
    prefix = index_name(project) + "_"
    assert not [c for c in connect(StoreSpec.parse(STORE).client_uri).list_collections()
                if c.startswith(prefix)]  # fmt: skip
    in_faiss = Assistant(project).ask(QUESTION).to_dict()
    in_milvus.pop("latency_ms"), in_faiss.pop("latency_ms")
    assert in_faiss == in_milvus
    assert not build_store(seeds, project).written  # keeps FAISS: nothing to do
    back = build_store(seeds, project, store=f"milvus://./{STORE.removeprefix('milvus://')}")
    assert back.full_rebuild and isinstance(open_store(project), MilvusIndex)
    assert not (project / "chunks.npy").exists() and not (project / "index.sqlite").exists()
    # Another spelling of the same file is the same store: no move.
    assert not build_store(seeds, project, store=STORE).written


KILLED_BUILD = """
import json, sys, time
from pathlib import Path
import pymilvus
from rag.milvus_indexing import build_milvus_index

marker = Path(sys.argv[1]) if len(sys.argv) > 1 else None
moment = sys.argv[2] if len(sys.argv) > 2 else None


def stall(name):
    marker.write_text(name)
    time.sleep(600)  # until killed


if moment == "before-flip":
    insert = pymilvus.MilvusClient.insert

    def insert_then_stall(self, name, rows, *args, **kwargs):
        # Rows written for real (documents, sentences, a batch of chunks), not flipped yet.
        out = insert(self, name, rows, *args, **kwargs)
        if name.endswith("_chunks"):
            self.flush(name)
            stall(name)
        return out

    pymilvus.MilvusClient.insert = insert_then_stall
elif moment == "after-flip":
    delete = pymilvus.MilvusClient.delete

    def stall_then_delete(self, name, *args, **kwargs):
        # The manifest names the new generation; the retired rows are not deleted yet.
        manifest = json.loads(Path("index/manifest.json").read_text())
        if manifest["milvus"]["generation"] == 2 and name.endswith("_chunks"):
            stall(name)
        return delete(self, name, *args, **kwargs)

    pymilvus.MilvusClient.delete = stall_then_delete
print(build_milvus_index("seeds", "index", store="milvus://kill.db"), flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["before-flip", "after-flip"])
def test_kill_9_during_the_milvus_write_leaves_a_whole_index(tmp_path, embedder, moment):
    """SIGKILL while the rows are in Milvus but the manifest still names the last good
    generation (it answers), or just after the flip while the retired rows are still there
    (the new generation answers, without them); either way the next build cleans up."""
    shutil.copytree(CORPUS, tmp_path / "seeds")
    script = tmp_path / "build.py"
    script.write_text(KILLED_BUILD)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    run = [sys.executable, str(script)]
    first = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]

    for name in ("tides.pdf", "bees.md"):
        (tmp_path / "seeds" / name).unlink()
    text = (CORPUS / "volcanoes.txt").read_text()
    for i in range(3):
        (tmp_path / "seeds" / f"new-{i}.txt").write_text(text.replace("2010", str(1900 + i)))
    marker = tmp_path / "writing"
    child = subprocess.Popen(
        [*run, str(marker), moment], cwd=tmp_path, env=env, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the build never reached the moment"
            time.sleep(0.1)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL

    os.chdir(tmp_path)  # restored by the autouse fixture below
    index = MilvusIndex.load("index")
    old_docs = {"bees.md", "lighthouse.html", "tides.pdf", "volcanoes.txt"}
    new_docs = {"lighthouse.html", "volcanoes.txt", "new-0.txt", "new-1.txt", "new-2.txt"}
    if moment == "before-flip":
        assert index.generation == 1 and set(index.documents) == old_docs
        # The killed build's rows are in Milvus, but no reader sees them.
        stray = index.client.query(marker.read_text(), filter="born == 2", output_fields=["row"])
    else:
        assert index.generation == 2 and set(index.documents) == new_docs
        stray = index.client.query(
            marker.read_text(), filter='source == "bees.md"', output_fields=["row"]
        )
    assert stray
    qv = embedder.encode([QUESTION])[0]
    top = index.chunks[index.hybrid_search(QUESTION, qv, 5)[0][0]]
    assert top.source == "lighthouse.html"
    dense = index.dense_search(qv, 50)
    assert len(dense) == len(index.chunks)
    assert all(index.chunks[r].source in index.documents for r, _ in dense)

    report = build_milvus_index("seeds", "index", store="milvus://kill.db")
    index = MilvusIndex.load("index")
    assert set(index.documents) == new_docs
    assert report.written == (moment == "before-flip")
    assert _all_rows(index, index.collections.chunks) == len(index.chunks)  # strays gone


@pytest.fixture(autouse=True)
def _restore_cwd():
    cwd = os.getcwd()
    yield
    os.chdir(cwd)


def test_connect_is_shared_per_uri(milvus_home, monkeypatch):
    monkeypatch.chdir(milvus_home)
    uri = StoreSpec.parse(STORE).client_uri
    assert connect(uri) is connect(uri)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_milvus_server_by_url(tmp_path, monkeypatch, embedder):
    """``--store http://host:port``: the same code over the network protocol, against
    Milvus Lite's own gRPC server on loopback (no Milvus standalone can run here)."""
    port = _free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "milvus-lite"),
            "server",
            "--data-dir",
            str(tmp_path / "server-data"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read().decode()[-2000:]
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        monkeypatch.chdir(tmp_path)
        shutil.copytree(CORPUS, "seeds")
        store = f"http://127.0.0.1:{port}"
        build_store("seeds", "index", store=store)
        index = open_store("index")
        assert isinstance(index, MilvusIndex) and index.manifest["store"] == store
        qv = embedder.encode([QUESTION])[0]
        top = index.chunks[index.hybrid_search(QUESTION, qv, 5)[0][0]]
        assert top.source == "lighthouse.html"
        assert not build_store("seeds", "index").written
    finally:
        server.terminate()
        server.wait(timeout=30)
