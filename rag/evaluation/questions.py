"""Question sets: the JSONL format, loading with a check of every line, and lookup.

One question a line; the fields and their meanings are in ``evals/README.md``. Every line is
checked before anything runs, and an error names the file and the line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.errors import BadInputError
from rag.settings import EVALS_DIR

FIELDS = ("id", "question", "answers", "source", "span", "kind")


@dataclass(frozen=True)
class Question:
    """One line of a question set.

    Attributes:
        answers: acceptable answers; ``()`` means the documents do not answer the question
            (the assistant should abstain); None means no gold answer was given.
        source, span: the gold document (path relative to the seeds folder) and the
            character range of the passage that answers the question, when known.
        kind: a free label used to break the metrics down.
        line: 1-based line of the question set it was read from.
    """

    id: str
    question: str
    answers: tuple[str, ...] | None = None
    source: str | None = None
    span: tuple[int, int] | None = None
    kind: str | None = None
    line: int = 0

    @property
    def answerable(self) -> bool:
        return bool(self.answers)

    @property
    def unanswerable(self) -> bool:
        return self.answers == ()


def load_question_set(path: Path | str) -> list[Question]:
    """Read and validate a JSONL question set; every line is checked before anything runs.

    Raises:
        BadInputError: the file is missing or unreadable, holds no question, or a line is not
            valid; the message names the file and the line.

    Returns:
        The questions in file order, with unique ids (``line-<n>`` when a line has none).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BadInputError(f"question set not found: {path}") from None
    except UnicodeDecodeError:
        raise BadInputError(f"{path} is not UTF-8 text: save it as UTF-8 JSONL") from None
    except OSError as e:
        raise BadInputError(f"cannot read question set {path}: {e.strerror or e}") from None
    questions: list[Question] = []
    seen: dict[str, int] = {}
    # split("\n"), not splitlines(): U+2028 and friends may sit inside JSON strings.
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            q = _parse_line(line, lineno)
        except BadInputError as e:
            raise BadInputError(f"{path}, line {lineno}: {e}") from None
        if q.id in seen:
            raise BadInputError(
                f"{path}, line {lineno}: id {q.id!r} is already used on line {seen[q.id]}"
            )
        seen[q.id] = lineno
        questions.append(q)
    if not questions:
        raise BadInputError(f"{path} holds no questions: write one JSON object a line")
    return questions


def _parse_line(line: str, lineno: int) -> Question:
    obj = _json_object(line)
    question = _question_text(obj.get("question"))
    qid = _question_id(obj.get("id"), lineno)
    answers = _answers(obj.get("answers"))
    source = obj.get("source")
    if source is not None and (not isinstance(source, str) or not source.strip()):
        raise BadInputError(f'"source" must be a file name in the seeds folder, got {source!r}')
    span = _span(obj.get("span"), source)
    if answers == () and source is not None:
        raise BadInputError(
            '"answers" is [] (the documents do not answer it) but a gold "source" is given: '
            "drop one of them"
        )
    kind = obj.get("kind")
    if kind is not None and (not isinstance(kind, str) or not kind.strip()):
        raise BadInputError(f'"kind" must be a non-empty string, got {kind!r}')
    return Question(
        id=qid,
        question=question,
        answers=answers,
        source=source,
        span=span,
        kind=kind,
        line=lineno,
    )


def _json_object(line: str) -> dict:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise BadInputError(f"not valid JSON ({e.msg}, column {e.colno})") from None
    if not isinstance(obj, dict):
        raise BadInputError(
            f'expected a JSON object like {{"question": "..."}}, got {type(obj).__name__}'
        )
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        raise BadInputError(
            f"unknown field {', '.join(map(repr, unknown))} (fields: {', '.join(FIELDS)})"
        )
    return obj


def _question_text(question: object) -> str:
    if question is None:
        raise BadInputError('missing "question"')
    if not isinstance(question, str):
        raise BadInputError(f'"question" must be a string, got {question!r}')
    if not question.strip():
        raise BadInputError('"question" is empty')
    return question.strip()


def _question_id(qid: object, lineno: int) -> str:
    if qid is None:
        return f"line-{lineno}"
    if isinstance(qid, bool) or not isinstance(qid, str | int) or not str(qid).strip():
        raise BadInputError(f'"id" must be a non-empty string or a number, got {qid!r}')
    return str(qid).strip()


def _answers(answers: object) -> tuple[str, ...] | None:
    if answers is None:
        return None
    if not isinstance(answers, list) or not all(isinstance(a, str) and a.strip() for a in answers):
        raise BadInputError(
            '"answers" must be a list of non-empty strings ([] means the documents do not '
            f"answer it), got {answers!r}"
        )
    return tuple(answers)


def _span(span: object, source: str | None) -> tuple[int, int] | None:
    if span is None:
        return None
    if (
        not isinstance(span, list)
        or len(span) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in span)
        or not 0 <= span[0] < span[1]
    ):
        raise BadInputError(f'"span" must be [start, end] with 0 <= start < end, got {span!r}')
    if source is None:
        raise BadInputError('"span" needs a "source" (the document it points into)')
    return span[0], span[1]


def check_against_index(questions: Sequence[Question], index, *, path: Path | str) -> None:
    """Check every gold source and span against the index's documents before running.

    Raises:
        BadInputError: naming the line of the first question whose source is not indexed or
            whose span runs past the end of its document.
    """
    docs = index.documents
    for q in questions:
        if q.source is None:
            continue
        if q.source not in docs:
            hint = ", ".join(sorted(docs)[:5]) + (", ..." if len(docs) > 5 else "")
            raise BadInputError(
                f"{path}, line {q.line}: source {q.source!r} is not in the index at "
                f"{index.path}/ (it holds: {hint or 'nothing'}); pass the right --seeds"
            )
        if q.span is not None and q.span[1] > len(docs[q.source].text):
            raise BadInputError(
                f"{path}, line {q.line}: span {list(q.span)} runs past the end of {q.source} "
                f"({len(docs[q.source].text)} characters)"
            )


def list_question_sets(evals_dir: Path | str = EVALS_DIR) -> list[Path]:
    """Every question set (``*.jsonl``) under ``evals_dir``, reports left out, sorted."""
    evals_dir = Path(evals_dir)
    if not evals_dir.is_dir():
        return []
    return sorted(
        p
        for p in evals_dir.rglob("*.jsonl")
        if "reports" not in p.relative_to(evals_dir).parts and p.is_file()
    )


def set_documents(questions_path: Path | str) -> Path | None:
    """The documents a question set comes with: ``<set>-corpus/`` beside ``<set>.jsonl``,
    else ``corpus/`` beside it; None when it has none (it is asked of the main index)."""
    path = Path(questions_path)
    for corpus in (path.parent / f"{path.stem}-corpus", path.parent / "corpus"):
        if corpus.is_dir():
            return corpus
    return None


def default_name(questions_path: Path | str) -> str:
    """Report name for a question set: its folder's name, plus the file's stem unless
    the file is called ``questions.jsonl`` (``evals/squad-sample/smoke.jsonl`` ->
    ``squad-sample-smoke``)."""
    path = Path(questions_path).resolve()
    folder = path.parent.name or "eval"
    return folder if path.stem == "questions" else f"{folder}-{path.stem}"
