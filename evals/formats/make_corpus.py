"""Convert the seed article to .docx, .pptx and .epub, and map the seed-reworded questions
onto every copy: the set that checks the new readers lose nothing (issue 12).

Run from the repository root: ``.venv/bin/python evals/formats/make_corpus.py``. The output
is byte-for-byte the same on every run (fixed dates in the files and in their zip entries).

The conversion, from the article's lines (it has no blank lines):

- a heading is a line under 120 characters that does not end like a sentence
  (``.!?"”)]``); every other line is a paragraph;
- .docx: a heading is a Heading 1 paragraph, the others Normal paragraphs;
- .pptx: each heading opens a slide (Title and Content layout): the heading is the slide's
  title, the paragraphs up to the next heading its body, one paragraph each;
- .epub: each heading opens a chapter (one XHTML document: ``<h1>`` and ``<p>``s), and the
  table of contents lists the chapters.

Writes ``<fmt>.jsonl`` and ``<fmt>-corpus/`` for txt (the original), docx, pptx and epub,
each with the questions' ``source`` renamed and ``span`` moved to the copy's canonical text
(the same lines, found in order), and ``mixed.jsonl`` + ``mixed-corpus/`` with the four
copies in one folder and no gold source (in a folder holding the same passage four times
only the answer is scored). ``control.jsonl`` + ``control-corpus/``: the .txt four times
under four names, which tells what four copies of one article do to the answers whatever
their format.
"""

from __future__ import annotations

import bisect
import datetime as dt
import html
import io
import json
import shutil
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ARTICLE = ROOT / "seeds" / "000_9d0beaf138213e22.txt"
QUESTIONS = ROOT / "evals" / "seed-reworded" / "questions.jsonl"
FORMATS = ("txt", "docx", "pptx", "epub")
FIXED = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def is_heading(line: str) -> bool:
    return len(line) < 120 and not line.rstrip().endswith(tuple('.!?"”)]'))


def sections(lines: list[str]) -> list[tuple[str, list[str]]]:
    """(heading, paragraphs) in order; paragraphs before any heading get an empty one."""
    out: list[tuple[str, list[str]]] = []
    for line in lines:
        if is_heading(line):
            out.append((line, []))
        elif out:
            out[-1][1].append(line)
        else:
            out.append(("", [line]))
    return out


def to_docx(lines: list[str]) -> bytes:
    import docx

    d = docx.Document()
    for line in lines:
        if is_heading(line):
            d.add_heading(line, level=1)
        else:
            d.add_paragraph(line)
    props = d.core_properties
    props.created = props.modified = props.last_printed = FIXED.replace(tzinfo=None)
    props.author = props.last_modified_by = "Cited evals"
    props.revision = 1
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def to_pptx(lines: list[str]) -> bytes:
    import pptx

    deck = pptx.Presentation()
    for heading, paragraphs in sections(lines):
        slide = deck.slides.add_slide(deck.slide_layouts[1])  # Title and Content
        slide.shapes.title.text = heading
        body = slide.placeholders[1].text_frame
        for i, paragraph in enumerate(paragraphs):
            (body.paragraphs[0] if i == 0 else body.add_paragraph()).text = paragraph
    props = deck.core_properties
    props.created = props.modified = props.last_printed = FIXED.replace(tzinfo=None)
    props.author = props.last_modified_by = "Cited evals"
    props.revision = 1
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def to_epub(lines: list[str]) -> bytes:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("cited-seed-000_9d0beaf138213e22")
    book.set_title("Central Asia and the terrorist threat (seed article)")
    book.set_language("en")
    chapters = []
    for n, (heading, paragraphs) in enumerate(sections(lines), start=1):
        ch = epub.EpubHtml(title=heading or f"Part {n}", file_name=f"ch{n:02d}.xhtml", lang="en")
        body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
        ch.content = (f"<h1>{html.escape(heading)}</h1>" if heading else "") + body
        book.add_item(ch)
        chapters.append(ch)
    book.toc = [epub.Link(c.file_name, c.title, f"ch{n}") for n, c in enumerate(chapters, 1)]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    out = io.BytesIO()
    epub.write_epub(out, book, {"mtime": FIXED})
    return out.getvalue()


def fixed_zip(data: bytes) -> bytes:
    """The same archive with every entry dated ZIP_TIME (the writers stamp the time now)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for info in src.infolist():  # order kept: an EPUB's mimetype stays first and stored
            fixed = zipfile.ZipInfo(info.filename, date_time=ZIP_TIME)
            fixed.compress_type = info.compress_type
            fixed.external_attr = info.external_attr
            z.writestr(fixed, src.read(info))
    return out.getvalue()


def offset_map(original: str, copy: str):
    """A function taking an offset of ``original`` to the same character in ``copy``, whose
    lines are ``original``'s in order with other text (titles, blank lines) between them."""
    starts, copy_starts, cursor, pos = [], [], 0, 0
    for line in original.split("\n"):
        at = copy.find(line, cursor)
        if at < 0:
            raise SystemExit(f"line not found in the copy: {line[:60]!r}")
        starts.append(pos)
        copy_starts.append(at)
        cursor = at + len(line)
        pos += len(line) + 1

    def move(offset: int) -> int:
        i = bisect.bisect_right(starts, offset) - 1
        return copy_starts[i] + offset - starts[i]

    return move


def main() -> None:
    from rag.documents import read_document

    text = ARTICLE.read_text(encoding="utf-8")
    lines = text.split("\n")
    stem = ARTICLE.stem
    makers = {"docx": to_docx, "pptx": to_pptx, "epub": to_epub}
    questions = [json.loads(x) for x in QUESTIONS.read_text(encoding="utf-8").splitlines() if x]
    mixed = HERE / "mixed-corpus"
    shutil.rmtree(mixed, ignore_errors=True)
    mixed.mkdir()
    for fmt in FORMATS:
        corpus = HERE / f"{fmt}-corpus"
        shutil.rmtree(corpus, ignore_errors=True)
        corpus.mkdir()
        path = corpus / f"{stem}.{fmt}"
        path.write_bytes(fixed_zip(makers[fmt](lines)) if fmt in makers else text.encode())
        shutil.copy2(path, mixed / path.name)
        copy = read_document(path, corpus).text
        move = offset_map(text, copy)
        out = []
        for q in questions:
            q = dict(q)
            if q.get("source"):
                q["source"] = path.name
                a, b = q["span"]
                q["span"] = [move(a), move(b - 1) + 1]
                passage = copy[q["span"][0] : q["span"][1]]
                if not any(ans in passage for ans in q["answers"]):
                    raise SystemExit(f"{fmt} {q['id']}: no answer in the moved span")
            out.append(json.dumps(q, ensure_ascii=False))
        (HERE / f"{fmt}.jsonl").write_text("\n".join(out) + "\n", encoding="utf-8")
        print(f"{fmt}: {path.relative_to(ROOT)} ({path.stat().st_size:,} bytes, "
              f"{len(copy):,} characters of text)")  # fmt: skip
    control = HERE / "control-corpus"
    shutil.rmtree(control, ignore_errors=True)
    control.mkdir()
    for n in range(1, len(FORMATS) + 1):
        (control / f"{stem}-copy{n}.txt").write_bytes(text.encode())
    unsourced = [
        json.dumps({**q, "source": None, "span": None}, ensure_ascii=False) for q in questions
    ]
    for name in ("mixed", "control"):
        (HERE / f"{name}.jsonl").write_text("\n".join(unsourced) + "\n", encoding="utf-8")
    print(f"mixed: {len(FORMATS)} copies in {mixed.relative_to(ROOT)}/; {len(questions)} questions")
    print(f"control: the .txt {len(FORMATS)} times in {control.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
