"""The chat UI's HTML: citations, highlights, abstentions, and document text kept inert.

Real answers from the real index (the session ``assistant``); no server, no browser.
"""

from __future__ import annotations

import html
import re

import pytest

from rag.answer import Answer, Citation
from rag.documents import Document
from ui import panels, render

SCRIPT_TEXT = (
    "Harbour notes\n\n"
    "This line holds <script>window.__pwned=1</script> and <img src=x onerror=alert(1)> "
    "as plain text.\nThe harbour master logs every ship that enters Leith.\n"
)


def _tokens(markup: str) -> list[dict]:
    found = re.findall(rf"{render.CITE_PREFIX}[A-Za-z0-9_-]+", markup)
    return [render.read_cite_token(t) for t in found]


def _script_answer() -> tuple[Answer, dict[str, Document]]:
    doc = Document("notes.md", SCRIPT_TEXT, "f" * 64)
    a = SCRIPT_TEXT.index("This line")
    b = SCRIPT_TEXT.index(" as plain text.") + len(" as plain text.")
    c = Citation(1, doc.source, 0, len(SCRIPT_TEXT) - 1, 1, 4, None,
                 SCRIPT_TEXT[: len(SCRIPT_TEXT) - 1], (a, b), 0.9)  # fmt: skip
    answer = Answer("q", f"{SCRIPT_TEXT[a:b]} [1]", False, (c,), 0.9, 3.0)
    return answer, {doc.source: doc}


def test_answer_quotes_the_sentence_and_marks_it_in_the_excerpt(assistant):
    answer = assistant.ask("When did Eyjafjallajökull erupt?")
    assert not answer.abstained
    markup = render.answer_html(answer, assistant.index.documents)
    top = answer.citations[0]
    sentence = top.excerpt[top.highlight[0] - top.start : top.highlight[1] - top.start]
    assert "April 2010" in sentence
    assert f"<mark>{html.escape(sentence)}</mark>" in markup
    assert top.source in markup and render.location(top) in markup
    assert '<div class="rag-section">Sources</div>' in markup
    assert "Not found in the documents" not in markup


def test_every_citation_token_points_at_its_citation(assistant):
    answer = assistant.ask("Who decoded the waggle dance?", k=4)
    markup = render.answer_html(answer, assistant.index.documents)
    tokens = _tokens(markup)
    by_n = {c.n: c for c in answer.citations}
    assert {t["n"] for t in tokens} == set(by_n)  # every card, old or new, is clickable
    for t in tokens:
        c = by_n[t["n"]]
        assert (t["source"], t["start"], t["end"], tuple(t["hl"])) == (
            c.source, c.start, c.end, c.highlight,
        )  # fmt: skip
        doc = assistant.index.documents[c.source]
        assert doc.content_hash.startswith(t["hash"])


def test_abstention_looks_different_and_lists_nearest_passages(assistant):
    answer = assistant.ask("Who decoded the waggle dance?", threshold=1.01)
    assert answer.abstained and answer.citations
    markup = render.answer_html(answer, assistant.index.documents)
    assert "rag-abstain" in markup and "Not found in the documents" in markup
    assert "Nearest passages" in markup and "not confident" in markup
    assert "Sources</div>" not in markup
    assert len(_tokens(markup)) == len(answer.citations)


def test_cited_count_matches_the_answer_text(assistant):
    answer = assistant.ask("How tall is the Bell Rock Lighthouse?")
    m = answer.quoted
    assert m >= 1
    assert answer.answer.endswith(f"[{answer.citations[m - 1].n}]")
    assert assistant.ask("bees", threshold=1.01).quoted == 0


def test_document_text_is_never_markup():
    answer, docs = _script_answer()
    hl = answer.citations[0].highlight
    for markup in (
        render.answer_html(answer, docs),
        render.viewer_html(docs["notes.md"], excerpt=(0, 50), highlight=hl),
        panels.documents_table_html({"documents": {}}, {"<img src=x onerror=alert(1)>.md": "new"}),
    ):
        assert "<script" not in markup and "<img" not in markup
        assert "&lt;script&gt;" in markup or "&lt;img" in markup


def test_markdown_in_a_document_stays_text(assistant):
    doc = assistant.index.documents["bees.md"]
    markup = render.viewer_html(doc, excerpt=None, highlight=None)
    assert "# Honey bees" in markup and "<h1" not in markup


def test_newlines_survive_as_entities_not_raw_lines():
    answer, docs = _script_answer()
    markup = render.answer_html(answer, docs)
    assert "\n" not in markup  # the chat's cleandoc cannot touch document indentation
    assert "&#10;" in markup


def test_viewer_marks_exactly_the_highlight_with_line_numbers(assistant):
    doc = assistant.index.documents["volcanoes.txt"]
    a = doc.text.index("Eyjafjallajökull erupted")
    b = doc.text.index(".", a) + 1
    markup = render.viewer_html(doc, excerpt=(0, len(doc.text)), highlight=(a, b), n=2)
    marked = re.findall(r'<mark class="rag-hl"[^>]*>(.*?)</mark>', markup)
    assert html.unescape("".join(marked)) == doc.text[a:b]
    assert markup.count('id="rag-hl"') == 1
    assert f'<span class="rag-ln">{doc.line_of(a)}</span>' in markup
    assert "citation [2]" in markup


def test_viewer_shows_pdf_pages(assistant):
    doc = assistant.index.documents["tides.pdf"]
    start = doc.page_starts[1]
    markup = render.viewer_html(doc, excerpt=None, highlight=(start, start + 10))
    assert "Page 1" in markup and "Page 2" in markup
    assert "quoted sentence at page 2" in markup


def test_viewer_windows_a_huge_document():
    text = "".join(f"line {i} of a long file\n" for i in range(20_000))
    doc = Document("big.txt", text, "0" * 64)
    a = text.index("line 15000 ")
    markup = render.viewer_html(doc, excerpt=None, highlight=(a, a + 10))
    assert markup.count('class="rag-line') < 20_000 // 2
    assert "earlier lines not shown" in markup and "later lines not shown" in markup
    assert 'id="rag-hl"' in markup and '<span class="rag-ln">15001</span>' in markup


@pytest.mark.parametrize("bad", ["", "rag-c-", "rag-c-!!!", "rag-c-bm90IGpzb24", "hello"])
def test_bad_cite_tokens_are_refused(bad):
    assert render.read_cite_token(bad) is None
