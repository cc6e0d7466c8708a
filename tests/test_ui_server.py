"""The running app, driven through its API with gradio_client (``rag serve`` in a subprocess).

One server per module on a private copy of the test corpus, plus a document whose text holds
``<script>`` and ``<img onerror>``. Real model, real index; nothing of ours is mocked.
"""

from __future__ import annotations

import html
import json
import re
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from serving import start_server, stop_server

from ui.render import CITE_PREFIX, read_cite_token
from ui.server import is_loopback

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent

QUESTIONS = [
    {"id": "q1", "question": "When did Eyjafjallajökull erupt?", "answers": ["April 2010"],
     "source": "volcanoes.txt", "kind": "date"},
    {"id": "q2", "question": "Who decoded the waggle dance?", "answers": ["Karl von Frisch"],
     "source": "bees.md", "kind": "person"},
    {"id": "q3", "question": "What is the capital of Mongolia?", "answers": []},
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory, corpus_dir):
    base = tmp_path_factory.mktemp("ui-api")
    proc, url, seeds = start_server(base, corpus_dir, questions=QUESTIONS)
    yield url, seeds
    stop_server(proc)


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server[0], verbose=False)


def _bot_html(history: list[dict]) -> str:
    msg = history[-1]
    assert msg["role"] == "assistant"
    return "".join(part["text"] for part in msg["content"])


def _value(out):
    """An output's value: a component update comes back as a dict holding it."""
    return out["value"] if isinstance(out, dict) and "value" in out else out


def _tokens(markup: str) -> list[str]:
    return re.findall(rf"{CITE_PREFIX}[A-Za-z0-9_-]+", markup)


def test_ask_answers_with_highlighted_citations(client):
    history, box = client.predict(question="When did Eyjafjallajökull erupt?", api_name="/ask")
    assert box == ""  # the question box is cleared
    assert [m["role"] for m in history] == ["user", "assistant"]
    markup = _bot_html(history)
    assert "rag-abstain" not in markup
    marked = re.findall(r"<mark>(.*?)</mark>", markup)
    assert "Eyjafjallajökull erupted in April 2010." in marked[0]
    assert "volcanoes.txt" in markup and "Sources" in markup
    first = read_cite_token(_tokens(markup)[0])
    assert first["source"] == "volcanoes.txt" and first["n"] == 1


def test_follow_up_questions_continue_the_conversation(client):
    history, _ = client.predict(question="Who decoded the waggle dance?", api_name="/ask")
    history, _ = client.predict(
        question="How high is the Bell Rock Lighthouse?", history=history, api_name="/ask"
    )
    assert [m["role"] for m in history] == ["user", "assistant"] * 2
    assert "Karl von Frisch" in _bot_html(history[:2])
    assert "35 metres" in _bot_html(history)


def test_abstains_and_still_shows_nearest_passages(client):
    history, _ = client.predict(question="What is the capital of Mongolia?", api_name="/ask")
    markup = _bot_html(history)
    assert "rag-abstain" in markup and "Not found in the documents" in markup
    assert "Nearest passages" in markup and "not confident" in markup
    assert _tokens(markup)  # the passages still open in the viewer


def test_answer_json_matches_the_cli_contract(client):
    out = client.predict(question="When did Eyjafjallajökull erupt?", api_name="/answer")
    assert out["abstained"] is False
    assert out["answer"].endswith("[1]")
    c = out["citations"][0]
    assert c["source"] == "volcanoes.txt" and c["start"] <= c["highlight"][0]


def test_threshold_default_follows_a_calibration_made_while_serving(client, server):
    calibration = server[1].parent / "index" / "calibration.json"
    assert _value(client.predict(api_name="/threshold")) == 0.36
    calibration.write_text(json.dumps({"threshold": 0.99}), encoding="utf-8")
    try:
        out = client.predict(api_name="/threshold")  # what the next page load shows
        assert _value(out) == 0.99 and "calibrated" in out["info"]
        answer = client.predict(question="Who decoded the waggle dance?", api_name="/answer")
        assert answer["abstained"] is True  # the answering default moved with it
    finally:
        calibration.unlink()
    assert _value(client.predict(api_name="/threshold")) == 0.36


def test_empty_question_is_a_message_not_a_traceback(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="question is empty"):
        client.predict(question="   ", api_name="/answer")
    history, _ = client.predict(question="   ", api_name="/ask")
    assert history == []


def test_citation_opens_the_document_at_the_span(client):
    history, _ = client.predict(question="When did Eyjafjallajökull erupt?", api_name="/ask")
    token = _tokens(_bot_html(history))[0]
    cite = read_cite_token(token)
    viewer = client.predict(json.dumps({"token": token, "t": 1}), api_name="/open_source")
    assert 'data-source="volcanoes.txt"' in viewer
    marked = re.findall(r'<mark class="rag-hl"[^>]*>(.*?)</mark>', viewer)
    assert html.unescape("".join(marked)) == "Eyjafjallajökull erupted in April 2010."
    assert f"citation [{cite['n']}]" in viewer
    assert "Volcanoes of Iceland" in viewer  # the whole document, not just the excerpt


def test_citation_of_a_vanished_document_says_so(client):
    payload = json.dumps({"source": "gone.txt", "start": 0, "end": 5, "hl": [0, 5]})
    viewer = client.predict(payload, api_name="/open_source")
    assert "no longer in the index" in viewer


def test_script_in_a_document_comes_back_as_text(client):
    history, _ = client.predict(question="Who logs the ships entering Leith?", api_name="/ask")
    markup = _bot_html(history)
    token = next(t for t in _tokens(markup) if read_cite_token(t)["source"] == "harbour.txt")
    viewer = client.predict(token, api_name="/open_source")
    for out in (markup, viewer):
        assert "<script" not in out and "<img" not in out
    assert "&lt;script&gt;window.__pwned=1;alert(1)&lt;/script&gt;" in viewer
    assert "&lt;img src=x onerror=&quot;window.__pwned=2;alert(2)&quot;&gt;" in viewer


def test_rebuild_picks_up_a_new_seed_file(client, server):
    seeds = server[1]
    (seeds / "glaciers.txt").write_text(
        "Vatnajökull is the largest glacier in Iceland and covers about eight percent of the "
        "country.\n",
        encoding="utf-8",
    )
    summary, table, header = client.predict(api_name="/index_status")
    assert "glaciers.txt" in table and "rag-state-new" in table
    assert "Out of date" in summary and "changed since the last build" in header
    log, summary, table, header = client.predict(api_name="/rebuild")
    assert "1 added" in _value(log)
    assert "Up to date" in summary and "rag-state-new" not in table
    out = client.predict(question="What is the largest glacier in Iceland?", api_name="/answer")
    assert out["citations"][0]["source"] == "glaciers.txt"
    assert "Vatnajökull" in out["answer"]


def test_an_index_rebuilt_by_the_cli_while_serving_is_taken_up_by_rebuild(client, server, rag_cli):
    seeds = server[1]
    index = seeds.parent / "index"
    (seeds / "fjords.txt").write_text(
        "Sognefjord is the longest fjord in Norway, reaching 205 kilometres inland.\n",
        encoding="utf-8",
    )
    try:
        assert rag_cli("index", "--seeds", seeds, "--index", index).returncode == 0
        # The panel describes the index being served, which does not hold the file yet.
        _, table, _ = client.predict(api_name="/index_status")
        assert "fjords.txt" in table and "rag-state-new" in table
        log, summary, table, _ = client.predict(api_name="/rebuild")
        assert "0 added" in _value(log) and "Up to date" in summary
        out = client.predict(question="What is the longest fjord in Norway?", api_name="/answer")
        assert out["citations"][0]["source"] == "fjords.txt"
    finally:
        (seeds / "fjords.txt").unlink()
        client.predict(api_name="/rebuild")


def test_upload_is_saved_indexed_and_answered_from(client, server, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    doc = tmp_path / "Lagoon notes.md"
    doc.write_text("# Lagoon\n\nThe Blue Lagoon is fed by water from a geothermal power "
                   "station at Svartsengi.\n", encoding="utf-8")  # fmt: skip
    log, _files, summary, table, _ = client.predict([handle_file(doc)], api_name="/upload")
    log = _value(log)
    assert "added Lagoon_notes.md" in log and "1 added" in log
    assert (server[1] / "Lagoon_notes.md").read_bytes() == doc.read_bytes()
    assert "Lagoon_notes.md" in table
    out = client.predict(question="What feeds the Blue Lagoon?", api_name="/answer")
    assert out["citations"][0]["source"] == "Lagoon_notes.md"

    doc.write_text("A second version.\n", encoding="utf-8")
    with pytest.raises(AppError, match="already exists"):
        client.predict([handle_file(doc)], api_name="/upload")
    log, *_ = client.predict([handle_file(doc)], True, api_name="/upload")
    assert "1 changed" in _value(log)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("tool.exe", "Invalid file type"),  # refused by the upload field itself
        (".secret.txt", "hidden files"),  # refused by rag.uploads
        ("latin1.txt", "not UTF-8"),
    ],
)
def test_upload_rejected_for_a_bad_name_or_type(client, server, tmp_path, name, reason):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    bad = tmp_path / name
    bad.write_bytes("caf\u00e9 noir".encode("latin-1"))
    before = sorted(p.name for p in server[1].iterdir())
    with pytest.raises(AppError, match=reason):
        client.predict([handle_file(bad)], api_name="/upload")
    assert sorted(p.name for p in server[1].iterdir()) == before


def test_several_users_at_once(server):
    from gradio_client import Client

    asks = {
        "When did Eyjafjallajökull erupt?": "volcanoes.txt",
        "Who decoded the waggle dance?": "bees.md",
        "Who built the Bell Rock Lighthouse?": "lighthouse.html",
        "When do spring tides occur?": "tides.pdf",
    }

    def ask(question: str) -> str:
        client = Client(server[0], verbose=False)
        return client.predict(question=question, api_name="/answer")["citations"][0]["source"]

    questions = list(asks) * 2
    with ThreadPoolExecutor(max_workers=len(questions)) as pool:
        got = list(pool.map(ask, questions))
    assert got == [asks[q] for q in questions]


def test_eval_tab_runs_a_question_set(client, server):
    summary, plots, report, metrics = client.predict(
        path="evals/tiny/questions.jsonl",
        api_name="/run_eval",  # the server runs from its folder
    )
    assert "Answer correct" in summary and "3 questions" in summary
    (row,) = _value(metrics)
    assert row["n"] == 3 and row["answerable"] == 2 and row["unanswerable"] == 1
    assert _value(plots).count('src="data:image/png;base64,') >= 1
    assert "Worst misses" in _value(report)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.0.2", True),
     ("0.0.0.0", False), ("192.168.1.10", False), ("::", False), ("example.org", False)],
)  # fmt: skip
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


# --- issue 9 (hardening), through a server started as `make run` starts it ----------
# Issue 9 through a running ``rag serve`` (relative seeds/, index/ and evals/, as ``make run``
# starts it): uploads, the library's checks on the API, Gradio's upload cache, and paths in
# messages. Driven with gradio_client; nothing of ours is mocked.


RELATIVE_QUESTIONS = [
    {"id": "q1", "question": "Who decoded the waggle dance?", "answers": ["Karl"]}
]


@pytest.fixture(scope="module")
def relative_server(tmp_path_factory, corpus_dir):
    base = tmp_path_factory.mktemp("ui-hardening")
    uploads = base / "gradio-tmp"
    broken = base / "evals" / "broken" / "questions.jsonl"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"question": "Who?"\n', encoding="utf-8")
    # The evals folder named by its absolute path (the last --evals wins).
    proc, url, seeds = start_server(
        base,
        corpus_dir,
        "--evals",
        str(base / "evals"),
        questions=RELATIVE_QUESTIONS,
        env={"GRADIO_TEMP_DIR": str(uploads)},
    )
    yield url, seeds, uploads
    stop_server(proc)


@pytest.fixture(scope="module")
def relative_client(relative_server):
    from gradio_client import Client

    return Client(relative_server[0], verbose=False)


def _cached(uploads, name: str) -> list:
    return [p for p in uploads.rglob(name) if p.is_file()]


def test_upload_into_relative_seeds_and_no_copy_is_kept(relative_client, relative_server, tmp_path):
    from gradio_client import handle_file

    _, seeds, uploads = relative_server
    doc = tmp_path / "Skerry notes.txt"
    doc.write_text("The skerry lamp was lit by a keeper named Olafur.\n", encoding="utf-8")
    log, *_ = relative_client.predict([handle_file(doc)], api_name="/upload")
    assert "added Skerry_notes.txt" in _value(log)
    assert (seeds / "Skerry_notes.txt").read_bytes() == doc.read_bytes()
    assert _cached(uploads, "Skerry notes.txt") == []  # Gradio's copy is gone


def test_an_upload_refused_as_existing_is_kept_for_replace(
    relative_client, relative_server, tmp_path
):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    _, seeds, uploads = relative_server
    doc = tmp_path / "Sandur.txt"
    doc.write_text("The sandur plain is made of glacial outwash.\n", encoding="utf-8")
    relative_client.predict([handle_file(doc)], api_name="/upload")
    doc.write_text("The sandur plain lies south of the glacier.\n", encoding="utf-8")
    with pytest.raises(AppError, match="already exists in seeds/"):
        relative_client.predict([handle_file(doc)], api_name="/upload")
    # The page still holds this file: ticking "Replace" and adding again must find it.
    (kept,) = _cached(uploads, "Sandur.txt")
    assert kept.read_bytes() == doc.read_bytes()


@pytest.mark.parametrize(
    ("name", "data"), [("latin1.txt", "caf\u00e9 noir".encode("latin-1")), ("blank.md", b" \n\n")]
)
def test_rejected_upload_leaves_no_copy_and_no_server_path(
    relative_client, relative_server, tmp_path, name, data
):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    _, seeds, uploads = relative_server
    bad = tmp_path / name
    bad.write_bytes(data)
    with pytest.raises(AppError) as info:
        relative_client.predict([handle_file(bad)], api_name="/upload")
    assert str(seeds.parent) not in str(info.value) and "/tmp" not in str(info.value)
    assert _cached(uploads, name) == []
    assert not (seeds / name).exists()


@pytest.mark.parametrize("k", [0, -1])
def test_api_refuses_k_below_one(relative_client, k):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=f"k must be >= 1, got {k}"):
        relative_client.predict(question="Who decoded the waggle dance?", k=k, api_name="/answer")


def _call(url: str, api_name: str, *data) -> str:
    """Gradio's HTTP API with the body as JSON escapes (gradio_client cannot send a lone
    surrogate; a browser or curl can). Returns the event stream's text."""
    body = json.dumps({"data": list(data)}).encode("ascii")  # "\\udce9" stays an escape
    req = urllib.request.Request(
        f"{url}gradio_api/call/{api_name}", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        event = json.loads(r.read())["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/{api_name}/{event}", timeout=120) as r:
        return r.read().decode("utf-8")


def test_api_refuses_an_undecodable_question(relative_server):
    stream = _call(relative_server[0], "answer", "caf\udce9 au lait?", None, None, None)
    assert "event: error" in stream and "not valid UTF-8" in stream
    stream = _call(relative_server[0], "ask", "caf\udce9 au lait?", [], 5, "hybrid", 0.36)
    assert "event: complete" in stream and "not valid UTF-8" in stream


def test_error_messages_show_paths_relative_to_the_named_folders(relative_client, relative_server):
    from gradio_client.exceptions import AppError

    base = relative_server[1].parent
    with pytest.raises(AppError) as info:
        relative_client.predict(
            path=str(base / "evals" / "broken" / "questions.jsonl"), api_name="/run_eval"
        )
    message = str(info.value)
    assert "evals/broken/questions.jsonl, line 1: not valid JSON" in message
    assert str(base) not in message
