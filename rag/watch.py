"""Keep an index in step with its seeds folder: one build at a time, swapped in whole.

``IndexSync`` is the one code path of every rebuild of a live index (the UI's Rebuild and
Upload, ``POST /api/rebuild``, the watcher): it runs the incremental ``build_store`` (in the
store the index names) under a lock, swaps the rebuilt index into the ``Assistant`` being
served (one reference, so a question is answered wholly from the old index or wholly from
the new one), and keeps a record of the last run for the UI and the API.

``FolderWatcher`` drives it from file events (watchfiles, inotify on Linux), for
``rag index --watch`` and ``rag serve --watch``:

- a burst of events (a copy of 50 files, an editor's save-by-rename) is one sync: the batch
  closes after ``QUIET_MS`` without events, or ``MAX_BATCH_MS`` after its first one;
- before reading, it waits until every seed file's size and mtime have held for
  ``STABLE_SECONDS``, so a file still being copied or downloaded is not indexed half-way;
- events that arrive during a build are kept by watchfiles and give the next sync, so a
  change is never lost; hidden files (editors' swap files, ``.part`` downloads named
  ``.x``) are ignored like everywhere else in ``seeds/``.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rag.documents import seed_files, source_name
from rag.errors import IndexBusyError, RagError
from rag.indexing import BuildReport
from rag.store import read_manifest
from rag.stores import build_store

#: A burst of file events ends after this many milliseconds without a new one ...
QUIET_MS = 300
#: ... or this long after its first event, whichever comes first.
MAX_BATCH_MS = 5_000
#: A sync reads the folder only once every file's size and mtime held this long.
STABLE_SECONDS = 1.0
#: A file that keeps changing for this long is read as it is; its next change syncs again.
STABLE_TIMEOUT_SECONDS = 120.0

BUSY_MESSAGE = "a rebuild is already running: wait for it to finish"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class SyncRecord:
    """One run of ``IndexSync``: what started it, what the build did, and whether the
    served index was swapped.

    Attributes:
        trigger: ``"startup"``, ``"ui"``, ``"upload"``, ``"api"`` or ``"watch"``.
        changes: the file events that started a watch sync (``"added notes.txt"``).
        swapped: the Assistant now answers from the index this run left on disk.
    """

    trigger: str
    started_at: str
    finished_at: str
    seconds: float
    report: BuildReport | None = None
    error: str | None = None
    changes: tuple[str, ...] = ()
    swapped: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def log(self) -> str:
        """The build's one-line summary plus a line per skipped file (or the error)."""
        if self.report is None:
            return f"failed: {self.error}"
        return "\n".join([str(self.report), *self.report.skipped])

    def line(self) -> str:
        """One line for a terminal: when, why, and what happened."""
        why = self.trigger + (f": {', '.join(self.changes)}" if self.changes else "")
        what = str(self.report) if self.report is not None else f"failed: {self.error}"
        return f"[{self.finished_at[:19].replace('T', ' ')}] sync ({why}): {what}"

    def to_dict(self) -> dict:
        r = self.report
        return {
            "trigger": self.trigger,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "seconds": round(self.seconds, 2),
            "ok": self.ok,
            "error": self.error,
            "changes": list(self.changes),
            "summary": str(r) if r is not None else None,
            "added": list(r.added) if r else [],
            "changed": list(r.changed) if r else [],
            "removed": list(r.removed) if r else [],
            "skipped": list(r.skipped) if r else [],
            "swapped": self.swapped,
        }


@dataclass
class IndexSync:
    """Rebuilds ``index_dir`` from ``seeds_dir`` one run at a time and swaps the result into
    ``assistant`` (when given). Thread-safe.

    Attributes:
        last: the record of the last finished run, or None.
        generation: goes up when a run starts and when it ends (a cheap "anything new?").
    """

    seeds_dir: Path
    index_dir: Path
    assistant: object | None = None  # rag.answer.Assistant
    warn: Callable[[str], None] | None = None
    last: SyncRecord | None = None
    generation: int = 0
    #: Held while a run is in progress.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _running: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.seeds_dir, self.index_dir = Path(self.seeds_dir), Path(self.index_dir)

    @property
    def running(self) -> str | None:
        """The trigger of the run in progress, or None."""
        return self._running

    def run(
        self,
        trigger: str,
        *,
        wait: bool = False,
        changes: Iterable[str] = (),
        progress: Callable | None = None,
    ) -> SyncRecord:
        """Bring the index up to date now and answer from it.

        Args:
            wait: when another run is in progress, wait for it (the watcher) instead of
                raising ``IndexBusyError`` (a button, an API call).
            progress: ``progress(fraction, desc=...)`` (Gradio's); also turns on the build's
                progress bar.

        Raises:
            IndexBusyError: another run is in progress and ``wait`` is False.
            RagError, OSError, ValueError: the build failed; the old index is still served
                and ``last`` records the error.
        """
        if not self.lock.acquire(blocking=wait):
            raise IndexBusyError(BUSY_MESSAGE)
        try:
            return self._run(trigger, tuple(changes), progress)
        finally:
            self.lock.release()

    def start(self, trigger: str) -> bool:
        """Start a run in a background thread; False (and nothing started) when one is
        already in progress."""
        if not self.lock.acquire(blocking=False):
            return False
        self._running = trigger

        def work() -> None:
            try:
                self._run(trigger, (), None)
            except (RagError, OSError, ValueError):
                pass  # recorded in self.last
            finally:
                self.lock.release()

        threading.Thread(target=work, name=f"rag-sync-{trigger}", daemon=True).start()
        return True

    def _run(self, trigger: str, changes: tuple[str, ...], progress) -> SyncRecord:
        started, t0 = _now(), time.perf_counter()
        self._running, self.generation = trigger, self.generation + 1
        report, swapped = None, False
        try:
            if progress is not None:
                progress(0.05, desc="Reading documents")
            # In the store the index names (``build_store``): a watcher never moves it.
            report = build_store(
                self.seeds_dir, self.index_dir, progress=progress is not None, warn=self.warn
            )
            # Also take up an index that `rag index` rebuilt while this one was served.
            assistant = self.assistant
            if assistant is not None and (
                report.written or read_manifest(self.index_dir) != assistant.index.manifest
            ):
                if progress is not None:
                    progress(0.95, desc="Loading the new index")
                assistant.reload()  # loads aside, then swaps one reference
                swapped = True
        except Exception as e:
            error = str(e) if isinstance(e, RagError | OSError | ValueError) else repr(e)
            self._finish(SyncRecord(trigger, started, _now(), time.perf_counter() - t0,
                                    error=error, changes=changes))  # fmt: skip
            raise
        record = SyncRecord(
            trigger, started, _now(), time.perf_counter() - t0, report, None, changes, swapped
        )
        self._finish(record)
        return record

    def _finish(self, record: SyncRecord) -> None:
        self.last, self._running = record, None
        self.generation += 1


# --------------------------------------------------------------------------- the watcher


def folder_state(seeds_dir: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of each file the seeds folder would index, by path; {} when missing."""
    out = {}
    try:
        files = seed_files(seeds_dir)
    except RagError:
        return out
    for p in files:
        try:
            st = p.stat()
        except OSError:  # removed meanwhile
            continue
        out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


def wait_until_stable(
    seeds_dir: Path,
    *,
    quiet: float = STABLE_SECONDS,
    timeout: float = STABLE_TIMEOUT_SECONDS,
    stop: threading.Event | None = None,
) -> bool:
    """Return once no seed file changed size or mtime for ``quiet`` seconds (or after
    ``timeout``); False if ``stop`` was set meanwhile."""
    stop = stop or threading.Event()
    deadline = time.monotonic() + timeout
    before = folder_state(seeds_dir)
    while not stop.wait(quiet):
        after = folder_state(seeds_dir)
        if after == before or time.monotonic() > deadline:
            return True
        before = after
    return False


def describe(changes: Iterable[tuple[object, str]], seeds_dir: Path, limit: int = 5) -> tuple:
    """``("added a.txt", "deleted b.md", ...)`` from watchfiles' changes, at most ``limit``
    entries plus ``"+N more"``."""
    root = Path(seeds_dir).resolve()
    seen = {}
    for change, path in changes:
        try:
            name = source_name(Path(path), root)
        except ValueError:
            name = str(path)
        kind = getattr(change, "name", str(change))
        seen[name] = kind  # the last event of a file says what it is now
    items = [f"{kind} {name}" for name, kind in sorted(seen.items())]
    if len(items) > limit:
        items = [*items[:limit], f"+{len(items) - limit} more"]
    return tuple(items)


def _identity(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of ``folder``, or None when it is missing."""
    try:
        st = folder.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _visible(root: Path) -> Callable[[object, str], bool]:
    """watchfiles' filter: paths under ``root`` with no hidden part (as ``seed_files``)."""

    def visible(_change, path: str) -> bool:
        try:
            parts = Path(path).relative_to(root).parts
        except ValueError:
            return False
        return bool(parts) and not any(part.startswith(".") for part in parts)

    return visible


class FolderWatcher:
    """Syncs an ``IndexSync`` whenever its seeds folder changes, until ``stop()``.

    ``run()`` blocks (``rag index --watch``); ``start()`` runs it in a daemon thread
    (``rag serve --watch``). ``on_sync`` is told about every run, failed ones included.
    """

    def __init__(
        self,
        sync: IndexSync,
        *,
        on_sync: Callable[[SyncRecord], None] | None = None,
        quiet_ms: int = QUIET_MS,
        max_batch_ms: int = MAX_BATCH_MS,
        stable_seconds: float = STABLE_SECONDS,
    ) -> None:
        self.sync = sync
        self.on_sync = on_sync
        self.quiet_ms, self.max_batch_ms = quiet_ms, max_batch_ms
        self.stable_seconds = stable_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Watch until ``stop()`` (or Ctrl+C in the main thread, which returns quietly).

        Once the watch is set up it syncs once, quietly unless that changed something, to
        catch a change made before (between the build of ``rag serve`` and the watcher's
        start, say). If the seeds folder itself is removed, the watcher waits for it to come
        back, then watches the new folder the same way.
        """
        from watchfiles import watch

        seeds = self.sync.seeds_dir
        if not seeds.is_dir():
            raise RagError(f"seeds folder not found: {seeds} (create it or pass --seeds DIR)")
        why = "started watching"
        while not self._stop.is_set():
            if not seeds.is_dir():
                why = "re-created the folder"
                self._stop.wait(1.0)
                continue
            root, watched = seeds.resolve(), _identity(seeds)
            catch_up = True
            try:
                for changes in watch(
                    root,
                    watch_filter=_visible(root),
                    debounce=self.max_batch_ms,
                    step=self.quiet_ms,
                    stop_event=self._stop,
                    rust_timeout=1_000,
                    yield_on_timeout=True,  # an empty set: the watch is set up, nothing new
                    raise_interrupt=False,
                ):
                    if not changes and not catch_up and _identity(seeds) == watched:
                        continue
                    if not wait_until_stable(seeds, quiet=self.stable_seconds, stop=self._stop):
                        return
                    if changes:
                        self._sync(describe(changes, root))
                    else:
                        self._sync((why,), quiet=True)
                    catch_up = False
                    if _identity(seeds) != watched:
                        # Removed (and maybe re-created): the inotify watch is on the old
                        # folder. Watch the folder that is there now, or wait for one.
                        why = "re-created the folder"
                        break
                else:
                    return  # stop() or Ctrl+C
            except (OSError, RuntimeError) as e:  # the folder vanished under watchfiles
                if seeds.is_dir():
                    raise RagError(f"cannot watch {seeds}: {e}") from None

    def _sync(self, changes: tuple[str, ...], *, quiet: bool = False) -> None:
        """One sync; ``on_sync`` hears of it unless ``quiet`` and it changed nothing."""
        try:
            record = self.sync.run("watch", wait=True, changes=changes)
        except (RagError, OSError, ValueError):
            record = self.sync.last  # the error is recorded; the old index still serves
        except Exception:  # a bug: say so in the log and keep watching
            traceback.print_exc()
            record = self.sync.last
        if record is None or self.on_sync is None:
            return
        if quiet and record.ok and not (record.report.written or record.swapped):
            return
        self.on_sync(record)

    def start(self) -> FolderWatcher:
        self._thread = threading.Thread(target=self.run, name="rag-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
