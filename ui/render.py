"""HTML for the chat answers, the source viewer and the index panel.

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
from datetime import datetime
from pathlib import Path

from rag.answer import Answer, Citation
from rag.documents import Document

#: The product name in the header and the browser tab.
APP_NAME = "Cited"
CITE_PREFIX = "rag-c-"
#: Characters of context shown either side of the quoted sentence in a citation card.
EXCERPT_CONTEXT = 220
#: Documents longer than this are shown as a window around the highlight.
VIEWER_MAX_CHARS = 200_000


def _text(s: str) -> str:
    """Document text as inert HTML text.

    Newlines and tabs become character references so the chat's message clean-up
    (``inspect.cleandoc``) cannot dedent or expand them; CSS ``white-space: pre-wrap``
    shows them.
    """
    return html.escape(s, quote=True).replace("\r", "").replace("\n", "&#10;").replace("\t", "&#9;")


def _attr(s: str) -> str:
    return html.escape(s, quote=True)


def location(c: Citation) -> str:
    """``page 2`` for a PDF, else ``line 4`` or ``lines 3–5``."""
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
    return f"{_text(before)}<mark>{_text(ex[a:b])}</mark>{_text(after)}"


def _card(c: Citation, content_hash: str | None, *, weak: bool) -> str:
    cls = "rag-cite rag-cite-weak" if weak else "rag-cite"
    label = f"Open {c.source} at {location(c)}"
    return (
        f'<div class="{cls} {cite_token(c, content_hash)}" role="button" tabindex="0" '
        f'title="{_attr(label)}">'
        f'<div class="rag-cite-head"><span class="rag-cite-n">{c.n}</span>'
        f'<span class="rag-cite-src">{_text(c.source)}</span>'
        f'<span class="rag-cite-loc">{_text(location(c))}</span>'
        f'<span class="rag-cite-open">Open source ›</span></div>'
        f'<div class="rag-cite-body">{_excerpt_html(c)}</div></div>'
    )


def answer_html(answer: Answer, documents: Mapping[str, Document]) -> str:
    """One assistant message: the quoted answer with [n] markers, then the cited excerpts.

    An abstention gets an amber "Not found in the documents" banner and its passages are
    labelled as not confident.
    """
    hashes = {s: d.content_hash for s, d in documents.items()}
    cards = [(c, hashes.get(c.source)) for c in answer.citations]
    out = []
    if answer.abstained:
        out.append('<div class="rag-answer rag-abstain">')
        out.append('<div class="rag-banner">Not found in the documents</div>')
        out.append(f'<p class="rag-answer-text">{_text(answer.answer)}</p>')
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
            out.append(f'<p class="rag-answer-text">{_text(answer.answer)}</p>')
        else:
            sentences = []
            for c, h in cards[:m]:
                sentences.append(
                    f"{_text(c.sentence)} "
                    f'<span class="rag-ref {cite_token(c, h)}" role="button" tabindex="0" '
                    f'title="{_attr(c.source)}, {_attr(location(c))}">[{c.n}]</span>'
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
    foot = [f"confidence {answer.confidence:.2f}", f"{answer.latency_ms:.0f} ms"]
    if answer.citations:
        passages = _count(len(answer.citations), "passage")
        foot.insert(0, f"{passages} from {_count(n_docs, 'document')}")
    out.append(f'<div class="rag-foot">{" · ".join(foot)}</div>')
    out.append("</div>")
    return "".join(out)


def question_html(question: str) -> str:
    """The user's message, as text."""
    return f'<div class="rag-question">{_text(question)}</div>'


def error_html(message: str) -> str:
    return f'<div class="rag-answer rag-error"><p>{_text(message)}</p></div>'


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
        f'<div class="rag-viewer rag-viewer-empty"><p><b>{_text(title)}</b></p>'
        f"<p>{_text(message)}</p></div>"
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

    The first marked piece has ``id="rag-hl"``: the page scrolls the viewer to it.
    """
    text = doc.text
    size = len(text)
    if excerpt is not None:
        excerpt = (max(0, min(excerpt[0], size)), max(0, min(excerpt[1], size)))
    if highlight is not None:
        highlight = (max(0, min(highlight[0], size)), max(0, min(highlight[1], size)))
        if highlight[0] >= highlight[1]:
            highlight = None
    center = highlight[0] if highlight else (excerpt[0] if excerpt else 0)
    lo, hi = 0, size
    if size > VIEWER_MAX_CHARS:  # a window around the highlight, on line boundaries
        lo = max(0, center - VIEWER_MAX_CHARS // 2)
        hi = min(size, lo + VIEWER_MAX_CHARS)
        lo = text.rfind("\n", 0, lo) + 1 if lo else 0
        nl = text.find("\n", hi)
        hi = size if nl < 0 else nl

    ex_a, ex_b = excerpt if excerpt else (-1, -1)
    hl_a, hl_b = highlight if highlight else (-1, -1)
    page_starts = set(doc.page_starts or ())
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
        cuts = sorted({pos, end, *(x for x in (ex_a, ex_b, hl_a, hl_b) if pos < x < end)})
        pieces = []
        for a, b in zip(cuts, cuts[1:], strict=False):
            chunk = _text(text[a:b])
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

    meta = []
    if n is not None:
        meta.append(f"citation [{n}]")
    if highlight:
        page = doc.page_of(highlight[0])
        where = f"page {page}" if page else f"line {doc.line_of(highlight[0])}"
        meta.append(f"quoted sentence at {where}")
    meta.append(f"{size:,} characters")
    kind = doc.source.rsplit(".", 1)[-1].upper() if "." in doc.source else "TEXT"
    head = (
        f'<div class="rag-viewer-head"><div class="rag-viewer-title">'
        f'<span class="rag-kind">{_text(kind[:4])}</span>{_text(doc.source)}</div>'
        f'<div class="rag-viewer-meta">{_text(" · ".join(meta))}</div></div>'
    )
    note_html = f'<div class="rag-viewer-note">{_text(note)}</div>' if note else ""
    return (
        f'<div class="rag-viewer" data-source="{_attr(doc.source)}">{head}{note_html}'
        f'<div class="rag-viewer-body">{"".join(rows)}</div></div>'
    )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def when(iso: str | None) -> str:
    """``2026-11-25 10:38 UTC`` from the manifest's ISO time."""
    if not iso:
        return "never"
    try:
        t = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return t.strftime("%Y-%m-%d %H:%M UTC")


def index_summary_html(manifest: Mapping | None, status: Mapping[str, str]) -> str:
    """The index panel's header: model, chunking, build time, and what is out of date."""
    stale = {s: sum(1 for v in status.values() if v == s) for s in ("changed", "new", "deleted")}
    pending = sum(stale.values())
    if not manifest:
        return (
            '<div class="rag-index-card"><div class="rag-index-title">No index yet</div>'
            "<p>Press <b>Rebuild index</b> to read the documents folder.</p></div>"
        )
    s, m, counts = manifest["settings"], manifest["model"], manifest.get("counts", {})
    facts = [
        ("Documents", f"{counts.get('documents', 0):,}"),
        ("Passages", f"{counts.get('chunks', 0):,}"),
        ("Sentences", f"{counts.get('sentences', 0):,}"),
        ("Model", f"{m['name']} · {m['dimension']} dims"),
        ("Chunking", f"{s['chunk_tokens']} tokens, {s['overlap_sentences']} sentence overlap"),
        ("Last build", when(manifest.get("built_at"))),
    ]
    cells = "".join(
        f'<div class="rag-fact"><div class="rag-fact-k">{_text(k)}</div>'
        f'<div class="rag-fact-v">{_text(v)}</div></div>'
        for k, v in facts
    )
    if pending:
        parts = [f"{v} {k}" for k, v in stale.items() if v]
        state = (
            f'<div class="rag-index-state rag-stale">Out of date: {_text(", ".join(parts))} '
            "since the last build. Press <b>Rebuild index</b> to update.</div>"
        )
    else:
        state = '<div class="rag-index-state rag-fresh">Up to date with the documents folder.</div>'
    return f'<div class="rag-index-card"><div class="rag-facts">{cells}</div>{state}</div>'


def documents_table_html(manifest: Mapping | None, status: Mapping[str, str]) -> str:
    """The documents table: name, status, chunks, sentences, characters, content hash."""
    docs = (manifest or {}).get("documents", {})
    if not status:
        return '<div class="rag-docs-empty">No documents yet: add some below.</div>'
    rows = []
    for source in sorted(status):
        state = status[source]
        d = docs.get(source, {}) if state != "new" else {}

        def num(key, d=d):
            return f"{d[key]:,}" if key in d else "—"

        digest = d.get("content_hash", "")
        rows.append(
            f'<tr class="rag-doc-{_attr(state)}"><td class="rag-doc-name">{_text(source)}</td>'
            f'<td><span class="rag-state rag-state-{_attr(state)}">'
            f"{_text(state)}</span></td>"
            f'<td class="rag-num">{num("chunks")}</td><td class="rag-num">{num("sentences")}</td>'
            f'<td class="rag-num">{num("characters")}</td>'
            f'<td class="rag-hash" title="{_attr(digest)}">{_text(digest[:12]) or "—"}</td></tr>'
        )
    head = (
        "<thead><tr><th>Document</th><th>Status</th><th class='rag-num'>Chunks</th>"
        "<th class='rag-num'>Sentences</th><th class='rag-num'>Characters</th>"
        "<th>Content hash</th></tr></thead>"
    )
    return f'<table class="rag-docs-table">{head}<tbody>{"".join(rows)}</tbody></table>'


def header_html(manifest: Mapping | None, status: Mapping[str, str], seeds: str) -> str:
    """The strip under the title: what the assistant is answering from."""
    if not manifest:
        facts = f"No index yet for {seeds}/"
    else:
        c = manifest.get("counts", {})
        facts = (
            f"{_count(c.get('documents', 0), 'document')} · "
            f"{_count(c.get('chunks', 0), 'passage')} · "
            f"built {when(manifest.get('built_at'))}"
        )
    pending = sum(1 for v in status.values() if v != "indexed")
    stale = (
        f'<span class="rag-pill rag-pill-warn">{pending} document'
        f"{'s' if pending != 1 else ''} changed since the last build</span>"
        if pending
        else '<span class="rag-pill rag-pill-ok">index up to date</span>'
    )
    return (
        '<div class="rag-header"><div class="rag-brand"><span class="rag-logo">❝</span>'
        f'<div><div class="rag-title">{APP_NAME}</div><div class="rag-tagline">Answers in the '
        "exact words of your documents, with the sentence that says it.</div></div></div>"
        f'<div class="rag-status">{_text(facts)} {stale}</div></div>'
    )


def chat_placeholder() -> str:
    return (
        '<div class="rag-placeholder"><div class="rag-ph-title">Ask a question about your '
        "documents</div><div>Answers quote the documents word for word, each sentence with "
        "its source. Click a citation to read it in context.</div></div>"
    )


def upload_help(seeds: str, max_mb: int) -> str:
    return (
        f'<div class="rag-help">Files are saved into <code>{_text(seeds)}/</code> under a safe '
        f"name, then indexed. Text, Markdown, HTML or PDF, up to {max_mb} MB each. A file "
        "with the name of an existing document is refused unless you tick "
        "<b>Replace files with the same name</b>.</div>"
    )


def build_log_html(log: str) -> str:
    """The result of the last rebuild or upload, one line each."""
    lines = [line for line in (log or "").splitlines() if line.strip()]
    if not lines:
        return ""
    items = "".join(f"<li>{_text(line)}</li>" for line in lines)
    return f'<div class="rag-log"><div class="rag-log-title">Last run</div><ul>{items}</ul></div>'


def eval_intro() -> str:
    return (
        '<div class="rag-help">Run a question set from <code>evals/</code> and see how often '
        "the shown answer is right, how often the right passage is retrieved, how often the "
        "assistant abstains, and the worst misses. A set with a <code>corpus/</code> folder "
        "beside it is run on that corpus; the others on this index.</div>"
    )


_TILES = (
    ("answer_correct", "Answer correct", True),
    ("hit@1", "Hit@1", True),
    ("hit@5", "Hit@5", True),
    ("mrr@10", "MRR@10", False),
    ("abstain_unanswerable", "Abstains when it should", True),
    ("false_abstention", "Abstains wrongly", True),
    ("latency_p50_ms", "Median latency", False),
)


def eval_summary_html(row: Mapping, report_dir: str) -> str:
    """Headline numbers of an eval run as tiles, and where the full report was written."""
    tiles = []
    for key, label, share in _TILES:
        v = row.get(key)
        if v is None:
            shown = "—"
        elif key.startswith("latency"):
            shown = f"{v:.0f} ms"
        elif share:
            shown = f"{100 * v:.0f}%"
        else:
            shown = f"{v:.2f}"
        tiles.append(
            f'<div class="rag-fact"><div class="rag-fact-k">{_text(label)}</div>'
            f'<div class="rag-fact-v rag-big">{_text(shown)}</div></div>'
        )
    n = row.get("n", 0)
    run = row.get("run") or row.get("mode") or ""
    return (
        f'<div class="rag-index-card"><div class="rag-facts">{"".join(tiles)}</div>'
        f'<div class="rag-eval-where">{_text(str(n))} questions · run {_text(str(run))} · '
        f"report in <code>{_text(report_dir)}</code></div></div>"
    )


def plots_html(paths) -> str:
    """The eval's PNG plots, inlined (no file serving needed), two a row."""
    imgs = []
    for p in paths:
        try:
            data = base64.b64encode(Path(p).read_bytes()).decode()
        except OSError:
            continue
        imgs.append(f'<img class="rag-plot" alt="{_attr(Path(p).stem)}" '
                    f'src="data:image/png;base64,{data}">')  # fmt: skip
    return f'<div class="rag-plots">{"".join(imgs)}</div>' if imgs else ""


_TRIGGERS = {
    "watch": "watcher",
    "ui": "Rebuild index",
    "upload": "upload",
    "api": "POST /api/rebuild",
}


def sync_html(last, running: str | None, watching: bool, message=str) -> str:
    """The Index tab's live-sync line: whether the folder is watched, and when the last sync
    (or rebuild) ran, why, and what it did. ``last``: a ``rag.watch.SyncRecord`` or None;
    ``message``: how an error is shown (``Service.message``: no server paths)."""
    head = (
        "Live sync on: the index follows the documents folder."
        if watching
        else "Live sync off (start with <code>rag serve --watch</code>)."
    )
    parts = [f'<div class="rag-sync-head">{head}</div>']
    if running:
        parts.append(f"<div>Syncing now ({_text(_TRIGGERS.get(running, running))})…</div>")
    if last is not None:
        try:
            at = datetime.fromisoformat(last.finished_at).strftime("%Y-%m-%d %H:%M:%S UTC")
        except ValueError:
            at = last.finished_at
        why = _TRIGGERS.get(last.trigger, last.trigger)
        if last.changes:
            why += f": {', '.join(last.changes)}"
        if last.ok:
            what = str(last.report) + ("; now answering from it" if last.swapped else "")
        else:
            what = f"failed: {message(last.error)}; still answering from the previous index"
        parts.append(
            f'<div class="rag-sync-last">Last sync {_text(at)} ({_text(why)}): {_text(what)}.</div>'
        )
    cls = "rag-sync" + ("" if last is None or last.ok else " rag-stale")
    return f'<div class="{cls}" id="rag-sync">{"".join(parts)}</div>'
