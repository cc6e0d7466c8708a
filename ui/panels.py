"""HTML for the Index and Eval tabs and the page header: the index's state, the build log,
the live-sync line, the upload help, an eval run's summary tiles and plots.

Document names and messages go through ``render.escape_text``; no gradio import here.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ui.render import APP_NAME, count
from ui.render import escape_attr as _attr
from ui.render import escape_text as _text

if TYPE_CHECKING:
    from rag.watch import SyncRecord


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
            f"{count(c.get('documents', 0), 'document')} · "
            f"{count(c.get('chunks', 0), 'passage')} · "
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


def upload_help(seeds: str, max_mb: int) -> str:
    return (
        f'<div class="rag-help">Files are saved into <code>{_text(seeds)}/</code> under a safe '
        "name, then indexed. Text, Markdown, HTML, PDF, Word (.docx), PowerPoint (.pptx) or "
        f"EPUB, up to {max_mb} MB each. A file with the name of an existing document is "
        "refused unless you tick <b>Replace files with the same name</b>.</div>"
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


def sync_html(last: SyncRecord | None, running: str | None, watching: bool, message=str) -> str:
    """The Index tab's live-sync line: whether the folder is watched, and when the last sync
    (or rebuild) ran, why, and what it did. ``running``: the trigger of a sync in progress;
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
