"""Issue 10, part 2: live folder sync (``rag.watch``, ``rag serve --watch``, ``rag index
--watch``).

Real file events (watchfiles on inotify), real files, the real model and real FAISS on the
tiny test corpus. The last tests run ``rag serve --watch`` and ``rag index --watch`` as
users do, and ``kill -9`` the server in the middle of a rebuild the watcher started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from serving import server_log, start_server, stop_server

from rag.answer import Assistant
from rag.errors import IndexBusyError
from rag.indexing import build_index
from rag.store import Index
from rag.swap import writer_lock
from rag.watch import FolderWatcher, IndexSync, SyncRecord, describe

GLACIER = (
    "Vatnajökull is the largest glacier in Iceland and covers about eight percent of the country.\n"
)
#: Generous bounds for a shared 2-core machine; a sync normally takes a second or two.
SYNC_SECONDS = 120


class Syncs:
    """Records every sync a watcher reports, and waits for the ones a test expects."""

    def __init__(self) -> None:
        self.records: list[SyncRecord] = []
        self._cv = threading.Condition()

    def __call__(self, record: SyncRecord) -> None:
        with self._cv:
            self.records.append(record)
            self._cv.notify_all()

    def wait(self, pred, seconds: float = SYNC_SECONDS) -> SyncRecord:
        deadline = time.monotonic() + seconds
        with self._cv:
            while True:
                for r in self.records:
                    if pred(r):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no such sync within {seconds} s; saw {self.records}")
                self._cv.wait(left)


@pytest.fixture
def live(seeds_copy, tmp_path, embedder):
    """(seeds, assistant, syncs) with a FolderWatcher running on the seeds copy."""
    index = tmp_path / "index"
    build_index(seeds_copy, index)
    assistant = Assistant(index)
    syncs = Syncs()
    watcher = FolderWatcher(
        IndexSync(seeds_copy, index, assistant=assistant), on_sync=syncs, stable_seconds=0.5
    ).start()
    time.sleep(0.3)  # let inotify register the folder
    yield seeds_copy, assistant, syncs
    watcher.stop()


def sources(assistant: Assistant, question: str, k: int = 10) -> set[str]:
    return {c.source for c in assistant.ask(question, k=k).citations}


def test_a_new_file_is_indexed_and_answered_from(live):
    seeds, assistant, syncs = live
    (seeds / "glaciers.txt").write_text(GLACIER, encoding="utf-8")
    r = syncs.wait(lambda r: "glaciers.txt" in (r.report.added if r.report else ()))
    assert r.ok and r.swapped and r.trigger == "watch" and r.changes == ("added glaciers.txt",)
    answer = assistant.ask("What is the largest glacier in Iceland?")
    assert answer.citations[0].source == "glaciers.txt" and "Vatnajökull" in answer.answer


def test_a_burst_of_files_is_one_sync(live):
    seeds, assistant, syncs = live
    for i in range(6):
        (seeds / f"note{i}.txt").write_text(f"Note {i} says the tide turned at {i} o'clock.\n")
    r = syncs.wait(lambda r: r.report is not None and r.report.added)
    assert r.report.added == tuple(f"note{i}.txt" for i in range(6))
    time.sleep(1.5)  # nothing else arrives for the same burst
    assert [s.report.added for s in syncs.records if s.report and s.report.added] == [
        r.report.added
    ]


def test_a_file_still_being_written_is_not_indexed_half_way(live):
    seeds, assistant, syncs = live
    lines = [f"Line {i} of the slow log records ship number {i} entering the harbour.\n"
             for i in range(8)]  # fmt: skip
    path = seeds / "slowlog.txt"
    with path.open("w", encoding="utf-8") as f:
        for line in lines:  # a slow copy: a pause longer than a burst's quiet time each line
            f.write(line)
            f.flush()
            time.sleep(0.4)
    r = syncs.wait(lambda r: r.report is not None and "slowlog.txt" in r.report.added)
    text = Index.load(assistant.index_dir).documents["slowlog.txt"].text
    assert text == "".join(lines)
    # The only sync that indexed it did so after the last line was written.
    indexed = [s for s in syncs.records if s.report and "slowlog.txt" in s.report.added]
    assert indexed == [r]


def test_a_renamed_and_a_deleted_file_are_never_cited_again(live):
    seeds, assistant, syncs = live
    q = "When did Eyjafjallajökull erupt?"
    assert "volcanoes.txt" in sources(assistant, q)
    (seeds / "volcanoes.txt").rename(seeds / "iceland.txt")
    r = syncs.wait(lambda r: r.report is not None and "volcanoes.txt" in r.report.removed)
    assert r.report.added == ("iceland.txt",)
    assert set(r.changes) == {"deleted volcanoes.txt", "added iceland.txt"}
    got = sources(assistant, q)
    assert "iceland.txt" in got and "volcanoes.txt" not in got

    (seeds / "iceland.txt").unlink()
    syncs.wait(lambda r: r.report is not None and "iceland.txt" in r.report.removed)
    for question in (q, "Which volcano erupted in April 2010?", "volcano ash eruption"):
        assert not {"iceland.txt", "volcanoes.txt"} & sources(assistant, question, k=20)


def test_a_changed_file_is_updated_and_no_answer_mixes_two_indexes(live):
    seeds, assistant, syncs = live
    path = seeds / "bees.md"
    v1 = path.read_text(encoding="utf-8")
    v2 = "\n" * 30 + v1.replace("Karl von Frisch", "Karl Ritter von Frisch")  # lines move
    bad: list[str] = []
    stop = threading.Event()

    def ask_loop():
        while not stop.is_set():
            a = assistant.ask("Who decoded the waggle dance?", k=5)
            for c in a.citations:
                if c.source != "bees.md":
                    continue
                # Every citation is one version of the file throughout: its excerpt at its
                # offsets and its line numbers. An answer that mixed two indexes is not.
                v = next((v for v in (v1, v2) if v[c.start : c.end] == c.excerpt), None)
                lines = (c.line_start, c.line_end)
                if v is None or lines != (
                    v.count("\n", 0, c.start) + 1,
                    v.count("\n", 0, max(c.start, c.end - 1)) + 1,
                ):
                    bad.append(f"{c.start}-{c.end} lines {lines}: {c.excerpt[:40]!r}")  # fmt: skip

    threads = [threading.Thread(target=ask_loop) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        path.write_text(v2, encoding="utf-8")
        syncs.wait(lambda r: r.report is not None and "bees.md" in r.report.changed)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert bad == []
    assert "Karl Ritter von Frisch" in assistant.ask("Who decoded the waggle dance?").answer


def test_hidden_files_are_ignored(live):
    seeds, assistant, syncs = live
    (seeds / ".draft.txt.swp").write_text("editor swap file")
    (seeds / ".hidden").mkdir()
    (seeds / ".hidden" / "x.txt").write_text("inside a hidden folder")
    time.sleep(2.5)
    assert syncs.records == []


def test_a_change_made_before_the_watch_began_is_caught_up(seeds_copy, tmp_path, embedder):
    # `rag serve --watch` builds, then starts watching: a file saved in between is synced.
    index = tmp_path / "index"
    build_index(seeds_copy, index)
    assistant = Assistant(index)
    (seeds_copy / "glaciers.txt").write_text(GLACIER, encoding="utf-8")
    syncs = Syncs()
    sync = IndexSync(seeds_copy, index, assistant=assistant)
    watcher = FolderWatcher(sync, on_sync=syncs, stable_seconds=0.5).start()
    try:
        r = syncs.wait(lambda r: r.report is not None and r.report.added)
    finally:
        watcher.stop()
    assert r.report.added == ("glaciers.txt",) and r.changes == ("started watching",)
    assert assistant.ask(GLACIER).citations[0].source == "glaciers.txt"


def test_a_removed_and_re_created_folder_is_watched_again(live):
    seeds, assistant, syncs = live
    shutil.rmtree(seeds)
    failed = syncs.wait(lambda r: not r.ok)
    assert "seeds folder not found" in failed.error
    assert "bees.md" in assistant.index.documents  # the old index still answers
    seeds.mkdir()
    (seeds / "glaciers.txt").write_text(GLACIER, encoding="utf-8")
    r = syncs.wait(lambda r: r.ok and "glaciers.txt" in r.report.added + r.report.unchanged)
    assert set(assistant.index.documents) == {"glaciers.txt"}
    (seeds / "fjords.txt").write_text("Sognefjord is the longest fjord in Norway.\n")
    syncs.wait(lambda r: r.ok and "fjords.txt" in r.report.added)  # watched again
    assert r.changes in (("re-created the folder",), ("added glaciers.txt",))


def test_one_sync_at_a_time_and_a_failed_one_keeps_the_old_index(seeds_copy, tmp_path, embedder):
    index = tmp_path / "index"
    build_index(seeds_copy, index)
    assistant = Assistant(index)
    sync = IndexSync(seeds_copy, index, assistant=assistant)
    (seeds_copy / "glaciers.txt").write_text(GLACIER, encoding="utf-8")
    assert sync.start("api") is True
    assert sync.start("api") is False  # a button or an API call is told, not queued
    with pytest.raises(IndexBusyError, match="already running"):
        sync.run("ui")
    last = sync.run("watch", wait=True)  # the watcher waits its turn
    assert sync.running is None and sync.last is last and last.ok
    assert "glaciers.txt" in assistant.index.documents

    shutil.rmtree(seeds_copy)
    with pytest.raises(Exception, match="seeds folder not found"):
        sync.run("watch")
    assert sync.last is not None and not sync.last.ok and "seeds folder" in sync.last.error
    assert assistant.ask("Who decoded the waggle dance?").citations[0].source == "bees.md"


def test_describe_names_each_file_once_by_its_last_event(tmp_path):
    from watchfiles import Change

    root = tmp_path.resolve()
    got = describe(
        [(Change.added, str(root / "a.txt")), (Change.modified, str(root / "a.txt")),
         (Change.deleted, str(root / "sub" / "b.md"))],
        root,
    )  # fmt: skip
    assert got == ("modified a.txt", "deleted sub/b.md")
    many = describe([(Change.added, str(root / f"f{i}.txt")) for i in range(8)], root, limit=3)
    assert many == ("added f0.txt", "added f1.txt", "added f2.txt", "+5 more")


# --------------------------------------------------------------------------- the commands


@pytest.fixture(scope="module")
def watched_server(tmp_path_factory, corpus_dir):
    base = tmp_path_factory.mktemp("watch-serve")
    proc, url, seeds = start_server(base, corpus_dir, "--watch", questions=[])
    yield url.rstrip("/"), seeds, proc
    stop_server(proc)


def _status_until(url: str, pred, seconds: float = SYNC_SECONDS) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        s = httpx.get(url + "/api/status", timeout=30).json()
        if s["last_sync"] and not s["rebuild_running"] and pred(s["last_sync"]):
            return s
        time.sleep(0.2)
    pytest.fail(f"no such sync within {seconds} s: {s}")


@pytest.mark.slow
def test_serve_watch_follows_the_folder_and_the_index_tab_says_so(watched_server):
    from gradio_client import Client

    url, seeds, _ = watched_server
    ask = "What is the largest glacier in Iceland?"
    (seeds / "glaciers.txt").write_text(GLACIER, encoding="utf-8")
    s = _status_until(url, lambda last: "glaciers.txt" in last["added"])
    assert s["watching"] is True and s["last_sync"]["trigger"] == "watch"
    r = httpx.post(url + "/api/ask", json={"question": ask}, timeout=60).json()
    assert r["citations"][0]["source"] == "glaciers.txt"

    summary, _table, _header = Client(url, verbose=False).predict(api_name="/index_status")
    assert "Live sync on" in summary and "Last sync" in summary
    assert "added glaciers.txt" in summary and "1 added" in summary

    (seeds / "glaciers.txt").unlink()
    _status_until(url, lambda last: "glaciers.txt" in last["removed"])
    for _ in range(3):
        r = httpx.post(url + "/api/ask", json={"question": ask, "k": 20}, timeout=60).json()
        assert "glaciers.txt" not in {c["source"] for c in r["citations"]}


def _big_document(n: int = 800) -> str:
    """A document that takes a while to embed (one distinct sentence a line)."""
    return "".join(
        f"Entry {i}: the keeper of lighthouse {i} logged {i * 7 % 97} ships and "
        f"{i * 13 % 89} storms in season {i % 40}.\n"
        for i in range(n)
    )


@pytest.mark.slow
def test_kill_9_during_a_watch_rebuild_leaves_the_last_good_index(tmp_path, corpus_dir, rag_cli):
    proc, url, seeds = start_server(tmp_path, corpus_dir, "--watch", questions=[])
    index = tmp_path / "index"
    try:
        before = httpx.get(url + "api/status", timeout=30).json()
        (seeds / "keepers.txt").write_text(_big_document(), encoding="utf-8")
        deadline = time.monotonic() + SYNC_SECONDS
        while True:  # the watcher's build holds the index's writer lock
            try:
                with writer_lock(index, wait=False):
                    pass
            except IndexBusyError:
                break
            assert proc.poll() is None, server_log(tmp_path)
            assert time.monotonic() < deadline, "the watcher never started a rebuild"
            time.sleep(0.05)
        time.sleep(0.5)  # well inside the embedding of 800 sentences (several seconds)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            stop_server(proc)
    # The index on disk is the last good one: it loads, passes its checks, and answers.
    loaded = Index.load(index)
    assert loaded.manifest == json.loads((index / "manifest.json").read_text())
    assert "keepers.txt" not in loaded.documents
    assert loaded.manifest["built_at"] == before["built_at"]
    r = rag_cli("ask", "--json", "When did Eyjafjallajökull erupt?", "--seeds", "seeds",
                "--index", "index", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["citations"][0]["source"] == "volcanoes.txt"
    status = rag_cli("status", "--seeds", "seeds", "--index", "index", cwd=tmp_path)
    assert status.returncode == 0 and "new" in status.stdout and "keepers.txt" in status.stdout
    # The next build leaves nothing of the killed one behind.
    (seeds / "keepers.txt").unlink()
    assert not build_index(seeds, index).written
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".index")) == [
        ".index.lock"
    ]


@pytest.mark.slow
def test_rag_index_watch_prints_a_line_per_sync(seeds_copy, tmp_path):
    cmd = [sys.executable, "-m", "rag", "index", "--watch", "--seeds", "seeds", "--index",
           "index"]  # fmt: skip
    project = seeds_copy.parent
    log = (tmp_path / "watch.log").open("w+")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, cwd=project, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + SYNC_SECONDS

        def wait_for(text: str) -> str:
            while True:
                out = Path(log.name).read_text()
                if text in out:
                    return out
                assert proc.poll() is None, out
                assert time.monotonic() < deadline, out
                time.sleep(0.2)

        wait_for("watching seeds/ for changes")
        (seeds_copy / "glaciers.txt").write_text(GLACIER, encoding="utf-8")
        out = wait_for("sync (watch: added glaciers.txt): index updated: 1 added")
        assert "index rebuilt: 4 added" in out
        assert "glaciers.txt" in Index.load(project / "index").documents
        proc.send_signal(signal.SIGINT)  # Ctrl+C: a clean stop
        assert proc.wait(30) == 0
        assert "stopped watching" in Path(log.name).read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
