"""Issue 9, the input/output half: relative upload folders, undecodable questions, k and
threshold checked by the library, control characters in names, ids on error lines, and
paths in browser messages. Real model, real FAISS, real files; the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.answer import Assistant
from rag.errors import BadInputError
from rag.retrieval import Retriever
from rag.store import build_index
from rag.uploads import save_upload

ROOT = Path(__file__).resolve().parent.parent


def run_bytes(*args: str | bytes, input: bytes = b"", cwd: Path = ROOT):
    """The real ``rag`` command with raw bytes for argv and stdin (no text decoding)."""
    return subprocess.run(
        [sys.executable, "-m", "rag", *args],
        input=input,
        capture_output=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


# --------------------------------------------------------------------------- 4: uploads


def test_upload_into_a_relative_seeds_folder_as_make_run_does(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("seeds").mkdir()
    dest = save_upload("seeds", "ok.txt", b"Hello.\n")
    assert dest == Path("seeds/ok.txt")
    assert (tmp_path / "seeds" / "ok.txt").read_bytes() == b"Hello.\n"
    assert [p.name for p in (tmp_path / "seeds").iterdir()] == ["ok.txt"]  # no temp left
    with pytest.raises(BadInputError, match="already exists in seeds/"):
        save_upload(Path("seeds"), "ok.txt", b"Again.\n")


# --------------------------------------------------------------------------- 5: undecodable


def test_jsonl_undecodable_line_gets_an_error_and_the_batch_goes_on(built_index):
    seeds, index = built_index
    stdin = (
        b"Who decoded the waggle dance?\n"
        b"\xff\xfe camp\n"
        b'{"id": "q3", "question": "caf\xe9 lighthouse"}\n'
        b'{"id": "q4", "question": "When did Eyjafjallaj\\udcffkull erupt?"}\n'
        b"Who built the Bell Rock Lighthouse?\n"
    )
    out = run_bytes("ask", "--jsonl", "--seeds", str(seeds), "--index", str(index), input=stdin)
    stderr = out.stderr.decode()
    assert out.returncode == 1 and "Traceback" not in stderr, stderr
    rows = [json.loads(line) for line in out.stdout.decode("utf-8").splitlines()]
    assert len(rows) == 5
    assert "Karl von Frisch" in rows[0]["answer"] and "Stevenson" in rows[4]["answer"]
    assert "not valid UTF-8" in rows[1]["error"] and rows[1]["id"] is None
    assert rows[1]["question"] == "\ufffd\ufffd camp"
    assert [r["id"] for r in rows[2:4]] == ["q3", "q4"]
    assert "byte 0xe9" in rows[2]["error"] and "surrogate U+DCFF" in rows[3]["error"]
    assert [line.split(":")[0:2] for line in stderr.splitlines()] == [
        ["rag", " line 2"],
        ["rag", " line 3"],
        ["rag", " line 4"],
    ]


def test_undecodable_question_in_argv_is_one_line(built_index):
    out = run_bytes("ask", "--index", str(built_index[1]), b"Which camp\xff?")
    stderr = out.stderr.decode()
    assert out.returncode == 1
    assert stderr.strip() == (
        "rag: the question is not valid UTF-8 text "
        "(byte 0xff at character 11 is not UTF-8): send it as UTF-8"
    )


@pytest.mark.parametrize("question", ["caf\udce9?", "Who \ud800 built it?", b"Who?", 42])
def test_library_refuses_undecodable_or_non_text_questions(assistant, question):
    with pytest.raises(BadInputError, match="not valid UTF-8|must be text"):
        assistant.ask(question)


# --------------------------------------------------------------------------- 8: k, threshold


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "3", None])
def test_library_refuses_a_bad_k(assistant, k):
    with pytest.raises(BadInputError, match="k must be"):
        assistant.ask("Who decoded the waggle dance?", k=k)
    with pytest.raises(BadInputError, match="k must be"):
        assistant.retriever.search("Who decoded the waggle dance?", k=k)


def test_k_of_one_still_answers(assistant):
    answer = assistant.ask("Who decoded the waggle dance?", k=1)
    assert len(answer.citations) == 1 and "Karl von Frisch" in answer.answer


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), float("-inf"), "0.3", True])
def test_library_refuses_a_bad_threshold(built_index, assistant, threshold):
    with pytest.raises(BadInputError, match="threshold must be"):
        assistant.ask("Who decoded the waggle dance?", threshold=threshold)
    with pytest.raises(BadInputError, match="threshold must be"):
        Assistant(built_index[1], threshold=threshold)


def test_threshold_outside_unit_range_keeps_its_meaning(assistant):
    """The confidence is a weighted sum (about -0.85..1.35), not a probability."""
    q = "Who decoded the waggle dance?"
    assert assistant.ask(q, threshold=1.5).abstained is True
    assert assistant.ask(q, threshold=-1).abstained is False


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_cli_threshold_must_be_finite(rag_cli, built_index, value):
    out = rag_cli("ask", "--index", built_index[1], f"--threshold={value}", "Who?")
    assert out.returncode == 2 and "expected a finite number" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_retriever_made_directly_checks_k_too(built_index, embedder):
    from rag.store import Index

    retriever = Retriever(Index.load(built_index[1]), embedder)
    with pytest.raises(BadInputError, match="k must be >= 1, got -1"):
        retriever.search("tides", k=-1)


# --------------------------------------------------------------------------- 10: terminal


def test_printable_escapes_control_characters():
    from rag.display import printable

    assert printable("a\nb\x1b[2J\u202eexe.txt\x7f\x9b") == "a\\nb\\x1b[2J\\u202eexe.txt\\x7f\\x9b"
    assert printable("Überblick – Vulkane.pdf") == "Überblick – Vulkane.pdf"
    assert printable("two\nlines\tand \x1b[31mred", keep_lines=True) == (
        "two\nlines\tand \\x1b[31mred"
    )


EVIL_NAME = "fake.txt\nindexed      9  passwords.txt"
ESCAPE_NAME = "clear\x1b[2J\x1b[H.txt"


@pytest.fixture(scope="module")
def evil_project(tmp_path_factory, embedder):
    """A project (cwd) whose seeds hold names with a newline and a terminal escape."""
    base = tmp_path_factory.mktemp("evil")
    (base / "seeds").mkdir()
    (base / "seeds" / EVIL_NAME).write_text(
        "The lagoon keeper counts the eider ducks every spring.\n", encoding="utf-8"
    )
    (base / "seeds" / ESCAPE_NAME).write_text(
        "The ferry to Grimsey leaves at nine.\x1b[2J The bell\x07 rings twice.\n",
        encoding="utf-8",
    )
    build_index(base / "seeds", base / "index")
    return base


def test_status_escapes_names(evil_project, rag_cli):
    out = rag_cli("status", cwd=evil_project)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 3  # two documents and the settings line: no faked row
    assert "\x1b" not in out.stdout
    assert "clear\\x1b[2J\\x1b[H.txt" in out.stdout
    assert "fake.txt\\nindexed      9  passwords.txt" in out.stdout


def test_text_answer_escapes_names_and_sentences(evil_project, rag_cli):
    out = rag_cli("ask", "When does the ferry to Grimsey leave?", cwd=evil_project)
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    assert "clear\\x1b[2J\\x1b[H.txt, lines 1-1" in out.stdout
    assert "The ferry to Grimsey leaves at nine.\\x1b[2J" in out.stdout
    assert "fake.txt\\nindexed" in out.stdout  # listed as a nearest passage, on one line


# --------------------------------------------------------------------------- 11: ids


@pytest.mark.parametrize(
    ("line", "qid"),
    [
        ('{"id": "n1"}', "n1"),
        ('{"id": 7, "question": 5}', 7),
        ('{"id": "e", "question": "   "}', "e"),
        ('{"id": "u", "question": "caf\\udce9"}', "u"),
    ],
)
def test_jsonl_error_objects_keep_the_id(built_index, rag_cli, line, qid):
    out = rag_cli("ask", "--jsonl", "--index", built_index[1], input=line + "\n")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    (row,) = [json.loads(x) for x in out.stdout.splitlines()]
    assert row["id"] == qid and row["error"]


def test_parse_question_line_keeps_the_id_on_error():
    from rag.inputs import parse_question_line

    with pytest.raises(BadInputError) as info:
        parse_question_line('{"id": "x", "question": ["a"]}', 4)
    assert info.value.id == "x" and info.value.lineno == 4


# --------------------------------------------------------------------------- 13: paths


def test_public_message_shows_paths_relative_to_the_named_folders(tmp_path, monkeypatch):
    from rag.display import public_message

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
    from rag.display import public_message

    text = (
        "a.txt already exists in seeds/: choose to replace it (and/or rename it); "
        "see http://127.0.0.1:7860/docs"
    )
    assert public_message(text, {"seeds": Path("seeds")}) == text


def test_ui_messages_use_the_folder_names(assistant, built_index):
    from ui.app import Service

    seeds, index = built_index
    service = Service(assistant, seeds, index, Path("evals"), k=5, mode="hybrid")
    err = FileNotFoundError(2, "No such file or directory", str(seeds / "gone.txt"))
    assert service.message(err) == "[Errno 2] No such file or directory: 'seeds/gone.txt'"


# --------------------------------------------------------------------------- 12: upload cache


def test_the_app_sweeps_gradios_upload_cache(assistant, built_index):
    from ui.app import UPLOAD_CACHE, Service, build_app

    seeds, index = built_index
    service = Service(assistant, seeds, index, Path("evals"), k=5, mode="hybrid")
    demo = build_app(service)
    frequency, age = demo.delete_cache
    assert demo.delete_cache == UPLOAD_CACHE and 0 < frequency <= age <= 24 * 3600


def test_discard_upload_never_deletes_outside_gradios_folder(tmp_path, monkeypatch):
    from ui.app import _discard_upload

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    inside = tmp_path / "gradio" / "abc" / "a.txt"
    inside.parent.mkdir(parents=True)
    inside.write_text("x")
    outside = tmp_path / "seeds" / "a.txt"
    outside.parent.mkdir()
    outside.write_text("x")
    _discard_upload(outside)
    _discard_upload(inside)
    assert outside.exists() and not inside.exists()


# --------------------------------------------------------------------------- 14: imports


def test_public_names_load_on_first_use():
    import rag

    assert sorted(rag.__all__) == sorted(rag._WHERE)
    for name in rag.__all__:
        assert getattr(rag, name).__name__ == name


def test_help_and_parsing_do_not_load_heavy_libraries():
    """`rag --help` and argument errors answer without numpy, FAISS, torch or gradio."""
    code = (
        "import sys, rag.cli\n"
        "rag.cli.build_parser().parse_args(['ask', 'q'])\n"
        "heavy = {'numpy', 'faiss', 'bm25s', 'torch', 'sentence_transformers', 'gradio',\n"
        "         'matplotlib', 'pypdf', 'bs4', 'tiktoken'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_serve_refuses_a_nan_threshold_before_building(rag_cli, tmp_path):
    out = rag_cli("serve", "--threshold", "nan", "--seeds", tmp_path / "none")
    assert out.returncode == 1
    assert out.stderr.strip() == "rag: threshold must be a finite number, got nan"
