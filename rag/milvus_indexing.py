"""Build a Milvus index (``rag.milvus_store``) from the seeds folder, incrementally.

A build, under the index folder's writer lock:

1. reads the live manifest (generation ``G``) and removes what a killed build left: rows
   born after ``G``, the retired rows of ``G``, collections of a full build that never
   flipped;
2. chunks and embeds only the new and changed documents (a vector whose text the old
   version of the document already had is reused), and inserts their rows under ``G + 1``;
3. updates the term document-frequency table by the change (old chunks' terms out, new in);
4. flushes Milvus, writes ``terms-<G+1>.json`` and then ``manifest.json`` (the flip: one
   ``os.replace``), then copies the manifest into Milvus;
5. deletes the rows the flip retired (and, after a full build, drops the old collections).

Killed anywhere before the flip, the index answers from ``G``; after it, from ``G + 1``. A
full build (a new index, ``--rebuild``, other settings) writes new collections instead.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag.chunking import Chunk, Span, text_hash
from rag.documents import Document, load_documents
from rag.embedding import Embedder
from rag.errors import IndexMismatchError, RagError
from rag.indexing import (
    BuildReport,
    embed_missing,
    fresh_texts,
    package_versions,
    prepare_document,
    sentence_texts,
    sort_changes,
)
from rag.milvus_store import (
    BM25_B,
    BM25_K1,
    INSERT_BATCH,
    MILVUS_FORMAT_VERSION,
    VARCHAR_MAX,
    Collections,
    MilvusIndex,
    StoreKind,
    StoreSpec,
    connect,
    document_pieces,
    encode_tokens,
    fsync_replace,
    index_name,
    literals,
    live_filter,
    query_all,
    terms_path,
)
from rag.settings import IndexSettings, utc_now
from rag.store import document_status, read_manifest, text_digest
from rag.swap import (
    BM25_FILES,
    CHUNK_ANN,
    CHUNK_VECTORS,
    DB,
    MANIFEST,
    SENTENCE_TOKEN_STARTS,
    SENTENCE_TOKENS,
    SENTENCE_VECTORS,
    writer_lock,
)

#: The files of a FAISS index (``rag.store``), removed when a build moves one to Milvus.
FAISS_FILES = (
    DB,
    CHUNK_VECTORS,
    SENTENCE_VECTORS,
    SENTENCE_TOKENS,
    SENTENCE_TOKEN_STARTS,
    CHUNK_ANN,
    *BM25_FILES.values(),
)

if TYPE_CHECKING:
    import numpy as np

#: The packages whose versions a Milvus index's manifest records.
MILVUS_PACKAGES = ("rag", "sentence-transformers", "pymilvus", "milvus-lite", "torch")


def build_milvus_index(
    seeds_dir: Path | str,
    index_dir: Path | str,
    *,
    store: str,
    settings: IndexSettings | None = None,
    rebuild: bool = False,
    progress: bool = False,
    warn: Callable[[str], None] | None = None,
) -> BuildReport:
    """Bring the Milvus index recorded in ``index_dir`` up to date with ``seeds_dir``.

    Args:
        store: ``milvus://path.db`` or ``http://host:port`` (``StoreSpec.parse``).
        settings, rebuild, progress, warn: as ``rag.indexing.build_index``.

    Returns:
        What was done; an unchanged seeds folder writes nothing.
    """
    t0 = time.perf_counter()
    spec = StoreSpec.parse(store)
    if spec.kind is StoreKind.FAISS:
        raise RagError("build_milvus_index needs a milvus:// or http:// store")
    seeds_dir, index_dir = Path(seeds_dir), Path(index_dir)
    with writer_lock(index_dir, on_wait=warn):
        return _Build(seeds_dir, index_dir, spec, settings, rebuild, warn).run(progress, t0)


@dataclass
class _Prepared:
    """The chunks and sentences of the documents to write, their vectors and the sentences'
    token vectors by text hash."""

    docs: list[Document]
    sentences: dict[str, list[Span]]
    chunks: list[Chunk]
    chunk_terms: list[list[str]]  # aligned with ``chunks``
    vectors: dict[str, np.ndarray]
    tokens: dict[str, np.ndarray]
    embedded: int
    chunks_embedded: int


class _Build:
    def __init__(self, seeds_dir, index_dir, spec, settings, rebuild, warn) -> None:
        self.seeds_dir, self.index_dir, self.spec = seeds_dir, index_dir, spec
        self.settings, self.rebuild, self.warn = settings, rebuild, warn
        self.client = connect(spec.client_uri)
        self.name = index_name(index_dir)

    def run(self, progress: bool, t0: float) -> BuildReport:
        skipped: list[str] = []

        def note(msg: str) -> None:
            skipped.append(msg)
            if self.warn:
                self.warn(msg)

        docs = load_documents(self.seeds_dir, warn=note)
        old = self._previous()
        settings = self.settings or (old.settings if old else IndexSettings())
        full = old is None or old.settings != settings or self.rebuild
        if full and old is not None and self.warn and old.settings != settings:
            self.warn(f"settings changed: rebuilding {self.index_dir}/ in full")
        previous = None if full else old.manifest
        status = document_status({d.source: d.content_hash for d in docs}, previous)
        by, report = sort_changes(status, skipped=skipped, full_rebuild=full)
        if not full and not (by["new"] or by["changed"] or by["deleted"]):
            total = old.manifest["counts"]["chunks"]
            return BuildReport(**report, chunks_total=total, seconds=time.perf_counter() - t0)

        generation = (old.generation if old else self._last_generation()) + 1
        todo = [d for d in docs if full or status[d.source] in ("new", "changed")]
        cache = {} if full else old.vector_cache_for(by["changed"])
        token_cache = {} if full else old.token_cache_for(by["changed"])
        embedder = Embedder(settings.model)
        prepared = _prepare(todo, settings, embedder, (cache, token_cache), progress)
        collections = Collections(f"{self.name}_b{generation}") if full else old.collections
        if full:
            self._create(collections, embedder.dimension)
        rows = self._insert(collections, generation, prepared, old=None if full else old)
        retired = () if full else by["changed"] + by["deleted"]
        df = self._df(prepared, None if full else old, retired)
        manifest = self._manifest(
            settings, embedder, docs, prepared, old, collections, generation, retired, rows
        )
        for name in collections.all():
            self.client.flush(name)
        # The flip: the term table first, then the manifest that names it.
        fsync_replace(
            terms_path(self.index_dir, generation),
            json.dumps({"chunks": manifest["counts"]["chunks"], "df": df}, sort_keys=True),
        )
        fsync_replace(self.index_dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
        for name in FAISS_FILES:  # a FAISS index this build moved to Milvus: its files go
            (self.index_dir / name).unlink(missing_ok=True)
        self._copy_manifest(manifest)
        self._clean(manifest)
        return BuildReport(
            **report,
            chunks_total=manifest["counts"]["chunks"],
            chunks_embedded=prepared.chunks_embedded,
            sentences_embedded=prepared.embedded - prepared.chunks_embedded,
            seconds=time.perf_counter() - t0,
            written=True,
        )

    # --- the previous index -----------------------------------------------------------

    def _previous(self) -> MilvusIndex | None:
        """The live index to build on, cleaned of what a killed build left; None: none."""
        self.index_dir.mkdir(parents=True, exist_ok=True)
        manifest = read_manifest(self.index_dir)
        if manifest is None:
            if any(p.name != ".gitkeep" for p in self.index_dir.iterdir()):
                raise RagError(
                    f"{self.index_dir}/ holds other files and no index: pass another --index"
                )
            # Only a build that flipped writes <name>_meta: its index belongs to another
            # folder of the same name (a killed first build leaves no meta: built over).
            if self.client.has_collection(f"{self.name}_meta"):
                raise RagError(
                    f"{self.spec.uri} already holds an index named {self.name!r} for another "
                    "folder: pass an --index folder of another name"
                )
            return None
        if "milvus" not in manifest:
            if self.rebuild:  # moving a FAISS index to Milvus (``rag.stores.build_store``)
                return None
            raise IndexMismatchError(
                f"{self.index_dir}/ holds a FAISS index: `rag index --store {self.spec.uri}` "
                "moves it to Milvus, or pass another --index"
            )
        if manifest.get("store") != self.spec.uri:
            if self.rebuild:  # moving it from another Milvus (``rag.stores.build_store``)
                return None
            raise IndexMismatchError(
                f"{self.index_dir}/ lives in {manifest.get('store')}, not {self.spec.uri}: "
                "pass that --store, or another --index"
            )
        try:
            old = MilvusIndex.load(self.index_dir)
        except IndexMismatchError as e:
            if self.warn:
                self.warn(f"{e}: rebuilding it from {self.seeds_dir}/")
            return None
        self._clean(manifest)
        return old

    def _last_generation(self) -> int:
        """The highest generation any collection of this index was built at, so a new
        full build never reuses the name of a half-written one."""
        manifest = read_manifest(self.index_dir) or {}
        last = int(manifest.get("milvus", {}).get("generation", 0))
        for name in self.client.list_collections():
            head, _, tail = name.rpartition("_")
            if head.startswith(f"{self.name}_b") and tail in ("chunks", "sentences", "documents"):
                with contextlib.suppress(ValueError):
                    last = max(last, int(head.removeprefix(f"{self.name}_b")))
        return last

    def _clean(self, manifest: dict) -> None:
        """Remove every row and collection ``manifest`` does not read: rows of builds
        killed before their flip, rows its own flip retired, old full builds' collections."""
        info = manifest["milvus"]
        live, generation = Collections(info["collections"]), int(info["generation"])
        for name in self.client.list_collections():
            head, _, tail = name.rpartition("_")
            if (
                head.startswith(f"{self.name}_b")
                and head != live.prefix
                and tail in ("chunks", "sentences", "documents")
            ):
                self.client.drop_collection(name)
        stale = f"born > {generation}"
        retired = sorted(info.get("retired", ()))
        if retired:
            stale += f" or (source in {literals(retired)} and born < {generation})"
        for name in live.all():
            if self.client.has_collection(name):
                self.client.delete(name, filter=stale)
        for p in self.index_dir.glob("terms-*.json"):
            if p.name != f"terms-{generation}.json":
                p.unlink(missing_ok=True)

    # --- writing ----------------------------------------------------------------------

    def _create(self, collections: Collections, dimension: int) -> None:
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        def schema():
            s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            s.add_field("row", DataType.INT64, is_primary=True)
            s.add_field("born", DataType.INT64)
            s.add_field("source", DataType.VARCHAR, max_length=VARCHAR_MAX)
            return s

        def indexes(vector_metric: str, sparse: bool = False):
            p = MilvusClient.prepare_index_params()
            # FLAT: exact search, like the FAISS store's IndexFlatIP (see evals/milvus).
            p.add_index(field_name="vector", index_type="FLAT", metric_type=vector_metric)
            if sparse:
                p.add_index(
                    field_name="sparse",
                    index_type="SPARSE_INVERTED_INDEX",
                    metric_type="BM25",
                    params={"bm25_k1": BM25_K1, "bm25_b": BM25_B},
                )
            return p

        chunks = schema()
        chunks.add_field("chunk_id", DataType.VARCHAR, max_length=64)
        chunks.add_field("start", DataType.INT64)
        chunks.add_field("end", DataType.INT64)
        chunks.add_field("sentences", DataType.JSON)
        chunks.add_field(
            "terms",
            DataType.VARCHAR,
            max_length=VARCHAR_MAX,
            enable_analyzer=True,
            analyzer_params={"tokenizer": "standard"},
        )
        chunks.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        chunks.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
        chunks.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=["terms"],
                output_field_names=["sparse"],
            )
        )
        sentences = schema()
        sentences.add_field("start", DataType.INT64)
        sentences.add_field("end", DataType.INT64)
        sentences.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
        sentences.add_field("tokens", DataType.VARCHAR, max_length=VARCHAR_MAX)
        documents = schema()
        documents.add_field("piece", DataType.INT64)
        documents.add_field("data", DataType.VARCHAR, max_length=VARCHAR_MAX)
        # Milvus wants a vector field in every collection; documents are read by source.
        documents.add_field("vector", DataType.FLOAT_VECTOR, dim=2)
        for name, s, p in (
            (collections.chunks, chunks, indexes("IP", sparse=True)),
            (collections.sentences, sentences, indexes("IP")),
            (collections.documents, documents, indexes("L2")),
        ):
            if self.client.has_collection(name):  # a killed build's: start it afresh
                self.client.drop_collection(name)
            self.client.create_collection(name, schema=s, index_params=p)

    def _insert(
        self,
        collections: Collections,
        generation: int,
        prepared: _Prepared,
        old: MilvusIndex | None,
    ) -> dict[str, int]:
        """Insert the prepared documents' rows under ``generation``; the next free rows."""
        counters = dict(old.manifest["milvus"]["next_rows"]) if old else {}
        next_chunk = counters.get("chunks", 0)
        next_sentence = counters.get("sentences", 0)
        next_document = counters.get("documents", 0)
        texts = {d.source: d.text for d in prepared.docs}
        chunk_rows, sentence_rows, document_rows = [], [], []
        for c, chunk_terms in zip(prepared.chunks, prepared.chunk_terms, strict=True):
            chunk_rows.append(
                {
                    "row": next_chunk,
                    "born": generation,
                    "source": c.source,
                    "chunk_id": c.id,
                    "start": c.start,
                    "end": c.end,
                    "sentences": [list(s) for s in c.sentences],
                    "terms": _cap(" ".join(chunk_terms)),
                    "vector": prepared.vectors[text_hash(c.text)].tolist(),
                }
            )
            next_chunk += 1
        for source, spans in prepared.sentences.items():
            for a, b in spans:
                sentence_rows.append(
                    {
                        "row": next_sentence,
                        "born": generation,
                        "source": source,
                        "start": a,
                        "end": b,
                        "vector": prepared.vectors[text_hash(texts[source][a:b])].tolist(),
                        "tokens": encode_tokens(prepared.tokens[text_hash(texts[source][a:b])]),
                    }
                )
                next_sentence += 1
        for d in prepared.docs:
            for i, piece in enumerate(document_pieces(d)):
                document_rows.append(
                    {
                        "row": next_document,
                        "born": generation,
                        "source": d.source,
                        "piece": i,
                        "data": piece,
                        "vector": [0.0, 0.0],
                    }
                )
                next_document += 1
        for name, rows in (
            (collections.documents, document_rows),
            (collections.sentences, sentence_rows),
            (collections.chunks, chunk_rows),
        ):
            for i in range(0, len(rows), INSERT_BATCH):
                self.client.insert(name, rows[i : i + INSERT_BATCH])
        for name in collections.all():
            self.client.load_collection(name)
        return {"chunks": next_chunk, "sentences": next_sentence, "documents": next_document}

    def _df(self, prepared: _Prepared, old: MilvusIndex | None, retired) -> dict[str, int]:
        """How many chunks hold each term after this build: the old table, minus the
        retired documents' chunks (their terms read back from Milvus), plus the new ones."""
        df: Counter[str] = Counter(old.df if old else {})
        if old is not None and retired:
            rows = query_all(
                self.client,
                old.collections.chunks,
                f"source in {literals(sorted(retired))} and {old.filter}",
                ["terms"],
            )
            for r in rows:
                df.subtract(set(r["terms"].split()))
        for chunk_terms in prepared.chunk_terms:
            df.update(set(chunk_terms))
        return {t: n for t, n in df.items() if n > 0}

    def _manifest(
        self, settings, embedder, docs, prepared, old, collections, generation, retired, rows
    ) -> dict:
        from rag import late

        written = {d.source for d in prepared.docs}
        per_doc = Counter(c.source for c in prepared.chunks)
        entries = {}
        for d in docs:
            if d.source in written:
                entries[d.source] = {
                    "content_hash": d.content_hash,
                    "chunks": per_doc[d.source],
                    "sentences": len(prepared.sentences[d.source]),
                    "characters": len(d.text),
                    "text_hash": text_digest(d.text),
                    "pieces": len(document_pieces(d)),
                }
            else:
                entries[d.source] = old.manifest["documents"][d.source]
        return {
            "format_version": settings.format_version,
            "store": self.spec.uri,
            "settings": settings.to_dict(),
            "model": {
                "name": settings.model,
                "dimension": embedder.dimension,
                "window": embedder.window,
            },
            "built_at": utc_now(),
            "documents": entries,
            "counts": {
                "documents": len(entries),
                "chunks": sum(e["chunks"] for e in entries.values()),
                "sentences": sum(e["sentences"] for e in entries.values()),
            },
            "tokens": late.manifest_entry(),
            "milvus": {
                "format_version": MILVUS_FORMAT_VERSION,
                "collections": collections.prefix,
                "generation": generation,
                "retired": sorted(retired),
                "next_rows": rows,
                "filter": live_filter(generation, retired),
            },
            "versions": package_versions(MILVUS_PACKAGES),
        }

    def _copy_manifest(self, manifest: dict) -> None:
        """The manifest into ``<name>_meta`` too, for a reader that has only the server
        (pieces under the VARCHAR limit; older generations' copies removed after)."""
        from pymilvus import DataType, MilvusClient

        name = f"{self.name}_meta"
        if not self.client.has_collection(name):
            s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            s.add_field("row", DataType.INT64, is_primary=True)
            s.add_field("born", DataType.INT64)
            s.add_field("piece", DataType.INT64)
            s.add_field("data", DataType.VARCHAR, max_length=VARCHAR_MAX)
            s.add_field("vector", DataType.FLOAT_VECTOR, dim=2)
            p = MilvusClient.prepare_index_params()
            p.add_index(field_name="vector", index_type="FLAT", metric_type="L2")
            self.client.create_collection(name, schema=s, index_params=p)
        generation = manifest["milvus"]["generation"]
        text = json.dumps(manifest, sort_keys=True)
        pieces = [text[i : i + 16_000] for i in range(0, len(text), 16_000)]
        self.client.insert(
            name,
            [
                {
                    "row": generation * 1_000_000 + i,
                    "born": generation,
                    "piece": i,
                    "data": p,
                    "vector": [0.0, 0.0],
                }
                for i, p in enumerate(pieces)
            ],
        )
        self.client.flush(name)
        self.client.delete(name, filter=f"born != {generation}")


def drop_milvus_index(store: str, index_dir: Path | str) -> None:
    """Drop every collection of the index named after ``index_dir`` on ``store`` (after the
    index moved to another store: its manifest no longer names them)."""
    client = connect(StoreSpec.parse(store).client_uri)
    name = index_name(index_dir)
    for c in client.list_collections():
        head, _, tail = c.rpartition("_")
        if c == f"{name}_meta" or (
            head.startswith(f"{name}_b") and tail in ("chunks", "sentences", "documents")
        ):
            client.drop_collection(c)


def _prepare(
    docs: list[Document],
    settings: IndexSettings,
    embedder: Embedder,
    cache: tuple[dict, dict],
    progress: bool,
) -> _Prepared:
    """Chunk and embed ``docs`` as the FAISS store does (``rag.indexing.prepare_document``,
    ``embed_missing``); ``cache``: vectors and sentence token vectors by text hash that need
    no embedding."""
    parts = [prepare_document(doc, settings, embedder) for doc in docs]
    vectors, tokens = dict(cache[0]), dict(cache[1])
    todo = embed_missing(
        fresh_texts(parts),
        embedder,
        vectors,
        tokens=tokens,
        sentences=sentence_texts(parts),
        progress=progress,
    )
    chunk_set = {c.text for p in parts for c in p.chunks}
    return _Prepared(
        docs,
        {p.document.source: p.sentences for p in parts},
        [c for p in parts for c in p.chunks],
        [t for p in parts for t in p.chunk_terms],
        vectors,
        tokens,
        len(todo),
        sum(1 for t in todo if t in chunk_set),
    )


def _cap(text: str) -> str:
    """``text`` cut to VARCHAR's byte limit (a chunk's terms never come near it)."""
    data = text.encode("utf-8")
    return text if len(data) <= VARCHAR_MAX else data[:VARCHAR_MAX].decode("utf-8", "ignore")
