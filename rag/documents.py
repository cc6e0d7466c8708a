"""Read the seeds folder into documents, each with one canonical text.

Every offset in the product (chunks, citations, highlights) refers to a document's canonical
text: for .txt and .md it is the file's own text (decoded as UTF-8, newlines untouched); for
.html it is the visible text; for .pdf the pages' text joined by a blank line, with each
page's start offset kept so a span can name its page. .docx, .pptx and .epub files are read
by ``rag.formats``, which gives their text and a location map (heading path, slide, chapter)
so a span can name the place a person finds it at.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.errors import SeedsNotFoundError
from rag.formats import READERS, FormatError, html_to_text

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf", ".docx", ".pptx", ".epub")
PAGE_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Document:
    """One seed file.

    Attributes:
        source: path relative to the seeds root, with forward slashes.
        text: the canonical text; all offsets refer to it.
        content_hash: sha256 of the file's bytes (what decides "changed").
        page_starts: for PDFs, the offset in ``text`` where each page begins; else None.
        locations: for .docx, .pptx and .epub, ``(offset, label)`` pairs, offsets increasing:
            the place (``Budget › 2024``, ``slide 3``, a chapter) from each offset on; else
            None.
    """

    source: str
    text: str
    content_hash: str
    page_starts: tuple[int, ...] | None = None
    locations: tuple[tuple[int, str | None], ...] | None = None

    def page_of(self, offset: int) -> int | None:
        """1-based page that holds ``offset``, or None when the document has no pages."""
        if not self.page_starts:
            return None
        return bisect.bisect_right(self.page_starts, offset)

    def location_of(self, offset: int) -> str | None:
        """The place that holds ``offset`` (``slide 3``), or None when there is none."""
        if not self.locations:
            return None
        i = bisect.bisect_right(self.locations, offset, key=lambda loc: loc[0])
        return self.locations[i - 1][1] if i else None

    def line_of(self, offset: int) -> int:
        """1-based line number of ``offset`` in the canonical text."""
        return self.text.count("\n", 0, offset) + 1


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seed_files(seeds_dir: Path, *, warn: Callable[[str], None] | None = None) -> list[Path]:
    """Files under ``seeds_dir`` (recursively, sorted), hidden files and folders, office lock
    files and editor backups left out (``_ignored``).

    A symlink is followed only when its target is itself a file the seeds folder would index
    (inside ``seeds_dir`` resolved, not hidden); one that leads elsewhere (``/etc/hostname``,
    ``../other/secret.md``) is skipped and reported to ``warn``, so nothing outside the seeds
    folder is ever indexed, quoted or served. Symlinked folders are not entered.
    """
    seeds_dir = Path(seeds_dir)
    if not seeds_dir.is_dir():
        raise SeedsNotFoundError(
            f"seeds folder not found: {seeds_dir} (create it or pass --seeds DIR)"
        )
    root = seeds_dir.resolve()
    files = []
    for p in sorted(seeds_dir.rglob("*")):
        if any(_ignored(part) for part in p.relative_to(seeds_dir).parts):
            continue
        try:
            real = p.resolve(strict=True)
        except (OSError, RuntimeError):  # a dangling link or a loop
            if p.is_symlink() and warn:
                warn(f"skipped {source_name(p, seeds_dir)}: a symlink to nothing")
            continue
        if not real.is_file():
            continue
        if not _inside(real, root):
            if warn:
                warn(f"skipped {source_name(p, seeds_dir)}: links outside the seeds folder")
            continue
        files.append(p)
    return files


def _inside(real: Path, root: Path) -> bool:
    """``real`` lies in ``root`` and is not hidden there (both resolved)."""
    try:
        parts = real.relative_to(root).parts
    except ValueError:
        return False
    return not any(_ignored(part) for part in parts)


def _ignored(name: str) -> bool:
    """A name the seeds folder never indexes: hidden (``.x``), an office lock file that Word,
    Excel and PowerPoint keep beside an open document (``~$report.docx``: a few bytes of
    owner name, not the document), or an editor backup (``notes.md~``)."""
    return name.startswith((".", "~$")) or name.endswith("~")


def source_name(path: Path, seeds_dir: Path) -> str:
    return path.relative_to(seeds_dir).as_posix()


class UnreadableError(ValueError):
    """A seed file that cannot become a document; the message says why."""


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise UnreadableError("binary file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnreadableError(f"not UTF-8 text ({e.reason} at byte {e.start})") from None


def _read_pdf(path: Path) -> tuple[str, tuple[int, ...]]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(str(path))
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except Exception as e:  # pypdf raises many types for damaged files
        raise UnreadableError(f"unreadable PDF ({type(e).__name__}: {e})") from None
    starts, parts, pos = [], [], 0
    for page in pages:
        starts.append(pos)
        parts.append(page)
        pos += len(page) + len(PAGE_SEPARATOR)
    return PAGE_SEPARATOR.join(parts), tuple(starts)


def read_document(path: Path, seeds_dir: Path) -> Document:
    """Read one seed file.

    Raises:
        UnreadableError: binary, undecodable, empty, damaged or of an unsupported type.
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableError(f"unsupported file type {suffix or '(none)'}")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UnreadableError(f"cannot read ({e.strerror})") from None
    page_starts = locations = None
    if suffix == ".pdf":
        text, page_starts = _read_pdf(path)
    elif suffix in READERS:
        try:
            extracted = READERS[suffix](data)
        except FormatError as e:
            raise UnreadableError(str(e)) from None
        text, locations = extracted.text, extracted.locations
    elif suffix in (".html", ".htm"):
        text = html_to_text(_decode(data))
    else:
        text = _decode(data)
    if not text.strip():
        raise UnreadableError("no text")
    return Document(source_name(path, seeds_dir), text, file_hash(data), page_starts, locations)


def load_documents(seeds_dir: Path, *, warn: Callable[[str], None] | None = None) -> list[Document]:
    """Every readable document under ``seeds_dir``; the others are reported to ``warn``.

    Returns:
        Documents sorted by ``source``; a file that cannot be read never stops the load.
    """
    seeds_dir = Path(seeds_dir)
    docs = []
    for path in seed_files(seeds_dir, warn=warn):
        try:
            docs.append(read_document(path, seeds_dir))
        except UnreadableError as e:
            if warn:
                warn(f"skipped {source_name(path, seeds_dir)}: {e}")
    return docs
