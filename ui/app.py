"""The chat UI: a thin Gradio shell over the ``rag`` library, started by ``rag serve``.

Importing this module is cheap (``rag`` imports it for every command to register
``serve``): gradio is imported inside the functions that need it.

Layout: a Chat tab (conversation on the left, the source viewer on the right, settings in an
accordion), an Index tab (documents and their state, Rebuild, Upload) and an Eval tab.
A click on a citation is caught by a small page script (``static/app.js``) that writes the
citation into a hidden textbox; its ``input`` event renders the document in the viewer.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from rag.display import public_message, without_surrogates
from rag.documents import SUPPORTED_SUFFIXES
from rag.errors import BadInputError, RagError
from rag.uploads import MAX_UPLOAD_BYTES

UPLOAD_MB = MAX_UPLOAD_BYTES // (1024 * 1024)

STATIC = Path(__file__).resolve().parent / "static"
#: Events that answer questions run this many at a time (one shared model, 2+ cores).
DEFAULT_CONCURRENCY = 4
MAX_QUEUE = 64
#: With --watch, each open page checks this often whether a sync started or ended.
SYNC_POLL_SECONDS = 3.0
#: Reports of runs started from the Eval tab (git-ignored; `rag eval` writes evals/reports).
EVAL_REPORTS = Path(".cache/ui-eval-reports")
#: Gradio's temporary copies of uploads: swept every 15 minutes once an hour old (the
#: handler also removes each one it has dealt with; this catches the rest, such as files
#: the upload field refused by type before the handler ran).
UPLOAD_CACHE = (15 * 60, 60 * 60)


@dataclass
class Service:
    """What the handlers (UI and HTTP API) share: one Assistant, the folders, and the
    ``IndexSync`` that runs every rebuild."""

    assistant: object  # rag.answer.Assistant
    seeds_dir: Path
    index_dir: Path
    evals_dir: Path
    k: int
    mode: str
    sync: object | None = None  # rag.watch.IndexSync
    #: True when a FolderWatcher syncs the index (``rag serve --watch``).
    watching: bool = False

    def __post_init__(self) -> None:
        if self.sync is None:
            from rag.watch import IndexSync

            self.sync = IndexSync(self.seeds_dir, self.index_dir, assistant=self.assistant)

    def answer(self, question, *, k=None, mode=None, threshold=None):
        """``Assistant.ask`` with the server's k and mode where the caller gives none."""
        k = self.k if k is None else int(k)
        return self.assistant.ask(question, k=k, mode=mode or self.mode, threshold=threshold)

    def message(self, error: object) -> str:
        """``error`` for the browser: paths relative to the folders the user named."""
        folders = {"seeds": self.seeds_dir, "index": self.index_dir, "evals": self.evals_dir}
        return public_message(error, {p.name or n: p for n, p in folders.items()})

    def status(self) -> tuple[dict, dict[str, str]]:
        """The manifest of the index being served, and each document's state against it."""
        from rag.store import index_status

        manifest = self.assistant.index.manifest
        try:
            status = index_status(self.seeds_dir, self.index_dir, manifest=manifest)
        except (RagError, OSError):
            status = {s: "deleted" for s in manifest.get("documents", {})}
        return manifest, status

    def rebuild(self, progress=None, trigger: str = "ui") -> str:
        """Bring the index up to date with the seeds folder and answer from it at once.

        Returns:
            The build's one-line summary, plus a line per skipped file.
        """
        return self.sync.run(trigger, progress=progress).log


# --------------------------------------------------------------------------- handlers
# Plain functions of the Service, so tests can call them without a browser.


def _cite_request(payload: str) -> dict:
    """The citation a click sent.

    Accepts what the page script sends (``{"token": "rag-c-...", "t": nonce}``), a bare
    token, or the citation itself as JSON (``{"source": ..., "hl": [a, b], ...}``).
    """
    from ui.render import read_cite_token

    payload = (payload or "").strip()
    obj = read_cite_token(payload)
    if obj is None:
        try:
            obj = json.loads(payload)
        except ValueError:
            raise BadInputError("not a citation") from None
        if isinstance(obj, dict) and isinstance(obj.get("token"), str):
            obj = read_cite_token(obj["token"])
    if not isinstance(obj, dict) or not isinstance(obj.get("source"), str):
        raise BadInputError("not a citation")
    return obj


def _span(value) -> tuple[int, int] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        try:
            return int(value[0]), int(value[1])
        except (TypeError, ValueError):
            return None
    return None


def open_source(service: Service, payload: str) -> str:
    """The source viewer's HTML for a clicked citation."""
    from ui import render

    if not payload or not payload.strip():
        return render.viewer_empty()
    try:
        cite = _cite_request(payload)
    except BadInputError:
        return render.viewer_empty()
    doc = service.assistant.index.documents.get(cite["source"])
    if doc is None:
        return render.viewer_message(
            cite["source"], "This document is no longer in the index (it was removed or renamed)."
        )
    note = None
    if cite.get("hash") and not doc.content_hash.startswith(str(cite["hash"])):
        note = (
            "This document changed after the answer was given: the highlight may not match. "
            "Ask again to cite the current version."
        )
    n = cite.get("n") if isinstance(cite.get("n"), int) else None
    excerpt = _span([cite.get("start"), cite.get("end")])
    return render.viewer_html(doc, excerpt=excerpt, highlight=_span(cite.get("hl")), n=n, note=note)


def index_panel(service: Service) -> tuple[str, str, str]:
    """(summary, documents table, header) HTML for the Index tab and the page header."""
    from ui import render

    manifest, status = service.status()
    sync = render.sync_html(
        service.sync.last, service.sync.running, service.watching, message=service.message
    )
    return (
        render.index_summary_html(manifest, status) + sync,
        render.documents_table_html(manifest, status),
        render.header_html(manifest, status, service.seeds_dir.as_posix()),
    )


# --------------------------------------------------------------------------- the app


def _theme():
    import gradio as gr

    # Plain font names: a local tool should not fetch fonts from the internet.
    sans = [
        "Inter",
        "ui-sans-serif",
        "system-ui",
        "-apple-system",
        "Segoe UI",
        "Roboto",
        "Helvetica Neue",
        "Arial",
        "sans-serif",
    ]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"]
    return gr.themes.Soft(
        primary_hue="indigo",
        secondary_hue="slate",
        neutral_hue="slate",
        font=sans,
        font_mono=mono,
        radius_size="md",
    ).set(
        body_background_fill="#f6f7fb",
        block_border_width="1px",
        block_shadow="none",
        button_primary_background_fill="*primary_600",
        button_primary_background_fill_hover="*primary_700",
    )


def launch_options() -> dict:
    """theme, css and head for ``launch()`` (Gradio 6 takes them there, not in Blocks)."""
    script = (STATIC / "app.js").read_text(encoding="utf-8")
    return {
        "theme": _theme(),
        "css": (STATIC / "style.css").read_text(encoding="utf-8"),
        "head": f"<script>{script}</script>",
    }


#: After an answer arrives: scroll the chat so the latest question sits at the top (a long
#: answer or an abstention's banner would otherwise be scrolled past). See static/app.js.
SCROLL_TO_QUESTION = "() => { window.ragShowLatest && window.ragShowLatest(); }"

_VIEWER_JS = """
const body = () => element.querySelector('.rag-viewer-body');
const go = () => {
  const b = body(), m = element.querySelector('#rag-hl');
  if (!b || !m) return;
  b.scrollTop = Math.max(0, m.offsetTop - b.clientHeight / 3);
  const r = element.getBoundingClientRect();
  if (r.top < 0 || r.top > window.innerHeight - 80) element.scrollIntoView({block: 'start'});
};
watch('value', () => requestAnimationFrame(go));
requestAnimationFrame(go);
"""


def build_app(service: Service):
    """The Blocks app for ``service`` (not launched)."""
    import gradio as gr

    from rag.retrieval import MODES
    from ui import render

    assistant = service.assistant

    def threshold_setting():
        """The slider's default: read again at each page load, so a ``rag eval --calibrate``
        run while the app is serving shows up on the next visit."""
        value, source = assistant.threshold_source()
        info = {
            "explicit": "below it: “not found” (set by rag serve --threshold)",
            "default": "below it: “not found” (default; calibrate with rag eval --calibrate)",
        }.get(source, "below it: “not found” (calibrated for this index)")
        return round(float(value), 3), info

    threshold0, threshold_info = threshold_setting()

    def respond(question, history, k, mode, threshold):
        history = list(history or [])
        if not isinstance(question, str) or not question.strip():
            gr.Warning("Type a question first.")
            return history, question or ""
        question = question.strip()
        # Shown with U+FFFD for an undecodable byte (which ask() then refuses with a reason).
        shown = without_surrogates(question)
        history.append({"role": "user", "content": render.question_html(shown)})
        try:
            answer = assistant.ask(question, k=int(k), mode=mode, threshold=float(threshold))
        except (RagError, ValueError) as e:
            gr.Warning(service.message(e))
            history.append({"role": "assistant", "content": render.error_html(service.message(e))})
            return history, ""
        content = render.answer_html(answer, assistant.index.documents)
        history.append({"role": "assistant", "content": content})
        return history, ""

    def answer_json(
        question: str, k: int | None = None, mode: str | None = None, threshold: float | None = None
    ) -> dict:
        """Answer one question; the JSON of `rag ask --json` (k and mode: the server's)."""
        try:
            return service.answer(question, k=k, mode=mode, threshold=threshold).to_dict()
        except (RagError, ValueError) as e:
            raise gr.Error(service.message(e)) from None

    def do_open(payload):
        return open_source(service, payload)

    def do_refresh():
        return index_panel(service)

    def do_threshold():
        value, info = threshold_setting()
        return gr.Slider(value=value, info=info, interactive=True)

    def do_rebuild(progress=gr.Progress(track_tqdm=True)):  # noqa: B008 (gradio's idiom)
        try:
            log = service.rebuild(progress)
        except (RagError, ValueError, OSError) as e:
            raise gr.Error(service.message(e)) from None
        gr.Info(log.splitlines()[0])
        return (gr.HTML(render.build_log_html(log), visible=True), *index_panel(service))

    def do_upload(files, overwrite, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        from rag.uploads import UploadExistsError, save_upload

        files = [f for f in (files or []) if f]
        if not files:
            raise gr.Error(f"Choose one or more files to add ({' '.join(SUPPORTED_SUFFIXES)}).")
        saved, rejected = [], []
        for f in files:
            path, keep = Path(f), False
            try:
                dest = save_upload(
                    service.seeds_dir,
                    path.name,
                    path,
                    overwrite=bool(overwrite),
                )
                saved.append(dest.name)
            except (RagError, ValueError, OSError) as e:
                rejected.append(service.message(e))
                keep = isinstance(e, UploadExistsError)  # "Replace" and Add again may follow
            finally:
                if not keep:  # saved into seeds/, or refused for good: not kept either way
                    _discard_upload(path)
        if not saved:
            raise gr.Error("Not added: " + "; ".join(rejected))
        for r in rejected:
            gr.Warning(f"Not added: {r}")
        lines = [f"added {name}" for name in saved] + [f"not added: {r}" for r in rejected]
        try:
            lines.append(service.rebuild(progress, trigger="upload"))
        except (RagError, ValueError, OSError) as e:
            raise gr.Error(
                f"Saved {', '.join(saved)} but indexing failed: {service.message(e)}"
            ) from None
        gr.Info(f"Added and indexed {', '.join(saved)}")
        log = render.build_log_html("\n".join(lines))
        return (gr.HTML(log, visible=True), None, *index_panel(service))

    summary0, table0, header0 = index_panel(service)
    with gr.Blocks(
        title=f"{render.APP_NAME} · ask your documents",
        fill_width=True,
        delete_cache=UPLOAD_CACHE,
    ) as demo:
        header = gr.HTML(
            header0,
            elem_id="rag-header",
            js_on_load=None,
            apply_default_css=False,
        )
        with gr.Tabs(elem_id="rag-tabs"):
            with gr.Tab("Chat", id="chat", elem_id="rag-tab-chat"):
                with gr.Row(equal_height=False, elem_id="rag-main"):
                    with gr.Column(scale=6, min_width=380, elem_id="rag-chat-col"):
                        chatbot = gr.Chatbot(
                            elem_id="rag-chat",
                            show_label=False,
                            height="calc(100vh - 290px)",
                            min_height=420,
                            render_markdown=False,  # messages are our escaped HTML
                            sanitize_html=True,
                            latex_delimiters=[],
                            allow_tags=False,
                            buttons=[],
                            feedback_options=None,
                            layout="panel",
                            autoscroll=False,  # SCROLL_TO_QUESTION shows each answer from its top
                            placeholder=render.chat_placeholder(),
                        )
                        with gr.Row(elem_id="rag-ask-row"):
                            question = gr.Textbox(
                                show_label=False,
                                placeholder="Ask a question about your documents…",
                                lines=1,
                                max_lines=4,
                                scale=8,
                                elem_id="rag-question",
                                autofocus=True,
                                container=False,
                            )
                            send = gr.Button(
                                "Ask", variant="primary", scale=0, min_width=96, elem_id="rag-send"
                            )
                        with gr.Accordion("Settings", open=False, elem_id="rag-settings"):
                            with gr.Row():
                                k = gr.Slider(
                                    1,
                                    20,
                                    value=service.k,
                                    step=1,
                                    label="Passages (top-k)",
                                    info="how many passages to retrieve and list",
                                )
                                mode = gr.Radio(
                                    list(MODES),
                                    value=service.mode,
                                    label="Retrieval mode",
                                    info="hybrid fuses dense vectors and BM25",
                                )
                                threshold = gr.Slider(
                                    0.0,
                                    1.0,
                                    value=threshold0,
                                    step=0.01,
                                    label="Abstention threshold",
                                    info=threshold_info,
                                    # Enabled by the page-load event that sets its value, so
                                    # a late load can never reset a value the user chose.
                                    interactive=False,
                                )
                    with gr.Column(scale=5, min_width=340, elem_id="rag-viewer-col"):
                        viewer = gr.HTML(
                            render.viewer_empty(),
                            elem_id="rag-viewer",
                            js_on_load=_VIEWER_JS,
                            apply_default_css=False,
                        )
                cite_target = gr.Textbox(
                    visible="hidden", elem_id="rag-cite-target", show_label=False
                )

            with gr.Tab("Index", id="index", elem_id="rag-tab-index"):
                summary = gr.HTML(
                    summary0, elem_id="rag-index-summary", js_on_load=None, apply_default_css=False
                )
                with gr.Row(elem_id="rag-index-actions"):
                    rebuild = gr.Button(
                        "Rebuild index",
                        variant="primary",
                        scale=0,
                        min_width=170,
                        elem_id="rag-rebuild",
                    )
                    refresh = gr.Button(
                        "Check for changes",
                        variant="secondary",
                        scale=0,
                        min_width=210,
                        elem_id="rag-refresh",
                    )
                build_log = gr.HTML(
                    "",
                    elem_id="rag-build-log",
                    js_on_load=None,
                    apply_default_css=False,
                    visible=False,
                )
                table = gr.HTML(
                    table0, elem_id="rag-docs", js_on_load=None, apply_default_css=False
                )
                with gr.Accordion("Add documents", open=True, elem_id="rag-upload"):
                    gr.HTML(
                        render.upload_help(service.seeds_dir.as_posix(), UPLOAD_MB),
                        js_on_load=None,
                        apply_default_css=False,
                    )
                    with gr.Row(equal_height=True):
                        files = gr.File(
                            file_count="multiple",
                            label="Documents",
                            file_types=list(SUPPORTED_SUFFIXES),
                            scale=3,
                            height=150,
                            elem_id="rag-files",
                        )
                        with gr.Column(scale=1, min_width=220):
                            overwrite = gr.Checkbox(
                                label="Replace files with the same name",
                                value=False,
                                elem_id="rag-overwrite",
                            )
                            add = gr.Button("Add and index", variant="primary", elem_id="rag-add")

            with gr.Tab("Eval", id="eval", elem_id="rag-tab-eval"):
                _eval_tab(service)

        panel_outputs = [summary, table, header]
        ask_inputs = [question, chatbot, k, mode, threshold]
        question.submit(
            respond, ask_inputs, [chatbot, question], api_name="ask", concurrency_id="ask"
        ).then(None, js=SCROLL_TO_QUESTION)
        send.click(
            respond, ask_inputs, [chatbot, question], api_visibility="private", concurrency_id="ask"
        ).then(None, js=SCROLL_TO_QUESTION)
        chatbot.clear(lambda: render.viewer_empty(), None, viewer, api_visibility="private")
        cite_target.change(
            do_open,
            cite_target,
            viewer,
            api_name="open_source",
            show_progress="hidden",
            concurrency_id="ask",
        )
        gr.api(answer_json, api_name="answer", concurrency_id="ask")
        demo.load(do_refresh, None, panel_outputs, api_name="index_status", show_progress="hidden")
        if service.watching:
            # The panel follows the watcher's syncs: a cheap check every few seconds, and
            # the panel (which hashes the folder) only when a sync started or ended.
            seen = gr.State(service.sync.generation)

            def do_tick(generation):
                if generation == service.sync.generation:
                    return gr.skip(), gr.skip(), gr.skip(), generation
                return (*index_panel(service), service.sync.generation)

            gr.Timer(SYNC_POLL_SECONDS).tick(
                do_tick,
                seen,
                [*panel_outputs, seen],
                api_visibility="private",
                show_progress="hidden",
                concurrency_id="ask",
            )
        demo.load(
            do_threshold,
            None,
            threshold,
            api_name="threshold",
            show_progress="hidden",
        )
        refresh.click(do_refresh, None, panel_outputs, api_visibility="private")
        rebuild.click(
            do_rebuild,
            None,
            [build_log, *panel_outputs],
            api_name="rebuild",
            concurrency_limit=1,
            concurrency_id="build",
        )
        add.click(
            do_upload,
            [files, overwrite],
            [build_log, files, *panel_outputs],
            api_name="upload",
            concurrency_limit=1,
            concurrency_id="build",
        )
    return demo


def _eval_tab(service: Service) -> None:
    """The Eval tab: pick a question set, run ``rag eval`` on it, see the report."""
    import gradio as gr

    from ui import render

    sets = _question_sets(service.evals_dir)
    gr.HTML(render.eval_intro(), js_on_load=None, apply_default_css=False)
    with gr.Row(equal_height=False, elem_id="rag-eval-controls"):
        qset = gr.Dropdown(
            sets,
            value=sets[0][1] if sets else None,
            label="Question set",
            scale=4,
            elem_id="rag-eval-set",
        )
        limit = gr.Dropdown(
            ["all", "10", "25", "50", "100"],
            value="all",
            label="Questions",
            scale=1,
            min_width=120,
            elem_id="rag-eval-limit",
        )
        run = gr.Button(
            "Run evaluation", variant="primary", scale=0, min_width=200, elem_id="rag-eval-run"
        )
    summary = gr.HTML("", elem_id="rag-eval-summary", js_on_load=None, apply_default_css=False)
    plots = gr.HTML("", elem_id="rag-eval-plots", js_on_load=None, apply_default_css=False)
    report = gr.Markdown(elem_id="rag-eval-report", visible=False)
    with gr.Accordion("Metrics as JSON", open=False, visible=False) as raw:
        metrics = gr.JSON(elem_id="rag-eval-metrics", show_label=False)

    def do_run(path, n, progress=gr.Progress()):  # noqa: B008
        if not path:
            raise gr.Error("Choose a question set first.")
        from rag.evaluation import default_name, run_eval, set_documents

        questions = Path(path)

        def tick(done, total):
            progress((done, total), desc="Asking questions", unit="questions")

        progress(0, desc="Preparing the index")
        try:
            rep = run_eval(
                questions,
                seeds=set_documents(questions),
                index=service.index_dir,
                assistant=service.assistant,
                limit=None if n in (None, "", "all") else int(n),
                reports_dir=EVAL_REPORTS,
                name=f"ui-{default_name(questions)}",  # never overwrites a `rag eval` report
                progress=tick,
            )
        except (RagError, ValueError, OSError) as e:
            raise gr.Error(service.message(e)) from None
        return (
            render.eval_summary_html(rep.rows[0] if rep.rows else {}, str(rep.report_dir)),
            render.plots_html(rep.plots),
            gr.Markdown(_escape_md(rep.markdown), visible=True),
            gr.Accordion(visible=True),
            rep.rows,
        )

    run.click(
        do_run,
        [qset, limit],
        [summary, plots, report, raw, metrics],
        api_name="run_eval",
        concurrency_limit=1,
        concurrency_id="eval",
    )


def _discard_upload(path: Path) -> None:
    """Remove Gradio's temporary copy of an upload; never a file outside its upload folder."""
    from gradio.utils import get_upload_folder

    try:
        if Path(get_upload_folder()).resolve() in path.resolve().parents:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def _question_sets(evals_dir: Path) -> list[tuple[str, str]]:
    """(label, path) of each question set: the label relative to ``evals_dir``."""
    from rag.evaluation import list_question_sets

    out = []
    for p in map(Path, list_question_sets(evals_dir)):
        try:
            label = p.relative_to(evals_dir).as_posix()
        except ValueError:
            label = p.as_posix()
        out.append((label, p.as_posix()))
    return out


def _escape_md(text: str) -> str:
    """report.md for the page: its images are shown in the gallery above (their relative
    links would not resolve here), and the questions and documents it quotes stay text."""
    import html

    lines = [
        line
        for line in (text or "").splitlines()
        if not line.startswith("![") and line.strip() != "## Plots"
    ]
    return html.escape("\n".join(lines), quote=False)


# --------------------------------------------------------------------------- CLI


def register_cli(sub, common, retrieval) -> None:
    """Add ``rag serve`` (called by ``rag.cli``)."""
    p = sub.add_parser("serve", help="serve the chat UI (default http://127.0.0.1:7860)")
    common(p)
    retrieval(p)
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument(
        "--auth", metavar="USER:PASS", help="require this login (or set RAG_AUTH=USER:PASS)"
    )
    p.add_argument("--threshold", type=float, help="abstention threshold (default: calibrated)")
    p.add_argument(
        "--evals",
        type=Path,
        default=Path("evals"),
        metavar="DIR",
        help="question sets for the Eval tab (default: evals/)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"questions answered at once (default {DEFAULT_CONCURRENCY})",
    )
    p.add_argument(
        "--no-build",
        action="store_true",
        help="serve the index as it is, without updating it from the seeds folder",
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="follow the seeds folder: rebuild and swap in the index when files change",
    )
    p.set_defaults(func=cmd_serve)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise BadInputError("--auth takes USER:PASS, both non-empty")
    return user, password


def cmd_serve(args: argparse.Namespace) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rag.answer import Assistant
    from rag.inputs import check_threshold
    from rag.store import build_index

    if not 1 <= args.port <= 65535:
        raise BadInputError(f"--port must be 1..65535, got {args.port}")
    if args.concurrency < 1:
        raise BadInputError(f"--concurrency must be >= 1, got {args.concurrency}")
    if args.threshold is not None:
        check_threshold(args.threshold)  # before the build, not after it
    auth = parse_auth(args.auth or os.environ.get("RAG_AUTH"))
    if not is_loopback(args.host) and auth is None:
        print(
            f"warning: serving on {args.host} without --auth: anyone who can reach this "
            "machine can read the documents and add files",
            file=sys.stderr,
        )

    if not args.no_build:
        report = build_index(
            args.seeds,
            args.index,
            progress=sys.stderr.isatty(),
            warn=lambda m: print(f"warning: {m}", file=sys.stderr),
        )
        print(report, flush=True)
    from ui import api

    service = Service(
        assistant=Assistant(args.index, threshold=args.threshold),
        seeds_dir=Path(args.seeds),
        index_dir=Path(args.index),
        evals_dir=Path(args.evals),
        k=args.k,
        mode=args.mode,
        watching=args.watch,
    )
    service.sync.warn = lambda m: print(f"warning: {m}", file=sys.stderr, flush=True)
    one_thread_per_request()
    # Load the model now, so the first question waits for retrieval only.
    service.assistant.retriever.embed_question("warm up")
    demo = build_app(service)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=MAX_QUEUE)
    options = launch_options()
    app = api.create_app(
        service,
        demo,
        auth=auth,
        gradio=dict(
            max_file_size=f"{UPLOAD_MB}mb",
            footer_links=["api"],
            show_error=False,
            theme=options["theme"],
            css=options["css"],
            head=options["head"],
        ),
    )
    watcher = None
    if args.watch:
        from rag.watch import FolderWatcher

        watcher = FolderWatcher(service.sync, on_sync=lambda r: print(r.line(), flush=True))
        watcher.start()
    where = f"http://{args.host}:{args.port}"
    print(
        f"Serving {args.seeds}/ at {where} (API: {where}/docs"
        f"{', watching the folder' if args.watch else ''}; Ctrl+C to stop)",
        flush=True,
    )
    try:
        api.serve(app, host=args.host, port=args.port)
    finally:
        if watcher is not None:
            watcher.stop()
    return 0


def one_thread_per_request() -> None:
    """One torch thread per forward pass: the server answers several questions side by side
    (the thread pool, the Gradio queue), and torch's own threads, spinning against each other
    and the other requests, made one answer cost 300-700 ms of CPU instead of 15 ms on the
    shared 2-core machine (README, "HTTP API")."""
    import torch

    torch.set_num_threads(1)
