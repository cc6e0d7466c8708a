"""The FAISS search index for a set of vectors: exact below a measured size, IVF-Flat above.

Chosen by the ANN study (evals/scale/README.md, "ANN study"; real SQuAD vectors and real
questions, and 100k / 250k / 1M sets of distinct vectors grown from them), one busy core:

* Below ``ANN_THRESHOLD`` vectors exact search costs a few milliseconds a question (14 ms
  at 100k, 34 ms at 250k, 80 ms at 1M: linear), so it stays exact.
* Above it, this recipe gave recall@10 1.000 / 0.999 / 1.000 against exact search at 100k
  / 250k / 1M, at 0.44 / 1.84 / 5.3 ms a question, trained and filled in 12 / 51 / 171 s.
  IVF can remove and add vectors by id (an incremental store needs that; HNSW cannot, and
  built 8x slower for similar recall); IVF-PQ capped at recall 0.59 (0.94 with a x4 exact
  re-rank), below the 0.98 goal.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and faiss load when used, not with this module (`rag --help`)
    import faiss
    import numpy as np

#: Vectors from which the approximate index is used (exact IndexFlatIP below).
ANN_THRESHOLD = 50_000
#: k-means trains on at most this many vectors a list (a sample; FAISS's default is 256,
#: which at 1M vectors means every vector and tens of minutes on 2 cores).
TRAIN_PER_LIST = 64
#: Fewest lists searched, and the least share of them (1/16): recall@10 >= 0.98 measured.
MIN_PROBES = 32
PROBE_SHARE = 16


def ivf_lists(n: int) -> int:
    """Inverted lists for ``n`` vectors: the power of two nearest 4·sqrt(n) (1,024 at
    100k, 4,096 at 1M), so each list holds about sqrt(n)/4 vectors; never more lists than
    vectors (k-means cannot train more centroids than points)."""
    return max(1, min(n, 2 ** round(math.log2(4 * math.sqrt(max(n, 1))))))


def ivf_probes(nlist: int) -> int:
    """Lists searched per question: at least ``MIN_PROBES`` and 1/``PROBE_SHARE`` of them."""
    return min(nlist, max(MIN_PROBES, nlist // PROBE_SHARE))


def make_search_index(vectors: np.ndarray, *, threshold: int = ANN_THRESHOLD) -> faiss.Index:
    """A FAISS inner-product index holding ``vectors`` (unit rows: inner product = cosine).

    Args:
        vectors: float32-convertible array of shape (n, dimension).
        threshold: from this many vectors on, an IVF-Flat index (trained on ``vectors``,
            its ``nprobe`` set) instead of the exact ``IndexFlatIP``.

    Returns:
        An index whose row i is ``vectors[i]`` (``ntotal == n``, ids are row numbers),
        exact below ``threshold`` and approximate above it (recall@10 >= 0.98 measured).
    """
    import faiss
    import numpy as np

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"vectors must be a 2-D array (n, dimension), got shape {x.shape}")
    if threshold < 1:
        raise ValueError(f"threshold must be >= 1, got {threshold}")
    n, d = x.shape
    if n < threshold:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = ivf_lists(n)
        # The coarse quantizer: the python wrapper keeps it alive with the index.
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.min_points_per_centroid = 1  # a small set (tests) trains without warnings
        index.cp.max_points_per_centroid = TRAIN_PER_LIST
        index.train(x)
        index.nprobe = ivf_probes(nlist)
    if n:
        index.add(x)
    return index
