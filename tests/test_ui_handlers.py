"""The UI's handlers called in-process: no server, no browser, real index and model.

The server tests (``test_ui_server.py``) and the browser tests check that the page is wired
to these functions and renders; here the behaviour itself is checked, errors included.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pytest

from rag.answer import Assistant, default_threshold
from rag.errors import BadInputError, EmptyQuestionError, IndexBusyError, RagError
from rag.indexing import build_index
from ui import handlers
from ui.handlers import Service
from ui.render import CITE_PREFIX, read_cite_token

TINY = [
    {"id": "q1", "question": "When did Eyjafjallajökull erupt?", "answers": ["April 2010"],
     "source": "volcanoes.txt", "kind": "date"},
    {"id": "q2", "question": "What is the capital of Mongolia?", "answers": []},
]  # fmt: skip


@pytest.fixture(scope="module")
def service(tmp_path_factory, corpus_dir, embedder) -> Service:
    """A service over a private, writable project: seeds/, index/ and evals/tiny/."""
    base = tmp_path_factory.mktemp("ui-handlers")
    seeds, index, evals = base / "seeds", base / "index", base / "evals"
    shutil.copytree(corpus_dir, seeds)
    (evals / "tiny").mkdir(parents=True)
    (evals / "tiny" / "questions.jsonl").write_text(
        "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in TINY), encoding="utf-8"
    )
    build_index(seeds, index)
    return Service(Assistant(index), seeds, index, evals, k=5, mode="hybrid")


@pytest.fixture(scope="module")
def store_service(store_assistant, store_index, tmp_path_factory) -> Service:
    """A read-only service over ``store_index`` (each store): answers and the source viewer."""
    seeds, index, _ = store_index
    return Service(store_assistant, seeds, index, tmp_path_factory.mktemp("evals"), k=5,
                   mode="hybrid")  # fmt: skip


def _tokens(markup: str) -> list[str]:
    return re.findall(rf"{CITE_PREFIX}[A-Za-z0-9_-]+", markup)


def test_respond_appends_the_question_and_a_cited_answer(store_service):
    history, error = handlers.respond(store_service, "When did Eyjafjallajökull erupt?", [], 5,
                                      "hybrid", 0.36)  # fmt: skip
    assert error is None
    assert [m["role"] for m in history] == ["user", "assistant"]
    markup = history[-1]["content"]
    assert "Eyjafjallajökull erupted in April 2010." in re.findall(r"<mark>(.*?)</mark>", markup)[0]
    assert read_cite_token(_tokens(markup)[0])["source"] == "volcanoes.txt"
    again, _ = handlers.respond(
        store_service, "Who decoded the waggle dance?", history, 5, "hybrid", 0.36
    )
    assert [m["role"] for m in again] == ["user", "assistant"] * 2
    assert history == again[:2]  # the earlier turn is kept as it was


def test_respond_to_nothing_raises_and_a_failure_becomes_the_reply(service):
    with pytest.raises(EmptyQuestionError):
        handlers.respond(service, "   ", [], 5, "hybrid", 0.36)
    history, error = handlers.respond(service, "Who?", [], 5, "magic", 0.36)
    assert "mode must be one of" in error
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert html.escape(error) in history[-1]["content"]


def test_answer_json_is_the_cli_contract_with_the_servers_defaults(store_service):
    out = handlers.answer_json(store_service, "When did Eyjafjallajökull erupt?")
    assert out["abstained"] is False and out["answer"].endswith("[1]")
    assert len(out["citations"]) <= store_service.k
    assert len(handlers.answer_json(store_service, "Who built it?", k=2)["citations"]) <= 2
    with pytest.raises(EmptyQuestionError, match="question is empty"):
        handlers.answer_json(store_service, "  ")


def test_threshold_setting_follows_the_calibration(service):
    assert handlers.threshold_setting(service) == (round(default_threshold(), 3), (
        "probability the answer is right; below it: “not found” "
        "(default; calibrate with rag eval --calibrate)"))  # fmt: skip
    calibration = service.index_dir / "calibration.json"
    calibration.write_text(json.dumps({"threshold": 0.99}), encoding="utf-8")
    try:
        value, info = handlers.threshold_setting(service)
        assert value == 0.99 and "calibrated" in info
    finally:
        calibration.unlink()


def test_open_source_shows_the_cited_span_in_the_whole_document(store_service):
    history, _ = handlers.respond(
        store_service, "When did Eyjafjallajökull erupt?", [], 5, "hybrid", 0.36
    )
    token = _tokens(history[-1]["content"])[0]
    for payload in (token, json.dumps({"token": token, "t": 1})):
        viewer = handlers.open_source(store_service, payload)
        marked = re.findall(r'<mark class="rag-hl"[^>]*>(.*?)</mark>', viewer)
        assert html.unescape("".join(marked)) == "Eyjafjallajökull erupted in April 2010."
        assert "Volcanoes of Iceland" in viewer
    gone = json.dumps({"source": "gone.txt", "start": 0, "end": 5, "hl": [0, 5]})
    assert "no longer in the index" in handlers.open_source(store_service, gone)
    empty = handlers.open_source(store_service, "")
    assert handlers.open_source(store_service, "not a citation {") == empty


def test_index_panel_rebuild_and_the_rebuild_lock(service):
    new = service.seeds_dir / "glaciers.txt"
    new.write_text("Vatnajökull is the largest glacier in Iceland.\n", encoding="utf-8")
    try:
        summary, table, header = handlers.index_panel(service)
        assert "glaciers.txt" in table and "rag-state-new" in table
        assert "Out of date" in summary and "changed since the last build" in header
        with service.build_lock, pytest.raises(IndexBusyError, match="already running"):
            service.rebuild()
        assert "1 added" in service.rebuild()
        summary, table, _ = handlers.index_panel(service)
        assert "Up to date" in summary and "rag-state-new" not in table
        out = handlers.answer_json(service, "What is the largest glacier in Iceland?")
        assert out["citations"][0]["source"] == "glaciers.txt"
    finally:
        new.unlink()
        service.rebuild()


def test_upload_saves_indexes_and_refuses_with_reasons(service, tmp_path):
    doc = tmp_path / "Lagoon notes.md"
    doc.write_text("The Blue Lagoon is fed by water from Svartsengi.\n", encoding="utf-8")
    bad = tmp_path / ".secret.txt"
    bad.write_text("hidden\n", encoding="utf-8")
    try:
        done = handlers.upload(service, [str(doc), str(bad), None], False)
        assert done.saved == ("Lagoon_notes.md",) and "hidden files" in done.rejected[0]
        assert "added Lagoon_notes.md" in done.log and "1 added" in done.log
        out = handlers.answer_json(service, "What feeds the Blue Lagoon?")
        assert out["citations"][0]["source"] == "Lagoon_notes.md"
        doc.write_text("A second version.\n", encoding="utf-8")
        with pytest.raises(BadInputError, match="Not added: .*already exists"):
            handlers.upload(service, [str(doc)], False)
        assert "1 changed" in handlers.upload(service, [str(doc)], True).log
        with pytest.raises(BadInputError, match="Choose one or more files"):
            handlers.upload(service, [], False)
    finally:
        (service.seeds_dir / "Lagoon_notes.md").unlink(missing_ok=True)
        service.rebuild()


def test_a_failed_rebuild_after_an_upload_names_the_saved_file(service, tmp_path):
    doc = tmp_path / "late.txt"
    doc.write_text("Saved while another rebuild runs.\n", encoding="utf-8")
    try:
        with service.build_lock, pytest.raises(RagError, match="Saved late.txt but indexing"):
            handlers.upload(service, [doc], False)
        assert (service.seeds_dir / "late.txt").exists()  # never loses the upload
    finally:
        (service.seeds_dir / "late.txt").unlink(missing_ok=True)
        service.rebuild()


def test_eval_tab_lists_the_sets_and_runs_one(service, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the UI's reports go under .cache/ of the project
    sets = handlers.question_sets(service.evals_dir)
    path = (service.evals_dir / "tiny" / "questions.jsonl").as_posix()
    assert sets == [("tiny/questions.jsonl", path)]
    with pytest.raises(BadInputError, match="Choose a question set"):
        handlers.run_question_set(service, None, "all")
    seen = []
    report = handlers.run_question_set(service, path, "all", progress=lambda d, t: seen.append(d))
    assert report.rows[0]["n"] == 2 and seen[-1] == 2
    assert report.report_dir == Path(".cache/ui-eval-reports/ui-tiny")
    assert (tmp_path / report.report_dir / "report.md").exists()
    assert handlers.run_question_set(service, path, "1").rows[0]["n"] == 1


def test_report_markdown_drops_the_images_and_keeps_text_as_text():
    md = "# Eval\n\n## Plots\n\n![hit](hit_at_k.png)\n| <script>x</script> |\n"
    out = handlers.report_markdown(md)
    assert "![" not in out and "## Plots" not in out
    assert "&lt;script&gt;" in out and "<script>" not in out


# --- issue 9 (hardening) -----------------------------------------------------------


def test_ui_messages_use_the_folder_names(assistant, built_index):
    seeds, index = built_index
    service = Service(assistant, seeds, index, Path("evals"), k=5, mode="hybrid")
    err = FileNotFoundError(2, "No such file or directory", str(seeds / "gone.txt"))
    assert service.message(err) == "[Errno 2] No such file or directory: 'seeds/gone.txt'"
