"""Build an index from the seeds folder: documents -> sentences and chunks -> vectors -> files.

``build_index`` is incremental and costs in proportion to the change: a seed file whose size
and mtime match the manifest is not even read; an unchanged document's rows, terms and
vectors are copied from the previous index (never re-chunked, re-tokenised or re-embedded);
only new and changed documents are chunked, and only texts no stored vector has are
embedded. An unchanged rebuild writes nothing. The build runs under the index's writer lock
and writes the new folder through ``swap.write_atomically``. The folder's format, loading and
checking live in ``rag.store``.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from rag.chunking import chunk_document, document_sentences, text_hash
from rag.documents import Document, UnreadableError, read_document
from rag.embedding import Embedder
from rag.errors import IndexDamagedError, IndexMismatchError
from rag.settings import FORMAT_VERSION, IndexSettings, utc_now
from rag.store import (
    CALIBRATION,
    FreshDocument,
    Index,
    SeedFile,
    document_status,
    read_manifest,
    same_file,
    scan_seeds,
    text_digest,
    write_index,
)
from rag.swap import recover, sweep, write_atomically, writer_lock
from rag.terms import terms

if TYPE_CHECKING:  # numpy loads when used, not with this module (`rag --help`)
    import numpy as np


@dataclass(frozen=True)
class BuildReport:
    """What ``build_index`` did; ``str()`` is the line ``rag index`` prints."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    #: The documents chunked (and tokenised) by this build: the new and changed ones.
    chunked: tuple[str, ...] = ()
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


def sort_changes(
    status: dict[str, str], *, skipped: list[str], full_rebuild: bool
) -> tuple[dict[str, tuple[str, ...]], dict]:
    """The sources by state (``new``, ``changed``, ``indexed``, ``deleted``; each sorted) and
    the ``BuildReport`` fields they fill, for a build of any store."""
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
        full_rebuild=full_rebuild,
    )
    return by, report


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

    New and changed documents are chunked and embedded; deleted ones are dropped; unchanged
    ones are copied from the previous index as they are; a vector whose text is already in
    the previous index is reused, so an unchanged rebuild embeds nothing and writes nothing.

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
        _refuse_other_store(index_dir, rebuild)
        recover(index_dir)
        sweep(index_dir)
        return _build(seeds_dir, index_dir, settings, rebuild, progress, warn, t0)


def _refuse_other_store(index_dir: Path, rebuild: bool) -> None:
    """A Milvus index is never turned into FAISS files by a plain build: only a ``rebuild``
    (``rag index --store faiss``, through ``rag.stores.build_store``) moves it."""
    try:
        manifest = read_manifest(index_dir)
    except IndexDamagedError:
        return  # a damaged manifest is rebuilt, as before
    if manifest is not None and "milvus" in manifest and not rebuild:
        raise IndexMismatchError(
            f"{index_dir}/ is an index in Milvus ({manifest.get('store')}): build it with "
            f"`rag index --store {manifest.get('store')}`, or `rag index --store faiss` to "
            "move it to FAISS files"
        )


def _build(seeds_dir, index_dir, settings, rebuild, progress, warn, t0) -> BuildReport:
    skipped: list[str] = []

    def note(msg: str) -> None:
        skipped.append(msg)
        if warn:
            warn(msg)

    old, settings, keep_calibration = _previous(seeds_dir, index_dir, settings, rebuild, warn)
    try:
        return _update(
            seeds_dir, index_dir, old, settings, keep_calibration, progress, (note, skipped), t0
        )
    finally:
        if old is not None:
            old.close()


def _update(seeds_dir, index_dir, old, settings, keep_calibration, progress, noted, t0):
    """The build on top of ``old`` (None: from scratch); ``noted``: (warn, the warnings)."""
    note, skipped = noted
    previous = old.manifest if old is not None else None
    full = previous is None
    scanned_ns = time.time_ns()  # before the scan: see ``store.same_file``
    seeds, read = _read_seeds(seeds_dir, previous, note)
    # A file not read is, by its size and mtime, the one the previous index holds.
    hashes = {
        s.source: read[s.source].content_hash
        if s.source in read
        else previous["documents"][s.source]["content_hash"]
        for s in seeds
    }
    status = document_status(hashes, previous)
    by, report = sort_changes(status, skipped=skipped, full_rebuild=full)
    if not full and not (by["new"] or by["changed"] or by["deleted"]):
        total = sum(d["chunks"] for d in previous["documents"].values())
        return BuildReport(**report, chunks_total=total, seconds=time.perf_counter() - t0)

    plan = _Plan.of(seeds, read, status, settings, old=old, scanned_ns=scanned_ns)
    embedded = plan.embed(progress=progress)

    def write(tmp: Path) -> None:
        write_index(
            tmp,
            plan.manifest,
            plan.parts,
            old=old,
            vector_of=plan.vectors.__getitem__,
            tokens_of=plan.tokens.__getitem__,
        )
        old_calibration = index_dir / CALIBRATION
        if keep_calibration and old_calibration.exists():
            shutil.copy2(old_calibration, tmp / CALIBRATION)

    write_atomically(index_dir, write)
    # Each new text is embedded once; a sentence that is a whole chunk counts as a chunk.
    chunk_set = {c.text for part in plan.fresh for c in part.chunks}
    chunks_embedded = sum(1 for t in embedded if t in chunk_set)
    return BuildReport(
        **report,
        chunked=tuple(sorted(p.document.source for p in plan.fresh)),
        chunks_total=plan.manifest["counts"]["chunks"],
        chunks_embedded=chunks_embedded,
        sentences_embedded=len(embedded) - chunks_embedded,
        seconds=time.perf_counter() - t0,
        written=True,
    )


def _read_seeds(
    seeds_dir: Path, previous: dict | None, note: Callable[[str], None]
) -> tuple[list[SeedFile], dict[str, Document]]:
    """The readable seed files (in order) and the documents read: every file except those
    whose size and mtime say they are the ones ``previous`` indexed."""
    seeds, read = [], {}
    for seed in scan_seeds(seeds_dir, warn=note):
        if not same_file(seed, previous):
            try:
                read[seed.source] = read_document(seed.path, seeds_dir)
            except UnreadableError as e:
                note(f"skipped {seed.source}: {e}")
                continue
        seeds.append(seed)
    return seeds, read


def _previous(
    seeds_dir: Path,
    index_dir: Path,
    settings: IndexSettings | None,
    rebuild: bool,
    warn: Callable[[str], None] | None,
) -> tuple[Index | None, IndexSettings, bool]:
    """The previous index to build on (None: build from scratch), the settings to build
    with, and whether the previous calibration still applies (same settings)."""

    def damaged(e: IndexMismatchError) -> None:
        # Plain `rag index` repairs: the seeds are the source of truth, so a damaged index
        # is rebuilt from them rather than called "up to date".
        if warn:
            reason = e.reason if isinstance(e, IndexDamagedError) else str(e)
            warn(f"{index_dir}/ is damaged ({reason}): rebuilding it from {seeds_dir}/")

    previous_settings = None
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
    old = None
    if previous_settings == settings:
        try:
            old = Index.load(index_dir)  # checks counts and shapes; texts when read
        except IndexMismatchError as e:
            damaged(e)
    return old, settings, previous_settings == settings


@dataclass
class _Plan:
    """What a build writes: in row order, each document fresh (chunked now) or the source of
    one kept from the previous index; the new manifest; the vectors of the fresh texts and
    the token vectors of the fresh sentences (by text hash)."""

    parts: list[FreshDocument | str]
    fresh: list[FreshDocument]
    manifest: dict
    embedder: Embedder
    old: Index | None
    vectors: dict[str, np.ndarray]
    tokens: dict[str, np.ndarray]

    @classmethod
    def of(
        cls,
        seeds: list[SeedFile],
        read: dict[str, Document],
        status: dict[str, str],
        settings: IndexSettings,
        *,
        old: Index | None,
        scanned_ns: int,
    ) -> _Plan:
        embedder = Embedder(settings.model)
        parts: list[FreshDocument | str] = []
        entries: dict[str, dict] = {}
        at = {"first_chunk": 0, "first_sentence": 0}
        for seed in seeds:
            if old is not None and status[seed.source] == "indexed":
                part: FreshDocument | str = seed.source
                entry = dict(old.manifest["documents"][seed.source])
            else:
                part = prepare_document(read[seed.source], settings, embedder)
                entry = _entry(part)
            entry.update(at, size=seed.size, mtime_ns=seed.mtime_ns)
            at["first_chunk"] += entry["chunks"]
            at["first_sentence"] += entry["sentences"]
            entries[seed.source] = entry
            parts.append(part)
        fresh = [p for p in parts if isinstance(p, FreshDocument)]
        if fresh or old is None:
            model = {"name": settings.model, "dimension": embedder.dimension}
            model["window"] = embedder.window
        else:  # only deletions: the model is not needed
            model = dict(old.manifest["model"])
        manifest = {
            "format_version": FORMAT_VERSION,
            "settings": settings.to_dict(),
            "model": model,
            "built_at": utc_now(),
            "scanned_ns": scanned_ns,
            "documents": entries,
            "counts": {
                "documents": len(entries),
                "chunks": at["first_chunk"],
                "sentences": at["first_sentence"],
            },
            "versions": package_versions(),
        }
        return cls(parts, fresh, manifest, embedder, old, {}, {})

    def embed(self, *, progress: bool) -> list[str]:
        """Find or embed the vector of every fresh text, once each; returns those embedded.

        A text some stored vector already has (in any document of the previous index,
        found by its hash) is not embedded again.
        """
        old = self.old
        return embed_missing(
            fresh_texts(self.fresh),
            self.embedder,
            self.vectors,
            tokens=self.tokens,
            sentences=sentence_texts(self.fresh),
            known=old.vector_of if old is not None else None,
            known_tokens=old.tokens_of if old is not None else None,
            progress=progress,
        )


def prepare_document(doc: Document, settings: IndexSettings, embedder: Embedder) -> FreshDocument:
    """``doc``'s sentences, chunks and chunk terms: the content every store writes for a new
    or changed document (``rag.indexing`` and ``rag.milvus_indexing`` alike)."""
    sents = document_sentences(
        doc,
        chunk_tokens=settings.chunk_tokens,
        window_tokens=embedder.count_tokens,
        window=embedder.window,
    )
    chunks = chunk_document(
        doc,
        chunk_tokens=settings.chunk_tokens,
        overlap_sentences=settings.overlap_sentences,
        window_tokens=embedder.count_tokens,
        window=embedder.window,
        sentences=sents,
    )
    return FreshDocument(doc, sents, chunks, [terms(c.text) for c in chunks])


def fresh_texts(parts: list[FreshDocument]) -> list[str]:
    """Every text of ``parts`` a store keeps a vector of: chunks, then sentences."""
    return [c.text for p in parts for c in p.chunks] + [
        p.document.text[a:b] for p in parts for a, b in p.sentences
    ]


def sentence_texts(parts: list[FreshDocument]) -> set[str]:
    """The texts of ``parts``' sentences: those a store keeps token vectors of."""
    return {p.document.text[a:b] for p in parts for a, b in p.sentences}


def embed_missing(
    texts: list[str],
    embedder: Embedder,
    vectors: dict[str, np.ndarray],
    *,
    tokens: dict[str, np.ndarray],
    sentences: set[str],
    known: Callable[[str], np.ndarray | None] | None = None,
    known_tokens: Callable[[str], np.ndarray | None] | None = None,
    progress: bool = False,
) -> list[str]:
    """Put the vector of every one of ``texts`` into ``vectors`` and the stored token vectors
    (``rag.late``) of those in ``sentences`` into ``tokens`` (both by ``text_hash``): what is
    already there or ``known`` / ``known_tokens`` (stored by hash) is not embedded again.

    Returns:
        The texts embedded now, each once, in first-seen order.
    """
    todo = []
    for t in dict.fromkeys(texts):
        h = text_hash(t)
        if h not in vectors:
            v = known(h) if known is not None else None
            if v is not None:
                vectors[h] = v
        if t in sentences and h not in tokens:
            v = known_tokens(h) if known_tokens is not None else None
            if v is not None:
                tokens[h] = v
        if h not in vectors or (t in sentences and h not in tokens):
            todo.append(t)
    if todo:
        wanted = [t in sentences for t in todo]
        found, stored = embedder.encode_with_tokens(todo, wanted, progress=progress)
        for t, v, s in zip(todo, found, stored, strict=True):
            vectors.setdefault(text_hash(t), v)
            if s is not None:
                tokens[text_hash(t)] = s
    return todo


def _entry(part: FreshDocument) -> dict:
    """The manifest entry of a freshly chunked document (its rows are added by the plan)."""
    d = part.document
    return {
        "content_hash": d.content_hash,
        "chunks": len(part.chunks),
        "sentences": len(part.sentences),
        "characters": len(d.text),
        "text_hash": text_digest(d.text),
    }


#: The packages whose versions a FAISS index's manifest records.
FAISS_PACKAGES = ("rag", "sentence-transformers", "faiss-cpu", "torch", "bm25s", "tiktoken")


def package_versions(packages: tuple[str, ...] = FAISS_PACKAGES) -> dict[str, str]:
    """The installed version of each of ``packages`` (those installed), for a manifest."""
    out = {}
    for pkg in packages:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out
