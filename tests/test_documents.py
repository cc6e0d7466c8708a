"""Documents: every format read to one canonical text; unreadable files skipped with a warning."""

from __future__ import annotations

from pathlib import Path

from rag.answer import Assistant
from rag.documents import load_documents
from rag.indexing import build_index
from rag.store import Index


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


# --- issue 9 (hardening), item 1: nothing outside seeds/ is indexed, quoted or served ---


def test_symlinks_outside_seeds_are_skipped_and_never_indexed(seeds_copy, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "secret.md").write_text("The vault code of the bank is 4417.\n")
    (other / "hostname").write_text("buildhost-7781\n")
    (seeds_copy / "secret.md").symlink_to(Path("..") / "other" / "secret.md")  # relative
    (seeds_copy / "hostname.txt").symlink_to(other / "hostname")  # absolute
    (seeds_copy / "alias.txt").symlink_to("volcanoes.txt")  # inside seeds/: allowed
    (seeds_copy / ".hidden.txt").write_text("Hidden files are not indexed.\n")
    (seeds_copy / "peek.txt").symlink_to(".hidden.txt")  # inside, but to a hidden file

    warnings: list[str] = []
    docs = {d.source for d in load_documents(seeds_copy, warn=warnings.append)}
    assert docs == {"alias.txt", "bees.md", "lighthouse.html", "tides.pdf", "volcanoes.txt"}
    for name in ("secret.md", "hostname.txt", "peek.txt"):
        (line,) = [w for w in warnings if name in w]
        assert "outside the seeds folder" in line and "\n" not in line

    # The UI's /open_source reads documents from the loaded index: not there, not served.
    index = tmp_path / "index"
    build_index(seeds_copy, index)
    loaded = Index.load(index)
    assert set(loaded.documents) == docs
    assert not any("4417" in d.text or "buildhost" in d.text for d in loaded.documents.values())
    answer = Assistant(index).ask("What is the vault code of the bank?", k=50)
    assert all("4417" not in c.excerpt for c in answer.citations)


def test_office_lock_files_and_editor_backups_are_not_seeds(seeds_copy):
    """Word keeps ``~$name.docx`` beside an open document and editors leave ``name~``:
    neither is a document, so neither is indexed (nor reported as unreadable)."""
    (seeds_copy / "~$report.docx").write_bytes(b"\x0bAda Lovelace" + b"\x00" * 40)
    (seeds_copy / "volcanoes.txt~").write_text("An older copy of the volcano notes.\n")
    warnings: list[str] = []
    docs = {d.source for d in load_documents(seeds_copy, warn=warnings.append)}
    assert docs == {"bees.md", "lighthouse.html", "tides.pdf", "volcanoes.txt"}
    assert warnings == []
