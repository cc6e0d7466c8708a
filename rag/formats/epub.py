"""The EPUB (.epub) reader, with ebooklib (rules in ``rag.formats``)."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from posixpath import normpath
from urllib.parse import unquote

from rag.formats.common import (
    _FONT_OBFUSCATION,
    _SPACE,
    PATH_SEPARATOR,
    Extracted,
    FormatError,
    _Builder,
    _check_zip,
    _one_line,
)
from rag.formats.html import html_to_text

_MARK_OPEN, _MARK_CLOSE = "\ue000", "\ue001"
_MARK = re.compile(f"{_MARK_OPEN}(\\d+){_MARK_CLOSE}")


def read_epub(data: bytes) -> Extracted:
    """The canonical text of an e-book (rules in the module docstring).

    Raises:
        FormatError: DRM-encrypted or damaged.
    """
    _check_zip(data, ".epub")
    _check_epub_drm(data)
    import ebooklib
    from ebooklib import epub

    try:
        book = epub.read_epub(io.BytesIO(data), {"ignore_ncx": True})
        toc = list(_flatten_toc(book.toc))
        by_file: dict[str, list[tuple[str, str]]] = {}
        for href, label in toc:
            name, _, fragment = href.partition("#")
            by_file.setdefault(name, []).append((fragment, label))
        out = _Builder()
        current: str | None = None
        for idref, _linear in book.spine:
            item = book.get_item_with_id(idref)
            if (
                item is None
                or item.get_type() != ebooklib.ITEM_DOCUMENT
                or isinstance(item, epub.EpubNav)  # the table of contents repeats headings
            ):
                continue
            entries = by_file.get(normpath(unquote(item.get_name())), [])
            text, starts = _epub_document(item.get_content(), entries)
            if not toc:
                starts = [(0, _first_heading(item.get_content()))]
            if not text:
                # A chapter's start in an empty document holds for the next one.
                current = starts[-1][1] if starts else current
                continue
            out.gap()
            labels = sorted(starts)
            lines = text.split("\n")
            offset = 0
            for line in lines:
                while labels and labels[0][0] <= offset:
                    current = labels.pop(0)[1]
                out.line(line, current)
                offset += len(line) + 1
            if labels:
                current = labels[-1][1]
    except FormatError:
        raise
    except Exception as e:  # ebooklib, zipfile and lxml raise many types for damaged files
        raise FormatError(f"unreadable EPUB file ({_one_line(e)})") from None
    return out.result()


def _check_epub_drm(data: bytes) -> None:
    """Raise FormatError when the book's text is encrypted (font obfuscation is fine)."""
    from lxml import etree

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        try:
            raw = z.read("META-INF/encryption.xml")
        except KeyError:
            return
    try:
        root = etree.fromstring(raw)
    except etree.XMLSyntaxError:
        raise FormatError("damaged EPUB file (unreadable META-INF/encryption.xml)") from None
    for method in root.iter("{*}EncryptionMethod"):
        if method.get("Algorithm") not in _FONT_OBFUSCATION:
            raise FormatError("encrypted EPUB (DRM): its text cannot be read")


def _flatten_toc(entries: Iterable, parents: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """(href, path label) of every table-of-contents entry, in reading order."""
    for entry in entries:
        children: Iterable = ()
        if isinstance(entry, tuple):
            entry, children = entry[0], entry[1]
        title = " ".join(str(getattr(entry, "title", "") or "").split())
        href = getattr(entry, "href", None) or getattr(entry, "file_name", None) or ""
        path = (*parents, title) if title else parents
        if href and path:
            yield (
                normpath(unquote(href.split("#")[0]))
                + ("#" + href.split("#", 1)[1] if "#" in href else ""),
                PATH_SEPARATOR.join(path),
            )
        yield from _flatten_toc(children, path)


def _epub_soup(content: bytes):
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(content, "html.parser")
    for head in soup.find_all("head"):
        head.decompose()  # its <title> repeats the book's title in every document
    return soup


def _epub_document(
    content: bytes, entries: list[tuple[str, str]]
) -> tuple[str, list[tuple[int, str]]]:
    """A spine document's text, and where each of its table-of-contents entries starts."""
    soup = _epub_soup(content)
    starts: list[tuple[int, str]] = []
    marks: dict[int, str] = {}
    for fragment, label in entries:
        target = soup.find(id=fragment) if fragment else None
        if not fragment or target is None:
            starts.append((0, label))
            continue
        marks[len(marks)] = label
        target.insert(0, f"{_MARK_OPEN}{len(marks) - 1}{_MARK_CLOSE}")
    text = html_to_text(str(soup))
    if not marks:
        return text, starts
    # Take the marks out. A mark before any text of its line names that line; a mark after
    # some text (an empty anchor at the end of a paragraph) names the next line with text.
    lines: list[str] = []
    pos, pending = 0, []
    for line in text.split("\n"):
        pieces = _MARK.split(line)
        here, later, seen = [], [], ""
        for i, piece in enumerate(pieces):
            if i % 2 == 0:
                seen += piece
            else:
                (later if seen.strip() else here).append(int(piece))
        clean = _SPACE.sub(" ", seen).strip()
        if not clean:
            pending += here + later
            continue
        starts.extend((pos, marks[k]) for k in pending + here)
        pending = later
        lines.append(clean)
        pos += len(clean) + 1
    starts.extend((pos, marks[k]) for k in pending)
    return "\n".join(lines), starts


def _first_heading(content: bytes) -> str | None:
    soup = _epub_soup(content)
    tag = soup.find(["h1", "h2", "h3"])
    text = " ".join(tag.get_text(" ").split()) if tag is not None else ""
    return text or None
