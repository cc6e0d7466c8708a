"""HTML for the chat: answers with their citation cards, and the source viewer.

The Index and Eval tabs' HTML is in ``ui.panels``.

Every piece of document text goes through ``_text`` (``html.escape`` plus newline and tab
entities), so an excerpt holding ``<script>`` or ``<img onerror=...>`` is shown as those
characters and never becomes markup. The chat renders these strings as HTML with markdown
off, so nothing in a document is read as markdown either.

No gradio import here: the functions are plain ``str -> str`` and tested without a server.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
from collections.abc import Mapping

from rag.answer import Answer, Citation
from rag.documents import Document

#: The product name in the header and the browser tab.
APP_NAME = "Cited"
CITE_PREFIX = "rag-c-"
#: Characters of context shown either side of the quoted sentence in a citation card.
EXCERPT_CONTEXT = 220
#: Documents longer than this are shown as a window around the highlight.
VIEWER_MAX_CHARS = 200_000


def escape_text(s: str) -> str:
    """Document text as inert HTML text.

    Newlines and tabs become character references so the chat's message clean-up
    (``inspect.cleandoc``) cannot dedent or expand them; CSS ``white-space: pre-wrap``
    shows them.
    """
    return html.escape(s, quote=True).replace("\r", "").replace("\n", "&#10;").replace("\t", "&#9;")


def escape_attr(s: str) -> str:
    return html.escape(s, quote=True)


def count(n: int, noun: str) -> str:
    """``1 passage``, ``2,000 passages``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def location(c: Citation) -> str:
    """The place of a .docx/.pptx/.epub citation (``Budget › 2024``, ``slide 3``), ``page 2``
    for a PDF, else ``line 4`` or ``lines 3–5``."""
    if c.location:
        return c.location
    if c.page is not None:
        return f"page {c.page}"
    if c.line_start == c.line_end:
        return f"line {c.line_start}"
    return f"lines {c.line_start}–{c.line_end}"


def cite_token(c: Citation, content_hash: str | None) -> str:
    """The CSS class that carries a citation to the source viewer when it is clicked.

    The chat's HTML sanitizer drops ``data-*`` attributes but keeps classes, so the
    citation travels as ``rag-c-`` + base64url(JSON); ``read_cite_token`` reverses it.
    """
    payload = json.dumps(
        {
            "n": c.n,
            "source": c.source,
            "start": c.start,
            "end": c.end,
            "hl": list(c.highlight),
            "hash": (content_hash or "")[:16],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return CITE_PREFIX + base64.urlsafe_b64encode(payload.encode("utf-8")).decode().rstrip("=")


def read_cite_token(token: str) -> dict | None:
    """The citation dict in a ``cite_token``, or None if it is not one."""
    if not isinstance(token, str) or not token.startswith(CITE_PREFIX):
        return None
    body = token[len(CITE_PREFIX) :]
    try:
        obj = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def _excerpt_html(c: Citation, *, context: int = EXCERPT_CONTEXT) -> str:
    """The excerpt with its sentence marked, cut to ``context`` characters either side.

    The cut falls on a line break or a space and shows as an ellipsis; the viewer shows
    the whole document.
    """
    a, b = c.highlight[0] - c.start, c.highlight[1] - c.start
    ex = c.excerpt
    lo, hi = 0, len(ex)
    if a > context:  # start at a line break within reach, else at a space
        nl = ex.find("\n", a - context, a)
        sp = ex.find(" ", a - context, a)
        lo = nl + 1 if nl >= 0 else (sp + 1 if sp >= 0 else a - context)
    if len(ex) - b > context:
        nl = ex.rfind("\n", b, b + context)
        sp = ex.rfind(" ", b, b + context)
        hi = nl if nl >= 0 else (sp if sp >= 0 else b + context)
    before = ("… " if lo else "") + ex[lo:a]
    after = ex[b:hi].rstrip() + (" …" if hi < len(ex) else "")
    return f"{escape_text(before)}<mark>{escape_text(ex[a:b])}</mark>{escape_text(after)}"


def _card(c: Citation, content_hash: str | None, *, weak: bool) -> str:
    cls = "rag-cite rag-cite-weak" if weak else "rag-cite"
    label = f"Open {c.source} at {location(c)}"
    return (
        f'<div class="{cls} {cite_token(c, content_hash)}" role="button" tabindex="0" '
        f'title="{escape_attr(label)}">'
        f'<div class="rag-cite-head"><span class="rag-cite-n">{c.n}</span>'
        f'<span class="rag-cite-src">{escape_text(c.source)}</span>'
        f'<span class="rag-cite-loc">{escape_text(location(c))}</span>'
        f'<span class="rag-cite-open">Open source ›</span></div>'
        f'<div class="rag-cite-body">{_excerpt_html(c)}</div></div>'
    )


def answer_html(answer: Answer, documents: Mapping[str, Document]) -> str:
    """One assistant message: the quoted answer with [n] markers, then the cited excerpts.

    An abstention gets an amber "Not found in the documents" banner and its passages are
    labelled as not confident.
    """
    # Only the cited documents are read (the index reads a document's text on access).
    hashes = {
        c.source: documents[c.source].content_hash
        for c in answer.citations
        if c.source in documents
    }
    cards = [(c, hashes.get(c.source)) for c in answer.citations]
    out = []
    if answer.abstained:
        out.append('<div class="rag-answer rag-abstain">')
        out.append('<div class="rag-banner">Not found in the documents</div>')
        out.append(f'<p class="rag-answer-text">{escape_text(answer.answer)}</p>')
        if cards:
            out.append(
                '<div class="rag-section">Nearest passages <span class="rag-weak-tag">'
                "not confident</span></div>"
            )
            out += [_card(c, h, weak=True) for c, h in cards]
    else:
        m = answer.quoted
        out.append('<div class="rag-answer">')
        if m == 0:  # nothing retrieved (a threshold of 0 never abstains)
            out.append(f'<p class="rag-answer-text">{escape_text(answer.answer)}</p>')
        else:
            sentences = []
            for c, h in cards[:m]:
                sentences.append(
                    f"{escape_text(c.sentence)} "
                    f'<span class="rag-ref {cite_token(c, h)}" role="button" tabindex="0" '
                    f'title="{escape_attr(c.source)}, {escape_attr(location(c))}">[{c.n}]</span>'
                )
            out.append(f'<p class="rag-answer-text">{" ".join(sentences)}</p>')
        if cards[:m]:
            out.append('<div class="rag-section">Sources</div>')
            out += [_card(c, h, weak=False) for c, h in cards[:m]]
        rest = cards[m:]
        if rest:
            noun = "passage" if len(rest) == 1 else "passages"
            out.append(
                f'<details class="rag-more"><summary>{len(rest)} more retrieved {noun}</summary>'
            )
            out += [_card(c, h, weak=True) for c, h in rest]
            out.append("</details>")
    n_docs = len({c.source for c in answer.citations})
    foot = [confidence_text(answer.probability), f"{answer.latency_ms:.0f} ms"]
    if answer.citations:
        passages = count(len(answer.citations), "passage")
        foot.insert(0, f"{passages} from {count(n_docs, 'document')}")
    out.append(f'<div class="rag-foot">{" · ".join(foot)}</div>')
    out.append("</div>")
    return "".join(out)


def confidence_text(probability: float) -> str:
    """The calibrated probability that the answer is right, as a reader takes it in:
    "confidence 0.80 (right about 8 times in 10)"."""
    return f"confidence {probability:.2f} (right about {round(probability * 10)} times in 10)"


def question_html(question: str) -> str:
    """The user's message, as text."""
    return f'<div class="rag-question">{escape_text(question)}</div>'


def error_html(message: str) -> str:
    return f'<div class="rag-answer rag-error"><p>{escape_text(message)}</p></div>'


def viewer_empty() -> str:
    return (
        '<div class="rag-viewer rag-viewer-empty">'
        '<div class="rag-empty-icon">¶</div>'
        "<p><b>Source viewer</b></p>"
        "<p>Click a citation to open its document here, scrolled to the quoted sentence.</p>"
        "</div>"
    )


def viewer_message(title: str, message: str) -> str:
    return (
        f'<div class="rag-viewer rag-viewer-empty"><p><b>{escape_text(title)}</b></p>'
        f"<p>{escape_text(message)}</p></div>"
    )


def viewer_html(
    doc: Document,
    *,
    excerpt: tuple[int, int] | None,
    highlight: tuple[int, int] | None,
    n: int | None = None,
    note: str | None = None,
) -> str:
    """The whole document with line numbers, the excerpt shaded and the sentence marked.

    The first marked piece has ``id="rag-hl"``: the page scrolls the viewer to it. A PDF's
    pages, and the places of a .docx/.pptx/.epub (heading path, slide, chapter), start with
    a divider naming them, so the place of the marked sentence is the divider above it; the
    header names it too.
    """
    size = len(doc.text)
    excerpt = _clamp(excerpt, size)
    highlight = _clamp(highlight, size)
    if highlight is not None and highlight[0] >= highlight[1]:
        highlight = None
    center = highlight[0] if highlight else (excerpt[0] if excerpt else 0)
    rows = _viewer_rows(doc, _window(doc.text, center), excerpt, highlight)
    note_html = f'<div class="rag-viewer-note">{escape_text(note)}</div>' if note else ""
    return (
        f'<div class="rag-viewer" data-source="{escape_attr(doc.source)}">'
        f"{_viewer_head(doc, n, highlight)}{note_html}"
        f'<div class="rag-viewer-body">{"".join(rows)}</div></div>'
    )


def _clamp(span: tuple[int, int] | None, size: int) -> tuple[int, int] | None:
    if span is None:
        return None
    return max(0, min(span[0], size)), max(0, min(span[1], size))


def _window(text: str, center: int) -> tuple[int, int]:
    """The part of ``text`` shown: all of it, or a window around ``center`` on line
    boundaries when it is longer than ``VIEWER_MAX_CHARS``."""
    size = len(text)
    if size <= VIEWER_MAX_CHARS:
        return 0, size
    lo = max(0, center - VIEWER_MAX_CHARS // 2)
    hi = min(size, lo + VIEWER_MAX_CHARS)
    lo = text.rfind("\n", 0, lo) + 1 if lo else 0
    nl = text.find("\n", hi)
    return lo, size if nl < 0 else nl


def _viewer_rows(
    doc: Document,
    window: tuple[int, int],
    excerpt: tuple[int, int] | None,
    highlight: tuple[int, int] | None,
) -> list[str]:
    """One row per line of the window (page breaks, places and the lines left out noted)."""
    text, size = doc.text, len(doc.text)
    lo, hi = window
    ex_a, ex_b = excerpt if excerpt else (-1, -1)
    hl_a, hl_b = highlight if highlight else (-1, -1)
    page_starts = set(doc.page_starts or ())
    places = {a: label for a, label in doc.locations or () if label}
    rows = []
    if lo > 0:
        rows.append(
            f'<div class="rag-gap">… {text.count(chr(10), 0, lo)} earlier lines not shown</div>'
        )
    line_no = text.count("\n", 0, lo) + 1
    marked = False
    pos = lo
    while pos <= hi:
        nl = text.find("\n", pos, hi)
        end = hi if nl < 0 else nl
        if doc.page_starts and pos in page_starts:
            rows.append(f'<div class="rag-page">Page {doc.page_of(pos)}</div>')
        if pos in places:
            rows.append(f'<div class="rag-page rag-loc">{escape_text(places[pos])}</div>')
        cuts = sorted({pos, end, *(x for x in (ex_a, ex_b, hl_a, hl_b) if pos < x < end)})
        pieces = []
        for a, b in zip(cuts, cuts[1:], strict=False):
            chunk = escape_text(text[a:b])
            if hl_a <= a < hl_b:
                ident = "" if marked else ' id="rag-hl"'
                marked = True
                pieces.append(f'<mark class="rag-hl"{ident}>{chunk}</mark>')
            elif ex_a <= a < ex_b:
                pieces.append(f'<span class="rag-ex">{chunk}</span>')
            else:
                pieces.append(chunk)
        in_excerpt = ex_a <= pos < ex_b or (pos < ex_a < end)
        cls = "rag-line rag-line-ex" if in_excerpt else "rag-line"
        rows.append(
            f'<div class="{cls}"><span class="rag-ln">{line_no}</span>'
            f'<span class="rag-lt">{"".join(pieces)}</span></div>'
        )
        line_no += 1
        if nl < 0 or nl + 1 == size:  # no empty last line for a final newline
            break
        pos = nl + 1
    if hi < size:
        rows.append(
            f'<div class="rag-gap">… {text.count(chr(10), hi, size)} later lines not shown</div>'
        )
    return rows


def _viewer_head(doc: Document, n: int | None, highlight: tuple[int, int] | None) -> str:
    """The document's name and kind, the citation number, where the sentence is, the size."""
    meta = []
    if n is not None:
        meta.append(f"citation [{n}]")
    if highlight:
        page, place = doc.page_of(highlight[0]), doc.location_of(highlight[0])
        where = f"page {page}" if page else f"line {doc.line_of(highlight[0])}"
        if place:
            where = f"{place}, {where}"
        meta.append(f"quoted sentence at {where}")
    meta.append(f"{len(doc.text):,} characters")
    kind = doc.source.rsplit(".", 1)[-1].upper() if "." in doc.source else "TEXT"
    return (
        f'<div class="rag-viewer-head"><div class="rag-viewer-title">'
        f'<span class="rag-kind">{escape_text(kind[:4])}</span>{escape_text(doc.source)}</div>'
        f'<div class="rag-viewer-meta">{escape_text(" · ".join(meta))}</div></div>'
    )


def chat_placeholder() -> str:
    return (
        '<div class="rag-placeholder"><div class="rag-ph-title">Ask a question about your '
        "documents</div><div>Answers quote the documents word for word, each sentence with "
        "its source. Click a citation to read it in context.</div></div>"
    )
