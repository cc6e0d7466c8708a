"""Text safe to show: control characters escaped for a terminal, server paths hidden from a
browser (rag/display.py)."""

from __future__ import annotations

from pathlib import Path

from rag.display import printable, public_message


def test_printable_escapes_control_characters():
    assert printable("a\nb\x1b[2J\u202eexe.txt\x7f\x9b") == "a\\nb\\x1b[2J\\u202eexe.txt\\x7f\\x9b"
    assert printable("Überblick – Vulkane.pdf") == "Überblick – Vulkane.pdf"
    assert printable("two\nlines\tand \x1b[31mred", keep_lines=True) == (
        "two\nlines\tand \\x1b[31mred"
    )


def test_public_message_shows_paths_relative_to_the_named_folders(tmp_path, monkeypatch):
    project = tmp_path / "srv" / "cited"
    (project / "seeds").mkdir(parents=True)
    monkeypatch.chdir(project)
    folders = {"seeds": Path("seeds"), "index": tmp_path / "elsewhere" / "index"}
    message = (
        f"[Errno 2] No such file: '{project}/seeds/.upload-x-a.txt' -> "
        f"'{tmp_path}/elsewhere/index/faiss.index'; temp {project}/.index.tmp-1 and "
        f"/var/tmp/gradio/abc/report.txt."
    )
    shown = public_message(message, folders)
    assert str(tmp_path) not in shown and "/var/tmp" not in shown
    assert "'seeds/.upload-x-a.txt'" in shown and "'index/faiss.index'" in shown
    assert "temp .index.tmp-1 and report.txt." in shown


def test_public_message_leaves_relative_paths_and_prose_alone():
    text = (
        "a.txt already exists in seeds/: choose to replace it (and/or rename it); "
        "see http://127.0.0.1:7860/docs"
    )
    assert public_message(text, {"seeds": Path("seeds")}) == text
