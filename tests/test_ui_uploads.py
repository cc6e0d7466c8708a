"""Uploads land in the seeds folder under a safe name, or are refused with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import BadInputError
from rag.uploads import MAX_NAME_CHARS, safe_name, save_upload


@pytest.mark.parametrize(
    ("given", "saved"),
    [
        ("notes.txt", "notes.txt"),
        ("Meeting notes 2024.MD", "Meeting_notes_2024.md"),
        ("Überblick – Vulkane.pdf", "Überblick_Vulkane.pdf"),
        ("report (final)!.html", "report_final.html"),
        ("a:b*c?.htm", "a_b_c.htm"),
    ],
)
def test_safe_names(given, saved):
    assert safe_name(given) == saved


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("../escape.txt", "folder"),
        ("sub/dir.txt", "folder"),
        ("c:\\\\windows\\\\evil.txt", "folder"),
        ("..txt", "'..'"),
        (".env.txt", "hidden"),
        ("bell\x07.txt", "control"),
        ("line\nbreak.txt", "control"),
        ("program.exe", "unsupported type .exe"),
        ("archive.tar.gz", "unsupported type .gz"),
        ("noext", "unsupported type (none)"),
        ("", "no name"),
        ("$$$.txt", "no letters"),
    ],
)
def test_bad_names_are_refused_with_the_reason(given, reason):
    with pytest.raises(BadInputError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        safe_name(given)


def test_long_names_are_cut_but_keep_the_suffix():
    name = safe_name("x" * 500 + ".pdf")
    assert len(name) == MAX_NAME_CHARS and name.endswith(".pdf")


def test_save_writes_the_file_and_nothing_else(tmp_path):
    dest = save_upload(tmp_path, "Field notes.md", b"# Notes\n\nThe tide turned at noon.\n")
    assert dest == tmp_path / "Field_notes.md"
    assert dest.read_bytes() == b"# Notes\n\nThe tide turned at noon.\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Field_notes.md"]  # no temp left


def test_save_from_a_temporary_file(tmp_path):
    src = tmp_path / "upload.bin"
    src.write_text("Plain text from a temporary upload file.", encoding="utf-8")
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    dest = save_upload(seeds, "fresh.txt", src)
    assert dest.read_text(encoding="utf-8") == "Plain text from a temporary upload file."


def test_no_silent_overwrite(tmp_path):
    save_upload(tmp_path, "a.txt", b"first version")
    with pytest.raises(BadInputError, match="already exists.*replace"):
        save_upload(tmp_path, "a.txt", b"second version")
    assert (tmp_path / "a.txt").read_bytes() == b"first version"
    save_upload(tmp_path, "a.txt", b"second version", overwrite=True)
    assert (tmp_path / "a.txt").read_bytes() == b"second version"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_size_limit(tmp_path):
    with pytest.raises(BadInputError, match="limit is 1 KB"):
        save_upload(tmp_path, "big.txt", b"x" * 2048, max_bytes=1024)
    src = tmp_path / "big.bin"
    src.write_bytes(b"y" * 2048)
    with pytest.raises(BadInputError, match="limit"):
        save_upload(tmp_path, "big.txt", src, max_bytes=1024)
    assert not (tmp_path / "big.txt").exists()


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("latin1.txt", "caf\u00e9".encode("latin-1"), "not UTF-8"),
        ("binary.txt", b"\x00\x01\x02binary", "binary"),
        ("blank.md", b"   \n\n", "no text"),
        ("fake.pdf", b"this is not a pdf", "PDF"),
    ],
)
def test_unreadable_documents_never_land(tmp_path, name, data, reason):
    with pytest.raises(BadInputError, match=reason):
        save_upload(tmp_path, name, data)
    assert list(tmp_path.iterdir()) == []


def test_missing_seeds_folder(tmp_path):
    with pytest.raises(BadInputError, match="seeds folder not found"):
        save_upload(tmp_path / "nope", "a.txt", b"text")


# --- issue 9 (hardening) -----------------------------------------------------------


def test_upload_into_a_relative_seeds_folder_as_make_run_does(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("seeds").mkdir()
    dest = save_upload("seeds", "ok.txt", b"Hello.\n")
    assert dest == Path("seeds/ok.txt")
    assert (tmp_path / "seeds" / "ok.txt").read_bytes() == b"Hello.\n"
    assert [p.name for p in (tmp_path / "seeds").iterdir()] == ["ok.txt"]  # no temp left
    with pytest.raises(BadInputError, match="already exists in seeds/"):
        save_upload(Path("seeds"), "ok.txt", b"Again.\n")
