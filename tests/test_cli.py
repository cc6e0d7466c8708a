"""The ``rag`` command as users run it (``python -m rag`` in a subprocess): the JSON contract,
batches, one-line errors, ``rag eval`` end to end and ``rag serve``'s flags."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag.answer import Assistant
from rag.calibration import stored_threshold
from rag.indexing import build_index
from rag.store import Index

ANSWER_KEYS = {
    "id",
    "question",
    "answer",
    "abstained",
    "citations",
    "probability",
    "confidence",
    "latency_ms",
}


CITATION_KEYS = {
    "n",
    "source",
    "start",
    "end",
    "line_start",
    "line_end",
    "page",
    "excerpt",
    "highlight",
    "score",
}


def test_ask_json_contract(built_index, rag_cli):
    seeds, index = built_index
    out = rag_cli(
        "ask", "--json", "--seeds", seeds, "--index", index, "Who built the Bell Rock Lighthouse?"
    )
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert ANSWER_KEYS <= set(d)
    assert d["abstained"] is False and d["citations"]
    assert all(set(c) >= CITATION_KEYS for c in d["citations"])
    assert [c["n"] for c in d["citations"]] == list(range(1, len(d["citations"]) + 1))


def _without_latency(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "latency_ms"}


def test_a_milvus_index_answers_with_the_json_of_the_faiss_one(tmp_path, built_index, rag_cli):
    """As `make run` users do, in a project folder with relative paths: `rag index --store
    milvus://milvus.db`, then `rag ask --json` and `rag eval` without --store (the manifest
    names it) give the FAISS index's JSON but for latency."""
    seeds, faiss_index = built_index
    shutil.copytree(seeds, tmp_path / "seeds")
    built = rag_cli("index", "--store", "milvus://milvus.db", "--quiet", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert "4 added" in built.stdout and (tmp_path / "milvus.db").exists()
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert manifest["store"] == "milvus://milvus.db"
    assert not (tmp_path / "index" / "chunks.npy").exists()
    again = rag_cli("index", "--quiet", cwd=tmp_path)  # keeps its store: nothing to do
    assert again.returncode == 0 and "up to date" in again.stdout, again.stderr
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"id": "q1", "question": "When did Eyjafjallajökull erupt?", "answers": ["April 2010"],'
        ' "source": "volcanoes.txt"}\n{"id": "q2", "question": "What is the capital of '
        'Mongolia?", "answers": []}\n',
        encoding="utf-8",
    )
    for question in ("Who built the Bell Rock Lighthouse?", "What is the capital of Mongolia?"):
        milvus = rag_cli("ask", "--json", question, cwd=tmp_path)
        faiss = rag_cli("ask", "--json", "--index", faiss_index, question, cwd=tmp_path)
        assert milvus.returncode == 0 and faiss.returncode == 0, milvus.stderr + faiss.stderr
        assert _without_latency(json.loads(milvus.stdout)) == _without_latency(
            json.loads(faiss.stdout)
        )
    results = []
    for name, index in (("m", "index"), ("f", faiss_index)):
        out = rag_cli("eval", "q.jsonl", "--index", index, "--name", name, "--reports", "r",
                      cwd=tmp_path)  # fmt: skip
        assert out.returncode == 0, out.stderr
        lines = (tmp_path / "r" / name / "results.jsonl").read_text().splitlines()
        results.append([_without_latency(json.loads(line)) for line in lines])
    assert results[0] == results[1] and len(results[0]) == 2
    status = rag_cli("status", cwd=tmp_path)
    assert status.returncode == 0 and "store milvus://milvus.db" in status.stdout
    bad = rag_cli("index", "--store", "milvus://nowhere", cwd=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "milvus://PATH.db" in bad.stderr


def test_ask_text_says_how_often_such_an_answer_is_right(built_index, rag_cli):
    seeds, index = built_index
    q = "Who built the Bell Rock Lighthouse?"
    d = json.loads(rag_cli("ask", "--json", "--index", index, q).stdout)
    out = rag_cli("ask", "--index", index, q)
    assert out.returncode == 0, out.stderr
    p = d["probability"]
    assert f"(confidence {p:.2f}: right about {round(p * 10)} times in 10)" in out.stdout


def test_ask_jsonl_batch(built_index, rag_cli):
    seeds, index = built_index
    lines = [
        json.dumps({"id": "q1", "question": "Who decoded the waggle dance?"}),
        "When did Eyjafjallajökull erupt?",
        "",
        json.dumps({"id": "q3", "question": "What is the capital of Mongolia?"}),
    ]
    out = rag_cli(
        "ask",
        "--jsonl",
        "-k",
        "3",
        "--seeds",
        seeds,
        "--index",
        index,
        input="\n".join(lines) + "\n",
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["q1", None, "q3"]
    assert "Karl von Frisch" in rows[0]["answer"] and "2010" in rows[1]["answer"]
    assert rows[2]["abstained"] is True and rows[2]["citations"]
    assert all(len(r["citations"]) <= 3 + 1 for r in rows)


def test_jsonl_bad_lines_are_reported_and_the_rest_answered(built_index, rag_cli):
    seeds, index = built_index
    text = '{"question": ""}\n{not json\nWho built the Bell Rock Lighthouse?\n'
    out = rag_cli("ask", "--jsonl", "--index", index, "--seeds", seeds, input=text)
    assert out.returncode == 1
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert "error" in rows[0] and "error" in rows[1] and "Stevenson" in rows[2]["answer"]
    assert "line 1" in out.stderr and "line 2" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["ask", "--index", "{tmp}/none", "Who?"], "run `rag index`"),
        (["ask", "--index", "{index}", "   "], "empty"),
        (["ask", "--index", "{index}", "-k", "0", "Who?"], "must be >= 1"),
        (["ask", "--index", "{index}", "--mode", "magic", "Who?"], "invalid choice"),
        (["ask", "--index", "{index}", "--model", "other/model", "Who?"], "--rebuild"),
        (["ask", "--index", "{index}"], "no question"),
        (["index", "--seeds", "{tmp}/no-such-dir", "--index", "{tmp}/i"], "seeds folder not found"),
        (["ask", "--bogus"], "unrecognized"),
    ],
)
def test_bad_input_is_one_line_without_traceback(built_index, tmp_path, rag_cli, args, message):
    args = [a.format(tmp=tmp_path, index=built_index[1]) for a in args]
    out = rag_cli(*args)
    assert out.returncode != 0
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = '{"id": "q1", "question": "Where?", "answers": ["Here"], "source": "a.txt", "span": [0, 9]}'


TINY = [
    {"id": "laki", "question": "How long did the Laki eruption go on for?",
     "answers": ["eight months"], "source": "volcanoes.txt", "kind": "fact"},
    {"id": "eggs", "question": "How many eggs can a queen bee lay in one day?",
     "answers": ["2,000"], "source": "bees.md", "kind": "number"},
    {"id": "builder", "question": "Who built the Bell Rock Lighthouse?",
     "answers": ["Robert Stevenson"], "source": "lighthouse.html", "kind": "fact"},
    {"id": "ash", "question": "For how many days was European airspace closed by the ash?",
     "answers": ["six days"], "source": "volcanoes.txt", "kind": "number"},
    {"id": "honey", "question": "How much honey does one hive make in a year?",
     "answers": [], "kind": "unanswerable"},
    {"id": "keeper", "question": "What was the name of the first lighthouse keeper?",
     "answers": [], "kind": "unanswerable"},
    {"id": "mayor", "question": "Who is the mayor of Reykjavik?",
     "answers": [], "kind": "unanswerable"},
]  # fmt: skip


@pytest.mark.slow
def test_rag_eval_end_to_end_with_compare_and_calibrate(tmp_path, corpus_dir, rag_cli):
    qs = write_lines(tmp_path / "tiny.jsonl", *(json.dumps(q) for q in TINY))
    seeds = tmp_path / "seeds"
    shutil.copytree(corpus_dir, seeds)
    out = rag_cli("eval", qs, "--seeds", seeds, "--compare", "hybrid,bm25,dense@k=1",
                  "--calibrate", "--name", "tiny", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["run", "n", "hit@1", "hit@3"]
    assert [line.split()[0] for line in lines[1:4]] == ["hybrid", "bm25", "dense@k=1"]
    assert "kind (hybrid)" in out.stdout and "calibrated: threshold" in out.stdout

    folder = tmp_path / "evals" / "reports" / "tiny"
    for name in ("report.json", "report.md", "results.jsonl", "hit_at_k.png", "confidence.png"):
        assert (folder / name).stat().st_size > 0, name
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert [r["run"] for r in report["metrics"]] == ["hybrid", "bm25", "dense@k=1"]
    assert report["calibration"]["criterion"].startswith("balanced accuracy")

    # The index and, beside it, its hidden writer lock (.seeds-*.lock).
    (index_dir,) = [p for p in (tmp_path / ".cache" / "indexes").iterdir() if p.is_dir()]
    assert index_dir.name.startswith("seeds-")
    stored = json.loads((index_dir / "calibration.json").read_text(encoding="utf-8"))
    assert stored["threshold"] == report["threshold"] == report["calibration"]["threshold"]
    # ...where `rag ask` and the UI read it.
    assert stored_threshold(index_dir) == stored["threshold"]
    assert Assistant(index_dir).threshold_source() == (
        stored["threshold"],
        "index calibration.json",
    )
    Index.load(index_dir)  # the index swapped in with its calibration is whole
    records = [json.loads(x) for x in (folder / "results.jsonl").open(encoding="utf-8")]
    assert {r["threshold"] for r in records} == {round(stored["threshold"], 4)}
    assert all(r["abstained"] == (r["confidence"] < stored["threshold"]) for r in records)


@pytest.mark.slow
def test_rag_eval_mistakes_print_one_line_and_exit_1(tmp_path, built_index, rag_cli):
    bad = write_lines(tmp_path / "bad.jsonl", GOOD, '{"question": "Where?", "answers": "x"}')
    for args, says in [
        ((bad, "--index", built_index[1]), "line 2"),
        ((tmp_path / "nope.jsonl", "--index", built_index[1]), "question set not found"),
        ((bad, "--seeds", built_index[0], "--index", built_index[1]), "leave out --index"),
        ((bad, "--index", built_index[1], "--compare", "hybrid,sparse"), "unknown run"),
    ]:
        out = rag_cli("eval", *args, cwd=tmp_path)
        assert out.returncode == 1, out
        assert out.stderr.startswith("rag: ") and says in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
        assert out.stdout == ""


def test_binding_beyond_loopback_without_auth_warns(rag_cli, tmp_path):
    r = rag_cli("serve", "--host", "0.0.0.0", "--seeds", tmp_path / "none", "--index",
                tmp_path / "index")  # fmt: skip
    assert "warning: serving on 0.0.0.0 without --auth" in r.stderr
    assert r.returncode == 1 and "seeds folder not found" in r.stderr  # no traceback
    assert "Traceback" not in r.stderr


def test_loopback_or_auth_means_no_warning(rag_cli, tmp_path):
    for args in (("--host", "127.0.0.1"), ("--host", "0.0.0.0", "--auth", "ann:secret")):
        r = rag_cli("serve", *args, "--seeds", tmp_path / "none", "--index", tmp_path / "i")
        assert "warning: serving" not in r.stderr and r.returncode == 1


def test_bad_auth_is_one_line(rag_cli, tmp_path):
    r = rag_cli("serve", "--auth", "nocolon", "--seeds", tmp_path)
    assert r.returncode == 1 and r.stderr.strip() == "rag: --auth takes USER:PASS, both non-empty"


def test_a_broken_ui_module_fails_serve_with_its_own_error(tmp_path):
    """Only `rag serve` imports ui, plainly: its import error is shown, not hidden."""
    shadow = tmp_path / "shadow"
    (shadow / "ui").mkdir(parents=True)
    (shadow / "ui" / "__init__.py").write_text('raise ImportError("ui is broken here")\n')
    env = {**os.environ, "PYTHONPATH": str(shadow), "HF_HUB_OFFLINE": "1"}
    run = functools.partial(
        subprocess.run, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert "serve" in run([sys.executable, "-m", "rag", "--help"]).stdout
    assert run([sys.executable, "-m", "rag", "status", "--seeds", tmp_path]).returncode == 0
    out = run([sys.executable, "-m", "rag", "serve", "--seeds", tmp_path / "none"])
    assert out.returncode != 0
    assert "ui is broken here" in out.stderr and "invalid choice" not in out.stderr


# --- issue 9 (hardening) -----------------------------------------------------------


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


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "1.5", "-0.1", "x"])
def test_cli_threshold_must_be_a_probability(rag_cli, built_index, value):
    out = rag_cli("ask", "--index", built_index[1], f"--threshold={value}", "Who?")
    assert out.returncode == 2 and "expected a number from 0 to 1" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


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
    # The flag shares `rag ask`'s argument type: refused while parsing, before any build.
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "rag serve: error: argument --threshold: expected a number from 0 to 1, got 'nan' "
        "(see rag serve --help)"
    )
