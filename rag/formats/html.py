"""The HTML reader: visible text, one block a line (.html files and EPUB chapters)."""

from __future__ import annotations

import re

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
