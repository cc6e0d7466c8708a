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
interrupted build leaves the previous index as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from rag.chunking import Chunk, Span, chunk_document, document_sentences, text_hash
from rag.documents import Document, file_hash, load_documents, seed_files, source_name
from rag.embedding import Embedder
from rag.errors import IndexMismatchError, IndexNotFoundError, RagError
from rag.settings import FORMAT_VERSION, IndexSettings, utc_now

MANIFEST = "manifest.json"
CALIBRATION = "calibration.json"
_FILES = ("documents.jsonl", "chunks.jsonl", "chunks.faiss", "sentences.faiss", MANIFEST)


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

        Raises:
            IndexNotFoundError: no index there.
            IndexMismatchError: another format version or (when ``model`` is given) another
                model; damaged files.
        """
        path = Path(path)
        _recover(path)
        manifest = read_manifest(path)
        if manifest is None:
            raise IndexNotFoundError(f"no index in {path}/: run `rag index` first")
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexMismatchError(
                f"{path}/ has index format {version}, this rag reads format {FORMAT_VERSION}: "
                "run `rag index --rebuild`"
            )
        settings = IndexSettings(**manifest["settings"])
        if model is not None and model != settings.model:
            raise IndexMismatchError(
                f"{path}/ was built with model {settings.model!r}, not {model!r}: "
                f"run `rag index --rebuild --model {model}` or leave out --model"
            )
        faiss = _faiss()
        try:
            documents, sentence_rows = {}, {}
            for rec in _read_jsonl(path / "documents.jsonl"):
                doc = Document(
                    rec["source"],
                    rec["text"],
                    rec["content_hash"],
                    tuple(rec["page_starts"]) if rec["page_starts"] else None,
                )
                documents[doc.source] = doc
                for a, b in rec["sentences"]:
                    sentence_rows[(doc.source, a, b)] = len(sentence_rows)
            chunks = []
            for rec in _read_jsonl(path / "chunks.jsonl"):
                text = documents[rec["source"]].text[rec["start"] : rec["end"]]
                chunks.append(
                    Chunk(
                        rec["id"],
                        rec["source"],
                        rec["start"],
                        rec["end"],
                        text,
                        tuple(tuple(s) for s in rec["sentences"]),
                    )
                )
            chunk_index = faiss.read_index(str(path / "chunks.faiss"))
            sentence_index = faiss.read_index(str(path / "sentences.faiss"))
        except (OSError, KeyError, ValueError, RuntimeError, TypeError) as e:
            raise IndexMismatchError(
                f"{path}/ is damaged ({type(e).__name__}: {e}): run `rag index --rebuild`"
            ) from None
        dim = manifest["model"]["dimension"]
        if (chunk_index.ntotal, chunk_index.d) != (
            len(chunks),
            dim,
        ) or sentence_index.ntotal != len(sentence_rows):
            raise IndexMismatchError(
                f"{path}/ is inconsistent (vectors and metadata differ): run `rag index --rebuild`"
            )
        return cls(
            path=path,
            manifest=manifest,
            settings=settings,
            documents=documents,
            chunks=chunks,
            chunk_vectors=_vectors(chunk_index, dim),
            sentence_vectors=_vectors(sentence_index, dim),
            sentence_rows=sentence_rows,
            faiss_index=chunk_index,
        )

    def vector_cache(self) -> dict[str, np.ndarray]:
        """Every stored vector by the hash of its text: what a rebuild need not embed again."""
        cache = {text_hash(c.text): v for c, v in zip(self.chunks, self.chunk_vectors, strict=True)}
        for (source, a, b), row in self.sentence_rows.items():
            cache[text_hash(self.documents[source].text[a:b])] = self.sentence_vectors[row]
        return cache


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
        raise IndexMismatchError(
            f"{path}/{MANIFEST} is unreadable ({e}): run `rag index --rebuild`"
        ) from None


def _backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}.old-*"))


def _recover(path: Path) -> None:
    """Finish a swap that was cut between its two renames: put the old index back."""
    if not path.exists():
        backups = _backups(path)
        if backups:
            os.rename(backups[-1], path)


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
    """
    t0 = time.perf_counter()
    seeds_dir, index_dir = Path(seeds_dir), Path(index_dir)
    _recover(index_dir)
    skipped: list[str] = []

    def note(msg: str) -> None:
        skipped.append(msg)
        if warn:
            warn(msg)

    docs = load_documents(seeds_dir, warn=note)
    previous = None if rebuild else read_manifest(index_dir)
    if previous is not None and previous.get("format_version") != FORMAT_VERSION:
        previous = None
    if settings is None:
        settings = IndexSettings(**previous["settings"]) if previous else IndexSettings()
    if previous is not None and IndexSettings(**previous["settings"]) != settings:
        previous = None
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

    cache = {} if full else Index.load(index_dir).vector_cache()
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
        if not full and old_calibration.exists():
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
    A folder that is not an index is never replaced.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise RagError(f"{target} is a file, not an index folder: pass another --index")
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST).exists():
        raise RagError(f"{target}/ holds other files and no index: pass another --index")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        write(tmp)
        for name in _FILES:
            with open(tmp / name, "rb") as f:
                os.fsync(f.fileno())
        if target.exists():
            backup = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, backup)
            os.rename(tmp, target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
