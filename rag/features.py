"""The answer scorer's features: of each candidate sentence (``SENTENCE_FEATURES``, from
``sentence_features``) and of a question (``QUESTION_FEATURES``, from ``question_row``), and
the question-type rules they use (``expected_answer``, ``offers``, ``is_heading``).

The weights that turn them into logits and a probability, and the choice of the sentences to
show, are in ``rag.scorer``; both are pure numpy over these matrices.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from rag import late
from rag.retrieval import Hit, Retriever
from rag.terms import terms

SentenceKey = tuple[str, int, int]

#: Features of one candidate sentence (columns of the matrix ``sentence_features`` returns).
SENTENCE_FEATURES = (
    "cos",  # cosine(question, sentence)
    "cos_gap",  # cos minus the best cos among the candidates
    "cos_chunk",  # cosine(question, chunk holding the sentence)
    "cov",  # IDF-weighted share of the question's terms in the sentence
    "cov_gap",  # cov minus the best cov among the candidates
    "cov_prev",  # ... of the other question terms in the sentence before
    "cov_next",  # ... in the sentence after
    "cov_window",  # ... in sentence + neighbours together
    "cov_chunk",  # ... in the whole chunk
    "miss_window",  # highest IDF (share of the corpus maximum) of a term absent from the window
    "miss_chunk",  # the same for the chunk
    "heading",  # a title line
    "type_miss",  # asks for a number/name the sentence does not offer
    "when_miss",  # asks "when"/"what year" and the sentence has no date
    "log_rank",  # log of the chunk's retrieval rank
    "log_dense_rank",  # log of its dense rank (depth+1 when absent)
    "log_bm25_rank",  # log of its BM25 rank (depth+1 when absent)
    "log_words",  # log of the sentence's words
    "number",  # the sentence holds a number the question does not
    "name",  # the sentence holds a capitalised name the question does not
) + late.LI_FEATURES  # token-level MaxSim of the question's words (``rag.late``)

#: Features of a question given its scored candidates (``question_features``).
QUESTION_FEATURES = (
    "top",  # best sentence logit
    "second",  # next best sentence logit
    "margin",  # top - second
    "softmax_top",  # share of the best sentence in the softmax over candidates
    "top_cos",
    "top_cov",
    "top_cov_window",
    "top_miss_window",
    "top_miss_chunk",
    "top_type_miss",
    "top_when_miss",
    "best_cos_chunk",  # best chunk cosine among the retrieved chunks
    "corpus_miss",  # highest IDF share of a question term the corpus never uses
    "corpus_miss_mass",  # share of the question's IDF mass the corpus never uses
    "log_q_terms",
    "top_log_rank",
    "q_negation",  # the question says not/never/no/...
    "negation_mismatch",  # ... and the best sentence does not
    "name_miss_chunk",  # a capitalised word of the question is absent from the best chunk
    "name_miss_all",  # ... absent from every retrieved chunk
    "number_miss_chunk",  # a number of the question is absent from the best chunk
    "log_q_names",
    "log_q_numbers",
) + tuple(f"top_{name}" for name in late.LI_FEATURES)  # ... of the best sentence

_NUMBER_QUESTION = re.compile(
    r"\bhow (many|much|long|old|far|tall|high|large|big|often|fast|wide|deep|heavy)\b"
    r"|\bwhat (year|percentage|percent|share|proportion|amount|number|age|date|decade|century)\b"
    r"|\b(which|what) (year|decade|century)\b",
    re.IGNORECASE,
)
_NAME_QUESTION = re.compile(r"^\W*(who|whom|whose)\b|\bnames?\b", re.IGNORECASE)
_WHEN_QUESTION = re.compile(
    r"^\W*when\b|\b(what|which) (year|date|decade|century|month|day)\b|\bin what year\b",
    re.IGNORECASE,
)
_DATE = re.compile(
    r"\b(1\d{3}|20\d{2}|\d{1,2}(st|nd|rd|th) century|\d{2,4}s)\b|\b(january|february|march|"
    r"april|may|june|july|august|september|october|november|december|spring|summer|autumn|"
    r"fall|winter)\b|\b(bc|bce|ad|ce)\b",
    re.IGNORECASE,
)
_TOKEN = re.compile(r"[\w’'-]+")
_NEGATION = re.compile(
    r"\b(not|never|no|none|nobody|nothing|neither|nor|without|unable|cannot)\b|n[’']t\b",
    re.IGNORECASE,
)
_NUMBER_WORDS = frozenset(
    "one two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty "
    "fifty hundred hundreds thousand thousands million millions billion billions dozen dozens "
    "half twice first second third fourth fifth".split()
)


def expected_answer(question: str) -> str | None:
    """ "number" or "name" when the question plainly asks for one, else None."""
    if _NUMBER_QUESTION.search(question):
        return "number"
    if _NAME_QUESTION.search(question):
        return "name"
    return None


def question_words(question: str) -> set[str]:
    """The question's words, lowercased, as ``offers`` compares them."""
    return {w.lower() for w in _TOKEN.findall(question)}


def offers(wants: str, sentence: str, q_words: set[str]) -> bool:
    """Whether ``sentence`` holds a number (or a capitalised name) the question does not."""
    words = _TOKEN.findall(sentence)
    if wants == "number":
        return any(
            (any(c.isdigit() for c in w) or w.lower() in _NUMBER_WORDS) and w.lower() not in q_words
            for w in words
        )
    # A capitalised word past the first one that the question does not already say.
    return any(w[0].isupper() and w.lower() not in q_words for w in words[1:])


_CLOSERS = tuple(".!?:;\"')]”’»…")


def is_heading(text: str, a: int, b: int) -> bool:
    """A title or heading: a short whole line that does not end like a sentence, followed by
    a blank line, the end, or a line that starts like a new block (not "O\\n2 is ...")."""
    if text[a:b].endswith(_CLOSERS) or len(text[a:b].split()) > 15:
        return False
    if a > 0 and text[a - 1] != "\n":
        return False
    after = text[b : b + 2]
    return (
        after in ("", "\n")
        or after == "\n\n"
        or (after[0] == "\n" and not after[1].islower() and not after[1].isdigit())
    )


@dataclass(frozen=True)
class Candidates:
    """The candidate sentences of one question and their features.

    Attributes:
        keys: each sentence once, as (source, start, end), in the order of ``hits``.
        hit_of: for each sentence, the index in ``hits`` of the best-ranked chunk holding it.
        x: float64 matrix, one row per sentence, columns ``SENTENCE_FEATURES``.
        q: the question-level facts that do not depend on the model (see ``question_row``).
    """

    hits: tuple[Hit, ...]
    keys: tuple[SentenceKey, ...]
    hit_of: np.ndarray
    x: np.ndarray
    q: dict


def sentence_features(
    retriever: Retriever,
    question: str,
    qv: np.ndarray,
    hits: list[Hit],
    *,
    depth: int = 50,
    question_tokens: late.QuestionTokens | None = None,
) -> Candidates:
    """Features of every sentence of ``hits`` (each sentence once, under its best chunk).

    ``question_tokens``: the question's token vectors from the forward pass that gave ``qv``
    (``Retriever.embed_query``); None embeds the question again for them.
    """
    index = retriever.index
    idf_of = retriever.idf
    default = retriever.default_idf
    q_terms = set(terms(question))
    weights = {t: idf_of.get(t, default) for t in q_terms}
    q_weight = sum(weights.values()) or 1.0

    def cov(ts) -> float:
        return sum(weights[t] for t in q_terms & ts) / q_weight

    def miss(ts) -> float:
        return max((weights[t] for t in q_terms - ts), default=0.0) / default

    wants = expected_answer(question)
    when = bool(_WHEN_QUESTION.search(question))
    q_words = question_words(question)
    keys, hit_of = _candidate_keys(hits)
    n = len(keys)
    x = np.zeros((n, len(SENTENCE_FEATURES)))
    if n:
        rows = [_sentence_row(index, k) for k in keys]
        x[:, 0] = index.sentence_vectors[rows] @ qv
    empty: frozenset[str] = frozenset()
    log_depth = math.log(depth + 1)
    sides: list[tuple[SentenceKey | None, SentenceKey | None]] = []
    for i, (key, h) in enumerate(zip(keys, hit_of, strict=True)):
        hit = hits[h]
        text = index.documents[key[0]].text
        sent = text[key[1] : key[2]]
        s_terms = retriever.sentence_terms(key)
        before, after = retriever.neighbours(key)
        sides.append((before, after))
        p_terms = retriever.sentence_terms(before) if before else empty
        n_terms = retriever.sentence_terms(after) if after else empty
        window = s_terms | p_terms | n_terms
        c_terms = retriever.chunk_terms(hit.chunk)
        c = cov(s_terms)
        number = offers("number", sent, q_words)
        name = offers("name", sent, q_words)
        x[i, 2] = hit.dense
        x[i, 3] = c
        x[i, 5] = cov(p_terms - s_terms)
        x[i, 6] = cov(n_terms - s_terms)
        x[i, 7] = cov(window)
        x[i, 8] = cov(c_terms | s_terms)
        x[i, 9] = miss(window)
        x[i, 10] = miss(c_terms | s_terms)
        x[i, 11] = is_heading(text, key[1], key[2])
        x[i, 12] = bool(wants) and not (number if wants == "number" else name)
        x[i, 13] = when and not _DATE.search(sent)
        x[i, 14] = math.log(hit.rank)
        x[i, 15] = math.log(hit.dense_rank) if hit.dense_rank else log_depth
        x[i, 16] = math.log(hit.bm25_rank) if hit.bm25_rank else log_depth
        x[i, 17] = math.log(1 + len(sent.split()))
        x[i, 18] = number
        x[i, 19] = name
    if n:
        x[:, 1] = x[:, 0] - x[:, 0].max()
        x[:, 4] = x[:, 3] - x[:, 3].max()
        if question_tokens is None:
            question_tokens = retriever.embed_query(question)[1]
        x[:, _LI] = _late_features(index, question_tokens, keys, rows, sides, idf_of, default)
    q = _question_facts(hits, q_terms, weights, q_weight, idf_of, default)
    return Candidates(tuple(hits), tuple(keys), np.asarray(hit_of, dtype=int), x, q)


def _late_features(
    index, qt: late.QuestionTokens, keys, rows, sides, idf_of, default
) -> np.ndarray:
    """``late.LI_FEATURES`` of the candidates ``keys`` (at ``rows``; ``sides``: their
    neighbours), one read of the stored token vectors of the candidates and their neighbours."""
    row_of = dict(zip(keys, rows, strict=True))
    for k in (k for pair in sides for k in pair if k and k not in row_of):
        row_of[k] = _sentence_row(index, k)
    at = {k: i for i, k in enumerate(row_of)}
    pieces = index.sentence_tokens[list(row_of.values())]
    weights = np.array([max(idf_of.get(t, default) for t in terms(w)) for w in qt.words])
    return late.features(
        qt,
        weights,
        pieces,
        np.array([at[k] for k in keys]),
        np.array([at[b] if b else -1 for b, _ in sides]),
        np.array([at[a] if a else -1 for _, a in sides]),
    )


def _sentence_row(index, key: SentenceKey) -> int:
    row = index.sentence_row(key)
    if row is None:  # a chunk's sentence that the index does not hold
        raise index.damaged(f"{key[0]!r}: sentence {key[1]}-{key[2]} is not in the index")
    return row


def _candidate_keys(hits: list[Hit]) -> tuple[list[SentenceKey], list[int]]:
    """Each sentence of ``hits`` once, in hit order, and the index of its best-ranked hit."""
    keys: list[SentenceKey] = []
    hit_of: list[int] = []
    seen: set[SentenceKey] = set()
    for h, hit in enumerate(hits):
        for a, b in hit.chunk.sentences:
            key = (hit.chunk.source, a, b)
            if key not in seen:
                seen.add(key)
                keys.append(key)
                hit_of.append(h)
    return keys, hit_of


def _question_facts(
    hits: list[Hit],
    q_terms: set[str],
    weights: dict[str, float],
    q_weight: float,
    idf_of: dict,
    default: float,
) -> dict:
    """The question-level facts of ``Candidates.q`` (they do not depend on the model)."""
    vocab_miss = [weights[t] for t in q_terms if t not in idf_of]
    return {
        "best_cos_chunk": max((h.dense for h in hits), default=0.0),
        "corpus_miss": max(vocab_miss, default=0.0) / default,
        "corpus_miss_mass": sum(vocab_miss) / q_weight,
        "log_q_terms": math.log(1 + len(q_terms)),
    }


_COL = {name: i for i, name in enumerate(SENTENCE_FEATURES)}
_HEADING = _COL["heading"]
_LI = slice(_COL[late.LI_FEATURES[0]], _COL[late.LI_FEATURES[-1]] + 1)
#: Logit a heading line loses (see ``Model.sentence_logits``).
HEADING_LOGIT = 5.0


def question_row(
    question: str,
    x: np.ndarray,
    logits: np.ndarray,
    q: dict,
    texts: list[str],
    member_rows: list[list[int]],
) -> np.ndarray:
    """The ``QUESTION_FEATURES`` of ``question`` whose candidate sentences ``texts`` (rows
    ``x``; chunk membership ``member_rows``) scored ``logits``; ``q``: ``Candidates.q``."""
    values = dict.fromkeys(QUESTION_FEATURES, 0.0)
    values.update(q)
    words = _TOKEN.findall(question)
    names = {w.lower() for w in words[1:] if w[0].isupper()}
    numbers = {w.lower() for w in words if any(c.isdigit() for c in w)}
    negation = bool(_NEGATION.search(question))
    values.update(
        q_negation=float(negation),
        log_q_names=math.log1p(len(names)),
        log_q_numbers=math.log1p(len(numbers)),
    )
    if len(logits):
        order = np.argsort(-logits, kind="stable")
        best = order[0]
        top = float(logits[best])
        second = float(logits[order[1]]) if len(order) > 1 else top - 10.0
        row = x[best]
        values.update(
            top=top,
            second=second,
            margin=top - second,
            softmax_top=float(1.0 / np.exp(logits - top).sum()),
            top_cos=row[_COL["cos"]],
            top_cov=row[_COL["cov"]],
            top_cov_window=row[_COL["cov_window"]],
            top_miss_window=row[_COL["miss_window"]],
            top_miss_chunk=row[_COL["miss_chunk"]],
            top_type_miss=row[_COL["type_miss"]],
            top_when_miss=row[_COL["when_miss"]],
            top_log_rank=row[_COL["log_rank"]],
        )
        values.update({f"top_{f}": row[_COL[f]] for f in late.LI_FEATURES})
        chunk = next((rows for rows in member_rows if best in rows), [best])
        in_chunk = {w.lower() for i in chunk for w in _TOKEN.findall(texts[i])}
        in_all = {w.lower() for t in texts for w in _TOKEN.findall(t)}
        values.update(
            negation_mismatch=float(negation and not _NEGATION.search(texts[best])),
            name_miss_chunk=float(bool(names - in_chunk)),
            name_miss_all=float(bool(names - in_all)),
            number_miss_chunk=float(bool(numbers - in_chunk)),
        )
    else:
        values.update(top=-20.0, second=-30.0, margin=10.0, softmax_top=1.0, top_miss_window=1.0)
        values.update(top_miss_chunk=1.0, top_log_rank=math.log(51), top_li_low=1.0)
        values.update(name_miss_chunk=float(bool(names)), name_miss_all=float(bool(names)))
        values.update(number_miss_chunk=float(bool(numbers)))
    return np.array([float(values[name]) for name in QUESTION_FEATURES])
