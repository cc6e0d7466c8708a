"""Issue 9 through a running ``rag serve`` (relative seeds/, index/ and evals/, as ``make run``
starts it): uploads, the library's checks on the API, Gradio's upload cache, and paths in
messages. Driven with gradio_client; nothing of ours is mocked."""

from __future__ import annotations

import json
import urllib.request

import pytest
from serving import start_server, stop_server

pytestmark = pytest.mark.slow

QUESTIONS = [{"id": "q1", "question": "Who decoded the waggle dance?", "answers": ["Karl"]}]


@pytest.fixture(scope="module")
def server(tmp_path_factory, corpus_dir):
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
        questions=QUESTIONS,
        env={"GRADIO_TEMP_DIR": str(uploads)},
    )
    yield url, seeds, uploads
    stop_server(proc)


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server[0], verbose=False)


def _value(out):
    return out["value"] if isinstance(out, dict) and "value" in out else out


def _cached(uploads, name: str) -> list:
    return [p for p in uploads.rglob(name) if p.is_file()]


def test_upload_into_relative_seeds_and_no_copy_is_kept(client, server, tmp_path):
    from gradio_client import handle_file

    _, seeds, uploads = server
    doc = tmp_path / "Skerry notes.txt"
    doc.write_text("The skerry lamp was lit by a keeper named Olafur.\n", encoding="utf-8")
    log, *_ = client.predict([handle_file(doc)], api_name="/upload")
    assert "added Skerry_notes.txt" in _value(log)
    assert (seeds / "Skerry_notes.txt").read_bytes() == doc.read_bytes()
    assert _cached(uploads, "Skerry notes.txt") == []  # Gradio's copy is gone


def test_an_upload_refused_as_existing_is_kept_for_replace(client, server, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    _, seeds, uploads = server
    doc = tmp_path / "Sandur.txt"
    doc.write_text("The sandur plain is made of glacial outwash.\n", encoding="utf-8")
    client.predict([handle_file(doc)], api_name="/upload")
    doc.write_text("The sandur plain lies south of the glacier.\n", encoding="utf-8")
    with pytest.raises(AppError, match="already exists in seeds/"):
        client.predict([handle_file(doc)], api_name="/upload")
    # The page still holds this file: ticking "Replace" and adding again must find it.
    (kept,) = _cached(uploads, "Sandur.txt")
    assert kept.read_bytes() == doc.read_bytes()


@pytest.mark.parametrize(
    ("name", "data"), [("latin1.txt", "caf\u00e9 noir".encode("latin-1")), ("blank.md", b" \n\n")]
)
def test_rejected_upload_leaves_no_copy_and_no_server_path(client, server, tmp_path, name, data):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    _, seeds, uploads = server
    bad = tmp_path / name
    bad.write_bytes(data)
    with pytest.raises(AppError) as info:
        client.predict([handle_file(bad)], api_name="/upload")
    assert str(seeds.parent) not in str(info.value) and "/tmp" not in str(info.value)
    assert _cached(uploads, name) == []
    assert not (seeds / name).exists()


@pytest.mark.parametrize("k", [0, -1])
def test_api_refuses_k_below_one(client, k):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=f"k must be >= 1, got {k}"):
        client.predict(question="Who decoded the waggle dance?", k=k, api_name="/answer")


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


def test_api_refuses_an_undecodable_question(server):
    stream = _call(server[0], "answer", "caf\udce9 au lait?", None, None, None)
    assert "event: error" in stream and "not valid UTF-8" in stream
    stream = _call(server[0], "ask", "caf\udce9 au lait?", [], 5, "hybrid", 0.36)
    assert "event: complete" in stream and "not valid UTF-8" in stream


def test_error_messages_show_paths_relative_to_the_named_folders(client, server):
    from gradio_client.exceptions import AppError

    base = server[1].parent
    with pytest.raises(AppError) as info:
        client.predict(
            path=str(base / "evals" / "broken" / "questions.jsonl"), api_name="/run_eval"
        )
    message = str(info.value)
    assert "evals/broken/questions.jsonl, line 1: not valid JSON" in message
    assert str(base) not in message
