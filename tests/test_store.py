"""The on-disk index: manifest, round trip, clear errors, atomic writes, incremental builds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rag.answer import Assistant
from rag.errors import IndexMismatchError, IndexNotFoundError, RagError
from rag.store import Index, build_index, write_atomically


def _same(a, b) -> bool:
    strip = lambda d: {k: v for k, v in d.to_dict().items() if k != "latency_ms"}  # noqa: E731
    return strip(a) == strip(b)


def test_manifest_records_settings_hashes_and_versions(built_index):
    _, index = built_index
    m = json.loads((index / "manifest.json").read_text())
    assert m["format_version"] == 1
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


def test_failed_write_leaves_the_previous_index_intact(built_index, tmp_path, assistant):
    index = tmp_path / "index"
    shutil.copytree(built_index[1], index)
    before = {p.name: p.read_bytes() for p in index.iterdir()}

    def crash(tmp: Path) -> None:
        (tmp / "chunks.jsonl").write_text("half written")
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-build

    with pytest.raises(KeyboardInterrupt):
        write_atomically(index, crash)
    assert {p.name: p.read_bytes() for p in index.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["index"]  # no temporary left behind
    q = "Who decoded the waggle dance?"
    assert _same(Assistant(index).ask(q), assistant.ask(q))


def test_a_folder_that_is_not_an_index_is_never_replaced(seeds_copy, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(RagError, match="another --index"):
        build_index(seeds_copy, precious)
    assert (precious / "thesis.txt").read_text() == "do not delete"


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
