"""The on-disk index (format 4): a manifest, an SQLite file of texts and rows, memory-mapped
vectors and a persisted BM25 index. Loading reads only what does not grow with the corpus.

Layout of an index folder (no pickle anywhere)::

    manifest.json      format version, settings, model, counts, versions; per document: its
                       content and text hashes, its seed file's size and mtime_ns, and its
                       chunk and sentence counts and first rows
    index.sqlite       documents (canonical text, pages, locations, sentence spans), sentences
                       (row -> source, text hash) and chunks (row -> id, source, span,
                       sentence spans, BM25 terms, text hash)
                       span, text hash) and chunks (row -> id, source, span, sentence spans,
                       BM25 terms, text hash)
    chunks.npy         float32 unit vectors, row i = chunk row i (memory-mapped on load)
    sentences.npy      float32 unit vectors, row i = sentence row i (document order)
    sentence_tokens.npy        int8 token vectors of the sentences' content words, projected
                               (``rag.late``), all sentences' pieces end to end
    sentence_token_starts.npy  int64, sentences + 1: sentence row i's pieces are rows
                               starts[i]..starts[i+1] of sentence_tokens.npy
    bm25.*             the bm25s index of the chunks' stored terms (bm25s ``save``; its
                       arrays memory-mapped on first use)
    calibration.json   optional: the abstention threshold chosen by ``rag eval --calibrate``
                       (read and written by ``rag.calibration``; a build keeps it)

Rows follow the documents' order and, within a document, their offsets; a document's chunks
and sentences are the contiguous rows the manifest names.

Checks are split by cost. ``Index.load`` checks what is O(1) or O(documents): the manifest,
the row counts of every file against it, the vectors' shape and dtype, the BM25 index's
size. Everything per text is checked when it is read: a document's text against its
sha256, its sentence spans and location map; a chunk's offsets, id (a hash of its text),
sentences and order; each vector read is a unit vector. A damaged or edited index is
refused (``IndexDamagedError``), never quoted. An index is written by
``rag.indexing.build_index`` through ``IndexWriter`` and ``rag.swap``: a complete folder
swapped in under the writer lock, so an interrupted write leaves the previous index as it
was.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from rag.chunking import Chunk, Span, chunk_id
from rag.documents import Document, file_hash, seed_files, source_name
from rag.errors import (
    IndexDamagedError,
    IndexMismatchError,
    IndexNotFoundError,
)
from rag.settings import FORMAT_VERSION, IndexSettings
from rag.swap import (
    BM25_FILES,
    CHUNK_ANN,
    CHUNK_VECTORS,
    DB,
    MANIFEST,
    SENTENCE_TOKEN_STARTS,
    SENTENCE_TOKENS,
    SENTENCE_VECTORS,
    recover_for_reader,
)

if TYPE_CHECKING:  # numpy loads when used, not with this module (`rag --help`)
    import numpy as np

CALIBRATION = "calibration.json"
#: Documents (with their sentence spans) and chunks kept after a read: small, bounded LRUs.
DOCUMENT_CACHE = 256
CHUNK_CACHE = 4096

SentenceKey = tuple[str, int, int]


@runtime_checkable
class IndexReader(Protocol):
    """What retrieval, the answer scorer, citations, evaluation and the UI read of an index,
    whichever store holds it (``Index`` here: FAISS files; ``rag.milvus_store.MilvusIndex``:
    Milvus). ``rag.stores.open_store`` returns one.

    Rows are the store's stable ids, those ``dense_search`` and ``bm25_search`` return and
    ``chunks``/``chunk_vectors`` read: they need not run from 0 to ``len(chunks) - 1`` (a
    Milvus index has gaps after incremental builds), so callers index by the rows a search
    or ``sentence_row`` gave them, never by ``range(len(chunks))``.

    Attributes:
        path: the index folder (manifest, calibration).
        manifest: the manifest (``documents``, ``counts``, ``settings``, ...).
        settings: the settings the index was built with.
        documents: source -> ``Document``, read and checked on access.
        chunks: row -> ``Chunk``; ``len()`` is the number of chunks.
        chunk_vectors, sentence_vectors: ``vectors[row]`` or ``vectors[rows]`` -> float32
            unit vector(s).
        sentence_tokens: ``tokens[rows]`` -> for each sentence row, its stored token vectors
            as float32 (pieces x ``rag.late.dimension()``; ``rag.late``).
        default_idf: the IDF of a term no chunk holds.
    """

    path: Path
    manifest: dict
    settings: IndexSettings
    documents: Mapping[str, Document]
    chunks: Sequence[Chunk]
    chunk_vectors: object
    sentence_vectors: object
    sentence_tokens: object
    default_idf: float

    def dense_search(self, qv: np.ndarray, depth: int) -> list[tuple[int, float]]:
        """(chunk row, cosine), best first, at most ``depth``."""

    def bm25_search(self, question_terms: list[str], depth: int) -> list[tuple[int, float]]:
        """(chunk row, BM25 score > 0), best first, at most ``depth``."""

    def document_frequency(self, term: str) -> int:
        """How many chunks hold ``term``."""

    def vocabulary(self) -> Iterator[str]:
        """Every term some chunk holds."""

    def idf(self, term: str) -> float:
        """BM25's IDF of ``term`` over the chunks (``default_idf`` when none holds it)."""

    def sentence_row(self, key: SentenceKey) -> int | None:
        """The row in ``sentence_vectors`` of sentence ``(source, start, end)``."""

    def neighbours(self, key: SentenceKey) -> tuple[SentenceKey | None, SentenceKey | None]:
        """The sentences before and after ``key`` in its document."""

    def close(self) -> None:
        """Release files and connections (the index is not read after)."""


_SCHEMA = """
CREATE TABLE documents (
    source TEXT PRIMARY KEY, content_hash TEXT NOT NULL, text TEXT NOT NULL,
    page_starts TEXT, locations TEXT, sentences TEXT NOT NULL);
CREATE TABLE sentences (row INTEGER PRIMARY KEY, source TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE chunks (
    row INTEGER PRIMARY KEY, id TEXT NOT NULL, source TEXT NOT NULL,
    start_char INTEGER NOT NULL, end_char INTEGER NOT NULL, sentences TEXT NOT NULL,
    terms TEXT NOT NULL, hash TEXT NOT NULL);
"""
# Built after the rows are in (faster than maintaining them row by row).
_INDEXES = """
CREATE INDEX sentence_hashes ON sentences(hash);
CREATE INDEX chunk_hashes ON chunks(hash);
"""


def text_digest(text: str) -> str:
    """sha256 of a document's canonical text, stored in the manifest and checked on read."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@functools.cache
def faiss_module():
    """The faiss module, imported on first use, its OpenMP pool cut to one thread.

    A search is one question: FAISS's parallel loops gain nothing on it, but their OpenMP
    threads keep spinning after each search and starve torch's while it embeds the next
    question. Measured on 2 cores, 100k vectors (an IVF search, then a question's
    embedding): embedding p50 208 ms with FAISS's default threads, 14 ms with one; the
    search itself 0.83 vs 0.82 ms. (``make bench-scale`` showed it as a question embedding
    that grew with the index.)
    """
    import faiss

    faiss.omp_set_num_threads(1)
    return faiss


def connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    """An SQLite connection to ``path``; read-only ones treat the file as immutable (an index
    folder never changes once swapped in) and may be shared by threads under a lock."""
    if read_only:
        uri = f"{Path(path).resolve().as_uri()}?mode=ro&immutable=1"
        return sqlite3.connect(uri, uri=True, check_same_thread=False)
    return sqlite3.connect(path)


class _LRU(OrderedDict):
    """A dict that forgets its least recently used entries beyond ``size``."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_or(self, key, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = make(key)
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value


@dataclass(frozen=True)
class _Doc:
    """A checked document and its sentence spans (document order)."""

    document: Document
    spans: tuple[Span, ...]
    span_set: frozenset[Span]
    starts: tuple[int, ...]


class Index:
    """A loaded index. Read-only; safe for concurrent readers.

    Attributes:
        documents: source -> ``Document``, read (and checked against its sha256) on access.
        chunks: row -> ``Chunk``, read (and checked) on access; ``len`` is free.
        chunk_vectors, sentence_vectors: the memory-mapped unit vectors; indexing them
            returns arrays and checks the rows read are unit vectors.
        sentence_tokens: the memory-mapped token vectors of the sentences (``rag.late``);
            ``sentence_tokens[rows]`` returns each row's as float32.
    """

    def __init__(
        self,
        path: Path,
        manifest: dict,
        settings: IndexSettings,
        db,
        vectors,
        bm25,
        tokens,
        ann=None,
    ) -> None:
        self.path, self.manifest, self.settings = path, manifest, settings
        self._db = db
        self._lock = threading.RLock()
        self._entries: dict = manifest["documents"]
        self._n_chunks: int = manifest["counts"]["chunks"]
        self._n_sentences: int = manifest["counts"]["sentences"]
        # Which document owns a chunk row: first rows in order (bisect).
        order = sorted(self._entries.items(), key=lambda kv: kv[1]["first_chunk"])
        self._chunk_starts = [e["first_chunk"] for _, e in order]
        self._chunk_owner = [s for s, _ in order]
        self.chunk_vectors = _UnitRows(vectors[0], self, "chunk")
        self.sentence_vectors = _UnitRows(vectors[1], self, "sentence")
        self.sentence_tokens = _TokenRows(*tokens, self)
        self._bm25 = bm25
        self._ann = ann
        self._docs = _LRU(DOCUMENT_CACHE)
        self._chunk_cache = _LRU(CHUNK_CACHE)
        self.documents: Mapping[str, Document] = _Documents(self)
        self.chunks: Sequence[Chunk] = _Chunks(self)
        n = max(self._n_chunks, 1)
        #: The IDF of a term no chunk holds (the scorer's "unknown word" weight).
        self.default_idf = _idf(n, 0)

    @classmethod
    def load(cls, path: Path | str, *, model: str | None = None) -> Index:
        """Open the index at ``path``, checking the manifest before touching anything else.

        Checks every file's row count and shape against the manifest (cheap: nothing here
        reads a text or a vector); each text is checked when it is read.

        Raises:
            IndexNotFoundError: no index there.
            IndexMismatchError: another format version or (when ``model`` is given) another
                model.
            IndexDamagedError: files that disagree with each other or with the manifest.
            IndexBusyError: the index stayed mid-swap under a live writer for 30 s.
        """
        import numpy as np

        path = Path(path)
        recover_for_reader(path)
        manifest, settings = _read_manifest_checked(path, model)
        db = None
        try:
            _check_manifest(manifest)
            counts, dim = manifest["counts"], manifest["model"]["dimension"]
            if not (path / DB).is_file():
                raise IndexDamagedError(path, f"{DB} is missing")
            db = connect(path / DB, read_only=True)
            _check_rows(db, manifest)
            vectors = []
            for name, n in (
                (CHUNK_VECTORS, counts["chunks"]),
                (SENTENCE_VECTORS, counts["sentences"]),
            ):
                v = np.load(path / name, mmap_mode="r", allow_pickle=False)
                if v.dtype != np.float32 or v.shape != (n, dim):
                    raise IndexDamagedError(path, f"{name} does not match the manifest")
                vectors.append(v)
            tokens = _load_tokens(path, manifest)
            bm25 = None
            if counts["chunks"]:
                if _bm25_size(path) != counts["chunks"]:
                    raise IndexDamagedError(path, "the BM25 index does not match the manifest")
                # Opened now, like the other files: a rebuild swapping the folder later
                # never mixes its files with these.
                bm25 = _load_bm25(path)
            ann = _load_ann(path, counts["chunks"], dim)
        except IndexDamagedError as e:
            if db is not None:
                db.close()
            raise IndexDamagedError(path, e.reason) from None
        except (OSError, KeyError, ValueError, TypeError, IndexError, sqlite3.Error) as e:
            if db is not None:
                db.close()
            raise IndexDamagedError(path, f"{type(e).__name__}: {e}") from None
        return cls(path, manifest, settings, db, vectors, bm25, tokens, ann)

    # ------------------------------------------------------------------ reads, checked

    def damaged(self, reason: str) -> IndexDamagedError:
        return IndexDamagedError(self.path, reason)

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as e:
                raise self.damaged(f"{DB}: {e}") from None

    def _doc(self, source: str) -> _Doc:
        with self._lock:
            return self._docs.get_or(source, self._read_doc)

    def _read_doc(self, source: str) -> _Doc:
        entry = self._entries[source]
        rows = self._query(
            "SELECT content_hash, text, page_starts, locations, sentences FROM documents "
            "WHERE source = ?",
            (source,),
        )
        if len(rows) != 1:
            raise self.damaged(f"{source!r} is missing from {DB}")
        content_hash, text, page_starts, locations, sentences = rows[0]
        if content_hash != entry["content_hash"]:
            raise self.damaged(f"{source!r}: content hash differs from the manifest")
        if not isinstance(text, str) or text_digest(text) != entry["text_hash"]:
            raise self.damaged(f"{source!r}: text does not match its hash")
        try:
            pages = json.loads(page_starts) if page_starts else None
            locs = json.loads(locations) if locations else None
            spans = tuple((a, b) for a, b in json.loads(sentences))
            doc = Document(
                source,
                text,
                content_hash,
                tuple(pages) if pages else None,
                tuple((a, label) for a, label in locs) if locs else None,
            )
        except (ValueError, TypeError) as e:
            raise self.damaged(f"{source!r}: {e}") from None
        starts = [a for a, _ in doc.locations or ()]
        if (
            any(not isinstance(a, int) for a in starts)
            or starts != sorted(set(starts))
            or (starts and not 0 <= starts[0] <= starts[-1] < max(len(text), 1))
        ):
            raise self.damaged(f"{source!r}: location map out of range or order")
        if len(spans) != entry["sentences"]:
            raise self.damaged(f"{source!r}: sentence count differs from the manifest")
        last = 0
        for a, b in spans:
            if not (isinstance(a, int) and isinstance(b, int) and last <= a < b <= len(text)):
                raise self.damaged(f"{source!r}: sentence {a}-{b} out of range or order")
            last = b
        return _Doc(doc, spans, frozenset(spans), tuple(a for a, _ in spans))

    def _chunk(self, row: int) -> Chunk:
        with self._lock:
            return self._chunk_cache.get_or(row, self._read_chunk)

    def _raw_chunk(self, row: int) -> tuple:
        rows = self._query(
            "SELECT id, source, start_char, end_char, sentences FROM chunks WHERE row = ?", (row,)
        )
        if len(rows) != 1:
            raise self.damaged(f"chunk row {row} is missing from {DB}")
        return rows[0]

    def _read_chunk(self, row: int) -> Chunk:
        cid, source, start, end, sentences = self._raw_chunk(row)
        owner = self._chunk_owner[_bisect(self._chunk_starts, row)]
        if source != owner:
            raise self.damaged(f"chunk row {row} belongs to {owner!r}, not {source!r}")
        d = self._doc(source)
        n = len(d.document.text)
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= n):
            raise self.damaged(f"{source!r}: chunk offsets {start}-{end} out of range")
        text = d.document.text[start:end]
        if cid != chunk_id(source, start, end, text):
            raise self.damaged(f"{source!r}: chunk {cid} does not match its text")
        try:
            spans = tuple(tuple(s) for s in json.loads(sentences))
        except (ValueError, TypeError) as e:
            raise self.damaged(f"{source!r}: chunk {cid}: {e}") from None
        if not spans or any(
            s not in d.span_set or not (start <= s[0] and s[1] <= end) for s in spans
        ):
            raise self.damaged(f"{source!r}: chunk {cid} has sentences outside it")
        # Order: each chunk starts after the one before it in its document; the first one
        # at the document's first sentence. A swapped or shifted row breaks one of these.
        entry = self._entries[source]
        if row == entry["first_chunk"]:
            in_order = start == d.spans[0][0]
        else:
            in_order = self._raw_chunk(row - 1)[2] < start
        if not in_order:
            raise self.damaged(f"{source!r}: chunk at {start} out of order")
        return Chunk(cid, source, start, end, text, spans)

    # ------------------------------------------------------------------ the read interface

    def _position(self, key: SentenceKey) -> tuple[tuple[Span, ...], int] | None:
        """The spans of ``key``'s document and ``key``'s place among them (None: not one)."""
        if key[0] not in self._entries:
            return None
        d = self._doc(key[0])
        spans, i = d.spans, _bisect(d.starts, key[1])
        return (spans, i) if i >= 0 and spans[i] == (key[1], key[2]) else None

    def sentence_row(self, key: SentenceKey) -> int | None:
        """The row of sentence ``(source, start, end)`` in ``sentence_vectors`` (None: no such
        sentence)."""
        found = self._position(key)
        return None if found is None else self._entries[key[0]]["first_sentence"] + found[1]

    def sentence_keys(self) -> Iterator[SentenceKey]:
        """Every sentence's key in row order (reads the whole table: for evaluation scripts)."""
        for source in sorted(self._entries, key=lambda s: self._entries[s]["first_sentence"]):
            yield from ((source, a, b) for a, b in self._doc(source).spans)

    def neighbours(self, key: SentenceKey) -> tuple[SentenceKey | None, SentenceKey | None]:
        """The sentences before and after ``key`` in the same document (None at its ends)."""
        found = self._position(key)
        if found is None:
            return None, None
        spans, i = found
        before = (key[0], *spans[i - 1]) if i > 0 else None
        after = (key[0], *spans[i + 1]) if i + 1 < len(spans) else None
        return before, after

    def dense_search(self, qv: np.ndarray, depth: int) -> list[tuple[int, float]]:
        """The ``depth`` chunk rows nearest ``qv`` by inner product (= cosine on unit
        vectors), best first: (row, cosine), no padding.

        Below ``rag.ann.ANN_THRESHOLD`` chunks: exact search over the memory-mapped vectors
        with faiss's brute-force kernel (the one ``IndexFlatIP`` runs, so rankings and ties
        are those of a flat index). From it on: the saved IVF-Flat index (``chunks.ivf``,
        memory-mapped; recall@10 >= 0.98 against exact search, measured in
        evals/scale/README.md), whose scores are still exact inner products.
        """
        import numpy as np

        vectors = self.chunk_vectors.raw
        depth = min(depth, len(vectors))
        if depth <= 0:
            return []
        q = np.ascontiguousarray(qv[None, :], dtype=np.float32)
        if self._ann is not None:
            scores, ids = self._ann.search(q, depth)
        else:
            scores, ids = faiss_module().knn(
                q, vectors, depth, metric=faiss_module().METRIC_INNER_PRODUCT
            )
        found = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        self.chunk_vectors[[i for i, _ in found]]  # checks the rows it returns are unit vectors
        return found

    def bm25_search(self, question_terms: list[str], depth: int) -> list[tuple[int, float]]:
        """The chunk rows BM25 scores above 0 for ``question_terms``, best first (at most
        ``depth``)."""
        if not question_terms or not self._n_chunks:
            return []
        depth = min(depth, self._n_chunks)
        docs, scores = self._bm25.retrieve(
            [question_terms], k=depth, show_progress=False, n_threads=0
        )
        # bm25s fills up to k with zero-score documents that share no term with the question.
        return [(int(i), float(s)) for i, s in zip(docs[0], scores[0], strict=True) if s > 0]

    def vocabulary(self) -> Iterator[str]:
        """Every term some chunk holds (reads the whole BM25 vocabulary)."""
        if self._n_chunks:
            yield from (t for t in self._bm25.vocab_dict if t)

    def document_frequency(self, term: str) -> int:
        """How many chunks hold ``term`` (0: none), read from the BM25 index's columns."""
        if not self._n_chunks or not term:
            return 0
        j = self._bm25.vocab_dict.get(term)
        if j is None:
            return 0
        indptr = self._bm25.scores["indptr"]
        return int(indptr[j + 1] - indptr[j])

    def idf(self, term: str) -> float:
        """``log(1 + (n - df + 0.5) / (df + 0.5))`` over the n chunks; ``default_idf`` for a
        term no chunk holds."""
        df = self.document_frequency(term)
        return _idf(max(self._n_chunks, 1), df) if df else self.default_idf

    def vector_of(self, h: str) -> np.ndarray | None:
        """A stored vector whose text has ``chunking.text_hash`` ``h`` (None: none has)."""
        for table, vectors in (
            ("chunks", self.chunk_vectors),
            ("sentences", self.sentence_vectors),
        ):
            rows = self._query(f"SELECT row FROM {table} WHERE hash = ? LIMIT 1", (h,))
            if rows:
                return vectors[rows[0][0]]
        return None

    def tokens_of(self, h: str) -> np.ndarray | None:
        """The stored (int8) token vectors of a sentence whose text has hash ``h``."""
        rows = self._query("SELECT row FROM sentences WHERE hash = ? LIMIT 1", (h,))
        return self.sentence_tokens.stored(rows[0][0]) if rows else None

    def vector_cache_for(self, sources) -> dict[str, np.ndarray]:
        """Every stored vector of the documents ``sources`` by the hash of its text."""
        cache = {}
        for source in sources:
            e = self._entries.get(source)
            if e is None:
                continue
            for table, vectors, first, n in (
                ("chunks", self.chunk_vectors, e["first_chunk"], e["chunks"]),
                ("sentences", self.sentence_vectors, e["first_sentence"], e["sentences"]),
            ):
                rows = self._query(
                    f"SELECT row, hash FROM {table} WHERE row >= ? AND row < ?", (first, first + n)
                )
                if rows:
                    block = vectors[first : first + n]
                    for row, h in rows:
                        cache[h] = block[row - first]
        return cache

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _idf(n: int, df: int) -> float:
    import math

    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def _bisect(starts: list[int], x: int) -> int:
    """The index of the last of the sorted ``starts`` that is <= ``x`` (-1: none)."""
    import bisect

    return bisect.bisect_right(starts, x) - 1


class _UnitRows:
    """Memory-mapped vectors; indexing returns an array and refuses rows that are not unit
    vectors (every stored vector is one: cosine = inner product)."""

    def __init__(self, raw, index: Index, what: str) -> None:
        self.raw, self._index, self._what = raw, index, what

    def __len__(self) -> int:
        return len(self.raw)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.raw.shape

    def __getitem__(self, key):
        import numpy as np

        rows = np.asarray(self.raw[key])
        if rows.size:
            flat = rows.reshape(-1, rows.shape[-1])
            squares = np.einsum("ij,ij->i", flat, flat)  # |v|^2: 1 +- 2e-3 means |v| = 1 +- 1e-3
            if not np.all(np.abs(squares - 1.0) < 2e-3):
                raise self._index.damaged(f"{self._what} vectors are not unit vectors")
        return rows


class _Documents(Mapping):
    """source -> Document, each read from SQLite on access and checked against its hash."""

    def __init__(self, index: Index) -> None:
        self._index = index

    def __getitem__(self, source: str) -> Document:
        if source not in self._index._entries:
            raise KeyError(source)
        return self._index._doc(source).document

    def __contains__(self, source: object) -> bool:
        return source in self._index._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._index._entries)

    def __len__(self) -> int:
        return len(self._index._entries)


class _Chunks(Sequence):
    """row -> Chunk, each read from SQLite on access (text sliced from its checked document)."""

    def __init__(self, index: Index) -> None:
        self._index = index

    def __len__(self) -> int:
        return self._index._n_chunks

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        n = len(self)
        if row < 0:
            row += n
        if not 0 <= row < n:
            raise IndexError(f"chunk row {row} out of range")
        return self._index._chunk(int(row))


class _TokenRows:
    """The sentences' stored token vectors (``rag.late``), memory-mapped; each read checks
    the rows' piece ranges."""

    def __init__(self, raw, starts, index: Index) -> None:
        self.raw, self.starts, self._index = raw, starts, index

    def __len__(self) -> int:
        return len(self.starts) - 1

    def span(self, row: int) -> tuple[int, int]:
        a, b = int(self.starts[row]), int(self.starts[row + 1])
        if not 0 <= a <= b <= len(self.raw):
            raise self._index.damaged(f"{SENTENCE_TOKEN_STARTS}: row {row} out of range")
        return a, b

    def stored(self, row: int) -> np.ndarray:
        """Row ``row``'s pieces as stored (int8)."""
        a, b = self.span(int(row))
        return self.raw[a:b]

    def __getitem__(self, rows) -> list[np.ndarray]:
        from rag.late import expand

        rows = [int(r) for r in rows]
        if rows and not (0 <= min(rows) and max(rows) < len(self)):
            raise IndexError("sentence row out of range")
        return [expand(self.stored(r)) for r in rows]


def _load_tokens(path: Path, manifest: dict):
    """The memory-mapped token vectors and piece starts, checked against the manifest and
    the projection this rag uses (O(1): the starts are checked when read)."""
    import numpy as np

    from rag import late

    late.check_manifest(path, manifest)
    tokens = np.load(path / SENTENCE_TOKENS, mmap_mode="r", allow_pickle=False)
    starts = np.load(path / SENTENCE_TOKEN_STARTS, mmap_mode="r", allow_pickle=False)
    n = manifest["counts"]["sentences"]
    if (
        tokens.dtype != np.int8
        or tokens.ndim != 2
        or tokens.shape[1] != late.dimension()
        or starts.dtype != np.int64
        or starts.shape != (n + 1,)
        or int(starts[0]) != 0
        or int(starts[-1]) != len(tokens)
    ):
        raise IndexDamagedError(path, f"{SENTENCE_TOKENS} does not match the manifest")
    return tokens, starts


def _load_ann(folder: Path, n: int, dim: int):
    """The IVF index of the chunk vectors (memory-mapped), None below the ANN threshold.

    Raises:
        IndexDamagedError: it is missing where the size calls for it, or holds another
            number or size of vectors.
    """
    from rag.ann import ANN_THRESHOLD, ivf_probes

    if n < ANN_THRESHOLD:
        return None
    if not (folder / CHUNK_ANN).is_file():
        raise IndexDamagedError(folder, f"{CHUNK_ANN} is missing")
    faiss = faiss_module()
    ann = faiss.read_index(str(folder / CHUNK_ANN), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    if (ann.ntotal, ann.d) != (n, dim):
        raise IndexDamagedError(folder, f"{CHUNK_ANN} does not match the manifest")
    ann.nprobe = ivf_probes(ann.nlist)
    return ann


def _load_bm25(folder: Path):
    """The saved bm25s index in ``folder``, its arrays memory-mapped."""
    import bm25s

    return bm25s.BM25.load(folder, mmap=True, **BM25_FILES)


def _bm25_size(folder: Path) -> int | None:
    """The number of documents the saved BM25 index holds (None: no readable index)."""
    try:
        params = json.loads((folder / BM25_FILES["params_name"]).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not all((folder / name).is_file() for name in BM25_FILES.values()):
        return None
    return params.get("num_docs")


def _check_manifest(manifest: dict) -> None:
    """Raise ``IndexDamagedError`` unless the manifest's per-document rows partition its
    counts: each document's chunks and sentences are the next contiguous rows."""
    counts = manifest["counts"]
    entries = manifest["documents"]
    if counts["documents"] != len(entries):
        raise IndexDamagedError("", "document count differs from the manifest's list")
    for kind, first in (("chunks", "first_chunk"), ("sentences", "first_sentence")):
        at = 0
        for source, e in sorted(entries.items(), key=lambda kv: kv[1][first]):
            if e[first] != at or not isinstance(e[kind], int) or e[kind] < (kind == "sentences"):
                raise IndexDamagedError("", f"{source!r}: {kind} rows differ from the manifest")
            at += e[kind]
        if at != counts[kind]:
            raise IndexDamagedError("", f"{kind} count differs from the manifest")


def _check_rows(db: sqlite3.Connection, manifest: dict) -> None:
    """Raise ``IndexDamagedError`` unless the tables hold the rows the manifest counts."""
    counts = manifest["counts"]
    sources = {s for (s,) in db.execute("SELECT source FROM documents")}
    if sources != set(manifest["documents"]):
        raise IndexDamagedError("", f"{DB} and the manifest list different documents")
    for table in ("chunks", "sentences"):
        n, lo, hi = db.execute(f"SELECT count(*), min(row), max(row) FROM {table}").fetchone()
        if n != counts[table] or (n and (lo, hi) != (0, n - 1)):
            raise IndexDamagedError("", f"{table} count differs from the manifest")


def _read_manifest_checked(path: Path, model: str | None) -> tuple[dict, IndexSettings]:
    """The manifest and its settings, refused before anything else is read when the index
    is missing, of another format or (``model`` given) of another model."""
    manifest = read_manifest(path)
    if manifest is None:
        raise IndexNotFoundError(f"no index in {path}/: run `rag index` first")
    if "milvus" in manifest:  # not damaged: its rows are elsewhere
        raise IndexMismatchError(
            f"{path}/ is an index in Milvus ({manifest.get('store')}), not FAISS files: "
            "open it with rag.stores.open_store (as every rag command does)"
        )
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexMismatchError(
            f"{path}/ has index format {version}, this rag reads format {FORMAT_VERSION}: "
            "run `rag index --rebuild`"
        )
    return manifest, manifest_settings(path, manifest, model)


def manifest_settings(path: Path, manifest: dict, model: str | None) -> IndexSettings:
    """The settings a manifest records, refused (``model`` given) when built with another
    model; every store checks its manifest this way.

    Raises:
        IndexDamagedError: unreadable settings.
        IndexMismatchError: another model than ``model``.
    """
    try:
        settings = IndexSettings(**manifest["settings"])
    except (KeyError, TypeError, ValueError) as e:
        raise IndexDamagedError(path, f"manifest settings: {e}") from None
    if model is not None and model != settings.model:
        raise IndexMismatchError(
            f"{path}/ was built with model {settings.model!r}, not {model!r}: "
            f"run `rag index --rebuild --model {model}` or leave out --model"
        )
    return settings


def read_manifest(path: Path) -> dict | None:
    """The manifest at ``path``, or None when there is no index there."""
    try:
        return json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise IndexDamagedError(path, f"{MANIFEST} is unreadable: {e}") from None


# ---------------------------------------------------------------------- seeds against an index

#: A seed file modified this close to the scan that recorded it may change again within the
#: clock's granularity without its mtime moving ("racy" in git's words): it is hashed.
RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class SeedFile:
    """A seed file as ``os.stat`` saw it (nothing read)."""

    source: str
    path: Path
    size: int
    mtime_ns: int


def scan_seeds(seeds_dir: Path, *, warn=None) -> list[SeedFile]:
    """Every seed file under ``seeds_dir`` with its size and mtime, in ``seed_files`` order."""
    seeds_dir = Path(seeds_dir)
    out = []
    for p in seed_files(seeds_dir, warn=warn):
        st = p.stat()
        out.append(SeedFile(source_name(p, seeds_dir), p, st.st_size, st.st_mtime_ns))
    return out


def same_file(seed: SeedFile, manifest: dict | None) -> bool:
    """Whether ``seed`` is, by size and mtime alone, the file ``manifest`` indexed.

    Like make and git, a file whose size and mtime are both unchanged is taken as unchanged;
    one that was modified within ``RACY_NS`` of the build's scan is never trusted this way.
    """
    entry = (manifest or {}).get("documents", {}).get(seed.source)
    if entry is None or entry.get("size") != seed.size or entry.get("mtime_ns") != seed.mtime_ns:
        return False
    return seed.mtime_ns + RACY_NS < (manifest or {}).get("scanned_ns", 0)


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

    Compares each file's size and mtime with the manifest's first and hashes only the files
    where they differ (``same_file``), so it stays cheap for a UI panel at thousands of
    documents. ``manifest``: compare with this one (a loaded index's) instead of reading
    ``index_dir``'s.
    """
    if manifest is None:
        manifest = read_manifest(Path(index_dir))
    old = (manifest or {}).get("documents", {})
    hashes = {}
    for seed in scan_seeds(Path(seeds_dir)):
        if same_file(seed, manifest):
            hashes[seed.source] = old[seed.source]["content_hash"]
        else:
            hashes[seed.source] = file_hash(seed.path.read_bytes())
    return document_status(hashes, manifest)


# ---------------------------------------------------------------------- writing a folder


@dataclass(frozen=True)
class FreshDocument:
    """A document chunked by this build: its sentences, chunks and each chunk's BM25 terms."""

    document: Document
    sentences: list[Span]
    chunks: list[Chunk]
    chunk_terms: list[list[str]]


def write_index(
    tmp: Path,
    manifest: dict,
    parts: list[FreshDocument | str],
    *,
    old: Index | None,
    vector_of,
    tokens_of,
) -> None:
    """Write a complete index folder into ``tmp`` (manifest last).

    Args:
        manifest: the new manifest; its per-document rows and counts say where each part's
            rows go.
        parts: in row order, a ``FreshDocument`` or the source of a document of ``old`` to
            keep as it is: its rows, terms and vectors are copied, nothing is re-derived.
        vector_of: the vector of a fresh text by its ``chunking.text_hash``.
        tokens_of: the stored token vectors (``rag.late.compress``) of a fresh sentence by
            the hash of its text.
    """
    import numpy as np
    from numpy.lib.format import open_memmap

    from rag.chunking import text_hash

    counts, dim = manifest["counts"], manifest["model"]["dimension"]
    entries = manifest["documents"]
    vectors = {
        "chunks": open_memmap(
            tmp / CHUNK_VECTORS, mode="w+", dtype=np.float32, shape=(counts["chunks"], dim)
        ),
        "sentences": open_memmap(
            tmp / SENTENCE_VECTORS, mode="w+", dtype=np.float32, shape=(counts["sentences"], dim)
        ),
    }
    tokens = _token_files(tmp, manifest, parts, old, tokens_of)
    db = sqlite3.connect((tmp / DB).resolve().as_uri(), uri=True)
    try:
        db.executescript(_SCHEMA)
        if old is not None:
            old_uri = f"{(old.path / DB).resolve().as_uri()}?mode=ro&immutable=1"
            db.execute("ATTACH DATABASE ? AS old", (old_uri,))
        for part in parts:
            if isinstance(part, str):
                _copy_rows(db, old, part, entries[part], vectors, tokens)
            else:
                entry = entries[part.document.source]
                _insert_rows(db, part, entry, vectors, vector_of, text_hash)
                _insert_tokens(part, entry, tokens, tokens_of, text_hash)
        db.executescript(_INDEXES)
        db.commit()
        terms = [t.split() for (t,) in db.execute("SELECT terms FROM chunks ORDER BY row")]
        if old is not None:
            db.execute("DETACH DATABASE old")
    finally:
        db.close()
    for v in (*vectors.values(), *tokens):
        v.flush()
    del vectors, tokens
    _write_ann(tmp, counts["chunks"])
    if terms:
        import bm25s

        # Built from the stored terms: no chunk is tokenised again.
        bm25 = bm25s.BM25()
        bm25.index(terms, show_progress=False)
        bm25.save(tmp, show_progress=False, **BM25_FILES)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")


def _write_ann(tmp: Path, n: int) -> None:
    """From ``rag.ann.ANN_THRESHOLD`` chunks on, the IVF-Flat index of ``tmp``'s chunk
    vectors (trained afresh each build: 12 s at 100k, 171 s at 1M, against hours of
    embedding for a full build of that size)."""
    import numpy as np

    from rag.ann import ANN_THRESHOLD, make_search_index

    if n < ANN_THRESHOLD:
        return
    vectors = np.load(tmp / CHUNK_VECTORS, mmap_mode="r", allow_pickle=False)
    index = make_search_index(vectors, threshold=ANN_THRESHOLD)
    faiss_module().write_index(index, str(tmp / CHUNK_ANN))


def _token_files(tmp: Path, manifest: dict, parts, old: Index | None, tokens_of):
    """The two token files of ``tmp``, opened for writing (the stored pieces, their starts):
    every sentence's piece count is known before anything is written."""
    import numpy as np
    from numpy.lib.format import open_memmap

    from rag import late
    from rag.chunking import text_hash

    entries = manifest["documents"]
    counts = np.zeros(manifest["counts"]["sentences"], dtype=np.int64)
    for part in parts:
        if isinstance(part, str):
            e, was = entries[part], old.manifest["documents"][part]
            st = old.sentence_tokens.starts
            first = was["first_sentence"]
            counts[e["first_sentence"] : e["first_sentence"] + e["sentences"]] = np.diff(
                st[first : first + was["sentences"] + 1]
            )
        else:
            d, s0 = part.document, entries[part.document.source]["first_sentence"]
            for i, (a, b) in enumerate(part.sentences):
                counts[s0 + i] = len(tokens_of(text_hash(d.text[a:b])))
    starts = open_memmap(
        tmp / SENTENCE_TOKEN_STARTS, mode="w+", dtype=np.int64, shape=(len(counts) + 1,)
    )
    starts[0] = 0
    np.cumsum(counts, out=starts[1:])
    pieces = open_memmap(
        tmp / SENTENCE_TOKENS, mode="w+", dtype=np.int8, shape=(int(starts[-1]), late.dimension())
    )
    manifest["tokens"] = late.manifest_entry()
    return pieces, starts


def _insert_tokens(part, entry: dict, tokens, tokens_of, text_hash) -> None:
    pieces, starts = tokens
    d, s0 = part.document, entry["first_sentence"]
    for i, (a, b) in enumerate(part.sentences):
        pieces[starts[s0 + i] : starts[s0 + i + 1]] = tokens_of(text_hash(d.text[a:b]))


def _copy_rows(db, old: Index, source: str, entry: dict, vectors: dict, tokens) -> None:
    """Copy a document of ``old`` whole: its row, its sentence and chunk rows (renumbered)
    and their vectors and token vectors."""
    was = old.manifest["documents"][source]
    if was["sentences"]:
        a = old.sentence_tokens.span(was["first_sentence"])[0]
        b = old.sentence_tokens.span(was["first_sentence"] + was["sentences"] - 1)[1]
        start = int(tokens[1][entry["first_sentence"]])
        tokens[0][start : start + b - a] = old.sentence_tokens.raw[a:b]
    db.execute("INSERT INTO documents SELECT * FROM old.documents WHERE source = ?", (source,))
    for table, first, n in (
        ("sentences", "first_sentence", "sentences"),
        ("chunks", "first_chunk", "chunks"),
    ):
        shift = entry[first] - was[first]
        columns = (
            "source, hash"
            if table == "sentences"
            else "id, source, start_char, end_char, sentences, terms, hash"
        )
        db.execute(
            f"INSERT INTO {table} SELECT row + ?, {columns} FROM old.{table} "
            "WHERE row >= ? AND row < ?",
            (shift, was[first], was[first] + was[n]),
        )
        source_vectors = (old.chunk_vectors if table == "chunks" else old.sentence_vectors).raw
        vectors[table][entry[first] : entry[first] + entry[n]] = source_vectors[
            was[first] : was[first] + was[n]
        ]


def _insert_rows(db, part: FreshDocument, entry: dict, vectors: dict, vector_of, text_hash) -> None:
    """Insert a freshly chunked document's rows and vectors."""
    import numpy as np

    d = part.document
    db.execute(
        "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)",
        (
            d.source,
            d.content_hash,
            d.text,
            json.dumps(list(d.page_starts)) if d.page_starts else None,
            json.dumps([list(loc) for loc in d.locations], ensure_ascii=False)
            if d.locations
            else None,
            json.dumps(part.sentences),
        ),
    )
    s0, c0 = entry["first_sentence"], entry["first_chunk"]
    s_hashes = [text_hash(d.text[a:b]) for a, b in part.sentences]
    db.executemany(
        "INSERT INTO sentences VALUES (?, ?, ?)",
        [(s0 + i, d.source, h) for i, h in enumerate(s_hashes)],
    )
    c_hashes = [text_hash(c.text) for c in part.chunks]
    db.executemany(
        "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (c0 + i, c.id, c.source, c.start, c.end, json.dumps(c.sentences), " ".join(ts), h)
            for i, (c, ts, h) in enumerate(
                zip(part.chunks, part.chunk_terms, c_hashes, strict=True)
            )
        ],
    )
    if s_hashes:
        vectors["sentences"][s0 : s0 + len(s_hashes)] = np.stack([vector_of(h) for h in s_hashes])
    if c_hashes:
        vectors["chunks"][c0 : c0 + len(c_hashes)] = np.stack([vector_of(h) for h in c_hashes])
