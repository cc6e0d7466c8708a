"""Late interaction (``rag.late``): the token vectors a build stores and a question brings,
with the real model, and the features the scorer reads from them."""

from __future__ import annotations

import numpy as np

from rag import late
from rag.features import SENTENCE_FEATURES, sentence_features
from rag.retrieval import Retriever
from rag.store import Index

SENTENCE = "The queen bee can lay 2,000 eggs a day."


def test_one_forward_pass_gives_the_same_vectors_as_encode(embedder):
    texts = [SENTENCE, "What is it?", "Bell Rock Lighthouse was built by Robert Stevenson."]
    vectors, stored = embedder.encode_with_tokens(texts, [True, False, True])
    assert np.array_equal(vectors, embedder.encode(texts))
    assert stored[1] is None
    for s in (stored[0], stored[2]):
        assert s.dtype == np.int8 and s.shape[1] == late.dimension()
    qv, qt = embedder.encode_query(texts[0])
    # A question embeds on one torch thread either way (rag.embedding.one_torch_thread).
    assert np.array_equal(qv, embedder.encode_question(texts[0]))
    assert isinstance(qt, late.QuestionTokens) and qt.pieces.shape[1] == late.dimension()


def test_only_content_words_are_stored_and_a_sentence_keeps_at_least_one(embedder):
    enc = embedder.model.tokenizer
    _, stored = embedder.encode_with_tokens([SENTENCE, "(...)"], [True, True])
    # queen bee can lay 2 000 eggs day: not the, a, the comma, the full stop, [CLS], [SEP]
    words = enc(SENTENCE, return_offsets_mapping=True)
    kept = late.content_pieces(words.encodings[0], SENTENCE)
    pieces = enc.convert_ids_to_tokens([words["input_ids"][i] for i in kept])
    assert pieces == ["queen", "bee", "can", "lay", "2", "000", "eggs", "day"]
    assert len(stored[0]) == len(kept)
    assert len(stored[1]) == len(enc("(...)")["input_ids"]) - 2  # no content word: all kept
    # int8 of unit vectors: unit to within rounding
    norms = np.linalg.norm(late.expand(stored[0]), axis=1)
    assert np.all(np.abs(norms - 1) < 0.02)


def test_a_question_word_missing_from_the_sentence_shows(built_index, embedder):
    """The sentence naming what the question asks about matches every word; a sentence of
    the same document that lacks the question's key words scores lower on li_min."""
    index = Index.load(built_index[1])
    retriever = Retriever(index, embedder)
    q = "How many eggs can a queen bee lay in a day?"
    qv, qt = embedder.encode_query(q)
    hits = retriever.search(q, k=5, question_vector=qv)
    cands = sentence_features(retriever, q, qv, hits, question_tokens=qt)
    col = {n: i for i, n in enumerate(SENTENCE_FEATURES)}
    texts = [index.documents[s].text[a:b] for s, a, b in cands.keys]
    eggs = next(i for i, t in enumerate(texts) if "eggs" in t)
    li_min = cands.x[:, col["li_min"]]
    assert li_min[eggs] == li_min.max()
    assert li_min.min() < li_min[eggs] - 0.1
    assert np.all(cands.x[:, col["li_win_mean"]] >= cands.x[:, col["li_mean"]] - 1e-9)
    # without the question's token vectors, they are computed (same numbers)
    again = sentence_features(retriever, q, qv, hits)
    assert np.allclose(again.x, cands.x)
