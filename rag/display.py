"""Text that is safe to show: control characters escaped for a terminal, server paths hidden
from a browser.

Names come from the file system and sentences from documents; either may hold a newline, an
ANSI escape (``\\x1b[2J`` clears the screen) or a bidi override, which would fake or hide
lines of ``rag status``. ``printable`` shows each such character the way ``repr`` does.

Error messages may quote a path the library resolved (a temporary file, a folder's absolute
location); ``public_message`` rewrites them relative to the folders the user named, so a
browser never learns where the server keeps its files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

#: C0 and C1 controls, DEL, line/paragraph separators, bidi controls and lone surrogates.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_UNSAFE_KEEP_LINES = re.compile(_UNSAFE.pattern.replace("\x00-\x1f", "\x00-\x08\x0b-\x1f"))


def _escape(match: re.Match) -> str:
    ch = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch) or (
        f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"
    )


def printable(text: object, *, keep_lines: bool = False) -> str:
    """``text`` with every control character written as its escape (``\\n``, ``\\x1b``,
    ``\\u202e``), for a terminal or a one-line log.

    Args:
        keep_lines: leave newlines and tabs as they are (for multi-line text such as an
            answer); every other control character is still escaped.

    Returns:
        A string without control, bidi-override or surrogate characters (with
        ``keep_lines``: none but ``\\n`` and ``\\t``).
    """
    pattern = _UNSAFE_KEEP_LINES if keep_lines else _UNSAFE
    return pattern.sub(_escape, str(text))


def without_surrogates(text: str) -> str:
    """``text`` with each lone surrogate (an undecodable byte kept by ``surrogateescape``)
    replaced by U+FFFD, so it can be written as UTF-8 or JSON."""
    return re.sub("[\ud800-\udfff]", "\ufffd", text)


# An absolute POSIX path: a "/" that does not continue a word, a relative path or a URL,
# then no whitespace, quote or bracket.
_ABSOLUTE = re.compile(r"""(?<![\w.~/:])/[^\s'"()<>\[\]{},;]*""")


def public_message(message: object, folders: Mapping[str, Path | str]) -> str:
    """An error message fit for a browser: absolute paths rewritten.

    Args:
        folders: the folders the user named, by the name to show them under, e.g.
            ``{"seeds": Path("seeds"), "index": Path("/srv/cited/index")}``.

    Returns:
        ``message`` with each absolute path inside one of ``folders`` shown as
        ``name/relative/part``, one inside the working folder as a relative path, and any
        other as its last component only. Control characters are escaped.
    """
    roots = []
    for name, folder in folders.items():
        try:
            roots.append((Path(folder).resolve(), name))
        except OSError:
            continue
    roots.append((Path.cwd().resolve(), "."))
    roots.sort(key=lambda r: -len(r[0].parts))  # the most specific folder first

    def show(match: re.Match) -> str:
        raw = match.group()
        trail = len(raw) - len(raw.rstrip(".:"))  # "…/file.txt." ends a sentence
        path = Path(os.path.normpath(raw[: len(raw) - trail] or "/"))
        for root, name in roots:
            if path == root or root in path.parents:
                rel = path.relative_to(root).as_posix()
                shown = name if rel == "." else rel if name == "." else f"{name}/{rel}"
                return shown + raw[len(raw) - trail :]
        return (path.name or "/") + raw[len(raw) - trail :]

    return printable(_ABSOLUTE.sub(show, str(message)))
