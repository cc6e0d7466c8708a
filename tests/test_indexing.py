"""Building the index: incremental rebuilds through the real CLI, and what a build embeds."""

from __future__ import annotations

from rag.answer import Assistant
from rag.indexing import build_index


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
