"""What the format readers share: the canonical-text builder, ``Extracted``, ``FormatError``
and the zip checks (each format's rules are in ``rag.formats``)."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

#: Separator of table cells in a row's line.
CELL_SEPARATOR = " | "
#: Separator of the parts of a heading or table-of-contents path.
PATH_SEPARATOR = " › "
#: What separates slides and e-book documents.
SECTION_SEPARATOR = "\n\n"

_SPACE = re.compile(r"[ \t\r\f\v\u00a0]+")
#: A .docx/.pptx/.epub unpacking to more than this is refused (a zip bomb would otherwise
#: fill the memory: the libraries read every part whole).
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
#: The first bytes of an OLE compound file: what an encrypted .docx/.pptx (or an old .doc) is.
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
#: EPUB font obfuscation: "encrypted" fonts that do not hide any text.
_FONT_OBFUSCATION = {
    "http://www.idpf.org/2008/embedding",
    "http://ns.adobe.com/pdf/enc#RC",
}


class FormatError(ValueError):
    """A file that cannot be read as its format; the message says why in one line."""


@dataclass(frozen=True)
class Extracted:
    """A file's canonical text and where its places start.

    Attributes:
        text: the canonical text.
        locations: ``(offset, label)`` pairs with strictly increasing offsets, each offset
            the start of a line; a label holds from its offset to the next one's (``None``:
            no place to name there).
    """

    text: str
    locations: tuple[tuple[int, str | None], ...]


class _Builder:
    """Collects lines and the location each one is in."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.locations: list[tuple[int, str | None]] = []
        self._pending_gap = False

    def line(self, text: str, location: str | None) -> None:
        """Add ``text`` (which may hold line breaks) as lines, whitespace squeezed; empty
        lines are dropped."""
        for raw in text.split("\n"):
            clean = _SPACE.sub(" ", raw).strip()
            if not clean:
                continue
            if self.parts:
                sep = SECTION_SEPARATOR if self._pending_gap else "\n"
                self.parts.append(sep)
                self.pos += len(sep)
            self._pending_gap = False
            if not self.locations or self.locations[-1][1] != location:
                self.locations.append((self.pos, location))
            self.parts.append(clean)
            self.pos += len(clean)

    def gap(self) -> None:
        """The next line starts a new section: a blank line before it."""
        self._pending_gap = True

    def result(self) -> Extracted:
        text = "".join(self.parts)
        locations = [(a, label) for a, label in self.locations]
        if locations and locations[0] == (0, None):
            locations = locations[1:]
        return Extracted(text, tuple(locations))


def _one_line(e: BaseException) -> str:
    message = " ".join(str(e).split()) or "no details"
    if len(message) > 160:
        message = message[:157] + "..."
    return f"{type(e).__name__}: {message}"


def _check_zip(data: bytes, kind: str) -> None:
    """Raise a clear FormatError for the usual reasons an Office or EPUB file is not a zip."""
    if data.startswith(_OLE_MAGIC):
        if "EncryptionInfo".encode("utf-16-le") in data:
            raise FormatError(f"password-protected {kind}: save it without a password")
        raise FormatError(f"not a {kind} file (an older binary format?): save it as {kind}")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise FormatError(f"damaged, or not a {kind} file (no zip archive inside)")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        # zipfile reads no more than the sizes declared here, so their sum bounds the memory.
        unpacked = sum(info.file_size for info in z.infolist())
    if unpacked > MAX_UNPACKED_BYTES:
        raise FormatError(
            f"{kind} file too large once unpacked ({unpacked // 2**20:,} MiB; "
            f"the limit is {MAX_UNPACKED_BYTES // 2**20:,} MiB)"
        )
