"""``make loadtest``: 8 clients ask ``rag serve --watch`` over HTTP for 60 s while a document
is added and the watcher rebuilds the index mid-way.

Loopback only and bounded: the server runs on 127.0.0.1 on a free port over a temporary copy
of ``seeds/``, every loop stops at its deadline, and the server is stopped and the copy
removed at the end, whatever happens.

Reports requests served, errors (anything but a 200 with an answer), answers/s, p50/p95
latency before, during and after the rebuild (the sync's own start and end, as
``GET /api/status`` reports them), the rebuild's length, whether the added document is
answered from afterwards, and the server's peak memory (VmHWM). Prints a table and writes
the same numbers as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "evals" / "seed" / "questions.jsonl"
#: The document added mid-way (18 KB: about 50 chunks and 110 sentences to embed) and a
#: question it answers.
ADDED = ROOT / "evals" / "squad-sample" / "corpus" / "1973_oil_crisis.txt"
ADDED_QUESTION = "When did the 1973 oil crisis begin?"
STARTUP_SECONDS = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(conn: http.client.HTTPConnection, method: str, path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data else {}
    conn.request(method, path, body=data, headers=headers)
    r = conn.getresponse()
    return r.status, r.read()


def wait_for_server(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"rag serve exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            if request(conn, "GET", "/api/status")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"rag serve did not start in {STARTUP_SECONDS} s:\n{log.read_text()[-2000:]}")


def status(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    code, body = request(conn, "GET", "/api/status")
    conn.close()
    return json.loads(body) if code == 200 else {}


def client(port: int, questions: list[str], deadline: float, seed: int, out: list) -> None:
    """Ask until ``deadline``; append (start, end, ok, detail) per request."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while True:
        t0 = time.time()
        if t0 >= deadline:
            break
        ok, detail = False, ""
        try:
            code, body = request(conn, "POST", "/api/ask", {"question": rng.choice(questions)})
            ok = code == 200 and "answer" in json.loads(body)
            detail = "" if ok else f"{code} {body[:200]!r}"
        except (OSError, http.client.HTTPException, ValueError) as e:
            detail = f"{type(e).__name__}: {e}"
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        out.append((t0, time.time(), ok, detail))
    conn.close()


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def run(clients: int, seconds: float, add_at: float, work: Path) -> dict:
    seeds = work / "seeds"
    shutil.copytree(ROOT / "seeds", seeds)
    (work / "evals").mkdir()
    port = free_port()
    log = work / "server.log"
    cmd = [sys.executable, "-m", "rag", "serve", "--seeds", "seeds", "--index", "index",
           "--evals", "evals", "--host", "127.0.0.1", "--port", str(port), "--watch"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, cwd=work, stdout=f, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_server(port, proc, log)
        questions = [json.loads(line)["question"] for line in QUESTIONS.open(encoding="utf-8")]
        load_before = os.getloadavg()
        cpu_before = cpu_seconds(proc.pid)
        results: list[tuple] = []
        start = time.time()
        deadline = start + seconds
        threads = [
            threading.Thread(target=client, args=(port, questions, deadline, i, results))
            for i in range(clients)
        ]
        for t in threads:
            t.start()
        time.sleep(max(0.0, start + add_at - time.time()))
        added_at = time.time()
        shutil.copy(ADDED, seeds / ADDED.name)  # as a user would: a plain copy
        for t in threads:
            t.join(timeout=seconds + 60)
        elapsed = time.time() - start
        load_after = os.getloadavg()
        server_cpu = cpu_seconds(proc.pid) - cpu_before
        sync = None
        while time.time() < deadline + 120:  # a rebuild that outlasts the load: wait a little
            last = status(port).get("last_sync") or {}
            if ADDED.name in last.get("added", []):
                sync = last
                break
            time.sleep(0.2)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        code, body = request(conn, "POST", "/api/ask", {"question": ADDED_QUESTION, "k": 1})
        new_doc_cited = code == 200 and json.loads(body)["citations"][0]["source"] == ADDED.name
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    errors = [r for r in results if not r[2]]
    rb_start = epoch(sync["started_at"]) if sync else None
    rb_end = epoch(sync["finished_at"]) if sync else None

    def phase(name: str):
        if sync is None:
            return lambda r: name == "before"
        # A request belongs to the rebuild when it overlaps it at all.
        return {
            "before": lambda r: r[1] < rb_start,
            "during": lambda r: r[0] <= rb_end and r[1] >= rb_start,
            "after": lambda r: r[0] > rb_end,
        }[name]

    phases = {}
    for name in ("before", "during", "after"):
        lat = [1000 * (r[1] - r[0]) for r in results if r[2] and phase(name)(r)]
        phases[name] = {"requests": len(lat), "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95)}
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": len(results),
        "errors": len(errors),
        "error_examples": sorted({e[3] for e in errors})[:5],
        "answers_per_s": round(sum(1 for r in results if r[2]) / elapsed, 1),
        "phases": phases,
        "rebuild": {
            "file_added_after_s": round(added_at - start, 1),
            "sync_started_after_add_s": round(rb_start - added_at, 2) if sync else None,
            "sync_seconds": round(rb_end - rb_start, 2) if sync else None,
            "summary": sync.get("summary") if sync else "the sync did not finish",
            "added_document_cited_after": new_doc_cited,
        },
        "server_peak_rss_mb": round(rss, 1) if rss else None,
        # The rebuild's CPU is in here too: it ran inside the server.
        "server_cpu_s": round(server_cpu, 1),
        "server_cores_used": round(server_cpu / elapsed, 2),
        "cores": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }


def table(m: dict) -> str:
    def ms(x):
        return "-" if x is None else f"{x:.0f}"

    p = m["phases"]
    rb = m["rebuild"]
    lines = [
        f"clients {m['clients']}, {m['seconds']} s, {m['cores']} cores; load average "
        f"{' '.join(map(str, m['load_average_before']))} before, "
        f"{' '.join(map(str, m['load_average_after']))} after",
        f"requests served  {m['requests']}",
        f"errors           {m['errors']}" + (f"  {m['error_examples']}" if m["errors"] else ""),
        f"answers/s        {m['answers_per_s']}",
        "",
        "phase     requests   p50 ms   p95 ms",
        *(
            f"{name:8} {p[name]['requests']:9} {ms(p[name]['p50_ms']):>8} "
            f"{ms(p[name]['p95_ms']):>8}"
            for name in ("before", "during", "after")
        ),
        "",
        f"rebuild: file added at {rb['file_added_after_s']} s, sync began "
        f"{rb['sync_started_after_add_s']} s later and took {rb['sync_seconds']} s: "
        f"{rb['summary']}",
        f"added document cited afterwards: {rb['added_document_cited_after']}",
        f"server peak RSS  {m['server_peak_rss_mb']} MB",
        f"server CPU       {m['server_cpu_s']} s ({m['server_cores_used']} cores on average, "
        "rebuild included)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--add-at", type=float, default=15.0, help="add the document after S s")
    ap.add_argument("--out", type=Path, help="also write the numbers here as JSON")
    args = ap.parse_args(argv)
    if not (1 <= args.clients <= 64 and 5 <= args.seconds <= 600):
        ap.error("--clients must be 1..64 and --seconds 5..600")
    with tempfile.TemporaryDirectory(prefix="rag-loadtest-") as tmp:
        m = run(args.clients, args.seconds, min(args.add_at, args.seconds / 2), Path(tmp))
    print(table(m))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(m, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    ok = m["errors"] == 0 and m["rebuild"]["added_document_cited_after"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
