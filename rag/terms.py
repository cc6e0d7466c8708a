"""The vocabulary of BM25 and the answer scorer: lowercased, stop-word-free, stemmed words.

One function, shared by the build (which stores each chunk's terms) and the retriever
(which derives a question's terms, and a candidate sentence's, when it needs them).
"""

from __future__ import annotations

import re
from functools import lru_cache

_WORD = re.compile(r"\w+", re.UNICODE)


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def terms(text: str) -> list[str]:
    """Lowercased, stop-word-free, Snowball-stemmed words: BM25's and the scorer's vocabulary."""
    stop = _stopwords()
    return _stemmer().stemWords([w for w in _WORD.findall(text.lower()) if w not in stop])
