"""The abstention threshold of an index: chosen on a question set, stored beside the index.

``calibrate_threshold`` picks the threshold that best separates the confidences of
answerable and unanswerable questions; ``write_calibration`` stores it as the index's
``calibration.json`` (through ``swap.write_atomically``, like every change to an index) and
``stored_threshold`` reads it back for ``rag ask``, ``rag serve`` and ``rag eval``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import BadInputError
from rag.settings import Choice, utc_now
from rag.store import CALIBRATION
from rag.swap import write_atomically, writer_lock

if TYPE_CHECKING:  # numpy loads when used, not with this module (`rag --help`)
    pass

CRITERION = (
    "balanced accuracy = (share of answerable questions answered + share of unanswerable "
    "questions abstained) / 2, maximised over the midpoints between observed confidences; "
    "ties go to the lower threshold"
)


class ThresholdSource(Choice):
    """Where the abstention threshold in use comes from (shown in reports and the UI)."""

    EXPLICIT = "explicit"  # given by the caller (--threshold)
    CALIBRATED_NOW = "calibrated on this set"  # rag eval --calibrate, this run
    INDEX = "index calibration.json"  # an earlier rag eval --calibrate
    DEFAULT = "default"  # answer.DEFAULT_THRESHOLD


@dataclass(frozen=True)
class Calibration:
    """An abstention threshold chosen on a question set (criterion: ``CRITERION``).

    Attributes:
        answered: share of answerable questions whose confidence is >= threshold.
        abstained: share of unanswerable questions whose confidence is < threshold.
    """

    threshold: float
    answered: float
    abstained: float
    balanced_accuracy: float
    n_answerable: int
    n_unanswerable: int
    criterion: str = CRITERION

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate_threshold(answerable: Sequence[float], unanswerable: Sequence[float]) -> Calibration:
    """Pick the threshold that best separates answerable from unanswerable confidences.

    Raises:
        BadInputError: either group is empty, or every confidence is the same.

    Returns:
        The midpoint between two observed confidences with the highest balanced accuracy,
        the lowest such threshold on a tie.
    """
    import numpy as np

    if not answerable or not unanswerable:
        raise BadInputError(
            "--calibrate needs answerable and unanswerable questions (answers: []) in the set, "
            f"got {len(answerable)} and {len(unanswerable)}"
        )
    a = np.sort(np.asarray(answerable, dtype=float))
    u = np.sort(np.asarray(unanswerable, dtype=float))
    values = np.unique(np.concatenate([a, u]))
    if len(values) < 2:
        raise BadInputError("cannot calibrate: every question has the same confidence")
    candidates = (values[:-1] + values[1:]) / 2
    answered = (len(a) - np.searchsorted(a, candidates, side="left")) / len(a)
    abstained = np.searchsorted(u, candidates, side="left") / len(u)
    balanced = np.round((answered + abstained) / 2, 12)
    best = int(np.argmax(balanced))  # first maximum = lowest threshold
    return Calibration(
        threshold=float(candidates[best]),
        answered=round(float(answered[best]), 4),
        abstained=round(float(abstained[best]), 4),
        balanced_accuracy=round(float(balanced[best]), 4),
        n_answerable=len(a),
        n_unanswerable=len(u),
    )


def write_calibration(index_dir: Path | str, calibration: Calibration, **extra) -> Path:
    """Store ``calibration`` (and ``extra`` fields) as the index's ``calibration.json``.

    The index folder is swapped as a whole by ``swap.write_atomically``, the one way an
    index changes on disk, under the index's writer lock (so a build and a calibration never
    interleave): its other files are hard-linked into the new folder (copied where links are
    not possible), so this costs no copy of the vectors.

    Returns:
        The path written.
    """
    index_dir = Path(index_dir)
    data = {**calibration.to_dict(), "created_at": utc_now(), **extra}

    def write(tmp: Path) -> None:
        for f in index_dir.iterdir():
            if f.is_file() and f.name != CALIBRATION:
                try:
                    os.link(f, tmp / f.name)
                except OSError:
                    shutil.copy2(f, tmp / f.name)
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        (tmp / CALIBRATION).write_text(text, encoding="utf-8")

    with writer_lock(index_dir):
        write_atomically(index_dir, write)
    return index_dir / CALIBRATION


def stored_threshold(index_dir: Path | str) -> float | None:
    """The threshold stored by ``rag eval --calibrate`` for the index at ``index_dir``, if any."""
    try:
        text = (Path(index_dir) / CALIBRATION).read_text(encoding="utf-8")
        return float(json.loads(text)["threshold"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
