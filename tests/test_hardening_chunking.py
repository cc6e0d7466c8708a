"""Issue 9, item 9: a line without whitespace is split at the token budget."""

from __future__ import annotations

import base64

from rag.chunking import chunk_document, count_tokens
from rag.documents import Document

# --- 9. a line without whitespace --------------------------------------------------------


def test_a_line_without_whitespace_is_split_at_the_budget(embedder):
    blob = base64.b64encode(bytes(range(256)) * 300).decode()  # 102,400 characters
    text = f"A normal first sentence.\n{blob}\nA normal last sentence.\n"
    doc = Document("blob.txt", text, "0" * 64)
    chunks = chunk_document(
        doc,
        chunk_tokens=128,
        overlap_sentences=1,
        window_tokens=embedder.count_tokens,
        window=embedder.window,
    )
    assert len(chunks) > 100
    for c in chunks:
        assert c.text == text[c.start : c.end]
        assert count_tokens(c.text) <= 128 and embedder.count_tokens(c.text) <= embedder.window
        assert len(c.text) < 2000  # the excerpt an answer would carry
    start = text.index(blob)
    pieces = sorted({s for c in chunks for s in c.sentences if start <= s[0] < start + len(blob)})
    assert pieces[0][0] == start and pieces[-1][1] == start + len(blob)
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:], strict=False))
