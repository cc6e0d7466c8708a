"""Read the seeds folder into documents, each with one canonical text.

Every offset in the product (chunks, citations, highlights) refers to a document's canonical
text: for .txt and .md it is the file's own text (decoded as UTF-8, newlines untouched); for
.html it is the visible text; for .pdf the pages' text joined by a blank line, with each
page's start offset kept so a span can name its page.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.errors import SeedsNotFoundError

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf")
PAGE_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Document:
    """One seed file.

    Attributes:
        source: path relative to the seeds root, with forward slashes.
        text: the canonical text; all offsets refer to it.
        content_hash: sha256 of the file's bytes (what decides "changed").
        page_starts: for PDFs, the offset in ``text`` where each page begins; else None.
    """

    source: str
    text: str
    content_hash: str
    page_starts: tuple[int, ...] | None = None

    def page_of(self, offset: int) -> int | None:
        """1-based page that holds ``offset``, or None when the document has no pages."""
        if not self.page_starts:
            return None
        return bisect.bisect_right(self.page_starts, offset)

    def line_of(self, offset: int) -> int:
        """1-based line number of ``offset`` in the canonical text."""
        return self.text.count("\n", 0, offset) + 1


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seed_files(seeds_dir: Path, *, warn: Callable[[str], None] | None = None) -> list[Path]:
    """Files under ``seeds_dir`` (recursively, sorted), hidden files and folders left out.

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
        if any(part.startswith(".") for part in p.relative_to(seeds_dir).parts):
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
    return not any(part.startswith(".") for part in parts)


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


_BLOCK_TAGS = {
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "dd",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "td",
    "th",
    "tr",
    "ul",
    "title",
}


def html_to_text(html: str) -> str:
    """Visible text of an HTML page: scripts, styles and markup dropped, one block a line."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head", "svg"]):
        # The <title> is visible (tab name) and often the best heading: keep it.
        if tag.name == "head" and tag.title is not None:
            tag.replace_with(tag.title)
        else:
            tag.decompose()
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    lines = (
        re.sub(r"[ \t\r\f\v\u00a0]+", " ", line).strip() for line in soup.get_text().split("\n")
    )
    return "\n".join(line for line in lines if line)


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
    page_starts = None
    if suffix == ".pdf":
        text, page_starts = _read_pdf(path)
    elif suffix in (".html", ".htm"):
        text = html_to_text(_decode(data))
    else:
        text = _decode(data)
    if not text.strip():
        raise UnreadableError("no text")
    return Document(source_name(path, seeds_dir), text, file_hash(data), page_starts)


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
