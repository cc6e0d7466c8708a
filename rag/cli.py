"""The ``rag`` command: index, ask, status, eval and serve, every parser in this file.

The CLI is a shell over the library (``rag`` never imports it). Every predictable mistake
(missing index, empty question, bad flag, bad input line) prints one line on stderr and exits
non-zero; tracebacks are for bugs only. Flags share one set of argument types (``_positive``,
``_fraction``) and warnings one printer (``_warn``). Text from documents and file names
is printed through ``rag.display.printable``, so it can never drive the terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from rag.answer import DEFAULT_MAX_SENTENCES, Answer, Assistant
from rag.display import printable
from rag.errors import BadInputError, IndexDamagedError, RagError
from rag.evaluation import EVAL_K, EvalReport, check_floors, display_path, load_floors, run_eval
from rag.inputs import BadLineError, check_threshold, error_record, read_question_lines
from rag.retrieval import DEFAULT_K, DEFAULT_MODE, MODES, check_question
from rag.settings import (
    EVALS_DIR,
    INDEX_CACHE_DIR,
    INDEX_DIR,
    REPORTS_DIR,
    SEEDS_DIR,
    IndexSettings,
)
from rag.store import index_status, read_manifest
from rag.stores import build_store, check_store, current_store, open_store
from rag.watch import FolderWatcher, IndexSync

EXIT_ERROR = 1
EXIT_USAGE = 2
#: ``rag serve``'s defaults: this machine only, Gradio's usual port, 4 questions at a time.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_CONCURRENCY = 4
THRESHOLD_HELP = "abstain when the probability that the answer is right is below this (0-1)"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive(value: str) -> int:
    """A whole number >= 1."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _fraction(value: str) -> float:
    """An abstention threshold: a probability from 0 to 1 (``rag.inputs.check_threshold``).

    The confidence is the learned scorer's calibrated probability that the answer is right,
    so anything outside [0, 1] (and NaN, which would turn abstention off) is refused.
    """
    try:
        return check_threshold(float(value))
    except ValueError as e:  # not a number, NaN or outside [0, 1]
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {value!r}") from e


def _warn(message: str) -> None:
    """The one warning printer: ``warning: ...`` on stderr."""
    print(f"warning: {printable(message)}", file=sys.stderr)


def _folders(
    p: argparse.ArgumentParser,
    *,
    seeds: Path | None = SEEDS_DIR,
    seeds_help: str = f"documents folder (default: {SEEDS_DIR}/)",
    index: Path | None = INDEX_DIR,
) -> None:
    """--seeds and --index; a subcommand with other meanings passes its defaults and help."""
    p.add_argument("--seeds", type=Path, default=seeds, metavar="DIR", help=seeds_help)
    p.add_argument(
        "--index",
        type=Path,
        default=index,
        metavar="DIR",
        help=f"index folder (default: {INDEX_DIR}/)",
    )


def _store_type(value: str) -> str:
    """A ``--store`` value (``rag.stores.check_store``), refused in argparse's one line."""
    try:
        return check_store(value)
    except BadInputError as e:
        raise argparse.ArgumentTypeError(str(e).replace("--store must be", "expected")) from None


def _store(p: argparse.ArgumentParser, *, what: str = "the index") -> None:
    """--store: where ``what`` keeps its rows, chosen at build time (see README "Stores")."""
    p.add_argument(
        "--store",
        type=_store_type,
        metavar="STORE",
        help=f"where {what} lives: faiss (files in the index folder), milvus://PATH.db "
        "(Milvus Lite) or http://HOST:19530 (a Milvus server); default: the store the "
        "index already names, else faiss. Another store than the index's rebuilds it there",
    )


def _retrieval(p: argparse.ArgumentParser, *, k: int = DEFAULT_K) -> None:
    """-k and --mode."""
    p.add_argument("-k", type=_positive, default=k, help=f"passages to retrieve (default: {k})")
    p.add_argument(
        "--mode",
        choices=MODES,
        default=DEFAULT_MODE,
        help=f"retrieval mode (default: {DEFAULT_MODE})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rag",
        description="Answer questions with exact, cited sentences from the documents in seeds/.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_index(sub)
    _add_ask(sub)
    _add_status(sub)
    _add_eval(sub)
    _add_serve(sub)
    return parser


def _add_index(sub) -> None:
    p = sub.add_parser("index", help="build or update the index from the seeds folder")
    _folders(p)
    p.add_argument(
        "--model",
        help="sentence-transformers model name or path (default: the index's, or all-MiniLM-L6-v2)",
    )
    p.add_argument("--chunk-tokens", type=_positive, help="chunk budget in cl100k tokens")
    p.add_argument("--overlap", type=int, help="sentences of overlap between chunks")
    p.add_argument("--rebuild", action="store_true", help="start over: re-chunk and re-embed all")
    _store(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--watch",
        action="store_true",
        help="then keep watching the seeds folder and update the index when files change",
    )
    p.set_defaults(func=cmd_index)


def _add_ask(sub) -> None:
    p = sub.add_parser("ask", help="answer a question (or a JSONL batch from stdin)")
    _folders(p)
    _retrieval(p)
    p.add_argument("question", nargs="?", help="the question (omit with --jsonl)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print one JSON answer")
    out.add_argument(
        "--jsonl",
        action="store_true",
        help="read questions from stdin (JSON lines or plain text), write one JSON answer a line",
    )
    p.add_argument("--threshold", type=_fraction, help=THRESHOLD_HELP)
    p.add_argument(
        "--max-sentences",
        type=_positive,
        default=DEFAULT_MAX_SENTENCES,
        help=f"sentences shown (default {DEFAULT_MAX_SENTENCES})",
    )
    p.add_argument("--model", help="refuse to answer unless the index was built with this model")
    p.set_defaults(func=cmd_ask)


def _add_status(sub) -> None:
    p = sub.add_parser(
        "status", help="documents and whether each is indexed, changed, new or deleted"
    )
    _folders(p)
    p.set_defaults(func=cmd_status)


def _add_eval(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="run a question set and report where and why answers fail",
        description="Answer every question of a JSONL question set, print a table of metrics "
        f"and write report.json, report.md, results.jsonl and plots under "
        f"{REPORTS_DIR}/<name>/ (definitions: evals/README.md).",
    )
    # Same flags as `rag ask`, other defaults: without --seeds the index is used as it is, and
    # EVAL_K passages are retrieved (the answer uses the best 5 either way) to measure hit@10.
    # None marks "not given" (--seeds with --index, --mode with --compare are refused).
    _folders(
        p,
        seeds=None,
        seeds_help=f"documents folder: build or refresh its index in {INDEX_CACHE_DIR}/ and "
        "evaluate on it (default: use --index as it is)",
        index=None,
    )
    _retrieval(p, k=EVAL_K)
    p.set_defaults(mode=None, func=cmd_eval)
    p.add_argument("questions", type=Path, metavar="QUESTIONS", help="question set (JSONL)")
    p.add_argument(
        "--compare",
        metavar="RUNS",
        help="comma-separated runs to compare on one index: modes, optionally MODE@k=N "
        "(for example hybrid,dense,bm25,dense@k=1)",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="choose the abstention threshold on this set and store it in the index",
    )
    p.add_argument("--threshold", type=_fraction, help=THRESHOLD_HELP)
    p.add_argument("--name", help="report folder name (default: from the question set)")
    p.add_argument(
        "--reports",
        type=Path,
        default=REPORTS_DIR,
        metavar="DIR",
        help=f"where report folders go (default: {REPORTS_DIR}/)",
    )
    p.add_argument("--limit", type=_positive, metavar="N", help="run the first N questions only")
    p.add_argument(
        "--floors",
        type=Path,
        metavar="FILE",
        help='fail (exit 1) when the first run misses these floors: {"min": {...}, "max": {...}}',
    )
    p.add_argument(
        "--chunk-tokens", type=_positive, help="with --seeds: chunk budget in cl100k tokens"
    )
    p.add_argument("--overlap", type=int, help="with --seeds: sentences of overlap between chunks")
    _store(p, what="the index built from --seeds")


def _add_serve(sub) -> None:
    p = sub.add_parser(
        "serve", help=f"serve the chat UI (default http://{DEFAULT_HOST}:{DEFAULT_PORT})"
    )
    _folders(p)
    _retrieval(p)
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to bind (default {DEFAULT_HOST}: this machine only)",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument(
        "--auth", metavar="USER:PASS", help="require this login (or set RAG_AUTH=USER:PASS)"
    )
    p.add_argument("--threshold", type=_fraction, help=THRESHOLD_HELP + " (default: calibrated)")
    p.add_argument(
        "--evals",
        type=Path,
        default=EVALS_DIR,
        metavar="DIR",
        help=f"question sets for the Eval tab (default: {EVALS_DIR}/)",
    )
    p.add_argument(
        "--concurrency",
        type=_positive,
        default=DEFAULT_CONCURRENCY,
        help=f"questions answered at once (default {DEFAULT_CONCURRENCY})",
    )
    p.add_argument(
        "--no-build",
        action="store_true",
        help="serve the index as it is, without updating it from the seeds folder",
    )
    _store(p)
    p.add_argument(
        "--watch",
        action="store_true",
        help="follow the seeds folder: rebuild and swap in the index when files change",
    )
    p.set_defaults(func=cmd_serve)


# --------------------------------------------------------------------------- commands


def cmd_index(args) -> int:
    settings = None
    if args.model or args.chunk_tokens or args.overlap is not None:
        previous = read_manifest(args.index) if not args.rebuild else None
        base = IndexSettings(**previous["settings"]) if previous else IndexSettings()
        settings = base.overridden(
            model=args.model, chunk_tokens=args.chunk_tokens, overlap_sentences=args.overlap
        )
    report = build_store(
        args.seeds,
        args.index,
        store=args.store,
        settings=settings,
        rebuild=args.rebuild,
        progress=not args.quiet and sys.stderr.isatty(),
        warn=_warn,
    )
    print(printable(report, keep_lines=True), flush=True)
    if args.watch:
        _watch(args.seeds, args.index)
    return 0


def _watch(seeds: Path, index: Path) -> None:
    """``rag index --watch``: a line per sync until Ctrl+C.

    The first Ctrl+C asks the watcher to stop: a sync in progress finishes, then the watch
    ends through its stop event. Raised as KeyboardInterrupt inside watchfiles' loop
    instead, it sometimes left the process hanging on a loaded machine without a word
    (tests/test_watch.py). A second Ctrl+C interrupts at once; a build is atomic, so the
    index stays intact either way.
    """
    import signal

    sync = IndexSync(seeds, index, warn=_warn)  # in the store the index names now
    watcher = FolderWatcher(sync, on_sync=lambda r: print(printable(r.line()), flush=True))

    def stop(signum, frame) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        watcher.stop()

    previous = signal.signal(signal.SIGINT, stop)
    print(f"watching {printable(str(seeds))}/ for changes (Ctrl+C to stop)", flush=True)
    try:
        watcher.run()
    except KeyboardInterrupt:  # the second Ctrl+C
        pass
    finally:
        signal.signal(signal.SIGINT, previous)
    print("stopped watching", flush=True)


def _print_answer(answer: Answer) -> None:
    # Names and sentences come from the documents: escape what could drive the terminal.
    print(printable(answer.answer, keep_lines=True))
    p = answer.probability
    print(f"(confidence {p:.2f}: right about {round(p * 10)} times in 10)")
    if not answer.citations:
        return
    print()
    label = "Nearest passages (not confident):" if answer.abstained else "Sources:"
    print(label)
    for c in answer.citations:
        where = f"page {c.page}" if c.page else f"lines {c.line_start}-{c.line_end}"
        if c.location:  # a heading or chapter title: document text, escaped like it
            where = printable(c.location)
        print(
            f"  [{c.n}] {printable(c.source)}, {where}, chars {c.highlight[0]}-{c.highlight[1]} "
            f"(score {c.score:.2f})"
        )
        print(f"      {printable(' '.join(c.sentence.split()))}")


def warn_if_stale(seeds: Path, index: Path, fix: str = "run `rag index`") -> None:
    """A note on stderr when documents in ``seeds`` changed since ``index`` was built."""
    if not seeds.is_dir():
        return
    try:
        stale = [s for s, v in index_status(seeds, index).items() if v != "indexed"]
    except (RagError, OSError):
        return
    if stale:
        note = f"note: {len(stale)} document(s) in {seeds}/ changed since {index}/ was built: {fix}"
        print(printable(note), file=sys.stderr)


def cmd_ask(args) -> int:
    if args.jsonl:
        if args.question:
            raise BadInputError("--jsonl reads questions from stdin: leave out the question")
    elif args.question is None:
        raise BadInputError('no question given: rag ask "your question" (or --jsonl)')
    else:
        check_question(args.question)  # before loading the index
    assistant = Assistant(args.index, model=args.model, threshold=args.threshold)
    opts = dict(k=args.k, mode=args.mode, max_sentences=args.max_sentences)
    if args.jsonl:
        return _ask_jsonl(assistant, opts)
    answer = assistant.ask(args.question, **opts)
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False))
    else:
        _print_answer(answer)
        warn_if_stale(args.seeds, args.index)
    return 0


def _ask_jsonl(assistant: Assistant, opts: dict) -> int:
    """One JSON answer a line of stdin; a bad line gets an error object and the batch goes on."""
    failures = 0
    # Bytes, decoded line by line: one undecodable line gets an error, the batch goes on.
    for item in read_question_lines(sys.stdin.buffer):
        try:
            if isinstance(item, BadLineError):
                raise item
            out = assistant.ask(item.question, id=item.id, **opts).to_dict()
        except (RagError, ValueError) as e:
            failures += 1
            print(f"rag: line {item.lineno}: {printable(e)}", file=sys.stderr)
            out = error_record(e, id=item.id, question=item.question)
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    return EXIT_ERROR if failures else 0


def cmd_status(args) -> int:
    damaged = None
    try:
        open_store(args.index).close()  # `rag ask`'s checks: a damaged index is not "indexed"
    except IndexDamagedError as e:
        damaged = e
    except RagError:
        pass  # no index, or another format: the rows below say so
    try:
        manifest = read_manifest(args.index) or {}
    except IndexDamagedError:
        manifest = {}
    status = index_status(args.seeds, args.index, manifest=manifest)
    if damaged is not None:
        status = {s: "damaged" if v in ("indexed", "changed") else v for s, v in status.items()}
    docs = manifest.get("documents", {})
    for source, state in sorted(status.items()):
        chunks = docs.get(source, {}).get("chunks", "-")
        print(f"{state:8} {chunks!s:>6}  {printable(source)}")
    if manifest and damaged is None:
        s = manifest["settings"]
        print(
            f"model {s['model']}, {s['chunk_tokens']} tokens/chunk, overlap "
            f"{s['overlap_sentences']}, built {manifest['built_at']}, store "
            f"{printable(current_store(args.index))}"
        )
    elif damaged is None:
        print(printable(f"no index in {args.index}/: run `rag index`"))
    if damaged is not None:
        print(f"rag: {printable(str(damaged))}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def cmd_eval(args) -> int:
    if args.compare and args.mode:
        raise BadInputError("give --mode or --compare, not both")
    if args.seeds is not None and args.index is not None:
        raise BadInputError(
            "--seeds evaluates on its own cached index: leave out --index "
            "(or run `rag index --seeds DIR --index DIR` and pass --index only)"
        )
    overrides = {"chunk_tokens": args.chunk_tokens, "overlap_sentences": args.overlap}
    if args.seeds is None and any(v is not None for v in overrides.values()):
        raise BadInputError("--chunk-tokens and --overlap need --seeds (the index is built then)")
    if args.seeds is None and args.store is not None:
        raise BadInputError(
            "--store needs --seeds (the index is built then); --index is used in its own store"
        )
    floors = load_floors(args.floors) if args.floors else None
    settings = IndexSettings().overridden(**overrides) if args.seeds is not None else None
    index = args.index or INDEX_DIR
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty and (done == total or done % 10 == 0):
            end = "\n" if done == total else ""
            print(f"\reval: {done}/{total} answers", end=end, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    report = run_eval(
        args.questions,
        seeds=args.seeds,
        index=index,
        k=args.k,
        mode=args.mode or DEFAULT_MODE,
        modes=args.compare,
        threshold=args.threshold,
        name=args.name,
        reports_dir=args.reports,
        calibrate=args.calibrate,
        limit=args.limit,
        progress=progress,
        settings=settings,
        build_progress=tty,
        warn=_warn,
        store=args.store,
    )
    if args.seeds is None:
        warn_if_stale(SEEDS_DIR, index, fix="run `rag index` (or pass --seeds)")
    _print_eval(report, seconds=time.perf_counter() - t0)
    if floors:
        failures = check_floors(report.rows[0], floors)
        for f in failures:
            print(f"rag: floor missed: {f}", file=sys.stderr)
        if failures:
            return EXIT_ERROR
    return 0


def _print_eval(report: EvalReport, *, seconds: float) -> None:
    print(report.table())
    print()
    print(f"threshold {report.threshold:.4f} ({report.threshold_source})")
    if report.calibration:
        c = report.calibration
        print(
            f"calibrated: threshold {c.threshold:.4f} answers {c.answered:.1%} of "
            f"{c.n_answerable} answerable and abstains on {c.abstained:.1%} of "
            f"{c.n_unanswerable} unanswerable questions (balanced accuracy "
            f"{c.balanced_accuracy:.3f}); stored in "
            f"{display_path(report.index_dir)}/calibration.json"
        )
    print(f"report: {display_path(report.report_dir)}/report.md ({seconds:.0f}s)")


def cmd_serve(args) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read when gradio is imported
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # The one import of the UI layer, here and plainly: only `rag serve` needs it (and
    # gradio), and a broken UI module fails this command with its own import error.
    from ui import server

    if not 1 <= args.port <= 65535:
        raise BadInputError(f"--port must be 1..65535, got {args.port}")
    auth = server.parse_auth(args.auth or os.environ.get("RAG_AUTH"))
    if not server.is_loopback(args.host) and auth is None:
        _warn(
            f"serving on {args.host} without --auth: anyone who can reach this "
            "machine can read the documents and add files"
        )
    if args.no_build and args.store is not None:
        raise BadInputError("--store builds the index: leave out --no-build")
    if not args.no_build:
        report = build_store(
            args.seeds, args.index, store=args.store, progress=sys.stderr.isatty(), warn=_warn
        )
        print(printable(report, keep_lines=True))
        sys.stdout.flush()
    server.serve(
        Assistant(args.index, threshold=args.threshold),
        seeds_dir=args.seeds,
        evals_dir=args.evals,
        k=args.k,
        mode=args.mode,
        host=args.host,
        port=args.port,
        auth=auth,
        concurrency=args.concurrency,
        watch=args.watch,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("rag: interrupted", file=sys.stderr)
        return 130
    except (RagError, ValueError, OSError) as e:
        print(f"rag: {printable(e)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
