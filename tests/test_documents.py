"""Documents: every format read to one canonical text; unreadable files skipped with a warning."""

from __future__ import annotations

from rag.documents import load_documents


def test_every_format_has_one_canonical_text(corpus_dir):
    docs = {d.source: d for d in load_documents(corpus_dir)}
    assert set(docs) == {"bees.md", "lighthouse.html", "tides.pdf", "volcanoes.txt"}
    assert docs["volcanoes.txt"].text == (corpus_dir / "volcanoes.txt").read_text(encoding="utf-8")
    html = docs["lighthouse.html"].text
    assert "Robert Stevenson between 1807 and 1810" in html
    assert "tracking" not in html and "font-family" not in html and "<" not in html
    pdf = docs["tides.pdf"]
    assert pdf.page_starts is not None and len(pdf.page_starts) == 2
    assert pdf.page_of(pdf.text.index("Bay of Fundy")) == 2
    assert pdf.page_of(pdf.text.index("High tides")) == 1


def test_unreadable_files_are_skipped_with_a_warning(seeds_copy):
    (seeds_copy / "empty.txt").write_text("   \n")
    (seeds_copy / "binary.txt").write_bytes(b"\x00\x01\x02PK\x03\x04")
    (seeds_copy / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (seeds_copy / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (seeds_copy / "image.png").write_bytes(b"\x89PNG\r\n")
    warnings: list[str] = []
    docs = load_documents(seeds_copy, warn=warnings.append)
    assert len(docs) == 4
    for name in ("empty.txt", "binary.txt", "latin1.txt", "broken.pdf", "image.png"):
        (line,) = [w for w in warnings if name in w]
        assert "\n" not in line
