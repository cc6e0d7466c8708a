"""Retrieval-augmented Q&A that answers with the exact sentences of your documents.

The names below load on first use (PEP 562), so ``import rag.cli`` for ``rag --help`` or
``rag status`` does not pull in numpy, FAISS, bm25s or the embedding model's stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

_WHERE = {
    "Answer": "rag.answer",
    "Assistant": "rag.answer",
    "Citation": "rag.answer",
    "Chunk": "rag.chunking",
    "chunk_document": "rag.chunking",
    "Document": "rag.documents",
    "load_documents": "rag.documents",
    "Embedder": "rag.embedding",
    "BadInputError": "rag.errors",
    "EmptyQuestionError": "rag.errors",
    "IndexMismatchError": "rag.errors",
    "IndexNotFoundError": "rag.errors",
    "RagError": "rag.errors",
    "Hit": "rag.retrieval",
    "Retriever": "rag.retrieval",
    "IndexSettings": "rag.settings",
    "BuildReport": "rag.indexing",
    "Index": "rag.store",
    "build_index": "rag.indexing",
    "index_status": "rag.store",
    "IndexReader": "rag.store",
    "open_store": "rag.stores",
    "build_store": "rag.stores",
}

__all__ = [
    "Answer",
    "Assistant",
    "BadInputError",
    "BuildReport",
    "Chunk",
    "Citation",
    "Document",
    "Embedder",
    "EmptyQuestionError",
    "Index",
    "IndexMismatchError",
    "IndexNotFoundError",
    "IndexReader",
    "IndexSettings",
    "RagError",
    "Hit",
    "Retriever",
    "build_index",
    "build_store",
    "chunk_document",
    "index_status",
    "load_documents",
    "open_store",
]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(import_module(_WHERE[name]), name)
        globals()[name] = value  # once
        return value
    raise AttributeError(f"module 'rag' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


if TYPE_CHECKING:
    from rag.answer import Answer, Assistant, Citation
    from rag.chunking import Chunk, chunk_document
    from rag.documents import Document, load_documents
    from rag.embedding import Embedder
    from rag.errors import (
        BadInputError,
        EmptyQuestionError,
        IndexMismatchError,
        IndexNotFoundError,
        RagError,
    )
    from rag.indexing import BuildReport, build_index
    from rag.retrieval import Hit, Retriever
    from rag.settings import IndexSettings
    from rag.store import Index, IndexReader, index_status
    from rag.stores import build_store, open_store
