"""Replacing an index folder whole: the writer lock, the atomic swap, and recovery.

A writer builds a complete folder beside the target and swaps it in with two renames
(``write_atomically``), so an interrupted write leaves the previous index as it was. Writers
hold a lock (``flock`` on ``.<index>.lock`` beside the folder), so two never overlap and only
the lock holder ever restores a backup (``recover``) or removes a leftover (``sweep``). A
reader that finds the folder mid-swap waits for the writer (``recover_for_reader``).

Both a build (``rag.indexing``) and a calibration (``rag.calibration``) change an index
only through here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from rag.errors import IndexBusyError, RagError

MANIFEST = "manifest.json"
DB = "index.sqlite"
CHUNK_VECTORS = "chunks.npy"
SENTENCE_VECTORS = "sentences.npy"
#: The sentences' stored token vectors (``rag.late``: int8, pieces x dimension) and where each
#: sentence's pieces start (int64, sentences + 1).
SENTENCE_TOKENS = "sentence_tokens.npy"
SENTENCE_TOKEN_STARTS = "sentence_token_starts.npy"
#: The approximate (IVF-Flat) search index of the chunk vectors, written from
#: ``rag.ann.ANN_THRESHOLD`` chunks on (absent below: search is exact over chunks.npy).
CHUNK_ANN = "chunks.ivf"
#: The bm25s index's files (bm25s ``save``/``load`` names; absent when there are no chunks).
BM25_FILES = {
    "data_name": "bm25.data.npy",
    "indices_name": "bm25.indices.npy",
    "indptr_name": "bm25.indptr.npy",
    "vocab_name": "bm25.vocab.json",
    "params_name": "bm25.params.json",
}
#: The files every index folder holds (``calibration.json`` and the BM25 files are optional).
INDEX_FILES = (
    DB,
    CHUNK_VECTORS,
    SENTENCE_VECTORS,
    SENTENCE_TOKENS,
    SENTENCE_TOKEN_STARTS,
    MANIFEST,
)
#: How long a reader that finds the index mid-swap waits for the writer to finish it.
READER_WAIT_SECONDS = 30.0


def lock_path(index_dir: Path | str) -> Path:
    """The writer lock file of ``index_dir``: ``.<name>.lock`` beside it (never deleted)."""
    index_dir = Path(index_dir)
    return index_dir.parent / f".{index_dir.name}.lock"


@contextlib.contextmanager
def writer_lock(
    index_dir: Path | str, *, wait: bool = True, on_wait: Callable[[str], None] | None = None
):
    """Hold the exclusive writer lock of ``index_dir`` (``flock``; freed when the process dies).

    Args:
        wait: when another process holds it, wait for it (after telling ``on_wait``), or
            raise ``IndexBusyError`` at once when False.
    """
    index_dir = Path(index_dir)
    path = lock_path(index_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            who = f" (pid {holder})" if holder.isdigit() else ""
            msg = f"another build of {index_dir}/ is running{who}"
            if not wait:
                raise IndexBusyError(f"{msg}: try again when it has finished") from None
            if on_wait:
                on_wait(f"{msg}: waiting for it to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _backups(path: Path) -> list[Path]:
    """Backups left by interrupted swaps, oldest first (by the time in their name)."""

    def key(p: Path) -> tuple[int, int]:
        seq = p.name.rsplit(".old-", 1)[-1].split("-")[0]
        try:
            mtime = p.stat().st_mtime_ns
        except OSError:  # removed meanwhile by the writer that made it
            mtime = 0
        return (int(seq) if seq.isdigit() else 0, mtime)

    found = [p for p in path.parent.glob(f".{path.name}.old-*") if p.is_dir()]
    return sorted(found, key=key)


def _complete(folder: Path) -> bool:
    """Every file of an index is there and the manifest reads."""
    if not all((folder / name).is_file() for name in INDEX_FILES):
        return False
    try:
        return isinstance(json.loads((folder / MANIFEST).read_text(encoding="utf-8")), dict)
    except (OSError, ValueError):
        return False


def recover(path: Path) -> None:
    """Finish a swap that was cut between its two renames. Call only under the writer lock.

    When ``path`` is missing, the newest *complete* backup is put back; every other backup
    (a copy whose deletion was cut short, or an older one) is then removed.
    """
    backups = _backups(path)
    if not path.exists():
        complete = [b for b in backups if _complete(b)]
        if complete:
            os.rename(complete[-1], path)
            backups.remove(complete[-1])
    if path.exists():
        for b in backups:
            shutil.rmtree(b, ignore_errors=True)


def recover_for_reader(path: Path) -> None:
    """A reader that finds the index mid-swap: recover it only if no writer is at work.

    A writer holding the lock is between its two renames (or recovering): wait for the
    index to reappear rather than put the old one back under its feet.
    """
    if path.exists() or not _backups(path):
        return
    deadline = time.monotonic() + READER_WAIT_SECONDS
    while not path.exists():
        try:
            with writer_lock(path, wait=False):
                recover(path)
            return
        except IndexBusyError:
            if time.monotonic() > deadline:
                raise IndexBusyError(
                    f"{path}/ is being replaced by a build that has not finished: "
                    "try again in a moment"
                ) from None
            time.sleep(0.02)
        except OSError:
            return  # a read-only folder: no lock, no recovery; load says what is there


def sweep(path: Path) -> None:
    """Remove temporary folders of builds that died. Call only under the writer lock:
    then no live build owns one."""
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)


def write_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Run ``write(tmp)`` on a fresh folder beside ``target``, then swap it in.

    On any error (or interrupt) the temporary folder is removed and ``target`` is untouched.
    A folder that is not an index is never replaced. The new folder keeps the old one's
    permission mode (a new one gets the umask's, as ``mkdir`` would). Callers that may race
    other writers hold ``writer_lock(target)`` (``build_index`` does).
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise RagError(f"{target} is a file, not an index folder: pass another --index")
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST).exists():
        raise RagError(f"{target}/ holds other files and no index: pass another --index")
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(target.stat().st_mode) if target.is_dir() else None
    # Not mkdtemp: its 0700 would become the index folder's mode.
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        write(tmp)
        for folder, _, names in os.walk(tmp):
            for name in names:
                with open(Path(folder) / name, "rb") as f:
                    os.fsync(f.fileno())
        if target.exists():
            # The time in the name orders backups, so recovery can pick the newest.
            backup = target.parent / f".{target.name}.old-{time.time_ns():020d}-{os.getpid()}"
            os.rename(target, backup)
            os.rename(tmp, target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
