"""The on-disk index: FAISS vectors, chunk and document metadata, and a manifest.

Layout of an index folder (no pickle anywhere)::

    manifest.json      format version, settings, model, per-document hash and counts, versions
    documents.jsonl    one line a document: source, hash, canonical text, pages, sentences
    chunks.jsonl       one line a chunk: id, source, offsets, sentence spans
    chunks.faiss       IndexFlatIP of the chunk vectors (row i = line i of chunks.jsonl)
    sentences.faiss    IndexFlatIP of the sentence vectors (document order), for answer scoring
    calibration.json   optional: the abstention threshold chosen by ``rag eval --calibrate``
                       (read and written by ``rag.calibration``; a build keeps it)

A build writes a complete folder beside the target and swaps it in with two renames, so an
interrupted build leaves the previous index as it was. Builds hold a writer lock (``flock`` on
``.<index>.lock`` beside the folder), so two builds never overlap and only the lock holder
ever restores a backup or removes a leftover. Loading checks every stored hash, id and offset
(``_check``), so a damaged or edited index is refused, never quoted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from rag.chunking import Chunk, Span, chunk_document, chunk_id, document_sentences, text_hash
from rag.documents import Document, file_hash, load_documents, seed_files, source_name
from rag.embedding import Embedder
from rag.errors import (
    IndexBusyError,
    IndexDamagedError,
    IndexMismatchError,
    IndexNotFoundError,
    RagError,
)
from rag.settings import FORMAT_VERSION, IndexSettings, utc_now

MANIFEST = "manifest.json"
CALIBRATION = "calibration.json"
_FILES = ("documents.jsonl", "chunks.jsonl", "chunks.faiss", "sentences.faiss", MANIFEST)
#: How long a reader that finds the index mid-swap waits for the writer to finish it.
READER_WAIT_SECONDS = 30.0


def text_digest(text: str) -> str:
    """sha256 of a document's canonical text, stored in the manifest and checked on load."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _faiss():
    import faiss

    return faiss


@dataclass(frozen=True)
class BuildReport:
    """What ``build_index`` did; ``str()`` is the line ``rag index`` prints."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    chunks_total: int = 0
    chunks_embedded: int = 0
    sentences_embedded: int = 0
    seconds: float = 0.0
    written: bool = False
    full_rebuild: bool = False

    def __str__(self) -> str:
        how = "rebuilt" if self.full_rebuild else ("updated" if self.written else "up to date")
        return (
            f"index {how}: {len(self.added)} added, {len(self.changed)} changed, "
            f"{len(self.removed)} removed, {len(self.unchanged)} unchanged; "
            f"{self.chunks_embedded} of {self.chunks_total} chunks embedded "
            f"(+{self.sentences_embedded} sentences) in {self.seconds:.1f}s"
        )


@dataclass
class Index:
    """A loaded index: documents, chunks and their vectors. Read-only once loaded."""

    path: Path
    manifest: dict
    settings: IndexSettings
    documents: dict[str, Document]
    chunks: list[Chunk]
    chunk_vectors: np.ndarray
    sentence_vectors: np.ndarray
    sentence_rows: dict[tuple[str, int, int], int]
    faiss_index: object = field(repr=False, default=None)

    @classmethod
    def load(cls, path: Path | str, *, model: str | None = None) -> Index:
        """Load the index at ``path``, checking the manifest before touching FAISS.

        Every stored hash, id and offset is checked (``_check``) before the index is used.

        Raises:
            IndexNotFoundError: no index there.
            IndexMismatchError: another format version or (when ``model`` is given) another
                model.
            IndexDamagedError: files that disagree with each other or with their hashes.
            IndexBusyError: the index stayed mid-swap under a live writer for 30 s.
        """
        path = Path(path)
        _recover_for_reader(path)
        manifest = read_manifest(path)
        if manifest is None:
            raise IndexNotFoundError(f"no index in {path}/: run `rag index` first")
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexMismatchError(
                f"{path}/ has index format {version}, this rag reads format {FORMAT_VERSION}: "
                "run `rag index --rebuild`"
            )
        try:
            settings = IndexSettings(**manifest["settings"])
        except (KeyError, TypeError, ValueError) as e:
            raise IndexDamagedError(path, f"manifest settings: {e}") from None
        if model is not None and model != settings.model:
            raise IndexMismatchError(
                f"{path}/ was built with model {settings.model!r}, not {model!r}: "
                f"run `rag index --rebuild --model {model}` or leave out --model"
            )
        faiss = _faiss()
        try:
            documents, doc_sentences = {}, {}
            for rec in _read_jsonl(path / "documents.jsonl"):
                doc = Document(
                    rec["source"],
                    rec["text"],
                    rec["content_hash"],
                    tuple(rec["page_starts"]) if rec["page_starts"] else None,
                )
                if doc.source in documents:
                    raise IndexDamagedError(path, f"{doc.source!r} appears twice")
                documents[doc.source] = doc
                doc_sentences[doc.source] = [tuple(s) for s in rec["sentences"]]
            chunks = []
            for rec in _read_jsonl(path / "chunks.jsonl"):
                doc = documents.get(rec["source"])
                if doc is None:
                    raise IndexDamagedError(path, f"a chunk of unknown document {rec['source']!r}")
                start, end = rec["start"], rec["end"]
                chunks.append(
                    Chunk(
                        rec["id"],
                        doc.source,
                        start,
                        end,
                        doc.text[start:end],
                        tuple(tuple(s) for s in rec["sentences"]),
                    )
                )
            chunk_index = faiss.read_index(str(path / "chunks.faiss"))
            sentence_index = faiss.read_index(str(path / "sentences.faiss"))
            dim = manifest["model"]["dimension"]
            _check(manifest, documents, doc_sentences, chunks)
        except IndexDamagedError as e:
            raise IndexDamagedError(path, e.reason) from None
        except (OSError, KeyError, ValueError, RuntimeError, TypeError, IndexError) as e:
            raise IndexDamagedError(path, f"{type(e).__name__}: {e}") from None
        sentence_rows = {
            (source, a, b): row
            for row, (source, (a, b)) in enumerate(
                (source, span) for source, spans in doc_sentences.items() for span in spans
            )
        }
        if (chunk_index.ntotal, chunk_index.d) != (len(chunks), dim) or (
            sentence_index.ntotal,
            sentence_index.d,
        ) != (len(sentence_rows), dim):
            raise IndexDamagedError(path, "vectors and metadata differ")
        chunk_vectors, sentence_vectors = _vectors(chunk_index, dim), _vectors(sentence_index, dim)
        for name, vectors in (("chunk", chunk_vectors), ("sentence", sentence_vectors)):
            # Every stored vector is a unit vector (cosine = inner product); anything else is
            # a damaged file.
            norms = np.linalg.norm(vectors, axis=1) if len(vectors) else vectors[:, 0]
            if not np.all(np.abs(norms - 1.0) < 1e-3):
                raise IndexDamagedError(path, f"{name} vectors are not unit vectors")
        return cls(
            path=path,
            manifest=manifest,
            settings=settings,
            documents=documents,
            chunks=chunks,
            chunk_vectors=chunk_vectors,
            sentence_vectors=sentence_vectors,
            sentence_rows=sentence_rows,
            faiss_index=chunk_index,
        )

    def vector_cache(self) -> dict[str, np.ndarray]:
        """Every stored vector by the hash of its text: what a rebuild need not embed again."""
        cache = {text_hash(c.text): v for c, v in zip(self.chunks, self.chunk_vectors, strict=True)}
        for (source, a, b), row in self.sentence_rows.items():
            cache[text_hash(self.documents[source].text[a:b])] = self.sentence_vectors[row]
        return cache


def _check(
    manifest: dict,
    documents: dict[str, Document],
    doc_sentences: dict[str, list[Span]],
    chunks: list[Chunk],
) -> None:
    """Raise ``IndexDamagedError`` unless the files agree with each other and the manifest.

    Checked: the document set, each text against its stored sha256, the content hashes,
    sentence spans (in range, in order), and each chunk's offsets, id (a hash of its text),
    sentences and order. Chunk rows follow the documents' rows and, within a document, their
    offsets, so a reordered or shifted file is caught even when the counts still match.
    """

    def damaged(reason: str):
        return IndexDamagedError("", reason)

    listed = manifest["documents"]
    if set(documents) != set(listed):
        raise damaged("documents.jsonl and the manifest list different documents")
    for source, doc in documents.items():
        entry = listed[source]
        if doc.content_hash != entry["content_hash"]:
            raise damaged(f"{source!r}: content hash differs from the manifest")
        if text_digest(doc.text) != entry["text_hash"]:
            raise damaged(f"{source!r}: text does not match its hash")
        spans, last = doc_sentences[source], 0
        if len(spans) != entry["sentences"]:
            raise damaged(f"{source!r}: sentence count differs from the manifest")
        for a, b in spans:
            if not (last <= a < b <= len(doc.text)):
                raise damaged(f"{source!r}: sentence {a}-{b} out of range or order")
            last = b
    per_doc: Counter[str] = Counter()
    order = {source: i for i, source in enumerate(documents)}
    previous: tuple[int, int] | None = None
    sentence_sets = {source: set(spans) for source, spans in doc_sentences.items()}
    for c in chunks:
        n = len(documents[c.source].text)
        if not (isinstance(c.start, int) and isinstance(c.end, int) and 0 <= c.start < c.end <= n):
            raise damaged(f"{c.source!r}: chunk offsets {c.start}-{c.end} out of range")
        if previous is not None and (order[c.source], c.start) <= previous:
            raise damaged(f"{c.source!r}: chunk at {c.start} out of order")
        previous = (order[c.source], c.start)
        if c.id != chunk_id(c.source, c.start, c.end, c.text):
            raise damaged(f"{c.source!r}: chunk {c.id} does not match its text")
        if not c.sentences or any(
            s not in sentence_sets[c.source] or not (c.start <= s[0] and s[1] <= c.end)
            for s in c.sentences
        ):
            raise damaged(f"{c.source!r}: chunk {c.id} has sentences outside it")
        per_doc[c.source] += 1
    for source, entry in listed.items():
        if per_doc[source] != entry["chunks"]:
            raise damaged(f"{source!r}: chunk count differs from the manifest")


def _vectors(index, dim: int) -> np.ndarray:
    if index.ntotal == 0:
        return np.zeros((0, dim), dtype=np.float32)
    return index.reconstruct_n(0, index.ntotal)


def _read_jsonl(path: Path):
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def read_manifest(path: Path) -> dict | None:
    """The manifest at ``path``, or None when there is no index there."""
    try:
        return json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise IndexDamagedError(path, f"{MANIFEST} is unreadable: {e}") from None


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
    if not all((folder / name).is_file() for name in _FILES):
        return False
    try:
        return isinstance(read_manifest(folder), dict)
    except IndexMismatchError:
        return False


def _recover(path: Path) -> None:
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


def _recover_for_reader(path: Path) -> None:
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
                _recover(path)
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


def _sweep(path: Path) -> None:
    """Remove temporary folders of builds that died. Call only under the writer lock:
    then no live build owns one."""
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("rag", "sentence-transformers", "faiss-cpu", "torch", "bm25s", "tiktoken"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


def _status(docs_hashes: dict[str, str], manifest: dict | None) -> dict[str, str]:
    old = (manifest or {}).get("documents", {})
    status = {}
    for source, h in docs_hashes.items():
        if source not in old:
            status[source] = "new"
        elif old[source]["content_hash"] != h:
            status[source] = "changed"
        else:
            status[source] = "indexed"
    for source in old:
        if source not in docs_hashes:
            status[source] = "deleted"
    return status


def index_status(
    seeds_dir: Path, index_dir: Path, *, manifest: dict | None = None
) -> dict[str, str]:
    """Each document's state against the index: indexed, changed, new or deleted.

    Hashes file bytes only (no parsing), so it is cheap enough for a UI panel. ``manifest``:
    compare with this one (a loaded index's) instead of reading ``index_dir``'s.
    """
    seeds_dir = Path(seeds_dir)
    hashes = {source_name(p, seeds_dir): file_hash(p.read_bytes()) for p in seed_files(seeds_dir)}
    return _status(hashes, manifest if manifest is not None else read_manifest(Path(index_dir)))


def build_index(
    seeds_dir: Path | str,
    index_dir: Path | str,
    *,
    settings: IndexSettings | None = None,
    rebuild: bool = False,
    progress: bool = False,
    warn: Callable[[str], None] | None = None,
) -> BuildReport:
    """Bring the index at ``index_dir`` up to date with ``seeds_dir``.

    New and changed documents are chunked and embedded; deleted ones are dropped; a vector
    whose text is already in the previous index is reused, so an unchanged rebuild embeds
    nothing and writes nothing.

    Args:
        settings: how to chunk and embed; None keeps the previous index's settings (or the
            defaults for a new index). Other settings than the previous index's mean a full
            rebuild.
        rebuild: ignore the previous index entirely.
        warn: told about each skipped file, a damaged previous index (which is then rebuilt
            from the seeds) and a wait for another build's writer lock.

    The whole build runs under the writer lock of ``index_dir``: a second build waits for
    the first, then finds the index it wrote. Folders left by builds that died are removed.
    """
    t0 = time.perf_counter()
    seeds_dir, index_dir = Path(seeds_dir), Path(index_dir)
    with writer_lock(index_dir, on_wait=warn):
        _recover(index_dir)
        _sweep(index_dir)
        return _build(seeds_dir, index_dir, settings, rebuild, progress, warn, t0)


def _build(seeds_dir, index_dir, settings, rebuild, progress, warn, t0) -> BuildReport:
    skipped: list[str] = []

    def note(msg: str) -> None:
        skipped.append(msg)
        if warn:
            warn(msg)

    def damaged(e: IndexMismatchError) -> None:
        # Plain `rag index` repairs: the seeds are the source of truth, so a damaged index
        # is rebuilt from them rather than called "up to date".
        if warn:
            reason = e.reason if isinstance(e, IndexDamagedError) else str(e)
            warn(f"{index_dir}/ is damaged ({reason}): rebuilding it from {seeds_dir}/")

    docs = load_documents(seeds_dir, warn=note)
    previous, previous_settings = None, None
    if not rebuild:
        try:
            previous = read_manifest(index_dir)
            if previous is not None and previous.get("format_version") == FORMAT_VERSION:
                previous_settings = IndexSettings(**previous["settings"])
        except IndexMismatchError as e:
            damaged(e)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            damaged(IndexDamagedError(index_dir, f"manifest settings: {e}"))
    if settings is None:
        settings = previous_settings or IndexSettings()
    keep_calibration = previous_settings == settings
    old = None
    if previous_settings == settings:
        try:
            old = Index.load(index_dir)  # checks every hash, id and offset
        except IndexMismatchError as e:
            damaged(e)
    previous = old.manifest if old is not None else None
    full = previous is None

    status = _status({d.source: d.content_hash for d in docs}, previous)
    by = {
        s: tuple(sorted(k for k, v in status.items() if v == s))
        for s in ("new", "changed", "indexed", "deleted")
    }
    report = dict(
        added=by["new"],
        changed=by["changed"],
        removed=by["deleted"],
        unchanged=by["indexed"],
        skipped=tuple(skipped),
        full_rebuild=full,
    )
    if not full and not (by["new"] or by["changed"] or by["deleted"]):
        total = sum(d["chunks"] for d in previous["documents"].values())
        return BuildReport(**report, chunks_total=total, seconds=time.perf_counter() - t0)

    cache = {} if old is None else old.vector_cache()
    embedder = Embedder(settings.model)
    doc_sentences: dict[str, list[Span]] = {}
    chunks: list[Chunk] = []
    for doc in docs:
        sents = document_sentences(
            doc,
            chunk_tokens=settings.chunk_tokens,
            window_tokens=embedder.count_tokens,
            window=embedder.window,
        )
        doc_sentences[doc.source] = sents
        chunks += chunk_document(
            doc,
            chunk_tokens=settings.chunk_tokens,
            overlap_sentences=settings.overlap_sentences,
            window_tokens=embedder.count_tokens,
            window=embedder.window,
            sentences=sents,
        )

    texts = {d.source: d.text for d in docs}
    chunk_texts = [c.text for c in chunks]
    sentence_texts = [texts[s][a:b] for s, spans in doc_sentences.items() for a, b in spans]
    todo = list(dict.fromkeys(t for t in chunk_texts + sentence_texts if text_hash(t) not in cache))
    if todo:
        for t, v in zip(todo, embedder.encode(todo, progress=progress), strict=True):
            cache[text_hash(t)] = v
    # todo holds each new text once; a sentence that is a whole chunk counts as a chunk.
    chunk_set = set(chunk_texts)
    chunks_embedded = sum(1 for t in todo if t in chunk_set)
    chunks_per_doc = Counter(c.source for c in chunks)

    manifest = {
        "format_version": FORMAT_VERSION,
        "settings": settings.to_dict(),
        "model": {
            "name": settings.model,
            "dimension": embedder.dimension,
            "window": embedder.window,
        },
        "built_at": utc_now(),
        "documents": {
            d.source: {
                "content_hash": d.content_hash,
                "chunks": chunks_per_doc[d.source],
                "sentences": len(doc_sentences[d.source]),
                "characters": len(d.text),
                "text_hash": text_digest(d.text),
            }
            for d in docs
        },
        "counts": {"documents": len(docs), "chunks": len(chunks), "sentences": len(sentence_texts)},
        "versions": _versions(),
    }

    def write(tmp: Path) -> None:
        faiss = _faiss()
        with (tmp / "documents.jsonl").open("w", encoding="utf-8") as f:
            for d in docs:
                rec = {
                    "source": d.source,
                    "content_hash": d.content_hash,
                    "text": d.text,
                    "page_starts": list(d.page_starts) if d.page_starts else None,
                    "sentences": doc_sentences[d.source],
                }
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        with (tmp / "chunks.jsonl").open("w", encoding="utf-8") as f:
            for c in chunks:
                rec = {
                    "id": c.id,
                    "source": c.source,
                    "start": c.start,
                    "end": c.end,
                    "sentences": c.sentences,
                }
                f.write(json.dumps(rec) + "\n")
        for name, items in (("chunks.faiss", chunk_texts), ("sentences.faiss", sentence_texts)):
            # Inner product is cosine similarity on unit vectors.
            index = faiss.IndexFlatIP(embedder.dimension)
            if items:
                index.add(np.stack([cache[text_hash(t)] for t in items]).astype(np.float32))
            faiss.write_index(index, str(tmp / name))
        (tmp / MANIFEST).write_text(
            json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8"
        )
        old_calibration = index_dir / CALIBRATION
        if keep_calibration and old_calibration.exists():
            shutil.copy2(old_calibration, tmp / CALIBRATION)

    write_atomically(index_dir, write)
    return BuildReport(
        **report,
        chunks_total=len(chunks),
        chunks_embedded=chunks_embedded,
        sentences_embedded=len(todo) - chunks_embedded,
        seconds=time.perf_counter() - t0,
        written=True,
    )


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
        for name in _FILES:
            with open(tmp / name, "rb") as f:
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
