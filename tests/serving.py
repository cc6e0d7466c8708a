"""A real ``rag serve`` for the UI tests (gradio_client and Playwright): start, wait, stop."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

#: A seed whose text holds markup that must be shown as text and never run.
HARBOUR = (
    "Harbour notes\n\n"
    "The log holds <script>window.__pwned=1;alert(1)</script> and "
    '<img src=x onerror="window.__pwned=2;alert(2)"> as plain text.\n'
    "The harbour master of Leith logs every ship that enters the port.\n"
)
STARTUP_SECONDS = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    base: Path,
    corpus: Path,
    *extra: str,
    questions: Sequence[Mapping],
    files: Mapping[str, str | bytes] | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[subprocess.Popen, str, Path]:
    """``rag serve`` under ``base`` on a copy of ``corpus`` plus HARBOUR and ``files`` (text,
    or bytes written as they are), with ``questions`` as the Eval tab's one set (evals/tiny).
    Returns (process, url, seeds).

    Run as ``make run`` runs it: from ``base``, with the relative folders seeds/, index/ and
    evals/ (``seeds`` is returned absolute, for the tests to look into)."""
    seeds = base / "seeds"
    shutil.copytree(corpus, seeds)
    for name, content in {"harbour.txt": HARBOUR, **(files or {})}.items():
        if isinstance(content, bytes):
            (seeds / name).write_bytes(content)
        else:
            (seeds / name).write_text(content, encoding="utf-8")
    tiny = base / "evals" / "tiny"
    tiny.mkdir(parents=True)
    (tiny / "questions.jsonl").write_text(
        "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions), encoding="utf-8"
    )
    port = free_port()
    log = (base / "server.log").open("w")
    cmd = [sys.executable, "-m", "rag", "serve", "--seeds", "seeds", "--index", "index",
           "--evals", "evals", "--port", str(port), *extra]  # fmt: skip
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        **(env or {}),
    }
    proc = subprocess.Popen(cmd, cwd=base, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if proc.poll() is not None:
            pytest.fail(f"rag serve exited with {proc.returncode}:\n{server_log(base)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc, url, seeds
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop_server(proc)
            pytest.fail(f"rag serve did not answer on {url}:\n{server_log(base)}")
        time.sleep(0.5)


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def server_log(base: Path) -> str:
    """The end of the server's log, for a failure message."""
    return (base / "server.log").read_text(errors="replace")[-3000:]
