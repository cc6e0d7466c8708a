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

The package has one module per format (``docx``, ``pptx``, ``epub``, ``html``) and what they
share (``common``); callers import every name from ``rag.formats``.
"""

from __future__ import annotations

from collections.abc import Callable

from rag.formats.common import (
    CELL_SEPARATOR,
    MAX_UNPACKED_BYTES,
    PATH_SEPARATOR,
    SECTION_SEPARATOR,
    Extracted,
    FormatError,
)
from rag.formats.docx import read_docx
from rag.formats.epub import read_epub
from rag.formats.html import html_to_text
from rag.formats.pptx import read_pptx

__all__ = [
    "CELL_SEPARATOR",
    "MAX_UNPACKED_BYTES",
    "PATH_SEPARATOR",
    "READERS",
    "SECTION_SEPARATOR",
    "Extracted",
    "FormatError",
    "html_to_text",
    "read_docx",
    "read_epub",
    "read_pptx",
]

#: Suffix -> reader of a file's bytes.
READERS: dict[str, Callable[[bytes], Extracted]] = {
    ".docx": read_docx,
    ".pptx": read_pptx,
    ".epub": read_epub,
}
