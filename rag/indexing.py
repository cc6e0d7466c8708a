"""Build an index from the seeds folder: documents -> sentences and chunks -> vectors -> files.

``build_index`` is incremental (a vector whose text is already in the previous index is
reused, so an unchanged rebuild embeds nothing and writes nothing), runs under the index's
writer lock and writes the new folder through ``swap.write_atomically``. The folder's
format, loading and checking live in ``rag.store``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from rag.chunking import Chunk, Span, chunk_document, document_sentences, text_hash
from rag.documents import Document, load_documents
from rag.embedding import Embedder
from rag.errors import IndexDamagedError, IndexMismatchError
from rag.settings import FORMAT_VERSION, IndexSettings, utc_now
from rag.store import CALIBRATION, Index, document_status, faiss_module, read_manifest, text_digest
from rag.swap import MANIFEST, recover, sweep, write_atomically, writer_lock

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
        recover(index_dir)
        sweep(index_dir)
        return _build(seeds_dir, index_dir, settings, rebuild, progress, warn, t0)


def _build(seeds_dir, index_dir, settings, rebuild, progress, warn, t0) -> BuildReport:
    skipped: list[str] = []

    def note(msg: str) -> None:
        skipped.append(msg)
        if warn:
            warn(msg)

    docs = load_documents(seeds_dir, warn=note)
    old, settings, keep_calibration = _previous(seeds_dir, index_dir, settings, rebuild, warn)
    previous = old.manifest if old is not None else None
    full = previous is None
    status = document_status({d.source: d.content_hash for d in docs}, previous)
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

    content = _Content.of(docs, settings, cache={} if old is None else old.vector_cache())
    embedded = content.embed(progress=progress)
    manifest = content.manifest(settings)

    def write(tmp: Path) -> None:

        content.write(tmp, manifest)
        old_calibration = index_dir / CALIBRATION
        if keep_calibration and old_calibration.exists():
            shutil.copy2(old_calibration, tmp / CALIBRATION)

    write_atomically(index_dir, write)
    # Each new text is embedded once; a sentence that is a whole chunk counts as a chunk.
    chunk_set = set(content.chunk_texts)
    chunks_embedded = sum(1 for t in embedded if t in chunk_set)
    return BuildReport(
        **report,
        chunks_total=len(content.chunks),
        chunks_embedded=chunks_embedded,
        sentences_embedded=len(embedded) - chunks_embedded,
        seconds=time.perf_counter() - t0,
        written=True,
    )


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
            old = Index.load(index_dir)  # checks every hash, id and offset
        except IndexMismatchError as e:
            damaged(e)
    return old, settings, previous_settings == settings


@dataclass
class _Content:
    """What a build writes: the documents, their sentences and chunks, and every vector
    (by text hash) of the texts to store."""

    docs: list[Document]
    embedder: Embedder
    doc_sentences: dict[str, list[Span]]
    chunks: list[Chunk]
    cache: dict[str, np.ndarray]

    @classmethod
    def of(cls, docs: list[Document], settings: IndexSettings, *, cache: dict) -> _Content:
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
        return cls(docs, embedder, doc_sentences, chunks, cache)

    @property
    def chunk_texts(self) -> list[str]:
        return [c.text for c in self.chunks]

    @property
    def sentence_texts(self) -> list[str]:
        texts = {d.source: d.text for d in self.docs}
        return [texts[s][a:b] for s, spans in self.doc_sentences.items() for a, b in spans]

    def embed(self, *, progress: bool) -> list[str]:
        """Embed every text not in the cache yet, once each; returns those texts."""
        texts = self.chunk_texts + self.sentence_texts
        todo = list(dict.fromkeys(t for t in texts if text_hash(t) not in self.cache))
        if todo:
            for t, v in zip(todo, self.embedder.encode(todo, progress=progress), strict=True):
                self.cache[text_hash(t)] = v
        return todo

    def manifest(self, settings: IndexSettings) -> dict:
        chunks_per_doc = Counter(c.source for c in self.chunks)
        return {
            "format_version": FORMAT_VERSION,
            "settings": settings.to_dict(),
            "model": {
                "name": settings.model,
                "dimension": self.embedder.dimension,
                "window": self.embedder.window,
            },
            "built_at": utc_now(),
            "documents": {
                d.source: {
                    "content_hash": d.content_hash,
                    "chunks": chunks_per_doc[d.source],
                    "sentences": len(self.doc_sentences[d.source]),
                    "characters": len(d.text),
                    "text_hash": text_digest(d.text),
                }
                for d in self.docs
            },
            "counts": {
                "documents": len(self.docs),
                "chunks": len(self.chunks),
                "sentences": len(self.sentence_texts),
            },
            "versions": _versions(),
        }

    def write(self, tmp: Path, manifest: dict) -> None:
        """The index files into the folder ``tmp``."""
        import numpy as np

        with (tmp / "documents.jsonl").open("w", encoding="utf-8") as f:
            for d in self.docs:
                rec = {
                    "source": d.source,
                    "content_hash": d.content_hash,
                    "text": d.text,
                    "page_starts": list(d.page_starts) if d.page_starts else None,
                    "locations": [list(loc) for loc in d.locations] if d.locations else None,
                    "sentences": self.doc_sentences[d.source],
                }
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        with (tmp / "chunks.jsonl").open("w", encoding="utf-8") as f:
            for c in self.chunks:
                rec = {
                    "id": c.id,
                    "source": c.source,
                    "start": c.start,
                    "end": c.end,
                    "sentences": c.sentences,
                }
                f.write(json.dumps(rec) + "\n")
        faiss = faiss_module()
        for name, items in (
            ("chunks.faiss", self.chunk_texts),
            ("sentences.faiss", self.sentence_texts),
        ):
            # Inner product is cosine similarity on unit vectors.
            index = faiss.IndexFlatIP(self.embedder.dimension)
            if items:
                index.add(np.stack([self.cache[text_hash(t)] for t in items]).astype(np.float32))
            faiss.write_index(index, str(tmp / name))
        (tmp / MANIFEST).write_text(
            json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8"
        )


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("rag", "sentence-transformers", "faiss-cpu", "torch", "bm25s", "tiktoken"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out
