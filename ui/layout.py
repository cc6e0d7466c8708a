"""The page: one function per tab builds its components, one wires its events.

Layout: a Chat tab (conversation on the left, the source viewer on the right, settings in an
accordion), an Index tab (documents and their state, Rebuild, Upload) and an Eval tab. A click
on a citation is caught by a small page script (``static/app.js``) that writes the citation
into a hidden textbox; its ``input`` event renders the document in the viewer.

The logic is in ``ui.handlers``; the wiring here turns our errors into Gradio messages
(``gr.Error`` for a failed action, ``gr.Warning`` for a note) and nothing else.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
from gradio.utils import get_upload_folder

from rag.documents import SUPPORTED_SUFFIXES
from rag.errors import EmptyQuestionError, RagError
from rag.retrieval import MODES
from rag.uploads import MAX_UPLOAD_BYTES
from ui import handlers, panels, render
from ui.handlers import Service
from ui.theme import SCROLL_TO_QUESTION, VIEWER_JS

UPLOAD_MB = MAX_UPLOAD_BYTES // (1024 * 1024)


#: Gradio's temporary copies of uploads: swept every 15 minutes once an hour old (the
#: handler also removes each one it has dealt with; this catches the rest, such as files
#: the upload field refused by type before the handler ran).
UPLOAD_CACHE = (15 * 60, 60 * 60)
#: With --watch, each open page checks this often whether a sync started or ended.
SYNC_POLL_SECONDS = 3.0


@contextmanager
def _shown_as_error(service: Service):
    """Our errors (and a failed file operation) become a Gradio error message on the page,
    with paths shown relative to the folders the user named (``Service.message``)."""
    try:
        yield
    except (RagError, ValueError, OSError) as e:
        raise gr.Error(service.message(e)) from None


def _discard_upload(path: Path) -> None:
    """Remove Gradio's temporary copy of an upload; never a file outside its upload folder."""
    try:
        if Path(get_upload_folder()).resolve() in path.resolve().parents:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def _html(value: str = "", **kwargs) -> gr.HTML:
    """An HTML block that shows our escaped markup as it is."""
    return gr.HTML(
        value, js_on_load=kwargs.pop("js_on_load", None), apply_default_css=False, **kwargs
    )


def build_app(service: Service) -> gr.Blocks:
    """The Blocks app for ``service`` (not launched)."""
    summary0, table0, header0 = handlers.index_panel(service)
    with gr.Blocks(
        title=f"{render.APP_NAME} · ask your documents",
        fill_width=True,
        delete_cache=UPLOAD_CACHE,
    ) as demo:
        header = _html(header0, elem_id="rag-header")
        with gr.Tabs(elem_id="rag-tabs"):
            with gr.Tab("Chat", id="chat", elem_id="rag-tab-chat"):
                chat = _chat_tab(service)
            with gr.Tab("Index", id="index", elem_id="rag-tab-index"):
                index = _index_tab(service, summary0, table0)
            with gr.Tab("Eval", id="eval", elem_id="rag-tab-eval"):
                evals = _eval_tab(service)
        panel = [index.summary, index.table, header]
        _wire_chat(service, chat)
        _wire_index(service, demo, index, panel)
        _wire_eval(service, evals)
        demo.load(
            lambda: _threshold_slider(service),
            None,
            chat.threshold,
            api_name="threshold",
            show_progress="hidden",
        )
    return demo


# --------------------------------------------------------------------------- Chat tab


def _chat_tab(service: Service) -> SimpleNamespace:
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
            k, mode, threshold = _chat_settings(service)
        with gr.Column(scale=5, min_width=340, elem_id="rag-viewer-col"):
            viewer = _html(render.viewer_empty(), elem_id="rag-viewer", js_on_load=VIEWER_JS)
    cite_target = gr.Textbox(visible="hidden", elem_id="rag-cite-target", show_label=False)
    return SimpleNamespace(
        chatbot=chatbot,
        question=question,
        send=send,
        k=k,
        mode=mode,
        threshold=threshold,
        viewer=viewer,
        cite_target=cite_target,
    )


def _chat_settings(service: Service) -> tuple[gr.Slider, gr.Radio, gr.Slider]:
    value, info = handlers.threshold_setting(service)
    with gr.Accordion("Settings", open=False, elem_id="rag-settings"), gr.Row():
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
            value=value,
            step=0.01,
            label="Abstention threshold",
            info=info,
            # Enabled by the page-load event that sets its value, so a late load can never
            # reset a value the user chose.
            interactive=False,
        )
    return k, mode, threshold


def _threshold_slider(service: Service) -> gr.Slider:
    value, info = handlers.threshold_setting(service)
    return gr.Slider(value=value, info=info, interactive=True)


def _wire_chat(service: Service, ui: SimpleNamespace) -> None:
    def respond(question, history, k, mode, threshold):
        try:
            history, error = handlers.respond(service, question, history, k, mode, threshold)
        except EmptyQuestionError:
            gr.Warning("Type a question first.")
            return list(history or []), question or ""
        if error:
            gr.Warning(error)
        return history, ""

    def answer_json(
        question: str, k: int | None = None, mode: str | None = None, threshold: float | None = None
    ) -> dict:
        """Answer one question; the JSON of `rag ask --json` (k and mode: the server's)."""
        with _shown_as_error(service):
            return handlers.answer_json(service, question, k, mode, threshold)

    def open_source(payload):
        return handlers.open_source(service, payload)

    inputs, outputs = (
        [ui.question, ui.chatbot, ui.k, ui.mode, ui.threshold],
        [ui.chatbot, ui.question],
    )
    ui.question.submit(respond, inputs, outputs, api_name="ask", concurrency_id="ask").then(
        None, js=SCROLL_TO_QUESTION
    )
    ui.send.click(respond, inputs, outputs, api_visibility="private", concurrency_id="ask").then(
        None, js=SCROLL_TO_QUESTION
    )
    ui.chatbot.clear(lambda: render.viewer_empty(), None, ui.viewer, api_visibility="private")
    ui.cite_target.change(
        open_source,
        ui.cite_target,
        ui.viewer,
        api_name="open_source",
        show_progress="hidden",
        concurrency_id="ask",
    )
    gr.api(answer_json, api_name="answer", concurrency_id="ask")


# --------------------------------------------------------------------------- Index tab


def _index_tab(service: Service, summary0: str, table0: str) -> SimpleNamespace:
    summary = _html(summary0, elem_id="rag-index-summary")
    with gr.Row(elem_id="rag-index-actions"):
        rebuild = gr.Button(
            "Rebuild index", variant="primary", scale=0, min_width=170, elem_id="rag-rebuild"
        )
        refresh = gr.Button(
            "Check for changes",
            variant="secondary",
            scale=0,
            min_width=210,
            elem_id="rag-refresh",
        )
    build_log = _html("", elem_id="rag-build-log", visible=False)
    table = _html(table0, elem_id="rag-docs")
    with gr.Accordion("Add documents", open=True, elem_id="rag-upload"):
        _html(panels.upload_help(service.seeds_dir.as_posix(), UPLOAD_MB))
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
                    label="Replace files with the same name", value=False, elem_id="rag-overwrite"
                )
                add = gr.Button("Add and index", variant="primary", elem_id="rag-add")
    return SimpleNamespace(
        summary=summary,
        table=table,
        rebuild=rebuild,
        refresh=refresh,
        build_log=build_log,
        files=files,
        overwrite=overwrite,
        add=add,
    )


def _wire_index(service: Service, demo: gr.Blocks, ui: SimpleNamespace, panel: list) -> None:
    def refresh():
        return handlers.index_panel(service)

    def rebuild(progress=gr.Progress(track_tqdm=True)):  # noqa: B008 (gradio's idiom)
        with _shown_as_error(service):
            log = service.rebuild(progress)
        gr.Info(log.splitlines()[0])
        return (gr.HTML(panels.build_log_html(log), visible=True), *handlers.index_panel(service))

    def upload(files, overwrite, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        with _shown_as_error(service):
            done = handlers.upload(service, files, overwrite, progress, discard=_discard_upload)
        for r in done.rejected:
            gr.Warning(f"Not added: {r}")
        gr.Info(f"Added and indexed {', '.join(done.saved)}")
        log = panels.build_log_html(done.log)
        return (gr.HTML(log, visible=True), None, *handlers.index_panel(service))

    demo.load(refresh, None, panel, api_name="index_status", show_progress="hidden")
    ui.refresh.click(refresh, None, panel, api_visibility="private")
    if service.watching:
        # The panel follows the watcher's syncs: a cheap check every few seconds, and the
        # panel (which hashes the folder) only when a sync started or ended.
        seen = gr.State(service.sync.generation)

        def tick(generation):
            if generation == service.sync.generation:
                return (*(gr.skip() for _ in panel), generation)
            return (*handlers.index_panel(service), service.sync.generation)

        gr.Timer(SYNC_POLL_SECONDS).tick(
            tick,
            seen,
            [*panel, seen],
            api_visibility="private",
            show_progress="hidden",
            concurrency_id="ask",
        )
    ui.rebuild.click(
        rebuild,
        None,
        [ui.build_log, *panel],
        api_name="rebuild",
        concurrency_limit=1,
        concurrency_id="build",
    )
    ui.add.click(
        upload,
        [ui.files, ui.overwrite],
        [ui.build_log, ui.files, *panel],
        api_name="upload",
        concurrency_limit=1,
        concurrency_id="build",
    )


# --------------------------------------------------------------------------- Eval tab


def _eval_tab(service: Service) -> SimpleNamespace:
    """Pick a question set, run ``rag eval`` on it, see the report."""
    sets = handlers.question_sets(service.evals_dir)
    _html(panels.eval_intro())
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
    summary = _html("", elem_id="rag-eval-summary")
    plots = _html("", elem_id="rag-eval-plots")
    report = gr.Markdown(elem_id="rag-eval-report", visible=False)
    with gr.Accordion("Metrics as JSON", open=False, visible=False) as raw:
        metrics = gr.JSON(elem_id="rag-eval-metrics", show_label=False)
    return SimpleNamespace(
        qset=qset, limit=limit, run=run, summary=summary, plots=plots, report=report, raw=raw,
        metrics=metrics,
    )  # fmt: skip


def _wire_eval(service: Service, ui: SimpleNamespace) -> None:
    def run(path, n, progress=gr.Progress()):  # noqa: B008
        def tick(done, total):
            progress((done, total), desc="Asking questions", unit="questions")

        if path:
            progress(0, desc="Preparing the index")
        with _shown_as_error(service):
            rep = handlers.run_question_set(service, path, n, progress=tick)
        return (
            panels.eval_summary_html(rep.rows[0] if rep.rows else {}, str(rep.report_dir)),
            panels.plots_html(rep.plots),
            gr.Markdown(handlers.report_markdown(rep.markdown), visible=True),
            gr.Accordion(visible=True),
            rep.rows,
        )

    ui.run.click(
        run,
        [ui.qset, ui.limit],
        [ui.summary, ui.plots, ui.report, ui.raw, ui.metrics],
        api_name="run_eval",
        concurrency_limit=1,
        concurrency_id="eval",
    )
