"""Building the index: incremental rebuilds through the real CLI, and what a build embeds."""

from __future__ import annotations

import json

import numpy as np

from rag.answer import Assistant
from rag.indexing import build_index
from rag.store import Index


def test_add_change_delete_and_unchanged_rebuild(seeds_copy, tmp_path, rag_cli):
    index = tmp_path / "index"
    first = rag_cli("index", "--seeds", seeds_copy, "--index", index, "--quiet")
    assert first.returncode == 0, first.stderr
    assert "4 added" in first.stdout

    again = rag_cli("index", "--seeds", seeds_copy, "--index", index)
    assert again.returncode == 0 and "0 of" in again.stdout and "4 unchanged" in again.stdout

    q = "What colour is the Zorblax fruit?"
    before = Assistant(index).ask(q)
    assert before.abstained
    (seeds_copy / "zorblax.txt").write_text(
        "The Zorblax fruit is bright violet when ripe. It grows only on the island of Quell.\n"
    )
    (seeds_copy / "bees.md").write_text("# Honey bees\n\nThe queen bee can lay 9,999 eggs a day.\n")
    (seeds_copy / "volcanoes.txt").unlink()
    out = rag_cli("index", "--seeds", seeds_copy, "--index", index)
    assert out.returncode == 0, out.stderr
    assert "1 added, 1 changed, 1 removed, 2 unchanged" in out.stdout

    after = Assistant(index)
    got = after.ask(q)
    assert not got.abstained and "violet" in got.answer
    assert got.citations[0].source == "zorblax.txt"
    assert "9,999" in after.ask("How many eggs can the queen bee lay in a day?").answer
    for c in after.ask("When did Eyjafjallajökull erupt?", k=50).citations:
        assert c.source != "volcanoes.txt"


def test_build_report_counts_only_the_texts_it_embedded(seeds_copy, tmp_path):
    index = tmp_path / "index"
    first = build_index(seeds_copy, index)
    assert first.chunks_embedded == first.chunks_total > 0 and first.sentences_embedded > 0
    unchanged = build_index(seeds_copy, index)
    assert (unchanged.chunks_embedded, unchanged.sentences_embedded) == (0, 0)

    # One chunk of two new sentences: 1 chunk + 2 sentence vectors. One chunk that is a
    # single sentence: its vector serves both, counted once as a chunk.
    (seeds_copy / "pair.txt").write_text("Quell island has violet fruit. Its harbour is small.\n")
    (seeds_copy / "single.txt").write_text("The lighthouse on Quell is painted green.\n")
    added = build_index(seeds_copy, index)
    assert added.added == ("pair.txt", "single.txt")
    assert (added.chunks_embedded, added.sentences_embedded) == (2, 2)
    assert added.chunks_total == first.chunks_total + 2


def test_a_change_rechunks_only_the_changed_document_and_reuses_the_rest(seeds_copy, tmp_path):
    index = tmp_path / "index"
    first = build_index(seeds_copy, index)
    assert first.chunked == ("bees.md", "lighthouse.html", "tides.pdf", "volcanoes.txt")
    before = Index.load(index)
    kept = {
        i: (before.chunks[i], before.chunk_vectors[i].copy())
        for i in range(len(before.chunks))
        if before.chunks[i].source != "bees.md"
    }
    kept_tokens = {
        k: before.sentence_tokens.stored(before.sentence_row(k)).copy()
        for k in before.sentence_keys()
        if k[0] != "bees.md"
    }

    (seeds_copy / "bees.md").write_text("# Honey bees\n\nThe queen bee can lay 9,999 eggs a day.\n")
    report = build_index(seeds_copy, index)
    assert report.chunked == ("bees.md",) and report.changed == ("bees.md",)
    after = Index.load(index)
    rows = {after.chunks[i].id: i for i in range(len(after.chunks))}
    for chunk, vector in kept.values():
        row = rows[chunk.id]  # same id: same source, offsets and text
        assert after.chunks[row] == chunk
        assert np.array_equal(after.chunk_vectors[row], vector)
    # A reused document answers as a freshly built one does.
    fresh = tmp_path / "fresh"
    build_index(seeds_copy, fresh)
    q = "Who built the Bell Rock Lighthouse?"
    a, b = Assistant(index).ask(q).to_dict(), Assistant(fresh).ask(q).to_dict()
    a.pop("latency_ms"), b.pop("latency_ms")
    assert a == b
    documents = [json.loads((i / "manifest.json").read_text())["documents"] for i in (index, fresh)]
    assert documents[0] == documents[1]
    # The kept documents' token vectors are copied, and the whole file is a fresh build's.
    for key, stored in kept_tokens.items():
        assert np.array_equal(after.sentence_tokens.stored(after.sentence_row(key)), stored)
    new = Index.load(fresh)
    assert np.array_equal(new.sentence_tokens.starts, after.sentence_tokens.starts)
    assert np.array_equal(new.sentence_tokens.raw, after.sentence_tokens.raw)


def test_a_file_of_unchanged_size_and_mtime_is_not_read_again(seeds_copy, tmp_path):
    import os

    index = tmp_path / "index"
    build_index(seeds_copy, index)
    pdf = seeds_copy / "tides.pdf"
    st = pdf.stat()
    pdf.write_bytes(b"\0" * st.st_size)  # unreadable now, were it read
    os.utime(pdf, ns=(st.st_atime_ns, st.st_mtime_ns))
    report = build_index(seeds_copy, index)
    assert not report.skipped and not report.written and "tides.pdf" in report.unchanged


def test_plain_index_rebuilds_an_index_of_an_older_format(seeds_copy, tmp_path):
    index = tmp_path / "index"
    build_index(seeds_copy, index)
    for name in (
        "index.sqlite",
        "chunks.npy",
        "sentences.npy",
        "sentence_tokens.npy",
        "sentence_token_starts.npy",
    ):
        (index / name).unlink()  # as a format-2 folder holds none of these
    (index / "documents.jsonl").write_text("{}\n")
    m = json.loads((index / "manifest.json").read_text())
    m["format_version"] = 2
    (index / "manifest.json").write_text(json.dumps(m))
    report = build_index(seeds_copy, index)
    assert report.full_rebuild and report.written
    assert len(Index.load(index).chunks) == report.chunks_total
