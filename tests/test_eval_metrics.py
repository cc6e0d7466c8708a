"""The metric maths: SQuAD-style answer-correct, gold rank, floors."""

from __future__ import annotations

import pytest

from rag.errors import BadInputError
from rag.evaluation import answer_correct, check_floors, gold_rank, normalize_answer


def test_answer_correct_normalises_like_squad():
    assert normalize_answer("The  Department of  Homeland Security!") == (
        "department of homeland security"
    )
    assert normalize_answer("U.S.") == normalize_answer("US")  # deleted, as in SQuAD
    assert normalize_answer("New York’s") == normalize_answer("New York's")
    shown = "It began in October 1973. [1] Prices rose. [2]"
    assert answer_correct(shown, ["october 1973"], False)
    assert answer_correct(shown, ["Prices rose"], False)
    assert not answer_correct(shown, ["1"], False)  # a citation marker is not an answer
    assert not answer_correct("It began in 19735. [1]", ["1973"], False)  # whole words only
    assert not answer_correct(shown, ["October 1973"], True)  # abstained: nothing shown
    assert answer_correct("The documents do not contain an answer.", [], True)
    assert not answer_correct(shown, [], False)
    assert answer_correct(shown, None, False) is None


def test_gold_rank_is_the_first_citation_overlapping_the_gold_span():
    cites = [
        {"source": "b.txt", "start": 0, "end": 100},
        {"source": "a.txt", "start": 0, "end": 50},
        {"source": "a.txt", "start": 90, "end": 200},
    ]
    assert gold_rank(cites, "a.txt", (100, 150)) == 3
    assert gold_rank(cites, "a.txt", (50, 90)) is None  # touching is not overlapping
    assert gold_rank(cites, "a.txt", None) == 2
    assert gold_rank(cites, None, None) is None


def test_floors_are_validated():
    floors = {"min": {"hit@5": 0.9}, "max": {"false_abstention": 0.1}}
    assert check_floors({"hit@5": 0.95, "false_abstention": 0.05}, floors) == []
    failures = check_floors({"hit@5": 0.5, "false_abstention": 0.2}, floors)
    assert len(failures) == 2 and "hit@5" in failures[0]
    assert check_floors({}, floors)[0].startswith("hit@5: not measured")
    with pytest.raises(BadInputError):
        check_floors({}, {"minimum": {}})
