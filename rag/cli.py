"""The ``rag`` command: index, ask, eval, serve, status.

Every predictable mistake (missing index, empty question, bad flag, bad input line) prints
one line on stderr and exits non-zero; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rag.display import printable
from rag.errors import BadInputError, RagError

EXIT_ERROR = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _unit(value: str) -> float:
    from rag.inputs import check_threshold

    try:
        return check_threshold(float(value))
    except ValueError as e:  # not a number, NaN or infinite
        raise argparse.ArgumentTypeError(f"expected a finite number, got {value!r}") from e


def _common(
    p: argparse.ArgumentParser,
    *,
    seeds: Path | None = Path("seeds"),
    seeds_help: str = "documents folder (default: seeds/)",
    index: Path | None = Path("index"),
) -> None:
    """--seeds and --index; a subcommand with other meanings passes its defaults and help."""
    p.add_argument("--seeds", type=Path, default=seeds, metavar="DIR", help=seeds_help)
    p.add_argument(
        "--index", type=Path, default=index, metavar="DIR", help="index folder (default: index/)"
    )


def _retrieval(p: argparse.ArgumentParser, *, k: int | None = None) -> None:
    """-k (default ``DEFAULT_K`` unless given) and --mode."""
    from rag.retrieval import DEFAULT_K, DEFAULT_MODE, MODES

    k = DEFAULT_K if k is None else k
    p.add_argument("-k", type=_positive, default=k, help=f"passages to retrieve (default: {k})")
    p.add_argument(
        "--mode",
        choices=MODES,
        default=DEFAULT_MODE,
        help=f"retrieval mode (default: {DEFAULT_MODE})",
    )


def build_parser() -> argparse.ArgumentParser:
    from rag.answer import DEFAULT_MAX_SENTENCES

    parser = _Parser(
        prog="rag",
        description="Answer questions with exact, cited sentences from the documents in seeds/.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("index", help="build or update the index from the seeds folder")
    _common(p)
    p.add_argument(
        "--model",
        help="sentence-transformers model name or path (default: the index's, or all-MiniLM-L6-v2)",
    )
    p.add_argument("--chunk-tokens", type=_positive, help="chunk budget in cl100k tokens")
    p.add_argument("--overlap", type=int, help="sentences of overlap between chunks")
    p.add_argument("--rebuild", action="store_true", help="start over: re-chunk and re-embed all")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--watch",
        action="store_true",
        help="then keep watching the seeds folder and update the index when files change",
    )
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", help="answer a question (or a JSONL batch from stdin)")
    _common(p)
    _retrieval(p)
    p.add_argument("question", nargs="?", help="the question (omit with --jsonl)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print one JSON answer")
    out.add_argument(
        "--jsonl",
        action="store_true",
        help="read questions from stdin (JSON lines or plain text), write one JSON answer a line",
    )
    p.add_argument("--threshold", type=_unit, help="abstain below this confidence")
    p.add_argument(
        "--max-sentences",
        type=_positive,
        default=DEFAULT_MAX_SENTENCES,
        help=f"sentences shown (default {DEFAULT_MAX_SENTENCES})",
    )
    p.add_argument("--model", help="refuse to answer unless the index was built with this model")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser(
        "status", help="documents and whether each is indexed, changed, new or deleted"
    )
    _common(p)
    p.set_defaults(func=cmd_status)

    for register in _extensions():
        register(sub, _common, _retrieval)
    return parser


def _extensions():
    """Subcommands that live beside their feature (eval, serve) register themselves here."""
    out = []
    try:
        from rag.evaluation import register_cli
    except ImportError:
        pass
    else:
        out.append(register_cli)
    try:
        from ui.app import register_cli as register_serve
    except ImportError:
        pass
    else:
        out.append(register_serve)
    return out


def cmd_index(args) -> int:
    from rag.settings import IndexSettings
    from rag.store import build_index, read_manifest

    settings = None
    if args.model or args.chunk_tokens or args.overlap is not None:
        previous = read_manifest(args.index) if not args.rebuild else None
        base = IndexSettings(**previous["settings"]) if previous else IndexSettings()
        settings = base.overridden(
            model=args.model, chunk_tokens=args.chunk_tokens, overlap_sentences=args.overlap
        )
    report = build_index(
        args.seeds,
        args.index,
        settings=settings,
        rebuild=args.rebuild,
        progress=not args.quiet and sys.stderr.isatty(),
        warn=lambda m: print(f"warning: {printable(m)}", file=sys.stderr),
    )
    print(printable(report, keep_lines=True), flush=True)
    if args.watch:
        _watch(args.seeds, args.index)
    return 0


def _watch(seeds: Path, index: Path) -> None:
    """``rag index --watch``: a line per sync until Ctrl+C."""
    from rag.watch import FolderWatcher, IndexSync

    def warn(message: str) -> None:
        print(f"warning: {printable(message)}", file=sys.stderr)

    sync = IndexSync(seeds, index, warn=warn)
    print(f"watching {printable(str(seeds))}/ for changes (Ctrl+C to stop)", flush=True)
    try:
        FolderWatcher(sync, on_sync=lambda r: print(printable(r.line()), flush=True)).run()
    except KeyboardInterrupt:  # Ctrl+C in a build: the build is atomic, the index intact
        pass
    print("stopped watching", flush=True)


def _print_answer(answer) -> None:
    # Names and sentences come from the documents: escape what could drive the terminal.
    print(printable(answer.answer, keep_lines=True))
    if not answer.citations:
        return
    print()
    label = "Nearest passages (not confident):" if answer.abstained else "Sources:"
    print(label)
    for c in answer.citations:
        where = f"page {c.page}" if c.page else f"lines {c.line_start}-{c.line_end}"
        print(
            f"  [{c.n}] {printable(c.source)}, {where}, chars {c.highlight[0]}-{c.highlight[1]} "
            f"(score {c.score:.2f})"
        )
        print(f"      {printable(' '.join(c.sentence.split()))}")


def warn_if_stale(seeds: Path, index: Path, fix: str = "run `rag index`") -> None:
    """A note on stderr when documents in ``seeds`` changed since ``index`` was built."""
    from rag.store import index_status

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
    from rag.answer import Assistant
    from rag.inputs import BadLineError, error_record, read_question_lines
    from rag.retrieval import check_question

    if args.jsonl:
        if args.question:
            raise BadInputError("--jsonl reads questions from stdin: leave out the question")
    elif args.question is None:
        raise BadInputError('no question given: rag ask "your question" (or --jsonl)')
    else:
        check_question(args.question)  # before loading the index
    assistant = Assistant(args.index, model=args.model, threshold=args.threshold)
    opts = dict(k=args.k, mode=args.mode, max_sentences=args.max_sentences)
    if not args.jsonl:
        answer = assistant.ask(args.question, **opts)
        if args.json:
            print(json.dumps(answer.to_dict(), ensure_ascii=False))
        else:
            _print_answer(answer)
            warn_if_stale(args.seeds, args.index)
        return 0

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
    from rag.errors import IndexDamagedError
    from rag.store import Index, index_status, read_manifest

    damaged = None
    try:
        Index.load(args.index)  # the checks of `rag ask`: a damaged index is not "indexed"
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
            f"{s['overlap_sentences']}, built {manifest['built_at']}"
        )
    elif damaged is None:
        print(printable(f"no index in {args.index}/: run `rag index`"))
    if damaged is not None:
        print(f"rag: {printable(str(damaged))}", file=sys.stderr)
        return EXIT_ERROR
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
