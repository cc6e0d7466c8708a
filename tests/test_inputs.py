"""Input checks of the library (rag/inputs.py): question lines, k, thresholds."""

from __future__ import annotations

import pytest

from rag.errors import BadInputError
from rag.inputs import parse_question_line


def test_parse_question_line_keeps_the_id_on_error():
    with pytest.raises(BadInputError) as info:
        parse_question_line('{"id": "x", "question": ["a"]}', 4)
    assert info.value.id == "x" and info.value.lineno == 4
