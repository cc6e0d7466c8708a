"""Readers for Word (.docx), PowerPoint (.pptx) and EPUB (.epub) files.

Each reader turns a file's bytes into one canonical text (every offset in the product refers
to it) and a location map: the places a person can find in the original, each from the
offset where it starts. The rules, one line of text per block and blank lines only where
they are listed:

- **.docx** (python-docx): the body in document order. Every paragraph (headings and list
  items included) is a line; a line break inside a paragraph starts a new line; a table is
  one line per row, its cells (paragraphs joined by a space) separated by `` | ``, merged
  and empty cells once or not at all; text boxes follow the paragraph they are anchored in.
  Tracked insertions count, deletions and field codes do not. Headers, footers, footnotes,
  comments and images are left out. Location: the heading path (``Budget › 2024``) from the
  Heading 1-9 styles (or an outline level); null before the first heading.
- **.pptx** (python-pptx): slide by slide, a blank line between slides. A slide is its title,
  then the text of its other shapes in the slide's reading order (the shape tree, which
  PowerPoint's Selection Pane and screen readers follow): each paragraph of a text box or
  placeholder a line, a soft line break a new line, groups opened, tables one line per row
  as in Word; then its speaker notes. Pictures, charts and media are skipped. Location:
  ``slide N`` (N counts every slide, hidden ones too), ``slide N, speaker notes`` for the
  notes.
- **.epub** (ebooklib): the spine's documents in reading order, a blank line between them,
  each read by the HTML reader (``html_to_text`` below) with its ``<head>`` dropped.
  Location: the table of contents entry the text falls under (``Part One › Chapter 3``,
  fragment links honoured); without a table of contents, each document's first heading.

Every character of a canonical text comes from the file except the line breaks and the
`` | `` between table cells; runs of spaces, tabs and no-break spaces become one space and
lines are stripped, as for HTML. Damaged, encrypted and unsupported files raise
``FormatError`` with a one-line reason.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from posixpath import normpath
from urllib.parse import unquote

#: Separator of table cells in a row's line.
CELL_SEPARATOR = " | "
#: Separator of the parts of a heading or table-of-contents path.
PATH_SEPARATOR = " › "
#: What separates slides and e-book documents.
SECTION_SEPARATOR = "\n\n"

_SPACE = re.compile(r"[ \t\r\f\v\u00a0]+")
#: A .docx/.pptx/.epub unpacking to more than this is refused (a zip bomb would otherwise
#: fill the memory: the libraries read every part whole).
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
#: The first bytes of an OLE compound file: what an encrypted .docx/.pptx (or an old .doc) is.
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
#: EPUB font obfuscation: "encrypted" fonts that do not hide any text.
_FONT_OBFUSCATION = {
    "http://www.idpf.org/2008/embedding",
    "http://ns.adobe.com/pdf/enc#RC",
}


class FormatError(ValueError):
    """A file that cannot be read as its format; the message says why in one line."""


@dataclass(frozen=True)
class Extracted:
    """A file's canonical text and where its places start.

    Attributes:
        text: the canonical text.
        locations: ``(offset, label)`` pairs with strictly increasing offsets, each offset
            the start of a line; a label holds from its offset to the next one's (``None``:
            no place to name there).
    """

    text: str
    locations: tuple[tuple[int, str | None], ...]


class _Builder:
    """Collects lines and the location each one is in."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.locations: list[tuple[int, str | None]] = []
        self._pending_gap = False

    def line(self, text: str, location: str | None) -> None:
        """Add ``text`` (which may hold line breaks) as lines, whitespace squeezed; empty
        lines are dropped."""
        for raw in text.split("\n"):
            clean = _SPACE.sub(" ", raw).strip()
            if not clean:
                continue
            if self.parts:
                sep = SECTION_SEPARATOR if self._pending_gap else "\n"
                self.parts.append(sep)
                self.pos += len(sep)
            self._pending_gap = False
            if not self.locations or self.locations[-1][1] != location:
                self.locations.append((self.pos, location))
            self.parts.append(clean)
            self.pos += len(clean)

    def gap(self) -> None:
        """The next line starts a new section: a blank line before it."""
        self._pending_gap = True

    def result(self) -> Extracted:
        text = "".join(self.parts)
        locations = [(a, label) for a, label in self.locations]
        if locations and locations[0] == (0, None):
            locations = locations[1:]
        return Extracted(text, tuple(locations))


def _one_line(e: BaseException) -> str:
    message = " ".join(str(e).split()) or "no details"
    if len(message) > 160:
        message = message[:157] + "..."
    return f"{type(e).__name__}: {message}"


def _check_zip(data: bytes, kind: str) -> None:
    """Raise a clear FormatError for the usual reasons an Office or EPUB file is not a zip."""
    if data.startswith(_OLE_MAGIC):
        if "EncryptionInfo".encode("utf-16-le") in data:
            raise FormatError(f"password-protected {kind}: save it without a password")
        raise FormatError(f"not a {kind} file (an older binary format?): save it as {kind}")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise FormatError(f"damaged, or not a {kind} file (no zip archive inside)")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        # zipfile reads no more than the sizes declared here, so their sum bounds the memory.
        unpacked = sum(info.file_size for info in z.infolist())
    if unpacked > MAX_UNPACKED_BYTES:
        raise FormatError(
            f"{kind} file too large once unpacked ({unpacked // 2**20:,} MiB; "
            f"the limit is {MAX_UNPACKED_BYTES // 2**20:,} MiB)"
        )


# --------------------------------------------------------------------------- HTML

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


# --------------------------------------------------------------------------- Word

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
_HEADING_STYLE = re.compile(r"^heading ([1-9])$", re.IGNORECASE)


def _w(tag: str) -> str:
    return f"{{{_W}}}{tag}"


def read_docx(data: bytes) -> Extracted:
    """The canonical text of a Word file (rules in the module docstring).

    Raises:
        FormatError: encrypted, an old .doc, or damaged.
    """
    _check_zip(data, ".docx")
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
        styles = {s.style_id: s for s in document.styles}
        out = _Builder()
        path: list[str] = []
        for kind, element in _docx_blocks(document.element.body):
            if kind == "table":
                for row in _docx_rows(element):
                    out.line(row, _path(path))
                continue
            text = _docx_paragraph_text(element)
            level = _docx_heading_level(styles, element)
            if level is not None and text.strip():
                del path[level - 1 :]
                path.extend([""] * (level - 1 - len(path)))  # a skipped level stays empty
                path.append(" ".join(text.split()))
            out.line(text, _path(path))
            for box in _docx_text_boxes(element):
                for box_kind, inner in _docx_blocks(box):
                    if box_kind == "table":
                        for row in _docx_rows(inner):
                            out.line(row, _path(path))
                    else:
                        out.line(_docx_paragraph_text(inner), _path(path))
    except Exception as e:  # python-docx and lxml raise many types for damaged files
        raise FormatError(f"unreadable Word file ({_one_line(e)})") from None
    return out.result()


def _path(parts: list[str]) -> str | None:
    shown = [p for p in parts if p]
    return PATH_SEPARATOR.join(shown) if shown else None


def _docx_blocks(container) -> Iterator[tuple[str, object]]:
    """("p" | "table", element) for the paragraphs and tables of a body, cell or text box,
    in document order; content controls (``w:sdt``) are opened."""
    for child in container.iterchildren():
        if child.tag == _w("p"):
            yield "p", child
        elif child.tag == _w("tbl"):
            yield "table", child
        elif child.tag in (_w("sdt"), _w("customXml")):
            content = child.find(_w("sdtContent"))
            yield from _docx_blocks(content if content is not None else child)


def _inside(element, stop, tags: set[str]) -> bool:
    """Whether ``element`` has an ancestor with one of ``tags`` below ``stop``."""
    parent = element.getparent()
    while parent is not None and parent is not stop:
        if parent.tag in tags:
            return True
        parent = parent.getparent()
    return False


_SKIP_IN_PARAGRAPH = {_w("txbxContent"), f"{{{_MC}}}Fallback", _w("del")}


def _docx_paragraph_text(p) -> str:
    """The visible text of a paragraph: its runs (inside hyperlinks, insertions, fields and
    smart tags too), tabs as spaces and line breaks as newlines; text boxes, the fallback
    copies of drawings, deletions and field codes left out."""
    out = []
    for el in p.iter(_w("t"), _w("tab"), _w("br"), _w("cr"), _w("noBreakHyphen")):
        if el.tag == _w("tab") and el.getparent().tag != _w("r"):
            continue  # a tab stop definition in the paragraph properties, not a character
        if _inside(el, p, _SKIP_IN_PARAGRAPH):
            continue
        if el.tag == _w("t"):
            out.append(el.text or "")
        elif el.tag == _w("tab"):
            out.append("\t")
        elif el.tag == _w("noBreakHyphen"):
            out.append("-")
        else:
            out.append("\n")
    return "".join(out)


def _docx_text_boxes(p) -> list:
    """The text boxes anchored in paragraph ``p`` (not their fallback copies, not nested)."""
    return [
        box
        for box in p.iter(_w("txbxContent"))
        if not _inside(box, p, {_w("txbxContent"), f"{{{_MC}}}Fallback"})
    ]


def _docx_rows(tbl) -> Iterator[str]:
    """One line per table row: the cells' text joined by CELL_SEPARATOR."""
    for tr in tbl.iterchildren(_w("tr")):
        cells = []
        for tc in tr.iter(_w("tc")):
            if _inside(tc, tr, {_w("tbl")}):
                continue  # a nested table's cell: read through its own row below
            merge = tc.find(f"{_w('tcPr')}/{_w('vMerge')}")
            if merge is not None and merge.get(_w("val"), "continue") == "continue":
                continue  # the continuation of a vertically merged cell: shown above
            parts = []
            for kind, inner in _docx_blocks(tc):
                if kind == "table":
                    parts.extend(_docx_rows(inner))
                else:
                    parts.append(_docx_paragraph_text(inner))
            text = " ".join(" ".join(parts).split())
            if text:
                cells.append(text)
        if cells:
            yield CELL_SEPARATOR.join(cells)


def _docx_heading_level(styles: dict, p) -> int | None:
    """1-9 for a heading (Heading N style, a style based on one, or an outline level)."""
    ppr = p.find(_w("pPr"))
    if ppr is not None:
        outline = ppr.find(_w("outlineLvl"))
        if outline is not None and (outline.get(_w("val")) or "").isdigit():
            level = int(outline.get(_w("val"))) + 1
            return level if level <= 9 else None  # 9 means "body text"
        style_el = ppr.find(_w("pStyle"))
        style_id = style_el.get(_w("val")) if style_el is not None else None
    else:
        style_id = None
    style = styles.get(style_id) if style_id else None
    seen = 0
    while style is not None and seen < 10:
        m = _HEADING_STYLE.match(style.name or "")
        if m:
            return int(m.group(1))
        style_ppr = style.element.find(_w("pPr"))
        if style_ppr is not None:
            outline = style_ppr.find(_w("outlineLvl"))
            if outline is not None and (outline.get(_w("val")) or "").isdigit():
                level = int(outline.get(_w("val"))) + 1
                return level if level <= 9 else None
        style = style.base_style
        seen += 1
    return None


# --------------------------------------------------------------------------- PowerPoint


def read_pptx(data: bytes) -> Extracted:
    """The canonical text of a PowerPoint deck (rules in the module docstring).

    Raises:
        FormatError: encrypted, an old .ppt, or damaged.
    """
    _check_zip(data, ".pptx")
    import pptx

    try:
        deck = pptx.Presentation(io.BytesIO(data))
        out = _Builder()
        for number, slide in enumerate(deck.slides, start=1):
            out.gap()
            where = f"slide {number}"
            title = slide.shapes.title
            if title is not None:
                for line in _pptx_shape_lines(title):
                    out.line(line, where)
            for shape in slide.shapes:
                if title is None or shape.shape_id != title.shape_id:
                    for line in _pptx_shape_lines(shape):
                        out.line(line, where)
            if slide.has_notes_slide:
                frame = slide.notes_slide.notes_text_frame
                if frame is not None:
                    for line in _pptx_paragraphs(frame):
                        out.line(line, f"{where}, speaker notes")
    except Exception as e:  # python-pptx and lxml raise many types for damaged files
        raise FormatError(f"unreadable PowerPoint file ({_one_line(e)})") from None
    return out.result()


def _pptx_paragraphs(frame) -> Iterator[str]:
    for paragraph in frame.paragraphs:
        yield paragraph.text.replace("\v", "\n")  # "\v": a soft line break


def _pptx_shape_lines(shape) -> Iterator[str]:
    """The lines of one shape: text, a group's shapes, or a table's rows."""
    from pptx.shapes.group import GroupShape

    if isinstance(shape, GroupShape):
        for inner in shape.shapes:
            yield from _pptx_shape_lines(inner)
    elif getattr(shape, "has_table", False) and shape.has_table:
        for row in shape.table.rows:
            cells = []
            for cell in row.cells:
                if cell.is_spanned:
                    continue  # covered by a merged cell: its text is the origin cell's
                text = " ".join(" ".join(_pptx_paragraphs(cell.text_frame)).split())
                if text:
                    cells.append(text)
            if cells:
                yield CELL_SEPARATOR.join(cells)
    elif shape.has_text_frame:
        yield from _pptx_paragraphs(shape.text_frame)


# --------------------------------------------------------------------------- EPUB

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


#: Suffix -> reader of a file's bytes.
READERS: dict[str, Callable[[bytes], Extracted]] = {
    ".docx": read_docx,
    ".pptx": read_pptx,
    ".epub": read_epub,
}
