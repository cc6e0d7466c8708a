"""Save an uploaded document into the seeds folder under a safe name.

The rules, so that an upload can never write outside ``seeds/``, hide itself from the
indexer or silently replace a document:

- the name is a bare file name: no folder part (``/``, ``\\``), no ``..``, no control
  characters, not hidden (a leading ``.``);
- spaces become ``_`` and any character other than a letter, digit, ``-``, ``_`` or ``.``
  becomes ``_`` (Unicode letters and digits are kept, NFC-normalised);
- the suffix is one the indexer reads (``SUPPORTED_SUFFIXES``), kept lower-case;
- at most ``max_bytes`` (10 MiB by default);
- an existing file is only replaced with ``overwrite=True``;
- the file must be readable as a document (UTF-8 text, an HTML page, a PDF with text, or
  a Word, PowerPoint or EPUB file that is neither damaged, encrypted nor empty), checked
  before it lands, so a bad upload never reaches the index.

The file is written beside its destination under a hidden name and moved into place, so
the indexer never sees half a file.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from pathlib import Path

from rag.documents import SUPPORTED_SUFFIXES, UnreadableError, read_document
from rag.errors import BadInputError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_NAME_CHARS = 120
_UNSAFE = re.compile(r"[^\w.\-]+", re.UNICODE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class UploadExistsError(BadInputError, FileExistsError):
    """A document of that name is already there; the same upload with ``overwrite=True``
    replaces it (so a UI keeps the upload for that second try)."""


def safe_name(filename: str) -> str:
    """The name an uploaded ``filename`` is saved under in the seeds folder.

    Returns:
        A bare, non-hidden file name of at most ``MAX_NAME_CHARS`` characters made of
        letters, digits, ``-``, ``_`` and ``.``, ending in a supported suffix.

    Raises:
        BadInputError: a folder part, ``..``, a control character, a hidden name, no name
            or an unsupported type; the message says which.
    """
    if not isinstance(filename, str) or not filename.strip():
        raise BadInputError("the file has no name: give it a name like notes.txt")
    shown = filename if len(filename) <= 80 else filename[:77] + "..."
    if "/" in filename or "\\" in filename:
        raise BadInputError(f"{shown!r}: the name must not contain a folder (/ or \\)")
    if ".." in filename:
        raise BadInputError(f"{shown!r}: the name must not contain '..'")
    if _CONTROL.search(filename):
        raise BadInputError(f"{shown!r}: the name contains control characters")
    name = unicodedata.normalize("NFC", filename.strip())
    if name.startswith("."):
        raise BadInputError(f"{shown!r}: hidden files (a name starting with '.') are not indexed")
    stem, suffix = os.path.splitext(name)
    suffix = suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        allowed = ", ".join(SUPPORTED_SUFFIXES)
        raise BadInputError(f"{shown!r}: unsupported type {suffix or '(none)'} (use {allowed})")
    stem = _UNSAFE.sub("_", stem).strip("_")  # a run of spaces or symbols -> one "_"
    if not stem:
        raise BadInputError(f"{shown!r}: the name has no letters or digits")
    return stem[: MAX_NAME_CHARS - len(suffix)] + suffix


def save_upload(
    seeds_dir: Path | str,
    filename: str,
    data_or_path: bytes | str | Path,
    *,
    overwrite: bool = False,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> Path:
    """Save one uploaded document into ``seeds_dir`` (see the module docstring for the rules).

    Args:
        filename: the name the user gave the file (not trusted).
        data_or_path: the file's bytes, or the path of a temporary file holding them.
        overwrite: replace a document of the same name.

    Returns:
        The saved file: ``seeds_dir / safe_name(filename)``.

    Raises:
        UploadExistsError: already there (without ``overwrite``).
        BadInputError: a bad name or type, too large, or not readable as a document.
    """
    seeds_dir = Path(seeds_dir)
    name = safe_name(filename)
    data = _upload_bytes(name, data_or_path, max_bytes)
    if not seeds_dir.is_dir():
        raise BadInputError(f"seeds folder not found: {seeds_dir}")
    dest = seeds_dir / name
    if dest.exists() and not overwrite:
        raise _exists(name, seeds_dir)

    # A hidden temporary name: the indexer skips it if it runs meanwhile.
    fd, tmp_name = tempfile.mkstemp(prefix=".upload-", suffix=f"-{name}", dir=seeds_dir)
    # mkstemp returns an absolute path even for a relative ``dir``; spell it under
    # ``seeds_dir`` as given, so that reading it relative to ``seeds_dir`` works either way.
    tmp = seeds_dir / Path(tmp_name).name
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            read_document(tmp, seeds_dir)
        except UnreadableError as e:
            raise BadInputError(f"{name}: {e}") from None
        os.chmod(tmp, 0o644)
        if overwrite:
            os.replace(tmp, dest)
        else:
            try:
                os.link(tmp, dest)  # fails if dest appeared meanwhile: never a silent replace
            except FileExistsError:
                raise _exists(name, seeds_dir) from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _upload_bytes(name: str, data_or_path: bytes | str | Path, max_bytes: int) -> bytes:
    """The upload's bytes; a file over ``max_bytes`` is refused before it is read."""
    if isinstance(data_or_path, (str, Path)):
        size = Path(data_or_path).stat().st_size
        if size > max_bytes:
            raise BadInputError(_too_large(name, size, max_bytes))
        data = Path(data_or_path).read_bytes()
    else:
        data = bytes(data_or_path)
    if len(data) > max_bytes:
        raise BadInputError(_too_large(name, len(data), max_bytes))
    return data


def _exists(name: str, seeds_dir: Path) -> UploadExistsError:
    return UploadExistsError(
        f"{name} already exists in {seeds_dir}/: choose to replace it, or rename the file"
    )


def _too_large(name: str, size: int, limit: int) -> str:
    return f"{name} is {_mb(size)}; the limit is {_mb(limit)}"


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"
