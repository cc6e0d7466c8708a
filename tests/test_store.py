"""The on-disk index: the manifest, a round trip, clear errors, and every check on load
(a tampered or damaged index is refused, reported by `rag status`, repaired by `rag index`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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
