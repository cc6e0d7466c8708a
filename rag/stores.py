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

from rag.indexing import BuildReport, build_index
from rag.milvus_indexing import build_milvus_index
from rag.milvus_store import MilvusIndex, StoreKind, StoreSpec
from rag.settings import IndexSettings
from rag.store import Index, read_manifest


def open_store(index_dir: Path | str, *, model: str | None = None) -> Index | MilvusIndex:
    """The index at ``index_dir``, from whichever store its manifest names.

    Raises:
        IndexNotFoundError, IndexMismatchError, IndexDamagedError: as ``Index.load``.
    """
    manifest = read_manifest(Path(index_dir))
    if manifest is not None and "milvus" in manifest:
        return MilvusIndex.load(index_dir, model=model)
    return Index.load(index_dir, model=model)


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
    """Build or update the index at ``index_dir`` in ``store`` (``StoreSpec.parse``; None:
    the store the index already names, else FAISS).

    Raises:
        BadInputError: a ``store`` that is not one of the valid forms.
    """
    if store is None:
        manifest = read_manifest(Path(index_dir)) or {}
        store = manifest.get("store") if "milvus" in manifest else None
    spec = StoreSpec.parse(store)
    kwargs = dict(settings=settings, rebuild=rebuild, progress=progress, warn=warn)
    if spec.kind is StoreKind.FAISS:
        return build_index(seeds_dir, index_dir, **kwargs)
    return build_milvus_index(seeds_dir, index_dir, store=spec.uri, **kwargs)
