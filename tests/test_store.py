"""The on-disk index: manifest, round trip, clear errors, atomic writes, incremental builds."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag.answer import Assistant
from rag.errors import IndexDamagedError, IndexMismatchError, IndexNotFoundError, RagError
from rag.settings import FORMAT_VERSION
from rag.store import Index, build_index, write_atomically, writer_lock


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


# --- issue 9 (hardening): recovery, validation on load, writer lock, temporaries, mode ---


def test_recovery_restores_the_newest_complete_backup_and_removes_partial_ones(
    built_index, tmp_path, assistant
):
    # A kill during a backup's deletion left a partial copy; a later kill between the two
    # renames left the index only as its (complete) backup.
    partial = tmp_path / ".index.old-ffffffff"
    shutil.copytree(built_index[1], partial)
    (partial / "chunks.faiss").unlink()
    (partial / "manifest.json").unlink()
    older = tmp_path / f".index.old-{time.time_ns() - 10**9:020d}-1"
    newest = tmp_path / f".index.old-{time.time_ns():020d}-2"
    for folder, stamp in ((older, "older"), (newest, "newest")):
        shutil.copytree(built_index[1], folder)
        m = json.loads((folder / "manifest.json").read_text())
        m["built_at"] = stamp
        (folder / "manifest.json").write_text(json.dumps(m))

    index = tmp_path / "index"
    loaded = Index.load(index)
    assert loaded.manifest["built_at"] == "newest"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".index.lock", "index"]
    q = "How many eggs can a queen lay?"
    assert Assistant(index).ask(q).answer == assistant.ask(q).answer


# --- 3. validation on load ---------------------------------------------------------------


def _rewrite(path: Path, edit) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    rows = edit(rows)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _edit_text(rows):
    for r in rows:
        r["text"] = r["text"].replace("Some 2,000", "Some 9,999").replace("2,000", "9,999")
    return rows


def _edit_content_hash(rows):
    rows[0]["content_hash"] = "0" * 64
    return rows


def _swap_chunks(rows):
    rows[0], rows[1] = rows[1], rows[0]
    return rows


def _offset_out_of_range(rows):
    rows[-1]["end"] = 10**7
    return rows


def _shift_chunk(rows):
    rows[2]["start"] += 1
    return rows


def _drop_sentences(rows):
    rows[0]["sentences"] = []
    return rows


def _shift_sentence(rows):
    a, b = rows[1]["sentences"][0]
    rows[1]["sentences"][0] = [a + 1, b]
    return rows


TAMPERS = {
    "text edited": ("documents.jsonl", _edit_text),
    "content hash": ("documents.jsonl", _edit_content_hash),
    "chunk rows swapped": ("chunks.jsonl", _swap_chunks),
    "offset out of range": ("chunks.jsonl", _offset_out_of_range),
    "chunk offsets shifted": ("chunks.jsonl", _shift_chunk),
    "sentences missing": ("documents.jsonl", _drop_sentences),
    "sentence misaligned": ("documents.jsonl", _shift_sentence),
}


def test_an_untouched_index_of_nested_folders_passes_the_checks(tmp_path):
    # Seed order (by path) and name order differ here: "a/" sorts before "a b/" as a path.
    seeds = tmp_path / "seeds"
    for folder in ("a b", "a", "a-c"):
        (seeds / folder).mkdir(parents=True)
        (seeds / folder / "x.txt").write_text(f"Folder {folder} holds one short note.\n")
    build_index(seeds, tmp_path / "index")
    assert len(Index.load(tmp_path / "index").documents) == 3


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_a_tampered_index_is_refused_on_load(built_index, tmp_path, tamper):
    index = tmp_path / "index"
    shutil.copytree(built_index[1], index)
    name, edit = TAMPERS[tamper]
    _rewrite(index / name, edit)
    with pytest.raises(IndexDamagedError, match=r"is damaged \(.*\): run `rag index --rebuild`$"):
        Index.load(index)


def test_damaged_index_is_reported_by_status_and_ask_and_repaired_by_index(
    seeds_copy, tmp_path, rag_cli
):
    project = seeds_copy.parent  # holds seeds/; the CLI runs there with relative paths
    assert rag_cli("index", "--quiet", cwd=project).returncode == 0
    _rewrite(project / "index" / "documents.jsonl", _edit_text)
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


# --- 6. the writer lock ------------------------------------------------------------------


def test_a_second_writer_waits_for_the_first(seeds_copy):
    project = seeds_copy.parent
    with writer_lock(project / "index"):  # as a running `rag index` holds it
        proc = subprocess.Popen(
            [sys.executable, "-m", "rag", "index", "--quiet"],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        waiting = threading.Event()
        lines: list[str] = []

        def read() -> None:
            for line in proc.stderr:
                lines.append(line)
                if "waiting" in line:
                    waiting.set()

        threading.Thread(target=read, daemon=True).start()
        try:
            deadline = time.monotonic() + 180
            while not waiting.wait(0.5) and proc.poll() is None and time.monotonic() < deadline:
                pass
            assert waiting.is_set(), f"the second writer did not wait: {lines}"
            time.sleep(1)
            assert proc.poll() is None and not (project / "index").exists()
        except BaseException:
            proc.kill()
            raise
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, lines
    assert "4 added" in out
    (line,) = [w for w in lines if "waiting" in w]
    assert "another build of index/ is running" in line


def test_a_reader_never_recovers_under_a_writers_feet(built_index, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(built_index[1], index)
    fresh = tmp_path / ".index.tmp-writer"
    shutil.copytree(built_index[1], fresh)
    m = json.loads((fresh / "manifest.json").read_text())
    m["built_at"] = "the new one"
    (fresh / "manifest.json").write_text(json.dumps(m))

    loaded: list[Index] = []
    with writer_lock(index):
        # The writer is between its two renames: the old index is its backup.
        backup = tmp_path / f".index.old-{time.time_ns():020d}-{os.getpid()}"
        os.rename(index, backup)
        reader = threading.Thread(target=lambda: loaded.append(Index.load(index)))
        reader.start()
        time.sleep(0.5)
        assert reader.is_alive() and backup.is_dir() and not index.exists()
        os.rename(fresh, index)
        shutil.rmtree(backup)
    reader.join(10)
    assert loaded and loaded[0].manifest["built_at"] == "the new one"


# --- 7. stale temporary folders ----------------------------------------------------------


def test_a_build_removes_temporary_folders_of_killed_builds(seeds_copy, tmp_path):
    index = tmp_path / "index"
    build_index(seeds_copy, index)
    for name in (".index.tmp-k1ll3d", ".index.tmp-4242-deadbeef"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "chunks.faiss").write_bytes(b"\0" * 1024)
    other = tmp_path / ".other.tmp-keep"  # another index's: not ours to remove
    other.mkdir()
    report = build_index(seeds_copy, index)
    assert not report.written  # even a build that has nothing to do cleans up
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".index.lock",
        ".other.tmp-keep",
        "index",
        "seeds",
    ]


# --- 13a. the index folder's mode --------------------------------------------------------


def test_a_build_keeps_the_index_folders_mode(seeds_copy, tmp_path):
    index = tmp_path / "index"
    old = os.umask(0o022)
    try:
        build_index(seeds_copy, index)
    finally:
        os.umask(old)
    assert stat.S_IMODE(index.stat().st_mode) == 0o755  # as mkdir would make it
    os.chmod(index, 0o750)
    (seeds_copy / "new.txt").write_text("The harbour of Quell is small.\n")
    assert build_index(seeds_copy, index).written
    assert stat.S_IMODE(index.stat().st_mode) == 0o750
