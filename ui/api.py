"""The HTTP API of ``rag serve``: JSON routes on the same server as the chat UI.

    POST /api/ask       {"question", "k"?, "mode"?, "threshold"?} -> the ``rag ask --json`` object
    GET  /api/status    the index being served: model, settings, counts, build time, each
                        document's state, and the last sync (rebuild) and whether one runs
    POST /api/rebuild   start the incremental rebuild (202), or 409 when one is running
    GET  /docs          the OpenAPI page (Swagger UI served from fastapi-offline: no CDN);
                        the schema is /openapi.json

``create_app`` makes the FastAPI app of these routes; ``ui.server`` mounts the Gradio UI on it
at ``/`` and serves both. The routes are plain FastAPI routes, not Gradio events:
``/api/ask`` runs ``Assistant.ask`` in the server's thread pool, beside the Gradio queue, and
takes no lock (the Assistant is safe to share; a rebuild swaps its index in one reference).
The handlers are the UI's (``handlers.answer_json``, ``Service.status``, the ``IndexSync``
behind the Rebuild button): nothing is done twice.

Every error is ``{"error": "one line"}`` with a 4xx code: 400 for a body that is not UTF-8,
not JSON or not an object; 413 for a body over 64 KiB or a question over 2,000 characters;
422 for a missing, empty or mistyped field, a bad ``k``/``mode``/``threshold`` or an unknown
field; 401 without the login; 404/405 for an unknown route or method; 409 when a rebuild is
already running.

With ``--auth USER:PASS`` the UI asks for it on Gradio's login page, and ``/api/*``,
``/docs`` and ``/openapi.json`` take the same USER:PASS as HTTP Basic auth (what curl and
scripts send with ``-u``). Gradio's session cookie is not accepted on ``/api``, so a page on
another site cannot make a logged-in browser rebuild the index (no CSRF surface).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Callable
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from rag.errors import IndexBusyError, IndexMismatchError, RagError
from rag.retrieval import MODES
from rag.watch import BUSY_MESSAGE
from ui import handlers

#: A question longer than this is refused (413): the model reads 256 word pieces at most.
MAX_QUESTION_CHARS = 2_000
#: A request body larger than this is refused (413) before it is read in full.
MAX_BODY_BYTES = 64 * 1024
#: Paths that take the login as HTTP Basic auth when ``--auth`` is set.
PROTECTED = ("/api", "/docs", "/openapi.json")
ROUTES = {"/api/ask": "POST", "/api/status": "GET", "/api/rebuild": "POST"}
ASK_FIELDS = ("question", "k", "mode", "threshold")

EXAMPLE_ANSWER = {
    "id": None,
    "question": "When did Eyjafjallajökull erupt?",
    "answer": "Eyjafjallajökull erupted in April 2010. [1]",
    "abstained": False,
    "citations": [
        {"n": 1, "source": "volcanoes.txt", "start": 0, "end": 212, "line_start": 1,
         "line_end": 3, "page": None, "excerpt": "…the retrieved chunk…",
         "highlight": [120, 160], "score": 0.71}
    ],
    "confidence": 0.71,
    "latency_ms": 14.2,
}  # fmt: skip


class ApiError(Exception):
    """A request the API refuses: ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


class AskRequest(BaseModel):
    """One question; ``k`` and ``mode`` default to the server's (``rag serve -k --mode``),
    ``threshold`` to the index's calibrated one."""

    model_config = ConfigDict(extra="forbid", strict=True)
    question: str = Field(max_length=MAX_QUESTION_CHARS, examples=[EXAMPLE_ANSWER["question"]])
    k: int | None = Field(None, ge=1, description="passages to retrieve and list")
    mode: Literal[MODES] | None = Field(None, description="retrieval mode")
    threshold: float | None = Field(
        None, allow_inf_nan=False, description="abstain below this confidence"
    )


def _error_line(err: dict) -> tuple[int, str]:
    """(status, one line) for pydantic's first validation error."""
    field = ".".join(str(p) for p in err.get("loc", ())) or "body"
    kind = err.get("type", "")
    if kind == "missing":
        return 422, f'"{field}" is missing: send {{"question": "..."}}'
    if kind == "extra_forbidden":
        return 422, f'unknown field "{field}" (the fields are {", ".join(ASK_FIELDS)})'
    if kind == "string_too_long" and field == "question":
        n = len(err.get("input", ""))
        return 413, f"the question is {n:,} characters long; the limit is {MAX_QUESTION_CHARS:,}"
    got = json.dumps(err.get("input"), ensure_ascii=False)
    if len(got) > 40:
        got = got[:37] + "..."
    return 422, f'"{field}": {err.get("msg", "invalid value")}, got {got}'


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


def parse_ask(body: bytes) -> AskRequest:
    """The AskRequest in ``body``, or ApiError with the status and one line."""
    if not body.strip():
        raise ApiError(400, 'the body is empty: send {"question": "..."}')
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(
            400, f"the body is not valid UTF-8 (byte 0x{body[e.start]:02x} at {e.start})"
        ) from None
    try:
        obj = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as e:
        raise ApiError(
            400, f"the body is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
        ) from None
    except ValueError as e:  # NaN, Infinity
        raise ApiError(400, f"the body is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ApiError(400, 'the body must be a JSON object: {"question": "..."}')
    try:
        return AskRequest.model_validate(obj)
    except ValidationError as e:
        raise ApiError(*_error_line(e.errors()[0])) from None


def check_basic(header: str | None, auth: tuple[str, str]) -> bool:
    """Whether an ``Authorization`` header carries ``auth`` as HTTP Basic credentials."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    ok_user = secrets.compare_digest(user.encode(), auth[0].encode())
    ok_password = secrets.compare_digest(password.encode(), auth[1].encode())
    return bool(sep) and ok_user and ok_password


class BasicAuth:
    """ASGI middleware: ``PROTECTED`` paths need the login as HTTP Basic auth (401 JSON
    otherwise); everything else (the UI, with its own login page) passes through."""

    def __init__(self, app, *, auth: tuple[str, str]) -> None:
        self.app, self.auth = app, auth

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and _protected(scope["path"]):
            headers = dict(scope.get("headers") or [])
            header = headers.get(b"authorization", b"").decode("latin-1")
            if not check_basic(header, self.auth):
                response = JSONResponse(
                    {"error": "login required: send the --auth USER:PASS as HTTP Basic auth"},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="rag"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _protected(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PROTECTED)


async def _read_body(request) -> bytes:
    """The request body, or 413 once it passes MAX_BODY_BYTES (checked while reading)."""
    too_big = ApiError(413, f"the body is over {MAX_BODY_BYTES // 1024} KiB")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_big
    return bytes(body)


def status_dict(service) -> dict:
    """``GET /api/status``: the index being served and each document's state against the
    seeds folder, plus the sync state."""
    manifest, status = service.status()
    docs = manifest.get("documents", {})
    sync = service.sync
    return {
        "model": manifest.get("model", {}).get("name"),
        "settings": manifest.get("settings"),
        "counts": manifest.get("counts"),
        "built_at": manifest.get("built_at"),
        "seeds": service.seeds_dir.as_posix(),
        "index": service.index_dir.as_posix(),
        "up_to_date": all(v == "indexed" for v in status.values()),
        "documents": [
            {"source": s, "state": v, "chunks": docs.get(s, {}).get("chunks")}
            for s, v in sorted(status.items())
        ],
        "watching": service.watching,
        "rebuild_running": sync.running is not None,
        "last_sync": _sync_dict(sync.last, service.message),
    }


def _sync_dict(record, message) -> dict | None:
    if record is None:
        return None
    out = record.to_dict()
    if out["error"] is not None:
        out["error"] = message(out["error"])  # no server paths in a response
    return out


def api_router(service):
    """The ``/api`` routes over ``service`` (``ui.handlers.Service``)."""
    router = APIRouter(tags=["api"])

    def answer(req) -> dict:
        return handlers.answer_json(service, req.question, req.k, req.mode, req.threshold)

    @router.post(
        "/api/ask",
        summary="Answer a question with cited sentences",
        description=(
            "The JSON of `rag ask --json`: `answer` quotes the documents' sentences with "
            "`[n]` markers; `citations` give each sentence's file and character span, best "
            "first. `abstained` is true when no sentence reaches the threshold."
        ),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": AskRequest.model_json_schema()}},
            }
        },
        responses={
            200: {"content": {"application/json": {"example": EXAMPLE_ANSWER}}},
            400: {"description": "body not UTF-8, not JSON or not an object"},
            413: {"description": "body over 64 KiB or question over 2,000 characters"},
            422: {"description": "missing, empty or invalid field"},
        },
    )
    async def ask(request: Request):
        req = parse_ask(await _read_body(request))
        try:
            result = await run_in_threadpool(answer, req)
        except (RagError, ValueError) as e:
            raise refused(e, service.message(e)) from None
        return JSONResponse(result)

    @router.get("/api/status", summary="The index being served and each document's state")
    def status():
        try:
            return JSONResponse(status_dict(service))
        except (RagError, OSError) as e:
            raise refused(e, service.message(e)) from None

    @router.post(
        "/api/rebuild",
        summary="Start the incremental rebuild",
        status_code=202,
        description=(
            "Brings the index up to date with the seeds folder in the background, as the "
            "UI's Rebuild button does, then answers from the new index. Poll "
            "`GET /api/status` (`rebuild_running`, `last_sync`) for the result. 409 when a "
            "rebuild is already running."
        ),
        responses={409: {"description": "a rebuild is already running"}},
    )
    def rebuild():
        if not service.sync.start("api"):
            raise ApiError(409, BUSY_MESSAGE)
        return JSONResponse(
            {"started": True, "message": "rebuild started: GET /api/status shows the result"},
            status_code=202,
        )

    @router.api_route(
        "/api/{rest:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    def unknown(request: Request):
        path = request.url.path
        if path in ROUTES:
            raise ApiError(405, f"{request.method} is not allowed here: use {ROUTES[path]} {path}")
        raise ApiError(404, f"no such endpoint: {path} (see /docs)")

    return router


def refused(exc: Exception, message: str) -> ApiError:
    """The ApiError for one of our errors; ``message``: its one line, as shown to users."""
    if isinstance(exc, IndexBusyError):
        return ApiError(409, message)
    if isinstance(exc, ValueError) and not isinstance(exc, IndexMismatchError):
        return ApiError(422, message)  # BadInputError, EmptyQuestionError: the request
    return ApiError(503, message)  # the index is missing or damaged: not the caller's fault


def _api_error(_request, exc: ApiError):
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)


def create_app(service, *, auth: tuple[str, str] | None):
    """The FastAPI app of the API over ``service`` (``ui.handlers.Service``): the routes, the
    OpenAPI page and, with ``auth``, HTTP Basic auth on them. ``ui.server`` mounts the
    Gradio UI on it at ``/``."""
    from fastapi_offline import FastAPIOffline

    app = FastAPIOffline(
        title="Cited API",
        description=(
            "Answers with the exact, cited sentences of the documents in the seeds folder. "
            "The same server serves the chat UI at `/`."
        ),
        version=_version(),
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        static_url="/docs/static",
    )
    app.add_exception_handler(ApiError, _api_error)
    app.include_router(api_router(service))
    if auth is not None:
        app.add_middleware(BasicAuth, auth=auth)
        _declare_basic_auth(app)
    return app


def _declare_basic_auth(app) -> None:
    """Say in the OpenAPI schema that /api takes HTTP Basic auth (the docs page then offers
    an Authorize button); the BasicAuth middleware enforces it."""
    base: Callable[[], dict] = app.openapi

    def openapi() -> dict:
        schema = base()
        schema.setdefault("components", {})["securitySchemes"] = {
            "basic": {"type": "http", "scheme": "basic"}
        }
        schema["security"] = [{"basic": []}]
        return schema

    app.openapi = openapi


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("rag")
    except metadata.PackageNotFoundError:
        return "0"
