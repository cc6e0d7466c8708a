"""What the UI does, as plain functions over a ``Service``: no gradio in this module.

Each handler takes the service and the values of the page's inputs, and returns what the page
shows (HTML strings, the chat history, records) or raises one of our errors (``RagError``,
``ValueError``). ``ui.layout`` wires them to the page and turns the errors into Gradio
messages; tests call them in-process, with a real index and no browser.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.answer import Answer, Assistant
from rag.calibration import ThresholdSource
from rag.display import public_message, without_surrogates
from rag.documents import SUPPORTED_SUFFIXES
from rag.errors import BadInputError, EmptyQuestionError, RagError
from rag.evaluation import EvalReport, default_name, list_question_sets, run_eval, set_documents
from rag.retrieval import RetrievalMode
from rag.settings import UI_REPORTS_DIR
from rag.store import index_status
from rag.uploads import UploadExistsError, save_upload
from rag.watch import IndexSync
from ui import panels, render

#: ``progress(fraction, desc=...)`` as Gradio's ``gr.Progress`` takes it.
Progress = Callable[..., None]


@dataclass
class Service:
    """What the handlers (the UI's and the HTTP API's) share: one Assistant, the folders,
    and the ``IndexSync`` that runs every rebuild."""

    assistant: Assistant
    seeds_dir: Path
    index_dir: Path
    evals_dir: Path
    k: int
    mode: RetrievalMode | str
    sync: IndexSync | None = None
    #: True when a FolderWatcher syncs the index (``rag serve --watch``).
    watching: bool = False

    def __post_init__(self) -> None:
        if self.sync is None:
            self.sync = IndexSync(self.seeds_dir, self.index_dir, assistant=self.assistant)

    @property
    def build_lock(self) -> threading.Lock:
        """Held while a rebuild (the button, an upload, the API, the watcher) runs."""
        return self.sync.lock

    def answer(self, question: str, *, k=None, mode=None, threshold=None) -> Answer:
        """``Assistant.ask`` with the server's k and mode where the caller gives none."""
        k = self.k if k is None else int(k)
        return self.assistant.ask(question, k=k, mode=mode or self.mode, threshold=threshold)

    def message(self, error: object) -> str:
        """``error`` for the browser: paths relative to the folders the user named."""
        folders = {"seeds": self.seeds_dir, "index": self.index_dir, "evals": self.evals_dir}
        return public_message(error, {p.name or n: p for n, p in folders.items()})

    def status(self) -> tuple[dict, dict[str, str]]:
        """The manifest of the index being served, and each document's state against it."""
        manifest = self.assistant.index.manifest
        try:
            status = index_status(self.seeds_dir, self.index_dir, manifest=manifest)
        except (RagError, OSError):
            status = {s: "deleted" for s in manifest.get("documents", {})}
        return manifest, status

    def rebuild(self, progress: Progress | None = None, trigger: str = "ui") -> str:
        """Bring the index up to date with the seeds folder and answer from it at once.

        Raises:
            IndexBusyError: a rebuild is already running.

        Returns:
            The build's one-line summary, plus a line per skipped file.
        """
        return self.sync.run(trigger, progress=progress).log


# --------------------------------------------------------------------------- Chat tab


def respond(
    service: Service, question: str, history: Sequence[dict] | None, k, mode, threshold
) -> tuple[list[dict], str | None]:
    """One turn of the chat: ``history`` with the question and its answer appended.

    Raises:
        EmptyQuestionError: nothing to ask (the history is left as it was).

    Returns:
        (the new history, None) or, when the question could not be answered, (the history
        with the error as the reply, the error message fit for the browser).
    """
    if not isinstance(question, str) or not question.strip():
        raise EmptyQuestionError("the question is empty: type a question")
    question = question.strip()  # checked by ask(), which refuses undecodable text
    # Shown with U+FFFD for an undecodable byte (which ask() then refuses with a reason).
    shown = render.question_html(without_surrogates(question))
    history = [*(history or []), {"role": "user", "content": shown}]
    assistant = service.assistant
    try:
        answer = assistant.ask(question, k=int(k), mode=mode, threshold=float(threshold))
    except (RagError, ValueError) as e:
        message = service.message(e)
        history.append({"role": "assistant", "content": render.error_html(message)})
        return history, message
    content = render.answer_html(answer, assistant.index.documents)
    return [*history, {"role": "assistant", "content": content}], None


def answer_json(
    service: Service,
    question: str,
    k: int | None = None,
    mode: str | None = None,
    threshold: float | None = None,
) -> dict:
    """Answer one question; the JSON of `rag ask --json` (k and mode: the server's)."""
    return service.answer(question, k=k, mode=mode, threshold=threshold).to_dict()


def threshold_setting(service: Service) -> tuple[float, str]:
    """The threshold slider's value and note: read again at each page load, so a
    ``rag eval --calibrate`` run while the app is serving shows up on the next visit."""
    value, source = service.assistant.threshold_source()
    note = "probability the answer is right; below it: “not found”"
    info = {
        ThresholdSource.EXPLICIT: f"{note} (set by rag serve --threshold)",
        ThresholdSource.DEFAULT: f"{note} (default; calibrate with rag eval --calibrate)",
    }.get(source, f"{note} (calibrated for this index)")
    return round(float(value), 3), info


def _cite_request(payload: str) -> dict:
    """The citation a click sent.

    Accepts what the page script sends (``{"token": "rag-c-...", "t": nonce}``), a bare
    token, or the citation itself as JSON (``{"source": ..., "hl": [a, b], ...}``).
    """
    payload = (payload or "").strip()
    obj = render.read_cite_token(payload)
    if obj is None:
        try:
            obj = json.loads(payload)
        except ValueError:
            raise BadInputError("not a citation") from None
        if isinstance(obj, dict) and isinstance(obj.get("token"), str):
            obj = render.read_cite_token(obj["token"])
    if not isinstance(obj, dict) or not isinstance(obj.get("source"), str):
        raise BadInputError("not a citation")
    return obj


def _span(value) -> tuple[int, int] | None:
    if isinstance(value, list | tuple) and len(value) == 2:
        try:
            return int(value[0]), int(value[1])
        except (TypeError, ValueError):
            return None
    return None


def open_source(service: Service, payload: str) -> str:
    """The source viewer's HTML for a clicked citation (the empty viewer for anything else)."""
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


# --------------------------------------------------------------------------- Index tab


def index_panel(service: Service) -> tuple[str, str, str]:
    """(summary, documents table, header) HTML for the Index tab and the page header."""
    manifest, status = service.status()
    sync = service.sync
    return (
        panels.index_summary_html(manifest, status)
        + panels.sync_html(sync.last, sync.running, service.watching, message=service.message),
        panels.documents_table_html(manifest, status),
        panels.header_html(manifest, status, service.seeds_dir.as_posix()),
    )


@dataclass(frozen=True)
class Upload:
    """What ``upload`` did: the files saved, the reasons others were refused, the log."""

    saved: tuple[str, ...]
    rejected: tuple[str, ...]
    log: str


def upload(
    service: Service,
    files: Sequence[str | Path | None] | None,
    overwrite: bool,
    progress: Progress | None = None,
    *,
    discard: Callable[[Path], None] | None = None,
) -> Upload:
    """Save the uploaded files into the seeds folder and rebuild the index.

    Args:
        discard: called with each uploaded file once it is dealt with (saved, or refused for
            good); a file refused as already there is kept for a "Replace" retry.

    Raises:
        BadInputError: no file given, or none could be saved (naming each reason).
        RagError: the files were saved but the rebuild failed.
    """
    files = [f for f in (files or []) if f]
    if not files:
        raise BadInputError(f"Choose one or more files to add ({' '.join(SUPPORTED_SUFFIXES)}).")
    saved, rejected = [], []
    for f in files:
        path, keep = Path(f), False
        try:
            dest = save_upload(service.seeds_dir, path.name, path, overwrite=bool(overwrite))
            saved.append(dest.name)
        except (RagError, ValueError, OSError) as e:
            rejected.append(service.message(e))
            keep = isinstance(e, UploadExistsError)  # "Replace" and Add again may follow
        finally:
            if discard is not None and not keep:
                discard(path)
    if not saved:
        raise BadInputError("Not added: " + "; ".join(rejected))
    lines = [f"added {name}" for name in saved] + [f"not added: {r}" for r in rejected]
    try:
        lines.append(service.rebuild(progress, trigger="upload"))
    except (RagError, ValueError, OSError) as e:
        message = f"Saved {', '.join(saved)} but indexing failed: {service.message(e)}"
        raise RagError(message) from None
    return Upload(tuple(saved), tuple(rejected), "\n".join(lines))


# --------------------------------------------------------------------------- Eval tab


def question_sets(evals_dir: Path) -> list[tuple[str, str]]:
    """(label, path) of each question set: the label relative to ``evals_dir``."""
    out = []
    for p in map(Path, list_question_sets(evals_dir)):
        try:
            label = p.relative_to(evals_dir).as_posix()
        except ValueError:
            label = p.as_posix()
        out.append((label, p.as_posix()))
    return out


def run_question_set(
    service: Service,
    path: str | None,
    n: str | None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """``rag eval`` on the set at ``path`` (its own documents if it has some, else the index
    being served); ``n``: ``"all"`` or how many questions. The report goes to
    ``UI_REPORTS_DIR`` under ``ui-<name>``, so it never overwrites a ``rag eval`` report."""
    if not path:
        raise BadInputError("Choose a question set first.")
    questions = Path(path)
    return run_eval(
        questions,
        seeds=set_documents(questions),
        index=service.index_dir,
        assistant=service.assistant,
        limit=None if n in (None, "", "all") else int(n),
        reports_dir=UI_REPORTS_DIR,
        name=f"ui-{default_name(questions)}",
        progress=progress,
    )


def report_markdown(text: str) -> str:
    """report.md for the page: its images are shown in the gallery above (their relative
    links would not resolve here), and the questions and documents it quotes stay text."""
    lines = [
        line
        for line in (text or "").splitlines()
        if not line.startswith("![") and line.strip() != "## Plots"
    ]
    return html.escape("\n".join(lines), quote=False)
