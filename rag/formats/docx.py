"""The Word (.docx) reader, with python-docx (rules in ``rag.formats``)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

from rag.formats.common import (
    CELL_SEPARATOR,
    PATH_SEPARATOR,
    Extracted,
    FormatError,
    _Builder,
    _check_zip,
    _one_line,
)

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
