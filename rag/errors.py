"""Domain errors. Each subclasses the nearest built-in and carries a one-line message
that names the fix; the CLI prints ``str(error)`` and exits non-zero, never a traceback."""


class RagError(Exception):
    """Base of every error the user can cause and fix."""


class IndexNotFoundError(RagError, FileNotFoundError):
    """No index at the given directory."""


class IndexMismatchError(RagError, ValueError):
    """The index was built with another model or an unknown format version."""


class IndexDamagedError(IndexMismatchError):
    """The index's files do not agree with each other or with their stored hashes."""

    def __init__(self, path, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}/ is damaged ({reason}): run `rag index --rebuild`")


class IndexBusyError(RagError, RuntimeError):
    """Another process holds the index's writer lock."""


class SeedsNotFoundError(RagError, FileNotFoundError):
    """The seeds directory does not exist."""


class EmptyQuestionError(RagError, ValueError):
    """A question with no text."""


class BadInputError(RagError, ValueError):
    """Malformed input (a bad JSONL line, a bad flag value)."""
