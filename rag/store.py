"""The on-disk index: FAISS vectors, chunk and document metadata, and a manifest.

Layout of an index folder (no pickle anywhere)::

    manifest.json      format version, settings, model, per-document hash and counts, versions
    documents.jsonl    one line a document: source, hash, canonical text, pages, locations,
                       sentences
    chunks.jsonl       one line a chunk: id, source, offsets, sentence spans
    chunks.faiss       IndexFlatIP of the chunk vectors (row i = line i of chunks.jsonl)
    sentences.faiss    IndexFlatIP of the sentence vectors (document order), for answer scoring
    calibration.json   optional: the abstention threshold chosen by ``rag eval --calibrate``
                       (read and written by ``rag.calibration``; a build keeps it)

Loading checks every stored hash, id and offset (``_check``), so a damaged or edited index is
refused, never quoted. An index is written by ``rag.indexing.build_index`` (and its
calibration by ``rag.calibration``), always whole, through ``rag.swap``: a complete folder
swapped in under the writer lock, so an interrupted write leaves the previous index as it was.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rag.chunking import Chunk, Span, chunk_id, text_hash
from rag.documents import Document, file_hash, seed_files, source_name
from rag.errors import (
    IndexDamagedError,
    IndexMismatchError,
    IndexNotFoundError,
)
from rag.settings import FORMAT_VERSION, IndexSettings
from rag.swap import MANIFEST, recover_for_reader

if TYPE_CHECKING:  # numpy loads when used, not with this module (`rag --help`)
    import numpy as np

CALIBRATION = "calibration.json"


def text_digest(text: str) -> str:
    """sha256 of a document's canonical text, stored in the manifest and checked on load."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def faiss_module():
    """The faiss module, imported on first use."""
    import faiss

    return faiss


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
        import numpy as np

        path = Path(path)
        recover_for_reader(path)
        manifest, settings = _read_manifest_checked(path, model)
        faiss = faiss_module()
        try:
            documents, doc_sentences = _read_documents(path)
            chunks = _read_chunks(path, documents)
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


def _read_manifest_checked(path: Path, model: str | None) -> tuple[dict, IndexSettings]:
    """The manifest and its settings, refused before FAISS is touched when the index is
    missing, of another format or (``model`` given) of another model."""
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
    return manifest, settings


def _read_documents(path: Path) -> tuple[dict[str, Document], dict[str, list[Span]]]:
    """documents.jsonl: the documents by source, and each one's sentence spans."""
    documents, doc_sentences = {}, {}
    for rec in _read_jsonl(path / "documents.jsonl"):
        doc = Document(
            rec["source"],
            rec["text"],
            rec["content_hash"],
            tuple(rec["page_starts"]) if rec["page_starts"] else None,
            tuple((a, label) for a, label in rec.get("locations") or ()) or None,
        )
        if doc.source in documents:
            raise IndexDamagedError(path, f"{doc.source!r} appears twice")
        documents[doc.source] = doc
        doc_sentences[doc.source] = [tuple(s) for s in rec["sentences"]]
    return documents, doc_sentences


def _read_chunks(path: Path, documents: dict[str, Document]) -> list[Chunk]:
    """chunks.jsonl: each chunk's text is sliced from its document."""
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
    return chunks


def _check(
    manifest: dict,
    documents: dict[str, Document],
    doc_sentences: dict[str, list[Span]],
    chunks: list[Chunk],
) -> None:
    """Raise ``IndexDamagedError`` unless the files agree with each other and the manifest.

    Checked: the document set, each text against its stored sha256, the content hashes,
    sentence spans (in range, in order), location maps (in range, in order), and each
    chunk's offsets, id (a hash of its text), sentences and order. Chunk rows follow the
    documents' rows and, within a document, their offsets, so a reordered or shifted file is
    caught even when the counts still match.
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
        starts = [a for a, _ in doc.locations or ()]
        if (
            any(not isinstance(a, int) for a in starts)
            or starts != sorted(set(starts))
            or (starts and not 0 <= starts[0] <= starts[-1] < max(len(doc.text), 1))
        ):
            raise damaged(f"{source!r}: location map out of range or order")
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
    import numpy as np

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


def document_status(docs_hashes: dict[str, str], manifest: dict | None) -> dict[str, str]:
    """Each document's state (new, changed, indexed, deleted) from its content hash against
    ``manifest``'s."""
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
    return document_status(
        hashes, manifest if manifest is not None else read_manifest(Path(index_dir))
    )
