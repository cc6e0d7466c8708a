"""Question sets: the format checked line by line, the committed sets, and finding them."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import BadInputError
from rag.evaluation import default_name, list_question_sets, load_question_set

ROOT = Path(__file__).resolve().parent.parent
EVALS = ROOT / "evals"
SEED_SET = EVALS / "seed" / "questions.jsonl"
SQUAD = EVALS / "squad-sample"
SMOKE_SET = SQUAD / "smoke.jsonl"
SMOKE_CORPUS = SQUAD / "smoke-corpus"


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = '{"id": "q1", "question": "Where?", "answers": ["Here"], "source": "a.txt", "span": [0, 9]}'


@pytest.mark.parametrize(
    "bad, says",
    [
        ('{"question": "Where?"', "not valid JSON"),
        ('["Where?"]', "expected a JSON object"),
        ('{"id": "q2"}', 'missing "question"'),
        ('{"question": "   "}', '"question" is empty'),
        ('{"question": "Where?", "answers": "Here"}', '"answers" must be a list'),
        ('{"question": "Where?", "answer": ["Here"]}', "unknown field 'answer'"),
        ('{"question": "Where?", "span": [0, 5]}', '"span" needs a "source"'),
        ('{"question": "Where?", "source": "a.txt", "span": [5, 2]}', '"span" must be'),
        ('{"question": "Where?", "answers": [], "source": "a.txt"}', "drop one of them"),
        ('{"id": "q1", "question": "Again?"}', "already used on line 1"),
    ],
)
def test_a_bad_line_is_named_with_its_number(tmp_path, bad, says):
    path = write_lines(tmp_path / "q.jsonl", GOOD, "", bad)
    with pytest.raises(BadInputError) as err:
        load_question_set(path)
    message = str(err.value)
    assert "line 3" in message and says in message
    assert "\n" not in message


def test_question_set_fields_and_defaults(tmp_path):
    path = write_lines(
        tmp_path / "q.jsonl",
        GOOD,
        '{"question": "Who?", "answers": [], "kind": "unanswerable"}',
        '{"question": "Why?"}',
    )
    q1, q2, q3 = load_question_set(path)
    assert (q1.id, q1.answers, q1.source, q1.span, q1.answerable) == (
        "q1",
        ("Here",),
        "a.txt",
        (0, 9),
        True,
    )
    assert q2.unanswerable and q2.kind == "unanswerable" and q2.id == "line-2"
    assert q3.answers is None and not q3.answerable and not q3.unanswerable

    with pytest.raises(BadInputError, match="not found"):
        load_question_set(tmp_path / "missing.jsonl")
    with pytest.raises(BadInputError, match="holds no questions"):
        load_question_set(write_lines(tmp_path / "empty.jsonl", ""))


def test_seed_set_is_worded_for_users_and_grounded_in_the_article():
    """Issue 3: >= 40 questions, >= 10 unanswerable; every answer verbatim in its span."""
    questions = load_question_set(SEED_SET)
    answerable = [q for q in questions if q.answerable]
    unanswerable = [q for q in questions if q.unanswerable]
    assert len(questions) >= 40
    assert len(unanswerable) >= 10
    assert len(answerable) + len(unanswerable) == len(questions)
    for q in unanswerable:
        assert q.source is None and q.span is None
    for q in answerable:
        assert q.source and q.span, q.id
        text = (ROOT / "seeds" / q.source).read_text(encoding="utf-8")
        passage = text[q.span[0] : q.span[1]]
        for a in q.answers:
            assert a in passage, f"{q.id}: {a!r} not in seeds/{q.source}[{q.span}]"
        # Worded as a user would ask, not copied from the sentence.
        assert q.question.rstrip("?") not in passage, q.id


def test_squad_smoke_subset_is_a_slice_of_the_full_sample():
    full = set((SQUAD / "questions.jsonl").read_text(encoding="utf-8").splitlines())
    smoke = load_question_set(SMOKE_SET)
    assert 100 <= len(smoke) <= 200
    assert set(SMOKE_SET.read_text(encoding="utf-8").splitlines()) <= full
    sources = {q.source for q in smoke}
    assert sources == {p.name for p in SMOKE_CORPUS.iterdir()}
    for name in sources:
        assert (SMOKE_CORPUS / name).read_bytes() == (SQUAD / "corpus" / name).read_bytes()


def test_list_question_sets_finds_the_sets_and_skips_reports():
    sets = [p.relative_to(EVALS).as_posix() for p in list_question_sets(EVALS)]
    assert {"seed/questions.jsonl", "squad-sample/questions.jsonl"} <= set(sets)
    assert "squad-sample/smoke.jsonl" in sets
    assert not [s for s in sets if s.startswith("reports/")]
    assert default_name(SMOKE_SET) == "squad-sample-smoke"
    assert default_name(SEED_SET) == "seed"
