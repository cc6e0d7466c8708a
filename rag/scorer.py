"""The learned answer scorer: features of candidate sentences and of a question, and the
small models (plain arrays from a JSON file) that turn them into a choice and a probability.

Two stages:

1. **Sentence selection.** Every sentence of the retrieved chunks gets the features in
   ``SENTENCE_FEATURES`` and a linear logit (trained listwise to put the sentence that holds
   the gold answer first among its question's candidates). The best sentence is shown, and a
   second one when close.
2. **Answer probability.** The question gets the features in ``QUESTION_FEATURES`` (the best
   logit, the margin to the next one, how much of the question the best passage and the
   whole corpus cover, ...) and a logistic regression, calibrated on out-of-fold
   predictions, gives the probability that the shown answer is right.

``rag.features`` computes the features (its names are importable from here too); this module
holds the choice of the sentences to show and the models. The weights come from
``rag/scorer.json`` (``make scorer``; recipe: ``rag.training``). Inference is numpy only.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.features import (
    _HEADING,
    HEADING_LOGIT,
    QUESTION_FEATURES,
    SENTENCE_FEATURES,
    Candidates,
    SentenceKey,
    expected_answer,
    is_heading,
    offers,
    question_row,
    question_words,
    sentence_features,
)

__all__ = [
    "Candidates",
    "Choice",
    "HEADING_LOGIT",
    "Model",
    "QUESTION_FEATURES",
    "SENTENCE_FEATURES",
    "Scorer",
    "ScorerError",
    "SentenceKey",
    "WEIGHTS",
    "WEIGHTS_FORMAT",
    "choose",
    "expected_answer",
    "is_heading",
    "load_scorer",
    "members",
    "offers",
    "question_key",
    "question_row",
    "question_words",
    "sentence_features",
]


@dataclass(frozen=True)
class Choice:
    """Which sentences to show and in which order to list the chunks.

    Attributes:
        shown: row indices of the shown sentences, best first (one or two).
        shown_hits: for each shown sentence, the index (into the hits) of its chunk.
        order: every hit index, re-ranked by its best sentence (ties: retrieval order).
    """

    shown: tuple[int, ...]
    shown_hits: tuple[int, ...]
    order: tuple[int, ...]


def members(keys, spans) -> list[list[int]]:
    """For each chunk span (source, start, end), the candidate rows whose sentence it holds."""
    out: list[list[int]] = [[] for _ in spans]
    for h, (source, start, end) in enumerate(spans):
        for i, (s, a, b) in enumerate(keys):
            if s == source and start <= a and b <= end:
                out[h].append(i)
    return out


def choose(
    logits: np.ndarray,
    texts: list[str],
    member_rows: list[list[int]],
    *,
    max_sentences: int = 2,
    margin: float = 1.0,
    max_words: int = 80,
    answer_depth: int = 5,
    chunk_bonus: np.ndarray | None = None,
) -> Choice:
    """Re-rank the chunks by their best sentence and pick the sentence(s) to show.

    The best sentence of the first ``answer_depth`` re-ranked chunks is shown, then the next
    ones while their logit is within ``margin`` of it and the answer stays within
    ``max_words`` words; the same text is never shown twice.
    """
    best = [max((logits[i] for i in rows), default=-np.inf) for rows in member_rows]
    if chunk_bonus is not None:
        best = [b + e for b, e in zip(best, chunk_bonus, strict=True)]
    order = sorted(range(len(member_rows)), key=lambda h: -best[h])
    owner: dict[int, int] = {}
    for h in order[:answer_depth]:
        for i in member_rows[h]:
            owner.setdefault(i, h)
    ranked = sorted(owner, key=lambda i: -logits[i])
    shown: list[int] = []
    seen: set[str] = set()
    words = 0
    for i in ranked:
        if len(shown) == max_sentences or (shown and logits[i] < logits[shown[0]] - margin):
            break
        text = " ".join(texts[i].split())
        if text in seen:
            continue
        n = len(text.split())
        if shown and words + n > max_words:
            continue
        seen.add(text)
        shown.append(i)
        words += n
    return Choice(tuple(shown), tuple(owner[i] for i in shown), tuple(order))


# --------------------------------------------------------------------------- inference

#: The shipped weights (``make scorer`` writes them; recipe: ``rag.training``).
WEIGHTS = Path(__file__).with_name("scorer.json")
#: 2: the late-interaction features (``rag.late``) in both stages.
WEIGHTS_FORMAT = 2


@dataclass(frozen=True)
class Model:
    """One trained bundle: stage-1 and stage-2 weights and the calibration, as arrays.

    Attributes:
        held_out: the training articles this bundle never saw ("" for the full model).
    """

    sentence_coef: np.ndarray
    sentence_intercept: float
    question_coef: np.ndarray
    question_intercept: float
    platt_a: float
    platt_b: float
    held_out: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: dict, held_out=()) -> Model:
        return cls(
            np.asarray(d["stage1"]["coef"], dtype=float),
            float(d["stage1"]["intercept"]),
            np.asarray(d["stage2"]["coef"], dtype=float),
            float(d["stage2"]["intercept"]),
            float(d["calibration"]["a"]),
            float(d["calibration"]["b"]),
            tuple(held_out),
        )

    def sentence_logits(self, x: np.ndarray) -> np.ndarray:
        """Stage 1: one logit per candidate row (higher: more likely holds the answer).

        A heading line costs ``HEADING_LOGIT`` on top of the learned weights: SQuAD has no
        headings to learn from, and a title restates the topic but never answers.
        """
        return x @ self.sentence_coef + self.sentence_intercept - HEADING_LOGIT * x[:, _HEADING]

    def probability(self, row: np.ndarray) -> float:
        """Stage 2 and calibration: the probability that the shown answer is right."""
        z = float(row @ self.question_coef + self.question_intercept)
        return float(1.0 / (1.0 + math.exp(-(self.platt_a * z + self.platt_b))))


class ScorerError(ValueError):
    """The weights file is missing, damaged or of another format."""


@dataclass(frozen=True)
class Scorer:
    """The shipped weights: the full model, the per-fold models and how training was split.

    ``model`` answers every question of ``rag ask``. ``for_question`` is for evaluations: a
    question the training data held (or whose gold source is a training article with the same
    text) gets the fold model that never saw its article.
    """

    model: Model
    folds: tuple[Model, ...]
    margin: float
    default_threshold: float
    training_articles: dict  # article name -> content hash
    training_questions: dict  # question hash -> fold index
    meta: dict

    @classmethod
    def load(cls, path: Path | str = WEIGHTS) -> Scorer:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ScorerError(f"cannot read the answer scorer's weights {path}: {e}") from None
        if data.get("format") != WEIGHTS_FORMAT:
            raise ScorerError(
                f"{path} has scorer format {data.get('format')}, this rag reads "
                f"{WEIGHTS_FORMAT}: run `make scorer`"
            )
        if (
            tuple(data["sentence_features"]) != SENTENCE_FEATURES
            or tuple(data["question_features"]) != QUESTION_FEATURES
        ):
            raise ScorerError(f"{path} was trained on other features: run `make scorer`")
        return cls(
            model=Model.from_dict(data["model"]),
            folds=tuple(Model.from_dict(f["model"], f["held_out"]) for f in data["folds"]),
            margin=float(data["margin"]),
            default_threshold=float(data["default_threshold"]),
            training_articles=dict(data["training"]["articles"]),
            training_questions=dict(data["training"]["questions"]),
            meta={k: data[k] for k in ("format", "training", "recipe") if k in data},
        )

    def for_question(
        self, question: str, source: str | None = None, source_hash: str | None = None
    ) -> tuple[Model, str]:
        """The model to score ``question`` with in an evaluation, and why.

        Returns:
            (fold model, "fold N (article held out)") when the training data held this
            question or its gold source article (same name and content hash); else
            (full model, "full model").
        """
        fold = self.training_questions.get(question_key(question))
        if fold is None and source is not None:
            if self.training_articles.get(source) == source_hash:
                fold = next((i for i, f in enumerate(self.folds) if source in f.held_out), None)
        if fold is None:
            return self.model, "full model"
        return self.folds[fold], f"fold {fold + 1} (article held out)"


def question_key(question: str) -> str:
    """How the weights file names a training question: a hash of its squeezed text."""
    text = " ".join(question.split()).lower()
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


@lru_cache(maxsize=4)
def load_scorer(path: str = str(WEIGHTS)) -> Scorer:
    """The scorer at ``path``, loaded once per process."""
    return Scorer.load(path)
