"""Chunks: exact slices of their document that fit the budget and the model's window."""

from __future__ import annotations

import base64
from pathlib import Path

from rag.chunking import chunk_document, count_tokens, split_sentences
from rag.documents import Document, load_documents

ROOT = Path(__file__).resolve().parent.parent


SQUAD = ROOT / "evals" / "squad-sample" / "corpus"


def _all_docs():
    return (
        load_documents(ROOT / "seeds")
        + load_documents(SQUAD)
        + load_documents(ROOT / "tests" / "data" / "corpus")
    )


def test_chunks_are_exact_slices_and_fit_the_model_window(embedder):
    docs = _all_docs()
    assert len(docs) >= 17
    n = 0
    for doc in docs:
        chunks = chunk_document(
            doc,
            chunk_tokens=128,
            overlap_sentences=1,
            window_tokens=embedder.count_tokens,
            window=embedder.window,
        )
        assert chunks, doc.source
        for c in chunks:
            assert c.text == doc.text[c.start : c.end]
            assert count_tokens(c.text) <= 128 or len(c.sentences) == 1
            assert embedder.count_tokens(c.text) <= embedder.window
            assert c.sentences[0][0] == c.start and c.sentences[-1][1] == c.end
            for a, b in c.sentences:
                assert c.start <= a < b <= c.end
            n += 1
    assert n > 1000


def test_window_is_counted_with_the_models_own_tokenizer(embedder):
    # A budget the model window cannot hold: the window (in word pieces) must win.
    doc = Document("x.txt", " ".join(["Pneumonoultramicroscopicsilicovolcanoconiosis."] * 40), "h")
    chunks = chunk_document(
        doc, chunk_tokens=400, overlap_sentences=0, window_tokens=embedder.count_tokens, window=48
    )
    assert len(chunks) > 1
    assert all(embedder.count_tokens(c.text) <= 48 for c in chunks)
    assert all(c.text == doc.text[c.start : c.end] for c in chunks)


def test_overlong_sentence_is_split_on_words():
    text = "word " * 500 + "end."
    doc = Document("long.txt", text, "h")
    chunks = chunk_document(doc, chunk_tokens=64, overlap_sentences=1)
    assert len(chunks) > 5
    assert all(count_tokens(c.text) <= 64 and c.text == text[c.start : c.end] for c in chunks)


def test_overlap_repeats_whole_sentences():
    doc = load_documents(SQUAD)[0]
    chunks = chunk_document(doc, chunk_tokens=128, overlap_sentences=1)
    shared = [a.sentences[-1] == b.sentences[0] for a, b in zip(chunks, chunks[1:], strict=False)]
    assert sum(shared) >= len(shared) * 0.9  # all but single-sentence chunks


def test_sentences_never_cross_lines():
    text = "Heading without a stop\nFirst sentence here. Second one!\n\nThird."
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == [
        "Heading without a stop",
        "First sentence here.",
        "Second one!",
        "Third.",
    ]


# --- issue 9 (hardening), item 9: a line without whitespace is split at the budget -----


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
