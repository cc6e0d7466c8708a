"""An index folder replaced whole: atomic writes, the writer lock, recovery from a cut swap,
temporary folders of killed builds, the folder's mode."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag.answer import Assistant
from rag.errors import RagError
from rag.indexing import build_index
from rag.store import Index
from rag.swap import write_atomically, writer_lock


def _same(a, b) -> bool:
    strip = lambda d: {k: v for k, v in d.to_dict().items() if k != "latency_ms"}  # noqa: E731
    return strip(a) == strip(b)


def test_failed_write_leaves_the_previous_index_intact(built_index, tmp_path, assistant):
    index = tmp_path / "index"
    shutil.copytree(built_index[1], index)
    before = {p.name: p.read_bytes() for p in index.iterdir()}

    def crash(tmp: Path) -> None:
        (tmp / "chunks.npy").write_text("half written")
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-build

    with pytest.raises(KeyboardInterrupt):
        write_atomically(index, crash)
    assert {p.name: p.read_bytes() for p in index.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["index"]  # no temporary left behind
    q = "Who decoded the waggle dance?"
    assert _same(Assistant(index).ask(q), assistant.ask(q))


def test_a_folder_that_is_not_an_index_is_never_replaced(seeds_copy, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(RagError, match="another --index"):
        build_index(seeds_copy, precious)
    assert (precious / "thesis.txt").read_text() == "do not delete"


def test_recovery_restores_the_newest_complete_backup_and_removes_partial_ones(
    built_index, tmp_path, assistant
):
    # A kill during a backup's deletion left a partial copy; a later kill between the two
    # renames left the index only as its (complete) backup.
    partial = tmp_path / ".index.old-ffffffff"
    shutil.copytree(built_index[1], partial)
    (partial / "chunks.npy").unlink()
    (partial / "manifest.json").unlink()
    older = tmp_path / f".index.old-{time.time_ns() - 10**9:020d}-1"
    newest = tmp_path / f".index.old-{time.time_ns():020d}-2"
    for folder, stamp in ((older, "older"), (newest, "newest")):
        shutil.copytree(built_index[1], folder)
        m = json.loads((folder / "manifest.json").read_text())
        m["built_at"] = stamp
        (folder / "manifest.json").write_text(json.dumps(m))

    index = tmp_path / "index"
    loaded = Index.load(index)
    assert loaded.manifest["built_at"] == "newest"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".index.lock", "index"]
    q = "How many eggs can a queen lay?"
    assert Assistant(index).ask(q).answer == assistant.ask(q).answer


def test_a_second_writer_waits_for_the_first(seeds_copy):
    project = seeds_copy.parent
    with writer_lock(project / "index"):  # as a running `rag index` holds it
        proc = subprocess.Popen(
            [sys.executable, "-m", "rag", "index", "--quiet"],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        waiting = threading.Event()
        lines: list[str] = []

        def read() -> None:
            for line in proc.stderr:
                lines.append(line)
                if "waiting" in line:
                    waiting.set()

        threading.Thread(target=read, daemon=True).start()
        try:
            deadline = time.monotonic() + 180
            while not waiting.wait(0.5) and proc.poll() is None and time.monotonic() < deadline:
                pass
            assert waiting.is_set(), f"the second writer did not wait: {lines}"
            time.sleep(1)
            assert proc.poll() is None and not (project / "index").exists()
        except BaseException:
            proc.kill()
            raise
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, lines
    assert "4 added" in out
    (line,) = [w for w in lines if "waiting" in w]
    assert "another build of index/ is running" in line


def test_a_reader_never_recovers_under_a_writers_feet(built_index, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(built_index[1], index)
    fresh = tmp_path / ".index.tmp-writer"
    shutil.copytree(built_index[1], fresh)
    m = json.loads((fresh / "manifest.json").read_text())
    m["built_at"] = "the new one"
    (fresh / "manifest.json").write_text(json.dumps(m))

    loaded: list[Index] = []
    with writer_lock(index):
        # The writer is between its two renames: the old index is its backup.
        backup = tmp_path / f".index.old-{time.time_ns():020d}-{os.getpid()}"
        os.rename(index, backup)
        reader = threading.Thread(target=lambda: loaded.append(Index.load(index)))
        reader.start()
        time.sleep(0.5)
        assert reader.is_alive() and backup.is_dir() and not index.exists()
        os.rename(fresh, index)
        shutil.rmtree(backup)
    reader.join(10)
    assert loaded and loaded[0].manifest["built_at"] == "the new one"


def test_a_build_removes_temporary_folders_of_killed_builds(seeds_copy, tmp_path):
    index = tmp_path / "index"
    build_index(seeds_copy, index)
    for name in (".index.tmp-k1ll3d", ".index.tmp-4242-deadbeef"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "chunks.npy").write_bytes(b"\0" * 1024)
    other = tmp_path / ".other.tmp-keep"  # another index's: not ours to remove
    other.mkdir()
    report = build_index(seeds_copy, index)
    assert not report.written  # even a build that has nothing to do cleans up
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".index.lock",
        ".other.tmp-keep",
        "index",
        "seeds",
    ]


def test_a_build_keeps_the_index_folders_mode(seeds_copy, tmp_path):
    index = tmp_path / "index"
    old = os.umask(0o022)
    try:
        build_index(seeds_copy, index)
    finally:
        os.umask(old)
    assert stat.S_IMODE(index.stat().st_mode) == 0o755  # as mkdir would make it
    os.chmod(index, 0o750)
    (seeds_copy / "new.txt").write_text("The harbour of Quell is small.\n")
    assert build_index(seeds_copy, index).written
    assert stat.S_IMODE(index.stat().st_mode) == 0o750


def test_kill_9_during_an_incremental_write_leaves_the_last_good_index(seeds_copy):
    """SIGKILL a `rag index` (run as users run it: relative folders, cwd = the project)
    while it writes the folder for a one-file change: the last good index still loads and
    answers, and the next `rag index` clears the dead build's folder and applies the change."""
    import signal

    project = seeds_copy.parent
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [sys.executable, "-m", "rag", "index", "--quiet"], cwd=project, env=env, check=True
    )
    index = project / "index"
    good = Index.load(index).manifest["built_at"]
    q = "How many eggs can a queen lay?"
    before = Assistant(index).ask(q)

    killed = False
    for attempt in range(5):
        with (seeds_copy / "bees.md").open("a", encoding="utf-8") as f:
            f.write(f"\nA worker bee visits many flowers on a warm day ({attempt}).\n")
        proc = subprocess.Popen(
            [sys.executable, "-m", "rag", "index", "--quiet"],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            if any(p.name.startswith(".index.tmp-") for p in project.iterdir()):
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.001)
        proc.wait(60)
        if killed:
            break
        good = Index.load(index).manifest["built_at"]  # it finished first: try again
    assert killed, "never caught a build mid-write"
    assert proc.returncode == -signal.SIGKILL

    loaded = Index.load(index)
    assert loaded.manifest["built_at"] == good
    again = Assistant(index).ask(q)
    assert again.answer == before.answer and again.citations == before.citations

    done = subprocess.run(
        [sys.executable, "-m", "rag", "index"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "1 changed" in done.stdout
    assert not any(p.name.startswith(".index.tmp-") for p in project.iterdir())
    assert "warm day" in Index.load(index).documents["bees.md"].text
