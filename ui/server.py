"""Start the UI and the API: the service over one Assistant, the app, the queue, the folder
watcher and the HTTP server.

``rag serve`` (``rag.cli``) checks the flags, builds the index and calls ``serve``.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path

from rag.answer import Assistant
from rag.display import printable
from rag.errors import BadInputError
from rag.retrieval import RetrievalMode
from rag.uploads import MAX_UPLOAD_BYTES
from rag.watch import FolderWatcher
from ui import api
from ui.handlers import Service
from ui.layout import build_app
from ui.theme import launch_options

UPLOAD_MB = MAX_UPLOAD_BYTES // (1024 * 1024)
#: Requests waiting beyond the ones being answered; more are refused at once.
MAX_QUEUE = 64


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """``USER:PASS`` as (user, password); None when not given."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise BadInputError("--auth takes USER:PASS, both non-empty")
    return user, password


def serve(
    assistant: Assistant,
    *,
    seeds_dir: Path,
    evals_dir: Path,
    k: int,
    mode: RetrievalMode | str,
    host: str,
    port: int,
    auth: tuple[str, str] | None,
    concurrency: int,
    watch: bool = False,
) -> None:
    """Serve the chat UI and the HTTP API (``ui.api``) for ``assistant`` until interrupted.

    One FastAPI app holds the API and, mounted at ``/``, the Gradio UI; uvicorn serves it.

    Args:
        concurrency: events that answer questions run this many at a time (one shared
            model, 2+ cores).
        watch: follow the seeds folder (``rag.watch.FolderWatcher``) and swap in each
            rebuilt index.
    """
    import gradio as gr
    import uvicorn

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    service = Service(
        assistant=assistant,
        seeds_dir=Path(seeds_dir),
        index_dir=assistant.index_dir,
        evals_dir=Path(evals_dir),
        k=k,
        mode=mode,
        watching=watch,
    )
    service.sync.warn = lambda m: print(f"warning: {printable(m)}", file=sys.stderr, flush=True)
    one_thread_per_request()
    # Load the model now, so the first question waits for retrieval only.
    assistant.retriever.embed_question("warm up")
    demo = build_app(service)
    demo.queue(default_concurrency_limit=concurrency, max_size=MAX_QUEUE)
    app = gr.mount_gradio_app(
        api.create_app(service, auth=auth),
        demo,
        path="/",
        auth=auth,
        max_file_size=f"{UPLOAD_MB}mb",
        footer_links=["api"],
        show_error=False,
        **launch_options(),
    )
    watcher = None
    if watch:
        watcher = FolderWatcher(
            service.sync, on_sync=lambda r: print(printable(r.line()), flush=True)
        ).start()
    where = f"http://{host}:{port}"
    print(
        f"Serving {seeds_dir}/ at {where} (API: {where}/docs"
        f"{', watching the folder' if watch else ''}; Ctrl+C to stop)",
        flush=True,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=3,  # Gradio's event streams would hold a shutdown open
    )
    try:
        uvicorn.Server(config).run()
    finally:
        if watcher is not None:
            watcher.stop()


def one_thread_per_request() -> None:
    """One torch thread per forward pass: the server answers several questions side by side
    (the API's thread pool, the Gradio queue), and torch's own threads, spinning against each
    other and the other requests, made one answer cost 300-700 ms of CPU instead of 15 ms on
    the shared 2-core machine (README, "HTTP API")."""
    import torch

    torch.set_num_threads(1)
