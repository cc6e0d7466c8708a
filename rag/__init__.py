"""Retrieval-augmented Q&A that answers with the exact sentences of your documents."""

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
from rag.store import Index, index_status

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
    "IndexSettings",
    "RagError",
    "Hit",
    "Retriever",
    "build_index",
    "chunk_document",
    "index_status",
    "load_documents",
]
