"""The abstention threshold: chosen by balanced accuracy, stored beside the index, read back."""

from __future__ import annotations

import json
import shutil

import pytest

from rag.answer import Assistant
from rag.calibration import (
    Calibration,
    ThresholdSource,
    calibrate_threshold,
    stored_threshold,
    write_calibration,
)
from rag.errors import BadInputError
from rag.indexing import build_index


def test_calibration_maximises_balanced_accuracy_and_prefers_the_lower_threshold():
    cal = calibrate_threshold([0.5, 0.6, 0.7, 0.8], [0.1, 0.2, 0.55])
    assert isinstance(cal, Calibration)
    # 0.35 answers 4/4 and abstains on 2/3 -> 0.833; 0.575 answers 3/4 and abstains on 3/3
    # -> 0.875, the best.
    assert cal.threshold == pytest.approx(0.575)
    assert (cal.answered, cal.abstained, cal.balanced_accuracy) == (0.75, 1.0, 0.875)
    even = calibrate_threshold([0.4, 0.9], [0.2, 0.6])  # 0.3 and 0.75 both score 0.75
    assert even.threshold == pytest.approx(0.3)
    with pytest.raises(BadInputError, match="needs answerable and unanswerable"):
        calibrate_threshold([0.5], [])


def test_a_calibration_is_stored_in_the_index_and_read_back(built_index, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(built_index[1], index)
    before = {p.name: p.read_bytes() for p in index.iterdir()}
    assert stored_threshold(index) is None
    cal = calibrate_threshold([0.5, 0.6, 0.7, 0.8], [0.1, 0.2, 0.55])
    path = write_calibration(index, cal, question_set="q.jsonl")
    assert path == index / "calibration.json"
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert stored["threshold"] == cal.threshold and stored["question_set"] == "q.jsonl"
    assert stored["created_at"].endswith("+00:00")
    assert stored_threshold(index) == cal.threshold
    # Every other file of the index is as it was, and nothing temporary is left beside it.
    assert {p.name: p.read_bytes() for p in index.iterdir() if p != path} == before
    # (beside it: only the index's writer lock, which the write held)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".index.lock", "index"]
    assert Assistant(index).threshold_source() == (cal.threshold, ThresholdSource.INDEX)
    # A rebuild keeps the calibration (it belongs to the index, not to one build).
    build_index(built_index[0], index)
    assert stored_threshold(index) == cal.threshold


def test_an_unreadable_calibration_is_no_calibration(tmp_path):
    assert stored_threshold(tmp_path) is None
    (tmp_path / "calibration.json").write_text("{half", encoding="utf-8")
    assert stored_threshold(tmp_path) is None


def test_threshold_sources_parse_and_name_the_valid_values():
    assert ThresholdSource.from_str("default") is ThresholdSource.DEFAULT
    with pytest.raises(BadInputError, match="one of explicit, calibrated on this set, index"):
        ThresholdSource.from_str("guess")
