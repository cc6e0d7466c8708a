"""Late interaction: how well each word of the question finds a match among a sentence's
MiniLM token vectors (MaxSim, as ColBERT scores), for the answer scorer.

A sentence vector blurs a sentence into one point; token vectors keep its words apart, so a
question word with no counterpart in the sentence shows (``li_min``), even when the sentence
is about the same topic. Measured out-of-fold in ``evals/scorer/README.md`` ("Late
interaction, stored").

Index time (``Embedder.encode_with_tokens``): every sentence is embedded anyway; the same
forward pass gives its token vectors. Only the pieces of *content words* (a word with a BM25
term: no stop word, no punctuation, no [CLS]/[SEP]) are kept, projected to ``dimension()``
dimensions by a fixed matrix shipped with the package (``token_projection.npy``: the top
principal axes of MiniLM token vectors, see ``evals/scorer/li_compress.py``), re-normalised
and stored as int8 (``round(127 * v)``): about 13 pieces x 64 bytes = 0.8 KB a SQuAD
sentence.

Question time: the question's token vectors come from the forward pass that embeds it for
retrieval (``Embedder.encode_query``); ``features`` computes the MaxSim features of every
candidate sentence with numpy (~1 ms for ~60 candidates).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import IndexMismatchError
from rag.terms import terms

#: The projection of MiniLM's 384-dimensional token vectors (384 x dimension(), float32).
PROJECTION = Path(__file__).with_name("token_projection.npy")
#: int8 scale of a stored unit token vector.
SCALE = 127.0
#: A question word whose best match is below this cosine counts as unmatched (``li_low``):
#: about the median of ``li_mean`` over candidate sentences (fixed before any run).
LOW = 0.3

#: Late-interaction features of a candidate sentence (appended to ``SENTENCE_FEATURES``).
LI_FEATURES = (
    "li_mean",  # IDF-weighted mean over the question's content words of MaxSim to the sentence
    "li_min",  # the worst-matched content word's MaxSim
    "li_low",  # IDF share of the content words whose MaxSim is below LOW
    "li_win_mean",  # li_mean against sentence + the sentences before and after
    "li_win_min",  # li_min against sentence + neighbours
    "li_sym",  # mean over the sentence's stored pieces of their MaxSim to the question
)


@functools.cache
def one_blas_thread() -> None:
    """Cut numpy's BLAS (OpenBLAS) pool to one thread, once per process.

    ``features`` is the one matrix-matrix product of an answer (question pieces x every
    candidate piece). At that size OpenBLAS splits it over its threads, which then spin
    after it and starve torch's next forward pass, as FAISS's OpenMP pool did
    (``rag.store.faiss_module``): measured on 2 cores, SQuAD corpus, paraphrased questions,
    CPU per warm ask p50 57-60 ms with the default 2 threads, 22 ms with one (20-21 ms
    without late interaction).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


@functools.cache
def projection() -> np.ndarray:
    """The shipped projection matrix (384 x dimension(), float32)."""
    return np.load(PROJECTION, allow_pickle=False).astype(np.float32)


def dimension() -> int:
    return int(projection().shape[1])


def manifest_entry() -> dict:
    """What an index's manifest records of its token vectors (its ``tokens`` entry)."""
    return {"dimension": dimension(), "projection": projection_digest()}


def check_manifest(path: Path, manifest: dict) -> None:
    """Refuse an index (FAISS or Milvus) whose token vectors another projection made.

    Raises:
        IndexMismatchError: with the command that rebuilds it.
    """
    if (manifest.get("tokens") or {}).get("projection") != projection_digest():
        raise IndexMismatchError(
            f"{path}/ stores token vectors of another projection than this rag's: "
            "run `rag index --rebuild`"
        )


@functools.cache
def projection_digest() -> str:
    """sha256 of the projection file: an index records it, a reader refuses another."""
    return hashlib.sha256(PROJECTION.read_bytes()).hexdigest()


@functools.lru_cache(maxsize=65536)
def _content(word: str) -> bool:
    return bool(terms(word))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)


def project(tokens: np.ndarray) -> np.ndarray:
    """Unit token vectors (float32) in the projected space."""
    return _unit(np.asarray(tokens, dtype=np.float32) @ projection())


def words(encoding, text: str) -> list[tuple[int, int, int] | None]:
    """Per piece of a fast tokenizer's ``encoding`` of ``text``: (word number, start, end) of
    its word, None for [CLS]/[SEP]."""
    wids = encoding.word_ids
    spans: dict[int, list[int]] = {}
    for w, (a, b) in zip(wids, encoding.offsets, strict=True):
        if w is not None:
            s = spans.setdefault(w, [a, b])
            s[1] = b
    return [None if w is None else (w, *spans[w]) for w in wids]


def content_pieces(encoding, text: str) -> np.ndarray:
    """Indices of the pieces of ``text``'s content words (all non-special pieces when it has
    none, so every sentence keeps at least one)."""
    ws = words(encoding, text)
    keep = [i for i, w in enumerate(ws) if w is not None and _content(text[w[1] : w[2]])]
    if not keep:
        keep = [i for i, w in enumerate(ws) if w is not None] or [0]
    return np.asarray(keep, dtype=np.int64)


def compress(tokens: np.ndarray, encoding, text: str) -> np.ndarray:
    """The stored form of a sentence's token vectors (pieces x 384, the model's output, all
    pieces): content pieces, projected, unit, int8."""
    v = project(tokens[content_pieces(encoding, text)])
    return np.clip(np.rint(v * SCALE), -SCALE, SCALE).astype(np.int8)


def expand(stored: np.ndarray) -> np.ndarray:
    """Stored int8 pieces back to float32 (unit to within int8 rounding)."""
    return np.asarray(stored, dtype=np.float32) / SCALE


@dataclass(frozen=True)
class QuestionTokens:
    """The question's pieces (specials dropped) projected, and its content words.

    Attributes:
        pieces: float32 (pieces x dimension()), unit rows.
        content: for each content piece, its row in ``pieces``.
        word_of: for each content piece, the number of its content word (0..W-1).
        words: the text of each content word (its IDF weight is the scorer's).
    """

    pieces: np.ndarray
    content: np.ndarray
    word_of: np.ndarray
    words: tuple[str, ...]

    @classmethod
    def of(cls, tokens: np.ndarray, encoding, text: str) -> QuestionTokens:
        """From the model's token vectors of ``text`` (all pieces, specials included)."""
        ws = words(encoding, text)
        normal = [i for i, w in enumerate(ws) if w is not None]
        content, word_of, names, number = [], [], [], {}
        for j, i in enumerate(normal):
            w, a, b = ws[i]
            if not _content(text[a:b]):
                continue
            if w not in number:
                number[w] = len(names)
                names.append(text[a:b])
            content.append(j)
            word_of.append(number[w])
        return cls(
            project(tokens[normal]) if normal else np.zeros((0, dimension()), np.float32),
            np.asarray(content, dtype=np.int64),
            np.asarray(word_of, dtype=np.int64),
            tuple(names),
        )


def features(
    q: QuestionTokens,
    weights: np.ndarray,
    sentences: list[np.ndarray],
    candidates: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
) -> np.ndarray:
    """``LI_FEATURES`` of the candidate sentences, one matrix product for all of them.

    Args:
        weights: the IDF weight of each of ``q.words``.
        sentences: the float32 pieces of every sentence needed (candidates and neighbours).
        candidates: the position in ``sentences`` of each candidate.
        before, after: the position of each candidate's neighbours (-1: none).
    """
    one_blas_thread()
    n = len(candidates)
    out = np.zeros((n, len(LI_FEATURES)))
    if not n:
        return out
    mats = [m if len(m) else np.zeros((1, q.pieces.shape[1]), np.float32) for m in sentences]
    lens = np.array([len(m) for m in mats])
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    if not len(q.pieces):
        out[:, [0, 1, 3, 4]] = 1.0
        return out
    sim = q.pieces @ np.concatenate(mats).T  # question pieces x every stored piece
    out[:, 5] = (np.add.reduceat(sim.max(axis=0), starts) / lens)[candidates]
    if not len(q.content):
        out[:, [0, 1, 3, 4]] = 1.0
        return out
    seg = np.maximum.reduceat(sim[q.content], starts, axis=1)  # content pieces x sentences
    own = seg[:, candidates]
    win = own.copy()
    for side in (before, after):
        has = side >= 0
        if has.any():
            win[:, has] = np.maximum(win[:, has], seg[:, side[has]])
    n_words = len(q.words)
    avg = np.zeros((n_words, len(q.content)))
    avg[q.word_of, np.arange(len(q.content))] = 1.0
    avg /= avg.sum(axis=1, keepdims=True)
    w = np.asarray(weights, dtype=float)
    total = w.sum() or 1.0
    for m, c in ((avg @ own, 0), (avg @ win, 3)):
        out[:, c] = w @ m / total
        out[:, c + 1] = m.min(axis=0)
        if c == 0:
            out[:, 2] = w @ (m < LOW) / total
    return out
