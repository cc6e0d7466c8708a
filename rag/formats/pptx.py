"""The PowerPoint (.pptx) reader, with python-pptx (rules in ``rag.formats``)."""

from __future__ import annotations

import io
from collections.abc import Iterator

from rag.formats.common import (
    CELL_SEPARATOR,
    Extracted,
    FormatError,
    _Builder,
    _check_zip,
    _one_line,
)


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
