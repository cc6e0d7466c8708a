"""Issue 9, item 1: nothing outside the seeds folder is indexed, quoted or served.

Real files, the real model and real FAISS on the tiny test corpus.
"""

from __future__ import annotations

from pathlib import Path

from rag.answer import Assistant
from rag.documents import load_documents
from rag.store import Index, build_index

# --- 1. symlinks -------------------------------------------------------------------------


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
