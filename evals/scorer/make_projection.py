"""Write rag/token_projection.npy: the top D principal axes (uncentred) of MiniLM token vectors.

    .venv/bin/python evals/scorer/li_compress.py encode   # token vectors of the SQuAD corpus
    .venv/bin/python evals/scorer/make_projection.py 64

Fitted on the content-word pieces of the SQuAD sample corpus's sentences (each sentence
encoded alone, as the build does), float32, 384 x D. See README "Late interaction, stored".
"""

from __future__ import annotations

import sys

import numpy as np
from harness import CACHE, ROOT


def main(d: int) -> None:
    z = np.load(CACHE / "tok_squad.npz")
    x = z["vectors"][z["content"]].astype(np.float64)
    w, e = np.linalg.eigh(x.T @ x)
    order = np.argsort(-w)
    p = np.ascontiguousarray(e[:, order[:d]], dtype=np.float32)
    # a fixed sign per axis (eigh's is arbitrary): the largest entry positive
    p *= np.sign(p[np.abs(p).argmax(axis=0), np.arange(d)])
    np.save(ROOT / "rag" / "token_projection.npy", p)
    print(f"{len(x)} pieces, {d} axes keep {w[order[:d]].sum() / w.sum():.3f} of the energy")


if __name__ == "__main__":
    main(int(sys.argv[1]))
