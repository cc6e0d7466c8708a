"""``make bench-scale``: how the index scales, at about 10k, 100k and 1M passages.

Indexes that big are built cheaply by reusing real vectors: the real SQuAD sample corpus
(16 articles) is embedded once (the *base* index), and each size's seeds folder holds copies
of it under new names (``c0000/…``, ``c0001/…``). The size's index folder starts as a copy of
the base index, so every copy's chunks and sentences find their vectors by text hash and
nothing new is embedded; the build still chunks, checks and writes every document. What a
real corpus of that size would add, embedding, is estimated from the base build's measured
seconds per text.

Per size: full build, no-change re-index and one-file-changed time (each ``build_index`` in a
fresh process), load (``Index.load`` + ``Retriever``), resident memory of a process that
loaded the index and answered, index size on disk, warm ``Assistant.ask`` p50/p95 over real
SQuAD questions, ``rag status`` as users run it, and ``rag serve``'s page and status panel.
Each metric gets a growth exponent (log-log least squares over the measured sizes). A size
whose projected run time exceeds ``--max-size-seconds`` or the remaining ``--budget`` is not
run: its numbers are projections from the fit, marked as such.

Only public entry points (``rag.indexing.build_index``, ``rag.store.Index.load``,
``rag.retrieval.Retriever``, ``rag.answer.Assistant`` and the ``rag`` command) are used, so
the same harness measures the store before and after a rework. Bounded: every step has a
timeout, the server is always stopped, and size folders under ``--work-dir`` are removed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from fit import fit_growth
from report import METRICS, table

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "worker.py"
CORPUS = ROOT / "evals" / "squad-sample" / "corpus"
QUESTIONS = ROOT / "evals" / "squad-sample" / "questions.jsonl"
REPORTS = ROOT / "evals" / "scale" / "reports"
EDIT = "\n\nThis copy was edited by the scale benchmark to measure a one-file update.\n"
#: Metrics that get no growth exponent (counts of the workload, not costs).
NOT_FITTED = {"chunks", "sentences", "documents", "load_avg"}


class StepError(RuntimeError):
    pass


class Clock:
    """The run's deadline: every step gets at most what is left of the budget."""

    def __init__(self, budget: float) -> None:
        self.deadline = time.monotonic() + budget

    def left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise StepError("the --budget is spent")
        return left


def rag_command() -> list[str]:
    rag = Path(sys.executable).parent / "rag"
    return [str(rag)] if rag.exists() else [sys.executable, "-m", "rag"]


def run_worker(clock: Clock, step: str, *args: str) -> dict:
    """One ``worker.py`` step in a fresh process; its JSON result."""
    cmd = [sys.executable, str(WORKER), step, *map(str, args)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=clock.left())
    except subprocess.TimeoutExpired:
        raise StepError(f"{step}: timed out (budget)") from None
    if p.returncode != 0:
        raise StepError(f"{step}: exit {p.returncode}: {p.stderr.strip()[-1500:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def load_avg() -> float:
    return os.getloadavg()[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_ms(port: int, path: str, timeout: float = 60) -> tuple[int, float]:
    """(status, milliseconds) of one GET on 127.0.0.1."""
    t = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        return r.status, (time.perf_counter() - t) * 1000
    finally:
        conn.close()


def measure_serve(clock: Clock, seeds: Path, index: Path, log: Path) -> dict:
    """Start ``rag serve --no-build`` on a free loopback port, time until ``GET /`` answers
    200, then warm GETs of the page and of ``/api/status``; the server is always stopped."""
    port = free_port()
    cmd = rag_command() + [
        "serve",
        "--no-build",
        "--seeds",
        str(seeds),
        "--index",
        str(index),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--evals",
        str(ROOT / "evals"),
    ]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=seeds.parent, stdout=out, stderr=out, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + min(clock.left(), 1800)
        while True:
            if proc.poll() is not None:
                raise StepError(f"rag serve exited {proc.returncode}: {log.read_text()[-1500:]}")
            if time.monotonic() > deadline:
                raise StepError("rag serve did not answer in time")
            try:
                if get_ms(port, "/", timeout=10)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.25)
        start_s = time.perf_counter() - t0
        page = [get_ms(port, "/") for _ in range(5)]
        api = [get_ms(port, "/api/status") for _ in range(3)]
        if any(code != 200 for code, _ in page + api):
            raise StepError(f"rag serve answered {[c for c, _ in page + api]}")
        return {
            "serve_start_s": start_s,
            "page_ms": statistics.median(ms for _, ms in page),
            "status_api_ms": statistics.median(ms for _, ms in api),
        }
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL it after 20 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(20)


def timed_status(clock: Clock, seeds: Path, index: Path) -> list[float]:
    """Wall seconds of ``rag status`` run twice (the second with a warm page cache)."""
    out = []
    for _ in range(2):
        t = time.perf_counter()
        p = subprocess.run(
            rag_command() + ["status", "--seeds", str(seeds), "--index", str(index)],
            capture_output=True,
            text=True,
            timeout=clock.left(),
        )
        out.append(time.perf_counter() - t)
        if p.returncode != 0:
            raise StepError(f"rag status: exit {p.returncode}: {p.stderr.strip()[-500:]}")
    return out


def build_base(clock: Clock, work: Path, reuse: bool) -> dict:
    """The real corpus, embedded once: ``work/base/{seeds,index,build.json}``."""
    base = work / "base"
    record = base / "build.json"
    if reuse and record.exists() and (base / "index").is_dir():
        print(f"reusing the base index in {base}", file=sys.stderr)
        return json.loads(record.read_text())
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    shutil.copytree(CORPUS, base / "seeds")
    print("embedding the base corpus (once)...", file=sys.stderr)
    result = run_worker(clock, "build", "--seeds", base / "seeds", "--index", base / "index")
    record.write_text(json.dumps(result))
    return result


def make_seeds(dest: Path, copies: int) -> None:
    """``copies`` copies of the real corpus under new names: ``c0000/<file>``, ..."""
    files = sorted(p for p in CORPUS.iterdir() if p.is_file())
    for k in range(copies):
        folder = dest / f"c{k:04d}"
        folder.mkdir(parents=True)
        for f in files:
            shutil.copyfile(f, folder / f.name)


def measure_size(clock: Clock, work: Path, base: dict, target: int, keep: bool) -> dict:
    base_chunks = base["chunks_total"]
    copies = max(1, round(target / base_chunks))
    here = work / f"n{target}"
    shutil.rmtree(here, ignore_errors=True)
    here.mkdir(parents=True)
    seeds, index = here / "seeds", here / "index"
    t_size = time.perf_counter()
    loads = [load_avg()]
    steps: dict = {"copies": copies}
    m: dict = {}
    try:
        make_seeds(seeds, copies)
        shutil.copytree(work / "base" / "index", index)  # every vector, found by text hash
        print(f"[{target:,}] {copies} copies: full build...", file=sys.stderr)
        b = steps["build"] = run_worker(clock, "build", "--seeds", seeds, "--index", index)
        loads.append(load_avg())
        print(f"[{target:,}] {b['line']}", file=sys.stderr)
        r = steps["reindex"] = run_worker(clock, "build", "--seeds", seeds, "--index", index)
        first = sorted(p for p in (seeds / "c0000").iterdir())[0]
        with first.open("a", encoding="utf-8") as f:
            f.write(EDIT)
        c = steps["one_change"] = run_worker(clock, "build", "--seeds", seeds, "--index", index)
        loads.append(load_avg())
        print(f"[{target:,}] one change: {c['line']}", file=sys.stderr)
        m["disk_mb"] = disk_mb(index)
        ld = steps["load"] = run_worker(clock, "load", "--index", index)
        loads.append(load_avg())
        print(f"[{target:,}] load {ld['load_s']:.1f}s; asking...", file=sys.stderr)
        a = steps["ask"] = run_worker(
            clock, "ask", "--index", index, "--questions", QUESTIONS, "--n", "50"
        )
        loads.append(load_avg())
        st = steps["status"] = timed_status(clock, seeds, index)
        print(f"[{target:,}] rag status {st[-1]:.1f}s; serving...", file=sys.stderr)
        sv = steps["serve"] = measure_serve(clock, seeds, index, here / "serve.log")
        loads.append(load_avg())
        m.update(
            chunks=ld["chunks"],
            sentences=ld["sentences"],
            documents=ld["documents"],
            build_s=b["seconds"],
            build_hwm_mb=b.get("vmhwm_mb"),
            reindex_s=r["seconds"],
            one_change_s=c["seconds"],
            load_s=ld["load_s"],
            rss_mb=a.get("vmrss_mb"),
            hwm_mb=a.get("vmhwm_mb"),
            ask_p50_ms=a["p50_ms"],
            ask_p95_ms=a["p95_ms"],
            embed_p50_ms=a.get("embed_p50_ms"),
            status_s=st[-1],
            **sv,
        )
        per_text = base["seconds"] / (base["chunks_embedded"] + base["sentences_embedded"])
        m["embed_est_s"] = per_text * (m["chunks"] + m["sentences"])
        m["build_est_s"] = m["build_s"] + m["embed_est_s"]
        m["one_change_pct"] = 100 * m["one_change_s"] / m["build_est_s"]
    finally:
        steps["load_avgs"] = loads
        m["load_avg"] = statistics.fmean(loads)
        steps["wall_s"] = time.perf_counter() - t_size
        if not keep:
            shutil.rmtree(here, ignore_errors=True)
    return {"target": target, "copies": copies, "measured": m, "steps": steps}


def commit() -> str:
    def git(*a: str) -> str:
        return subprocess.run(
            ["git", *a], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no", "rag")
    return git("rev-parse", "--short", "HEAD") + ("+dirty(rag/)" if dirty else "")


def growth(sizes: list[dict]) -> dict:
    done = [s for s in sizes if "build_s" in s.get("measured", {})]
    out = {}
    for key, _, _ in METRICS:
        if key in NOT_FITTED:
            continue
        sizes_ = [s["measured"]["chunks"] for s in done]
        g = fit_growth(sizes_, [s["measured"].get(key) for s in done])
        if g is not None:
            out[key] = {"exponent": g.exponent, "c": g.c, "points": g.points}
    walls = [s["steps"]["wall_s"] for s in done]
    g = fit_growth([s["measured"]["chunks"] for s in done], walls)
    if g is not None:
        out["size_wall_s"] = {"exponent": g.exponent, "c": g.c, "points": g.points}
    return out


def projected_wall(sizes: list[dict], base_chunks: int, target: int) -> float | None:
    """Seconds this size would take to measure: the last measured size's, scaled at least
    linearly (the fitted exponent when steeper). Over few sizes the fixed costs (model
    loads, server start) flatten the fit, so a sublinear fit would under-project."""
    done = [s for s in sizes if "build_s" in s.get("measured", {})]
    if not done:
        return None
    chunks = max(1, round(target / base_chunks)) * base_chunks
    g = growth(sizes).get("size_wall_s")
    exponent = max(1.0, g["exponent"]) if g is not None else 1.0
    last = done[-1]
    return last["steps"]["wall_s"] * (chunks / last["measured"]["chunks"]) ** exponent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000,1000000", help="passages, comma-separated")
    p.add_argument("--label", default="run", help="report folder: evals/scale/reports/LABEL/")
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/rag-bench-scale"))
    p.add_argument("--budget", type=float, default=7200, help="seconds for the whole run")
    p.add_argument(
        "--max-size-seconds",
        type=float,
        default=2400,
        help="skip (and project) a size projected to take longer than this",
    )
    p.add_argument("--reuse-base", action="store_true", help="reuse WORK_DIR/base if present")
    p.add_argument("--keep", action="store_true", help="keep WORK_DIR (default: remove it)")
    p.add_argument("--keep-base", action="store_true", help="keep WORK_DIR/base only")
    args = p.parse_args(argv)
    try:
        targets = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        p.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if not targets or targets[0] < 1:
        p.error(f"--sizes must be positive, got {args.sizes!r}")
    clock = Clock(args.budget)
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    result = {
        "label": args.label,
        "commit": commit(),
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "argv": sys.argv[1:],
        "sizes": [],
        "growth": {},
    }
    try:
        base = result["base"] = build_base(clock, work, args.reuse_base)
        base["seconds_per_text"] = base["seconds"] / (
            base["chunks_embedded"] + base["sentences_embedded"]
        )
        for target in targets:
            guess = projected_wall(result["sizes"], base["chunks_total"], target)
            left = clock.deadline - time.monotonic()
            if guess is not None and (guess > args.max_size_seconds or guess > left):
                result["skip_reason"] = (
                    f"{target:,} projected to take {guess:,.0f} s to measure, over "
                    f"--max-size-seconds {args.max_size_seconds:.0f} or the {left:.0f} s left"
                )
                print(result["skip_reason"], file=sys.stderr)
                result["sizes"].append({"target": target, "skipped": True, "measured": {}})
                continue
            try:
                result["sizes"].append(measure_size(clock, work, base, target, args.keep))
            except StepError as e:
                print(f"[{target:,}] stopped: {e}", file=sys.stderr)
                result["sizes"].append({"target": target, "error": str(e), "measured": {}})
                break
    finally:
        if not args.keep:
            for child in work.iterdir() if work.exists() else ():
                if child.name != "base" or not args.keep_base:
                    shutil.rmtree(child, ignore_errors=True)
    result["growth"] = growth(result["sizes"])
    _project(result)
    out = REPORTS / args.label
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    text = table(result)
    (out / "table.md").write_text(text)
    print(text)
    return 0 if all(s.get("measured") or s.get("skipped") for s in result["sizes"]) else 1


def _project(result: dict) -> None:
    """Fill ``projected`` for sizes not measured, from the fits (passages = copies × base)."""
    base_chunks = result["base"]["chunks_total"]
    for s in result["sizes"]:
        if s.get("measured", {}).get("build_s") is not None:
            continue
        chunks = max(1, round(s["target"] / base_chunks)) * base_chunks
        s["projected"] = {"chunks": chunks}
        for key, g in result["growth"].items():
            if key != "size_wall_s":
                s["projected"][key] = g["c"] * chunks ** g["exponent"]


if __name__ == "__main__":
    sys.exit(main())
