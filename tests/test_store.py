"""The on-disk index: the manifest, a round trip, clear errors, and every check (a tampered
or damaged index is refused, on load or when the damaged part is read; damage found on load
is reported by `rag status` and repaired by `rag index`)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from rag.answer import Assistant
from rag.errors import IndexDamagedError, IndexMismatchError, IndexNotFoundError
from rag.indexing import build_index
from rag.settings import FORMAT_VERSION
from rag.store import Index


def _same(a, b) -> bool:
    strip = lambda d: {k: v for k, v in d.to_dict().items() if k != "latency_ms"}  # noqa: E731
    return strip(a) == strip(b)


def test_manifest_records_settings_hashes_and_versions(built_index):
    _, index = built_index
    m = json.loads((index / "manifest.json").read_text())
    assert m["format_version"] == FORMAT_VERSION
    assert m["model"]["dimension"] == 384 and m["model"]["window"] == 256
    assert m["settings"]["chunk_tokens"] > 0
    assert set(m["documents"]) == {"bees.md", "lighthouse.html", "tides.pdf", "volcanoes.txt"}
    assert all(len(d["content_hash"]) == 64 and d["chunks"] >= 1 for d in m["documents"].values())
    assert {"faiss-cpu", "sentence-transformers", "torch"} <= set(m["versions"])
    assert not list(index.glob("*.pkl")) and not list(index.glob("*.pickle"))


def test_round_trip_gives_identical_answers(built_index, assistant, tmp_path):
    copy = tmp_path / "moved-index"
    shutil.copytree(built_index[1], copy)
    again = Assistant(copy)
    for q in (
        "When did Eyjafjallajökull erupt?",
        "Who built the Bell Rock Lighthouse?",
        "How many eggs can a queen lay?",
        "what is the price of tea in China",
    ):
        assert _same(assistant.ask(q), again.ask(q))


def test_missing_index_and_other_model_are_clear_errors(built_index, tmp_path):
    with pytest.raises(IndexNotFoundError, match="rag index"):
        Index.load(tmp_path / "nothing")
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        Index.load(built_index[1], model="some/other-model")
    copy = tmp_path / "old-format"
    shutil.copytree(built_index[1], copy)
    m = json.loads((copy / "manifest.json").read_text())
    m["format_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexMismatchError, match="rag index --rebuild"):
        Index.load(copy)
    m["format_version"] = FORMAT_VERSION
    m["tokens"]["projection"] = "0" * 64  # token vectors of another projection
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexMismatchError, match="another projection.*rag index --rebuild"):
        Index.load(copy)


def _sql(*statements: str):
    def edit(index: Path) -> None:
        db = sqlite3.connect(index / "index.sqlite")
        for statement in statements:
            db.execute(statement)
        db.commit()
        db.close()

    return edit


def _manifest(change):
    def edit(index: Path) -> None:
        m = json.loads((index / "manifest.json").read_text())
        change(m)
        (index / "manifest.json").write_text(json.dumps(m))

    return edit


def _vectors(name: str, change):
    def edit(index: Path) -> None:
        v = np.load(index / name)
        np.save(index / name, change(v))

    return edit


def _scale_first_row(v):
    v[0] *= 2.0
    return v


def _token_start_past_end(v):
    v[1] = v[-1] + 5
    return v


def _first_entry(key: str, delta: int):
    def change(m):
        first = min(m["documents"].values(), key=lambda e: e["first_chunk"])
        first[key] += delta

    return change


_CHUNK_COLUMNS = "id, source, start_char, end_char, sentences, terms, hash"


def _swap_chunk_rows(a: int, b: int):
    return _sql(
        f"CREATE TABLE t AS SELECT row, {_CHUNK_COLUMNS} FROM chunks WHERE row IN ({a}, {b})",
        f"UPDATE chunks SET ({_CHUNK_COLUMNS}) = (SELECT {_CHUNK_COLUMNS} FROM t "
        f"WHERE t.row = {a + b} - chunks.row) WHERE row IN ({a}, {b})",
    )


_EDIT_TEXT = "UPDATE documents SET text = replace(text, '2,000', '9,999')"
#: Damage found when the index is opened (``Index.load``: counts, shapes, files).
LOAD_TAMPERS = {
    "chunk count": _manifest(lambda m: m["counts"].update(chunks=m["counts"]["chunks"] + 1)),
    "document rows": _manifest(_first_entry("chunks", 1)),
    "chunk row missing": _sql("DELETE FROM chunks WHERE row = (SELECT max(row) FROM chunks)"),
    "sentence row missing": _sql("DELETE FROM sentences WHERE row = 3"),
    "document missing": _sql("DELETE FROM documents WHERE source = 'tides.pdf'"),
    "vectors cut short": _vectors("sentences.npy", lambda v: v[:-1]),
    "vectors of another type": _vectors("chunks.npy", lambda v: v.astype(np.float64)),
    "BM25 missing": lambda index: (index / "bm25.data.npy").unlink(),
    "token starts cut short": _vectors("sentence_token_starts.npy", lambda v: v[:-1]),
    "token pieces cut short": _vectors("sentence_tokens.npy", lambda v: v[:-1]),
    "token vectors of another type": _vectors("sentence_tokens.npy", lambda v: v.astype(float)),
    "token vectors missing": lambda index: (index / "sentence_tokens.npy").unlink(),
}
#: Damage found when the damaged part is read (a document, a chunk row, a vector).
READ_TAMPERS = {
    "text edited": _sql(_EDIT_TEXT),
    "content hash": _sql("UPDATE documents SET content_hash = '00' WHERE source = 'bees.md'"),
    # volcanoes.txt holds rows 3 and 4: each is still self-consistent, only the order is off.
    "chunk rows swapped": _swap_chunk_rows(3, 4),
    "chunk rows of two documents swapped": _swap_chunk_rows(0, 1),
    "offset out of range": _sql(
        "UPDATE chunks SET end_char = 10000000 WHERE row = (SELECT max(row) FROM chunks)"
    ),
    "chunk offsets shifted": _sql("UPDATE chunks SET start_char = start_char + 1 WHERE row = 2"),
    "chunk sentences missing": _sql("UPDATE chunks SET sentences = '[]' WHERE row = 0"),
    "sentence misaligned": _sql(
        "UPDATE documents SET sentences = "
        "json_set(sentences, '$[1][0]', json_extract(sentences, '$[1][0]') + 1)"
    ),
    "sentences out of order": _sql(
        "UPDATE documents SET sentences = json_set(sentences, '$[0][1]', 10000000)"
    ),
    "sentence dropped": _sql("UPDATE documents SET sentences = json_remove(sentences, '$[0]')"),
    "location map": _sql('UPDATE documents SET locations = \'[[5, "a"], [1, "b"]]\''),
    "non-unit vector": _vectors("chunks.npy", _scale_first_row),
    "non-unit sentence vector": _vectors("sentences.npy", _scale_first_row),
    "token starts out of order": _vectors("sentence_token_starts.npy", _token_start_past_end),
}


def _read_everything(index: Index) -> None:
    """Read every document, chunk and vector, as answering every question would."""
    for source in index.documents:
        _ = index.documents[source].text
    for row in range(len(index.chunks)):
        _ = index.chunks[row]
    _ = index.chunk_vectors[:], index.sentence_vectors[:]
    _ = index.sentence_tokens[range(len(index.sentence_vectors))]


def test_an_untouched_index_of_nested_folders_passes_the_checks(tmp_path):
    # Seed order (by path) and name order differ here: "a/" sorts before "a b/" as a path.
    seeds = tmp_path / "seeds"
    for folder in ("a b", "a", "a-c"):
        (seeds / folder).mkdir(parents=True)
        (seeds / folder / "x.txt").write_text(f"Folder {folder} holds one short note.\n")
    build_index(seeds, tmp_path / "index")
    assert len(Index.load(tmp_path / "index").documents) == 3


DAMAGED = r"is damaged \(.*\): run `rag index --rebuild`$"


@pytest.mark.parametrize("tamper", list(LOAD_TAMPERS))
def test_damage_to_counts_shapes_or_files_is_refused_on_load(built_index, tmp_path, tamper):
    index = tmp_path / "index"
    shutil.copytree(built_index[1], index)
    LOAD_TAMPERS[tamper](index)
    with pytest.raises(IndexDamagedError, match=DAMAGED):
        Index.load(index)


@pytest.mark.parametrize("tamper", list(READ_TAMPERS))
def test_damage_to_a_text_or_row_is_refused_when_read(built_index, tmp_path, tamper):
    index = tmp_path / "index"
    shutil.copytree(built_index[1], index)
    READ_TAMPERS[tamper](index)
    loaded = Index.load(index)  # lazy: nothing per text is read (or checked) yet
    with pytest.raises(IndexDamagedError, match=DAMAGED):
        _read_everything(loaded)


def test_an_untampered_index_reads_whole(built_index):
    _read_everything(Index.load(built_index[1]))


def test_an_edited_text_is_refused_as_soon_as_its_document_is_read(built_index, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(built_index[1], index)
    _sql(_EDIT_TEXT)(index)
    loaded = Index.load(index)
    assert loaded.documents["volcanoes.txt"].text  # another document reads fine
    with pytest.raises(IndexDamagedError, match=r"'bees.md': text does not match its hash"):
        loaded.documents["bees.md"]


def test_an_edited_text_is_never_quoted(built_index, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(built_index[1], index)
    _sql(_EDIT_TEXT)(index)
    with pytest.raises(IndexDamagedError, match=DAMAGED):
        Assistant(index).ask("How many eggs can the queen lay in a day?")


def test_damaged_index_is_reported_by_status_and_ask_and_repaired_by_index(
    seeds_copy, tmp_path, rag_cli
):
    project = seeds_copy.parent  # holds seeds/; the CLI runs there with relative paths
    assert rag_cli("index", "--quiet", cwd=project).returncode == 0
    # Damage that opening the index finds (an edited text is found when read: above).
    _sql(_EDIT_TEXT, "DELETE FROM chunks WHERE row = (SELECT max(row) FROM chunks)")(
        project / "index"
    )
    q = "How many eggs can the queen lay in a day?"

    ask = rag_cli("ask", q, cwd=project)
    assert ask.returncode == 1 and "9,999" not in ask.stdout
    assert ask.stderr.strip().count("\n") == 0 and "damaged" in ask.stderr

    status = rag_cli("status", cwd=project)
    assert status.returncode == 1 and "damaged" in status.stderr
    assert "indexed" not in status.stdout and "damaged  " in status.stdout

    repair = rag_cli("index", "--quiet", cwd=project)
    assert repair.returncode == 0, repair.stderr
    assert "up to date" not in repair.stdout and "rebuilt" in repair.stdout
    assert "damaged" in repair.stderr and "rebuilding" in repair.stderr
    answer = Assistant(project / "index").ask(q)
    assert "2,000" in answer.answer and "9,999" not in answer.answer
    assert rag_cli("status", cwd=project).stdout.count("indexed") == 4


# --- issue 11: lean loading, persisted BM25, status by size and mtime ----------------------


def test_persisted_bm25_and_idf_equal_those_derived_from_the_chunk_texts(built_index):
    """The saved BM25 index and the IDF read from it are what re-tokenising every chunk at
    load (format 2) gave: same ranking, same scores, same weights."""
    import math
    from collections import Counter

    import bm25s

    from rag.terms import terms

    index = Index.load(built_index[1])
    chunk_terms = [terms(c.text) for c in index.chunks]
    fresh = bm25s.BM25()
    fresh.index(chunk_terms, show_progress=False)
    for q in ("queen eggs day", "lighthouse rock built", "tide moon", "zorblax", "erupt 2010"):
        qt = terms(q)
        depth = len(chunk_terms)
        docs, scores = fresh.retrieve([qt], k=depth, show_progress=False, n_threads=0)
        expected = [(int(i), float(s)) for i, s in zip(docs[0], scores[0], strict=True) if s > 0]
        assert index.bm25_search(qt, depth) == expected
    df = Counter(t for ts in chunk_terms for t in set(ts))
    n = len(chunk_terms)
    for t, d in df.items():
        assert index.idf(t) == math.log(1 + (n - d + 0.5) / (d + 0.5))
    assert index.idf("zorblax") == index.default_idf == math.log(1 + (n + 0.5) / 0.5)
    assert set(index.vocabulary()) == set(df)


def test_load_reads_no_text_and_reads_a_document_once(built_index):
    index = Index.load(built_index[1])
    db = sqlite3.connect(built_index[1] / "index.sqlite")
    reads = []
    index._db.set_trace_callback(reads.append)  # every statement the index runs
    index.chunks[0]
    assert sum("FROM documents" in r for r in reads) == 1
    for row in range(len(index.chunks)):
        index.chunks[row]
    documents_read = sum("FROM documents" in r for r in reads)
    assert documents_read == len({c.source for c in index.chunks})  # each once (cached)
    db.close()


def _touch(path: Path, *, ns: int) -> None:
    import os

    os.utime(path, ns=(ns, ns))


def test_status_trusts_size_and_mtime_and_hashes_the_rest(seeds_copy, tmp_path):
    from rag.store import index_status

    index = tmp_path / "index"
    build_index(seeds_copy, index)
    assert set(index_status(seeds_copy, index).values()) == {"indexed"}

    bees = seeds_copy / "bees.md"
    stamp = bees.stat().st_mtime_ns
    _touch(bees, ns=stamp + 10**9)  # touched, same bytes: hashed, still indexed
    assert index_status(seeds_copy, index)["bees.md"] == "indexed"

    text = bees.read_text()
    bees.write_text(text + "The queen bee is large.\n")
    _touch(bees, ns=stamp)  # mtime restored, size differs: hashed, changed
    assert index_status(seeds_copy, index)["bees.md"] == "changed"

    bees.write_text(text.replace("2,000", "9,999"))
    _touch(bees, ns=stamp)  # same size and mtime: trusted without reading, as make does
    assert index_status(seeds_copy, index)["bees.md"] == "indexed"


def test_a_file_changed_right_after_the_scan_is_hashed(seeds_copy, tmp_path):
    """A file written within the clock's granularity of the build that read it may change
    again without its mtime moving: it is never trusted by size and mtime."""
    from rag.store import index_status

    index = tmp_path / "index"
    bees = seeds_copy / "bees.md"
    bees.write_text(bees.read_text())  # mtime = now: racy for the build that follows
    build_index(seeds_copy, index)
    stamp = bees.stat().st_mtime_ns
    bees.write_text(bees.read_text().replace("2,000", "9,999"))  # same size
    _touch(bees, ns=stamp)
    assert index_status(seeds_copy, index)["bees.md"] == "changed"


def test_from_the_ann_threshold_an_ivf_index_is_written_searched_and_checked(
    built_index, tmp_path, monkeypatch
):
    """Above ``rag.ann.ANN_THRESHOLD`` chunks the build writes ``chunks.ivf`` and search
    goes through it (the threshold is lowered so the tiny corpus crosses it); on this size
    every list is probed, so the ranking equals exact search. A missing file is damage."""
    import rag.ann
    from rag.swap import CHUNK_ANN

    exact = Index.load(built_index[1])
    questions = ("Who built the Bell Rock Lighthouse?", "How many eggs can a queen lay?")
    from rag.embedding import Embedder

    embedder = Embedder(exact.settings.model)
    want = [exact.dense_search(embedder.encode([q])[0], 5) for q in questions]
    assert not (built_index[1] / CHUNK_ANN).exists()

    monkeypatch.setattr(rag.ann, "ANN_THRESHOLD", 3)
    assert len(exact.chunks) >= 3
    index_dir = tmp_path / "index"
    build_index(built_index[0], index_dir)
    assert (index_dir / CHUNK_ANN).is_file()
    ann = Index.load(index_dir)
    assert ann._ann is not None
    got = [ann.dense_search(embedder.encode([q])[0], 5) for q in questions]
    assert [[r for r, _ in g] for g in got] == [[r for r, _ in w] for w in want]
    assert np.allclose([s for g in got for _, s in g], [s for w in want for _, s in w], atol=1e-5)

    (index_dir / CHUNK_ANN).unlink()
    with pytest.raises(IndexDamagedError, match=CHUNK_ANN):
        Index.load(index_dir)
