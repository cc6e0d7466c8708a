"""Word, PowerPoint and EPUB documents: their canonical texts, their locations, and the
facts in them answered and cited at the right place (issue 12).

The files are built by the tests with python-docx, python-pptx and ebooklib
(``office_files.py``); the index, the model and the CLI are the real ones.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from office_files import (
    DOCX_TEXT,
    EPUB_TEXT,
    FACTS,
    PPTX_TEXT,
    bad_files,
    docx_bytes,
    epub_bytes,
    office_files,
    pptx_bytes,
)

from rag.documents import SUPPORTED_SUFFIXES, load_documents
from rag.errors import BadInputError
from rag.formats import read_docx, read_epub, read_pptx
from rag.uploads import save_upload


def _places(extracted) -> dict[str, str]:
    """Each location's label -> the text of its first line."""
    text = extracted.text
    return {label: text[a:].split("\n", 1)[0] for a, label in extracted.locations}


# --- canonical texts and location maps ---------------------------------------------------


def test_docx_text_is_paragraphs_lists_and_table_rows_with_heading_paths():
    got = read_docx(docx_bytes())
    assert got.text == DOCX_TEXT
    assert _places(got) == {"Budget": "Budget", "Budget › 2024": "2024", "Roads": "Roads"}
    fact = got.text.index("In 2024 the Quell council")
    assert [label for a, label in got.locations if a <= fact][-1] == "Budget › 2024"


def test_docx_reads_text_boxes_insertions_fields_and_content_controls_once():
    """What python-docx's paragraph.text misses, and what it must not double: a text box
    (and its VML fallback copy), a tracked insertion and deletion, a field's code and
    result, a line break, a content control."""
    import io

    import docx
    from docx.oxml import parse_xml

    ns = (
        'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
        'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006"'
    )
    box = (
        "<w:txbxContent><w:p><w:r><w:t>Boxed: the wall is 300 metres long.</w:t></w:r></w:p>"
        "</w:txbxContent>"
    )
    d = docx.Document()
    d.add_heading("Harbour", level=1)
    p = d.add_paragraph("The harbour wall is made of granite.")
    p._p.append(
        parse_xml(
            f'<w:r {ns}><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing>{box}'
            f"</w:drawing></mc:Choice><mc:Fallback><w:pict>{box}</w:pict></mc:Fallback>"
            "</mc:AlternateContent></w:r>"
        )
    )
    body = d.element.body
    body.insert(
        len(body) - 1,  # before the section properties
        parse_xml(
            f'<w:p {ns}><w:r><w:t xml:space="preserve">Kept </w:t></w:r>'
            '<w:ins w:id="1" w:author="a"><w:r><w:t>inserted</w:t></w:r></w:ins>'
            '<w:del w:id="2" w:author="a"><w:r><w:delText>deleted</w:delText></w:r></w:del>'
            '<w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText>PAGE</w:instrText>'
            '</w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t xml:space="preserve">'
            ' 7</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r>'
            "<w:r><w:br/><w:t>second line</w:t></w:r></w:p>"
        ),
    )
    body.insert(
        len(body) - 1,
        parse_xml(
            f"<w:sdt {ns}><w:sdtContent><w:p><w:r><w:t>In a content control.</w:t></w:r>"
            "</w:p></w:sdtContent></w:sdt>"
        ),
    )
    out = io.BytesIO()
    d.save(out)
    got = read_docx(out.getvalue())
    assert got.text == (
        "Harbour\n"
        "The harbour wall is made of granite.\n"
        "Boxed: the wall is 300 metres long.\n"
        "Kept inserted 7\n"
        "second line\n"
        "In a content control."
    )
    assert got.locations == ((0, "Harbour"),)


def test_pptx_text_is_slides_in_order_with_their_notes():
    got = read_pptx(pptx_bytes())
    assert got.text == PPTX_TEXT
    assert _places(got) == {
        "slide 1": "Quell ferry review",
        "slide 2": "Timetable",
        "slide 2, speaker notes": "Say that only dogs on a lead may travel on the night ferry "
        "to Quell.",
        "slide 4": "Next steps",  # slide 3 has no text; the numbers stay PowerPoint's
    }


def test_epub_text_is_the_spine_with_table_of_contents_chapters():
    got = read_epub(epub_bytes())
    assert got.text == EPUB_TEXT  # no navigation page, no <title>, no image
    assert _places(got) == {
        "Part One › The Lighthouse": "The Lighthouse",
        "Part Two › The Fruit": "The Fruit",
        "Part Two › The Orchard": "The Orchard",  # a fragment link inside ch2.xhtml
    }
    # Without a table of contents each document is named by its first heading.
    assert _places(read_epub(epub_bytes(toc=False))) == {
        "The Lighthouse": "The Lighthouse",
        "The Fruit": "The Fruit",
    }


def test_documents_carry_the_location_of_any_offset(tmp_path):
    for name, data in office_files().items():
        (tmp_path / name).write_bytes(data)
    docs = {d.source: d for d in load_documents(tmp_path)}
    report = docs["report.docx"]
    assert report.location_of(0) is None  # the title, before the first heading
    assert report.location_of(report.text.index("4.2 million crowns")) == "Budget › 2024"
    assert report.location_of(len(report.text) - 1) == "Roads"
    assert report.page_of(5) is None
    deck = docs["deck.pptx"]
    assert deck.location_of(deck.text.index("dogs on a lead")) == "slide 2, speaker notes"


def test_a_file_that_unpacks_too_large_is_refused(monkeypatch):
    import rag.formats.common

    monkeypatch.setattr(rag.formats.common, "MAX_UNPACKED_BYTES", 10_000)
    for read, data in ((read_docx, docx_bytes()), (read_pptx, pptx_bytes())):
        with pytest.raises(rag.formats.FormatError, match="too large once unpacked"):
            read(data)


# --- answered and cited, through the real CLI ----------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory, corpus_dir, rag_cli):
    """A project folder (cwd) whose seeds/ holds the test corpus, the three office files and
    the bad files, indexed with ``rag index`` and its defaults. Returns (folder, stderr)."""
    base = tmp_path_factory.mktemp("formats")
    shutil.copytree(corpus_dir, base / "seeds")
    for name, data in {**office_files(), **bad_files()}.items():
        (base / "seeds" / name).write_bytes(data)
    out = rag_cli("index", cwd=base)
    assert out.returncode == 0, out.stderr
    return base, out.stderr


def test_each_format_answers_its_fact_cited_at_its_location(project, rag_cli):
    base, _ = project
    lines = "".join(json.dumps({"id": f"q{i}", "question": q}) + "\n" for i, (_, q, _, _) in
                    enumerate(FACTS))  # fmt: skip
    # Threshold 0: what is tested is the citation and its location, not the abstention (the
    # default 0.40 abstains on the orchard question here, probability 0.39).
    out = rag_cli("ask", "--jsonl", "--threshold", "0", input=lines, cwd=base)
    assert out.returncode == 0, out.stderr
    docs = {d.source: d for d in load_documents(base / "seeds")}
    answers = [json.loads(line) for line in out.stdout.splitlines()]
    for (source, question, words, location), answer in zip(FACTS, answers, strict=True):
        assert not answer["abstained"], question
        assert words in answer["answer"], (question, answer["answer"])
        first = answer["citations"][0]
        assert (first["source"], first["location"], first["page"]) == (source, location, None)
        text = docs[source].text
        assert text[first["start"] : first["end"]] == first["excerpt"]
        a, b = first["highlight"]
        assert words in text[a:b]
        for c in answer["citations"]:  # the other formats keep a null location
            if not c["source"].endswith((".docx", ".pptx", ".epub")):
                assert c["location"] is None


def test_ask_prints_the_location(project, rag_cli):
    base, _ = project
    out = rag_cli("ask", "At what time does the night ferry to Quell leave?", cwd=base)
    assert out.returncode == 0, out.stderr
    assert "deck.pptx, slide 2, chars" in out.stdout


def test_bad_files_are_skipped_with_one_line_each_and_the_build_goes_on(project):
    base, stderr = project
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    for name in bad_files():
        (line,) = [w for w in warnings if f"skipped {name}:" in w]
        assert len(line) < 200
    reasons = "\n".join(warnings)
    assert "locked.docx: password-protected .docx" in reasons
    assert "drm.epub: encrypted EPUB (DRM)" in reasons
    assert "empty.pptx: no text" in reasons
    assert "truncated.docx: damaged" in reasons
    assert "Traceback" not in stderr
    manifest = json.loads((base / "index" / "manifest.json").read_text())
    assert {"report.docx", "deck.pptx", "book.epub", "volcanoes.txt"} <= set(manifest["documents"])
    assert not set(bad_files()) & set(manifest["documents"])


# --- uploads ---------------------------------------------------------------------------


def test_uploads_accept_the_new_types_and_refuse_bad_files(tmp_path):
    assert {".docx", ".pptx", ".epub"} <= set(SUPPORTED_SUFFIXES)
    for name, data in office_files().items():
        assert save_upload(tmp_path, f"My {name}", data).name == f"My_{name}"
    for name, data in bad_files().items():
        with pytest.raises(BadInputError, match=name.replace(".", r"\.")):
            save_upload(tmp_path, name, data)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "My_book.epub",
        "My_deck.pptx",
        "My_report.docx",
    ]


def test_the_location_survives_the_index(project):
    from rag.store import Index

    base, _ = project
    docs = Index.load(base / "index").documents
    fresh = {d.source: d for d in load_documents(base / "seeds")}
    for source in ("report.docx", "deck.pptx", "book.epub"):
        assert docs[source].locations == fresh[source].locations
        assert docs[source].text == fresh[source].text
    assert docs["volcanoes.txt"].locations is None


def test_a_damaged_location_map_is_a_damaged_index(project, tmp_path):
    from rag.errors import IndexDamagedError
    from rag.store import Index

    base, _ = project
    for bad in ([[5, "b"], [2, "a"]], [[10**9, "far"]], [["x", "y"]], [[1, "a", "b"]]):
        index = tmp_path / f"index-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(base / "index", index)
        db = sqlite3.connect(index / "index.sqlite")
        db.execute(
            "UPDATE documents SET locations = ? WHERE source = 'deck.pptx'", (json.dumps(bad),)
        )
        db.commit()
        db.close()
        loaded = Index.load(index)  # checked when the document is read
        with pytest.raises(IndexDamagedError):
            loaded.documents["deck.pptx"]


def test_render_names_the_location_in_the_card_and_the_viewer(project):
    from rag.answer import Assistant
    from ui import render

    base, _ = project
    assistant = Assistant(Path(base / "index"))
    answer = assistant.ask("Who keeps the orchard on Quell?")
    c = answer.citations[0]
    doc = assistant.index.documents[c.source]
    card = render.answer_html(answer, assistant.index.documents)
    assert '<span class="rag-cite-loc">Part Two › The Orchard</span>' in card
    html = render.viewer_html(doc, excerpt=(c.start, c.end), highlight=c.highlight, n=1)
    assert "quoted sentence at Part Two › The Orchard, line 7" in html
    # The last divider before the marked sentence names its chapter.
    before = html[: html.index('id="rag-hl"')]
    last = before.rindex('<div class="rag-page rag-loc">')
    assert before[last:].startswith('<div class="rag-page rag-loc">Part Two › The Orchard</div>')


# --- the eval set of evals/formats ---------------------------------------------------------


def test_the_format_eval_corpus_is_what_make_corpus_makes():
    """The committed copies are the script's output (byte for byte), and every gold answer
    lies in its span of the copy's canonical text."""
    import importlib.util

    from rag.evaluation import load_question_set

    root = Path(__file__).resolve().parent.parent
    here = root / "evals" / "formats"
    spec = importlib.util.spec_from_file_location("make_corpus", here / "make_corpus.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    lines = make.ARTICLE.read_text(encoding="utf-8").split("\n")
    makers = {"docx": make.to_docx, "pptx": make.to_pptx, "epub": make.to_epub}
    for fmt, maker in makers.items():
        committed = (here / f"{fmt}-corpus" / f"{make.ARTICLE.stem}.{fmt}").read_bytes()
        assert make.fixed_zip(maker(lines)) == committed, fmt
    for fmt in make.FORMATS:
        docs = {d.source: d for d in load_documents(here / f"{fmt}-corpus")}
        questions = load_question_set(here / f"{fmt}.jsonl")
        assert len(questions) == 53
        for q in questions:
            if q.answers:
                a, b = q.span
                assert any(ans in docs[q.source].text[a:b] for ans in q.answers), (fmt, q.id)
