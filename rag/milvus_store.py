"""The Milvus store: an index whose rows live in Milvus (Lite, standalone or cluster).

Chosen at build time with ``--store milvus://path.db`` (Milvus Lite: an embedded engine in
a local folder, the path relative to the working directory like every other path) or
``--store http://host:19530`` (a Milvus standalone or cluster: the same client code, another
URI). The index folder keeps a small ``manifest.json`` that names the store, and the
document-frequency table of our terms (``terms-<generation>.json``); the rows live in
Milvus, in collections named ``<name>_b<base>_{chunks,sentences,documents}`` (``name`` is the
index's, so two indexes can share a server; ``base`` is the generation of the last full
build). ``<name>_meta`` holds a copy of the manifest for a reader that has only the server.

Rows (no pickle; every text checked against its sha256 when read):

- chunks: ``row`` (primary key, stable across incremental builds), ``born`` (the build
  generation that wrote it), source, chunk id, start/end, sentence spans, ``terms`` (our
  Snowball-stemmed terms, space-joined: the analyzer field Milvus's BM25 function turns into
  the ``sparse`` vector, so Milvus's BM25 and the answer scorer share one vocabulary) and
  the dense ``vector`` (unit length, FLAT/IP index: inner product = cosine, exact like FAISS).
- sentences: ``row``, born, source, start/end, vector, ``tokens``: the sentence's stored
  token vectors (``rag.late``: int8, pieces x dimension, row-major) in base64 (at most 256
  pieces x 128 bytes, well below VARCHAR's limit).
- documents: born, source, piece number and ``data``: the JSON record of the document (text,
  page starts, locations) cut into pieces below VARCHAR's 65,535-byte limit.

Crash safety: a build writes its rows under a new generation ``G`` and flips the generation
in ``manifest.json`` last (an atomic ``os.replace``). A reader sees only rows with
``born <= G``, minus the older rows of the documents that generation replaced or removed
(``retired``), so rows of a build killed mid-write are never read, and the previous
index answers until the flip. The next build deletes such orphans and the retired rows; a
full build writes new collections and drops the old ones after the flip.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from rag.chunking import Chunk, chunk_id, text_hash
from rag.documents import Document
from rag.errors import (
    BadInputError,
    IndexDamagedError,
    IndexMismatchError,
    IndexNotFoundError,
)
from rag.retrieval import RRF_K, terms
from rag.settings import IndexSettings
from rag.store import manifest_settings, read_manifest, text_digest

if TYPE_CHECKING:  # numpy and pymilvus load when used, not with this module (`rag --help`)
    import numpy as np

#: Format of a Milvus index's manifest and rows (2: the sentences' ``tokens``).
MILVUS_FORMAT_VERSION = 2
#: Characters per document piece: 4 UTF-8 bytes a character at most stays below 65,535 bytes.
PIECE_CHARS = 16_000
VARCHAR_MAX = 65_535
#: bm25s's defaults, so Milvus's BM25 ranks like the FAISS store's.
BM25_K1, BM25_B = 1.5, 0.75
#: Rows per insert call: well below gRPC's default 64 MiB message size at 384 dimensions.
INSERT_BATCH = 1_000
#: Rows per ``query`` call by row ids, and per page of a query iterator.
READ_BATCH = 1_000
#: Milvus caps one query's result window at 16,384 rows.
QUERY_WINDOW = 16_384
_NAME = re.compile(r"[^A-Za-z0-9_]")


class StoreKind(Enum):
    FAISS = "faiss"
    MILVUS_LITE = "milvus-lite"
    MILVUS_SERVER = "milvus-server"


@dataclass(frozen=True)
class StoreSpec:
    """Where an index's rows live, parsed from ``--store``.

    Attributes:
        kind: FAISS files in the index folder, Milvus Lite, or a Milvus server.
        uri: what ``--store`` said (recorded in the manifest); None for FAISS.
    """

    kind: StoreKind
    uri: str | None = None

    @classmethod
    def parse(cls, value: str | None) -> StoreSpec:
        """``faiss`` (or None), ``milvus://path.db`` or ``http(s)://host:port``.

        Raises:
            BadInputError: naming the value and the valid forms.
        """
        if value is None or value == "faiss":
            return cls(StoreKind.FAISS)
        if not isinstance(value, str):
            raise BadInputError(f"--store must be text, got {type(value).__name__}")
        if value.startswith("milvus://"):
            path = value.removeprefix("milvus://")
            if path.endswith(".db") and Path(path).name != ".db":
                return cls(StoreKind.MILVUS_LITE, value)
        elif re.fullmatch(r"https?://[^/\s]+/?", value):
            return cls(StoreKind.MILVUS_SERVER, value.rstrip("/"))
        raise BadInputError(
            "--store must be faiss, milvus://PATH.db (Milvus Lite) or http://HOST:PORT "
            f"(a Milvus server), got {value!r}"
        )

    @property
    def client_uri(self) -> str:
        """What ``MilvusClient`` takes: a ``.db`` path (relative to the working directory)
        starts Milvus Lite in this process; a URL connects to a server."""
        if self.kind is StoreKind.MILVUS_LITE:
            # Absolute: one engine per folder, whatever the working directory later is.
            return os.path.abspath(self.uri.removeprefix("milvus://"))
        return self.uri


def index_name(index_dir: Path | str) -> str:
    """The collections' prefix for the index at ``index_dir``: its folder name, in the
    letters Milvus allows in a collection name (letters, digits, underscores; not a digit
    first)."""
    name = _NAME.sub("_", Path(index_dir).resolve().name) or "index"
    return name if not name[0].isdigit() else f"i{name}"


@lru_cache(maxsize=8)
def connect(client_uri: str):
    """One ``MilvusClient`` per URI and process (Milvus Lite allows one process a folder,
    and its server runs in this process: every index on it shares the connection)."""
    from pymilvus import MilvusClient

    try:
        return MilvusClient(client_uri)
    except Exception as e:  # pymilvus raises its own MilvusException for a refused server
        raise IndexNotFoundError(f"cannot reach Milvus at {client_uri}: {e}") from None


@dataclass(frozen=True)
class Collections:
    """The collection names of one full build of one index."""

    prefix: str

    @property
    def chunks(self) -> str:
        return f"{self.prefix}_chunks"

    @property
    def sentences(self) -> str:
        return f"{self.prefix}_sentences"

    @property
    def documents(self) -> str:
        return f"{self.prefix}_documents"

    def all(self) -> tuple[str, str, str]:
        return (self.chunks, self.sentences, self.documents)


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def literal(text: str) -> str:
    """``text`` as a Milvus filter string literal. Not ``json.dumps``: Milvus's expression
    grammar has C escapes only (``\\u00f6`` is an error), so other characters stay as
    they are."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in text) + '"'


def literals(texts: Iterable[str]) -> str:
    """A Milvus filter list of string literals."""
    return "[" + ", ".join(literal(t) for t in texts) + "]"


def live_filter(generation: int, retired: Iterable[str]) -> str:
    """The Milvus filter that keeps exactly the rows of ``generation``: rows written by it
    or before, minus the older rows of the documents it replaced or removed."""
    expr = f"born <= {int(generation)}"
    retired = sorted(retired)
    if retired:
        expr += f" and not (source in {literals(retired)} and born < {int(generation)})"
    return expr


def document_pieces(doc: Document) -> list[str]:
    """A document's JSON record (text, page starts, locations) cut into VARCHAR-sized
    pieces; ``"".join(pieces)`` is the record."""
    record = json.dumps(
        {
            "text": doc.text,
            "page_starts": list(doc.page_starts) if doc.page_starts else None,
            "locations": [list(loc) for loc in doc.locations] if doc.locations else None,
        },
        ensure_ascii=False,
    )
    return [record[i : i + PIECE_CHARS] for i in range(0, len(record), PIECE_CHARS)] or [""]


def terms_path(index_dir: Path, generation: int) -> Path:
    """The term table of ``generation``: each term's number of chunks, and the chunk count."""
    return index_dir / f"terms-{generation}.json"


class MilvusIndex:
    """A loaded Milvus index: the read interface every store offers
    (``rag.store.IndexReader``; rows are Milvus primary keys, with gaps after incremental
    builds).

    Reads are lazy: a document's text when it is first asked for (checked against its
    sha256), a chunk or a vector by row, a document's sentence table on the first question
    about one of its sentences. Safe for concurrent readers.
    """

    def __init__(self, path: Path, manifest: dict, settings: IndexSettings) -> None:
        self.path = path
        self.manifest = manifest
        self.settings = settings
        info = manifest["milvus"]
        self.spec = StoreSpec.parse(manifest["store"])
        self.collections = Collections(info["collections"])
        self.generation = int(info["generation"])
        self.filter = live_filter(self.generation, info.get("retired", ()))
        self.client = connect(self.spec.client_uri)
        self.documents: Mapping[str, Document] = _Documents(self)
        self.chunks: Sequence[Chunk] = _Chunks(self)
        self.chunk_vectors = _Vectors(self, self.collections.chunks, manifest["counts"]["chunks"])
        self.sentence_vectors = _Vectors(
            self, self.collections.sentences, manifest["counts"]["sentences"]
        )
        self.sentence_tokens = _Tokens(self)
        self._sentence_tables = lru_cache(maxsize=256)(self._sentence_table)
        self._df: dict[str, int] | None = None

    @classmethod
    def load(cls, path: Path | str, *, model: str | None = None) -> MilvusIndex:
        """Open the Milvus index whose manifest is in the folder ``path``.

        Raises:
            IndexNotFoundError: no index there, or Milvus unreachable.
            IndexMismatchError: not a Milvus index, another format, or another model.
            IndexDamagedError: the manifest's collections are missing.
        """
        path = Path(path)
        manifest = read_manifest(path)
        if manifest is None:
            raise IndexNotFoundError(f"no index in {path}/: run `rag index` first")
        if "milvus" not in manifest:
            raise IndexMismatchError(f"{path}/ is not a Milvus index (it is a FAISS index)")
        if manifest["milvus"].get("format_version") != MILVUS_FORMAT_VERSION:
            raise IndexMismatchError(
                f"{path}/ has Milvus index format {manifest['milvus'].get('format_version')}, "
                f"this rag reads format {MILVUS_FORMAT_VERSION}: run `rag index --rebuild`"
            )
        from rag import late

        late.check_manifest(path, manifest)
        index = cls(path, manifest, manifest_settings(path, manifest, model))
        missing = [c for c in index.collections.all() if not index.client.has_collection(c)]
        if missing:
            raise IndexDamagedError(path, f"Milvus at {index.spec.uri} has no {missing[0]}")
        for c in index.collections.all():
            index.client.load_collection(c)
        return index

    # --- searches -------------------------------------------------------------------

    def dense_search(self, qv: np.ndarray, depth: int) -> list[tuple[int, float]]:
        """The ``depth`` chunk rows nearest to the unit vector ``qv``: (row, cosine), best
        first."""
        if depth < 1 or not len(self.chunks):
            return []
        found = self.client.search(
            self.collections.chunks,
            data=[[float(x) for x in qv]],
            anns_field="vector",
            limit=int(depth),
            filter=self.filter,
            output_fields=["row"],
            search_params={"metric_type": "IP"},
        )
        return [(int(h["row"]), float(h["distance"])) for h in found[0]]

    def bm25_search(self, question_terms: list[str], depth: int) -> list[tuple[int, float]]:
        """The ``depth`` best chunk rows by Milvus's BM25 over our terms: (row, score > 0),
        best first."""
        if depth < 1 or not question_terms or not len(self.chunks):
            return []
        found = self.client.search(
            self.collections.chunks,
            data=[" ".join(question_terms)],
            anns_field="sparse",
            limit=int(depth),
            filter=self.filter,
            output_fields=["row"],
        )
        # Milvus Lite reports BM25 as a negative distance, a Milvus server as a positive
        # score: either way, the larger magnitude is the better match.
        hits = [(int(h["row"]), abs(float(h["distance"]))) for h in found[0]]
        return [(row, score) for row, score in hits if score > 0]

    def hybrid_search(self, question: str, qv: np.ndarray, depth: int) -> list[tuple[int, float]]:
        """Dense and BM25 fused by Milvus's own RRF ranker (k = ``RRF_K``): (row, RRF score),
        best first."""
        from pymilvus import AnnSearchRequest, RRFRanker

        question_terms = terms(question)
        if not question_terms:
            return self.dense_search(qv, depth)
        if depth < 1 or not len(self.chunks):
            return []
        requests = [
            AnnSearchRequest(
                [[float(x) for x in qv]], "vector", {"metric_type": "IP"}, depth, expr=self.filter
            ),
            AnnSearchRequest([" ".join(question_terms)], "sparse", {}, depth, expr=self.filter),
        ]
        found = self.client.hybrid_search(
            self.collections.chunks,
            requests,
            RRFRanker(RRF_K),
            limit=int(depth),
            output_fields=["row"],
        )
        return [(int(h["row"]), float(h["distance"])) for h in found[0]]

    # --- terms ------------------------------------------------------------------------

    @property
    def df(self) -> dict[str, int]:
        """How many chunks hold each term (read from ``terms-<generation>.json`` once)."""
        if self._df is None:
            try:
                data = json.loads(terms_path(self.path, self.generation).read_text("utf-8"))
                self._df = {str(t): int(n) for t, n in data["df"].items()}
            except (OSError, ValueError, KeyError, AttributeError) as e:
                raise IndexDamagedError(self.path, f"the term table is unreadable: {e}") from None
        return self._df

    @property
    def default_idf(self) -> float:
        """The IDF of a term no chunk holds."""
        n = max(self.manifest["counts"]["chunks"], 1)
        return math.log(1 + (n + 0.5) / 0.5)

    def document_frequency(self, term: str) -> int:
        """How many chunks hold ``term`` (0: none)."""
        return self.df.get(term, 0)

    def vocabulary(self) -> Iterator[str]:
        """Every term some chunk holds."""
        return iter(self.df)

    def idf(self, term: str) -> float:
        """BM25's IDF of ``term`` over the chunks: log(1 + (n - df + 0.5) / (df + 0.5))."""
        d = self.df.get(term)
        if not d:
            return self.default_idf
        n = max(self.manifest["counts"]["chunks"], 1)
        return math.log(1 + (n - d + 0.5) / (d + 0.5))

    # --- sentences --------------------------------------------------------------------

    def _sentence_table(self, source: str) -> tuple[dict[tuple[int, int], int], list]:
        rows = query_all(
            self.client,
            self.collections.sentences,
            f"source == {literal(source)} and {self.filter}",
            ["row", "start", "end"],
        )
        spans = sorted((int(r["start"]), int(r["end"]), int(r["row"])) for r in rows)
        return {(a, b): row for a, b, row in spans}, [(a, b) for a, b, _ in spans]

    def sentence_row(self, key: tuple[str, int, int]) -> int | None:
        """The row of the sentence ``(source, start, end)``, None when there is none."""
        source, a, b = key
        if source not in self.manifest["documents"]:
            return None
        return self._sentence_tables(source)[0].get((a, b))

    def neighbours(
        self, key: tuple[str, int, int]
    ) -> tuple[tuple[str, int, int] | None, tuple[str, int, int] | None]:
        """The sentences before and after ``key`` in its document (None at either end)."""
        source, a, b = key
        if source not in self.manifest["documents"]:
            return None, None
        spans = self._sentence_tables(source)[1]
        try:
            i = spans.index((a, b))
        except ValueError:
            return None, None
        before = (source, *spans[i - 1]) if i > 0 else None
        after = (source, *spans[i + 1]) if i + 1 < len(spans) else None
        return before, after

    def vector_cache_for(self, sources: Iterable[str]) -> dict[str, np.ndarray]:
        """Every stored vector of the chunks and sentences of ``sources``, by the hash of
        its text: what an incremental build need not embed again."""
        import numpy as np

        cache: dict[str, np.ndarray] = {}
        sources = [s for s in sources if s in self.manifest["documents"]]
        if not sources:
            return cache
        where = f"source in {literals(sorted(sources))} and {self.filter}"
        for name in (self.collections.chunks, self.collections.sentences):
            for r in query_all(self.client, name, where, ["source", "start", "end", "vector"]):
                text = self.documents[r["source"]].text[r["start"] : r["end"]]
                cache[text_hash(text)] = np.asarray(r["vector"], dtype=np.float32)
        return cache

    def token_cache_for(self, sources: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored token vectors of the sentences of ``sources`` by the hash of their
        text (``vector_cache_for``'s companion)."""
        cache: dict[str, np.ndarray] = {}
        sources = [s for s in sources if s in self.manifest["documents"]]
        if not sources:
            return cache
        where = f"source in {literals(sorted(sources))} and {self.filter}"
        for r in query_all(
            self.client, self.collections.sentences, where, ["source", "start", "end", "tokens"]
        ):
            text = self.documents[r["source"]].text[r["start"] : r["end"]]
            cache[text_hash(text)] = decode_tokens(r["tokens"])
        return cache

    def close(self) -> None:
        """Nothing to release: the client is shared by every index on its URI (``connect``)
        and lives as long as the process."""


class _Documents(Mapping):
    """The documents by source, read on access and checked against their sha256."""

    def __init__(self, index: MilvusIndex) -> None:
        self._index = index
        self._read = lru_cache(maxsize=64)(self._load)

    def __len__(self) -> int:
        return len(self._index.manifest["documents"])

    def __iter__(self) -> Iterator[str]:
        return iter(self._index.manifest["documents"])

    def __getitem__(self, source: str) -> Document:
        if source not in self._index.manifest["documents"]:
            raise KeyError(source)
        return self._read(source)

    def _load(self, source: str) -> Document:
        index = self._index
        entry = index.manifest["documents"][source]
        rows = query_all(
            index.client,
            index.collections.documents,
            f"source == {literal(source)} and {index.filter}",
            ["piece", "data"],
        )
        rows.sort(key=lambda r: r["piece"])
        if [r["piece"] for r in rows] != list(range(entry["pieces"])):
            raise IndexDamagedError(index.path, f"{source!r}: document pieces are missing")
        try:
            rec = json.loads("".join(r["data"] for r in rows))
        except ValueError as e:
            raise IndexDamagedError(index.path, f"{source!r}: unreadable record: {e}") from None
        if text_digest(rec["text"]) != entry["text_hash"]:
            raise IndexDamagedError(index.path, f"{source!r}: text does not match its hash")
        return Document(
            source,
            rec["text"],
            entry["content_hash"],
            tuple(rec["page_starts"]) if rec["page_starts"] else None,
            tuple((a, label) for a, label in rec["locations"]) if rec["locations"] else None,
        )


class _Chunks(Sequence):
    """The chunks by row; ``len()`` is free, a row is read on access. Rows are the store's
    stable row ids (those the searches return): after an incremental build they need not
    run from 0 to ``len() - 1``."""

    def __init__(self, index: MilvusIndex) -> None:
        self._index = index
        self._read = lru_cache(maxsize=4096)(self._load)

    def __len__(self) -> int:
        return int(self._index.manifest["counts"]["chunks"])

    def __getitem__(self, row) -> Chunk:
        if isinstance(row, slice):
            raise TypeError("Milvus chunks are read by row, not by slice")
        return self._read(int(row))

    def __iter__(self) -> Iterator[Chunk]:
        index = self._index
        rows = query_all(index.client, index.collections.chunks, index.filter, ["row"])
        for r in sorted(int(r["row"]) for r in rows):
            yield self[r]

    def _load(self, row: int) -> Chunk:
        index = self._index
        found = index.client.query(
            index.collections.chunks,
            filter=f"row == {row} and {index.filter}",
            output_fields=["chunk_id", "source", "start", "end", "sentences"],
        )
        if not found:
            raise IndexError(f"no chunk at row {row}")
        r = found[0]
        doc = index.documents[r["source"]]
        start, end = int(r["start"]), int(r["end"])
        text = doc.text[start:end]
        if r["chunk_id"] != chunk_id(doc.source, start, end, text):
            raise IndexDamagedError(index.path, f"{doc.source!r}: chunk {r['chunk_id']} differs")
        spans = tuple((int(a), int(b)) for a, b in r["sentences"])
        return Chunk(r["chunk_id"], doc.source, start, end, text, spans)


class _Vectors:
    """Vectors by row: ``vectors[rows]`` reads those rows' vectors from Milvus."""

    def __init__(self, index: MilvusIndex, collection: str, n: int) -> None:
        self._index, self._collection, self._n = index, collection, n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, rows):
        import numpy as np

        single = isinstance(rows, int | np.integer)
        wanted = [int(rows)] if single else [int(r) for r in rows]
        got = read_rows(self._index, self._collection, "vector", wanted, "vector at row")
        out = np.asarray(got, dtype=np.float32)
        return out[0] if single else out


def read_rows(index: MilvusIndex, collection: str, field: str, rows: list[int], what: str):
    """``field`` of each of ``rows`` (in that order), read in batches of ``READ_BATCH``.

    Raises:
        IndexError: a row is not there ("no {what} {row}").
    """
    found: dict[int, object] = {}
    for i in range(0, len(rows), READ_BATCH):
        part = rows[i : i + READ_BATCH]
        got = index.client.query(
            collection, filter=f"row in {part} and {index.filter}", output_fields=["row", field]
        )
        found.update({int(r["row"]): r[field] for r in got})
    missing = [r for r in rows if r not in found]
    if missing:
        raise IndexError(f"no {what} {missing[0]}")
    return [found[r] for r in rows]


def encode_tokens(stored: np.ndarray) -> str:
    """A sentence's stored token vectors (int8) as the text of its ``tokens`` field."""
    import base64

    return base64.b64encode(stored.tobytes()).decode("ascii")


def decode_tokens(field: str) -> np.ndarray:
    """The int8 token vectors of a ``tokens`` field."""
    import base64

    import numpy as np

    from rag import late

    return np.frombuffer(base64.b64decode(field), dtype=np.int8).reshape(-1, late.dimension())


class _Tokens:
    """Token vectors by sentence row: ``tokens[rows]`` reads them from Milvus (float32)."""

    def __init__(self, index: MilvusIndex) -> None:
        self._index = index

    def __getitem__(self, rows) -> list[np.ndarray]:
        from rag import late

        fields = read_rows(
            self._index,
            self._index.collections.sentences,
            "tokens",
            [int(r) for r in rows],
            "token vectors at sentence row",
        )
        try:
            return [late.expand(decode_tokens(f)) for f in fields]
        except ValueError as e:
            raise IndexDamagedError(self._index.path, f"sentence token vectors: {e}") from None


def query_all(client, collection: str, expr: str, fields: list[str]) -> list[dict]:
    """Every row matching ``expr``. One query when they fit its window of 16,384 rows,
    else paged with a query iterator."""
    rows = client.query(collection, filter=expr, output_fields=fields, limit=QUERY_WINDOW)
    if len(rows) < QUERY_WINDOW:
        return list(rows)
    it = client.query_iterator(collection, batch_size=READ_BATCH, filter=expr, output_fields=fields)
    out: list[dict] = []
    try:
        while batch := it.next():
            out += batch
    finally:
        with contextlib.suppress(Exception):
            it.close()
    return out


def is_milvus_index(index_dir: Path | str) -> bool:
    """Whether the manifest in ``index_dir`` names a Milvus store."""
    manifest = read_manifest(Path(index_dir))
    return bool(manifest and "milvus" in manifest)


def fsync_replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary beside it, fsync, ``os.replace``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_milvus_manifest(store: str, name: str) -> dict | None:
    """The copy in Milvus of the manifest of the index ``name`` (its folder's name), None
    when there is none: what a reader with only the server can start from."""
    client = connect(StoreSpec.parse(store).client_uri)
    meta = f"{name}_meta"
    if not client.has_collection(meta):
        return None
    client.load_collection(meta)
    rows = query_all(client, meta, "born >= 0", ["born", "piece", "data"])
    if not rows:
        return None
    born = max(r["born"] for r in rows)
    pieces = sorted((r["piece"], r["data"]) for r in rows if r["born"] == born)
    return json.loads("".join(data for _, data in pieces))
