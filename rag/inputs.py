"""Questions as they arrive: text from argv, a JSONL line on stdin, or an API call.

Undecodable input is refused, not repaired. A byte that is not UTF-8 (``\\xff``) usually
means the text was saved in another encoding; replacing it with U+FFFD would answer a
question the user did not ask, and silently. Python hands such bytes over as lone
surrogates (``surrogateescape`` for argv, and for stdin as ``read_question_lines`` reads
it); ``check_text`` refuses them with the position and the byte.
"""

from __future__ import annotations

import json
import math
import numbers
import operator
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from rag.display import without_surrogates
from rag.errors import BadInputError

_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(text: str, what: str = "the question", *, escaped_bytes: bool = True) -> str:
    """``text`` unchanged, or BadInputError when it holds an undecodable byte or a lone
    surrogate (which no UTF-8 text can hold).

    Args:
        escaped_bytes: ``text`` was decoded with ``surrogateescape``, so U+DC80..U+DCFF
            stand for undecodable bytes (False for text from JSON, where they are escapes).
    """
    m = _SURROGATE.search(text)
    if m is None:
        return text
    code = ord(m.group())
    if escaped_bytes and 0xDC80 <= code <= 0xDCFF:  # one undecodable byte
        detail = f"byte 0x{code - 0xDC00:02x} at character {m.start() + 1} is not UTF-8"
    else:
        detail = f"a lone surrogate U+{code:04X} at character {m.start() + 1}"
    raise BadInputError(f"{what} is not valid UTF-8 text ({detail}): send it as UTF-8")


def check_k(k: object) -> int:
    """``k`` as an int, or BadInputError unless it is a whole number >= 1.

    The library checks it, not only the CLI: a server API call with ``k=-1`` would
    otherwise slice the results (19 of 20) instead of being refused.
    """
    try:
        if isinstance(k, bool):
            raise TypeError
        n = operator.index(k)
    except TypeError:
        raise BadInputError(f"k must be a whole number >= 1, got {k!r}") from None
    if n < 1:
        raise BadInputError(f"k must be >= 1, got {n}")
    return n


def check_threshold(threshold: object) -> float:
    """``threshold`` as a float, or BadInputError unless it is a finite number.

    NaN would turn abstention off (every comparison with it is false) and infinity means
    "always" or "never"; both are refused. Finite values outside [0, 1] are allowed: the
    confidence is a weighted sum, not a probability, and ranges from
    about -0.85 to 1.35 (``rag.answer``'s weights and penalties), and ``rag eval
    --calibrate`` stores a midpoint between observed confidences, which may fall outside
    [0, 1].
    """
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise BadInputError(f"threshold must be a number, got {threshold!r}")
    value = float(threshold)
    if not math.isfinite(value):
        raise BadInputError(f"threshold must be a finite number, got {value}")
    return value


class BadLineError(BadInputError):
    """A JSONL question line that cannot be asked; ``id`` is the line's id if it had one."""

    def __init__(
        self, message: str, *, id: object = None, question: str | None = None, lineno: int = 0
    ):
        super().__init__(message)
        self.id = id
        self.question = question
        self.lineno = lineno


@dataclass(frozen=True)
class QuestionLine:
    """One question of a JSONL batch: ``id`` is None for a plain-text line."""

    lineno: int
    question: str
    id: object = None


def parse_question_line(line: str, lineno: int = 0) -> QuestionLine:
    """A line of ``rag ask --jsonl`` input: ``{"id": ..., "question": ...}`` or plain text.

    Raises:
        BadLineError: bad JSON, no ``question`` field, a question that is not text, or
            undecodable text; it carries the line's ``id`` whenever the line had one.
    """
    text = line.strip()
    if not text.startswith("{"):
        try:
            return QuestionLine(lineno, check_text(text))
        except BadInputError as e:
            raise BadLineError(str(e), question=text, lineno=lineno) from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadLineError(f"not valid JSON ({e.msg})", question=text, lineno=lineno) from None
    if not isinstance(obj, dict):
        raise BadLineError('a JSON line needs a "question" field', question=text, lineno=lineno)
    qid = obj.get("id")
    question = obj.get("question")
    try:
        check_text(text)  # undecodable bytes in the line itself
    except BadInputError as e:
        raise BadLineError(str(e), id=qid, question=question, lineno=lineno) from None
    if "question" not in obj:
        raise BadLineError('a JSON line needs a "question" field', id=qid, lineno=lineno)
    if not isinstance(question, str):
        raise BadLineError(
            f'"question" must be text, got {type(question).__name__}', id=qid, lineno=lineno
        )
    try:
        check_text(question, escaped_bytes=False)  # a "\ud800" escape in the JSON
    except BadInputError as e:
        raise BadLineError(str(e), id=qid, question=question, lineno=lineno) from None
    return QuestionLine(lineno, question, qid)


def read_question_lines(stream: Iterable[bytes]) -> Iterator[QuestionLine | BadLineError]:
    """Each non-blank line of a binary stream as a QuestionLine, or the BadLineError that
    says why it cannot be asked (the batch goes on: one bad line never stops it)."""
    for lineno, raw in enumerate(stream, start=1):
        line = raw.decode("utf-8", errors="surrogateescape")
        if not line.strip():
            continue
        try:
            yield parse_question_line(line, lineno)
        except BadLineError as e:
            yield e


def error_record(error: Exception, *, id: object = None, question: object = None) -> dict:
    """The JSON object a batch writes for a question it could not answer.

    Returns:
        ``{"id", "question", "error"}``, every string free of lone surrogates (valid JSON).
    """
    return {
        "id": _json_safe(id),
        "question": without_surrogates(question) if isinstance(question, str) else question,
        "error": without_surrogates(str(error)),
    }


def _json_safe(value: object) -> object:
    """``value`` (any JSON value) with lone surrogates replaced in every string it holds."""
    return json.loads(without_surrogates(json.dumps(value, ensure_ascii=False)))
