"""Start the UI: the service over one Assistant, the app, the queue and the HTTP server.

``rag serve`` (``rag.cli``) checks the flags, builds the index and calls ``serve``.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from rag.answer import Assistant
from rag.errors import BadInputError
from rag.retrieval import RetrievalMode
from rag.uploads import MAX_UPLOAD_BYTES
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
) -> None:
    """Serve the chat UI for ``assistant`` until interrupted.

    Args:
        concurrency: events that answer questions run this many at a time (one shared
            model, 2+ cores).
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    service = Service(
        assistant=assistant,
        seeds_dir=Path(seeds_dir),
        index_dir=assistant.index_dir,
        evals_dir=Path(evals_dir),
        k=k,
        mode=mode,
    )
    # Load the model now, so the first question waits for retrieval only.
    assistant.retriever.embed_question("warm up")
    demo = build_app(service)
    demo.queue(default_concurrency_limit=concurrency, max_size=MAX_QUEUE)
    print(f"Serving {seeds_dir}/ at http://{host}:{port} (Ctrl+C to stop)", flush=True)
    demo.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        max_file_size=f"{UPLOAD_MB}mb",
        footer_links=["api"],
        quiet=True,
        show_error=False,
        **launch_options(),
    )
