"""Which store holds an index, chosen at build time and recorded in its manifest.

``--store faiss`` (the default: FAISS files in the index folder, ``rag.store``), or a Milvus
store (``rag.milvus_store``): ``milvus://path.db`` (Milvus Lite, embedded) or
``http://host:19530`` (a Milvus standalone or cluster). Both offer one read interface
(``documents``, ``chunks``, ``dense_search``, ``bm25_search``, ``idf``, ...), so retrieval,
the answer scorer, citations and the JSON contract do not depend on the store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rag.errors import IndexDamagedError
from rag.indexing import BuildReport, build_index
from rag.milvus_indexing import build_milvus_index, drop_milvus_index
from rag.milvus_store import MilvusIndex, StoreKind, StoreSpec
from rag.settings import IndexSettings
from rag.store import Index, IndexReader, read_manifest

__all__ = [
    "FAISS",
    "StoreKind",
    "StoreSpec",
    "build_store",
    "check_store",
    "current_store",
    "open_store",
]

#: ``--store``'s default: FAISS files in the index folder.
FAISS = "faiss"


def open_store(index_dir: Path | str, *, model: str | None = None) -> IndexReader:
    """The index at ``index_dir``, from whichever store its manifest names.

    Raises:
        IndexNotFoundError, IndexMismatchError, IndexDamagedError: as ``Index.load``.
    """
    manifest = read_manifest(Path(index_dir))
    if manifest is not None and "milvus" in manifest:
        return MilvusIndex.load(index_dir, model=model)
    return Index.load(index_dir, model=model)


def check_store(value: str) -> str:
    """``value`` when it is a valid ``--store`` (``faiss``, ``milvus://PATH.db``,
    ``http(s)://HOST:PORT``).

    Raises:
        BadInputError: naming the value and the valid forms.
    """
    StoreSpec.parse(value)
    return value


def current_store(index_dir: Path | str) -> str:
    """The ``--store`` value of the index at ``index_dir``: its manifest's Milvus URI, else
    ``faiss`` (also when there is no index yet, or its manifest is unreadable)."""
    try:
        manifest = read_manifest(Path(index_dir)) or {}
    except IndexDamagedError:
        return FAISS
    return manifest.get("store", FAISS) if "milvus" in manifest else FAISS


def build_store(
    seeds_dir: Path | str,
    index_dir: Path | str,
    *,
    store: str | None = None,
    settings: IndexSettings | None = None,
    rebuild: bool = False,
    progress: bool = False,
    warn: Callable[[str], None] | None = None,
) -> BuildReport:
    """Build or update the index at ``index_dir`` in ``store`` (``StoreSpec.parse``).

    ``store`` None keeps the store the index already names (FAISS for a new index). A
    ``store`` other than the index's moves it: a full build in the new store (``warn`` says
    so), after which the old store's rows are removed.

    Raises:
        BadInputError: a ``store`` that is not one of the valid forms (checked before
            anything is read or written).
    """
    was = StoreSpec.parse(current_store(index_dir))
    spec = was if store is None else StoreSpec.parse(store)
    if _same_place(spec, was):
        spec = was  # the manifest's spelling (milvus://a.db and milvus://./a.db are one)
    moving = spec != was and read_manifest(Path(index_dir)) is not None
    if moving and warn:
        old, new = was.uri or FAISS, spec.uri or FAISS
        warn(f"{index_dir}/ moves from {old} to {new}: rebuilding it there")
    kwargs = dict(settings=settings, rebuild=rebuild or moving, progress=progress, warn=warn)
    if spec.kind is StoreKind.FAISS:
        report = build_index(seeds_dir, index_dir, **kwargs)
    else:
        report = build_milvus_index(seeds_dir, index_dir, store=spec.uri, **kwargs)
    if moving and was.kind is not StoreKind.FAISS:
        drop_milvus_index(was.uri, index_dir)
    return report


def _same_place(a: StoreSpec, b: StoreSpec) -> bool:
    """Whether two specs name the same store (FAISS, or one Milvus by its client URI)."""
    if a.kind is not b.kind:
        return False
    return a.kind is StoreKind.FAISS or a.client_uri == b.client_uri
