"""Answers: cited verbatim sentences, the threshold and abstention, the answer-type check."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag.answer import Assistant, default_threshold
from rag.calibration import ThresholdSource
from rag.errors import BadInputError
from rag.indexing import build_index
from rag.scorer import expected_answer, offers, question_words

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "question, source, needle",
    [
        ("Which eruption caused crops to fail across Europe?", "volcanoes.txt", "Laki in 1783"),
        ("Who built the Bell Rock Lighthouse?", "lighthouse.html", "Robert Stevenson"),
        ("Where is the highest tidal range in the world?", "tides.pdf", "Bay of Fundy"),
        ("Who decoded the waggle dance?", "bees.md", "Karl von Frisch"),
    ],
)
def test_answer_is_a_cited_verbatim_sentence(store_assistant, question, source, needle):
    answer = store_assistant.ask(question)
    assert not answer.abstained
    assert needle in answer.answer and "[1]" in answer.answer
    top = answer.citations[0]
    assert top.source == source
    doc = store_assistant.index.documents[source]
    assert doc.text[top.start : top.end] == top.excerpt
    a, b = top.highlight
    assert top.start <= a < b <= top.end
    assert f"{doc.text[a:b]} [1]" in answer.answer
    assert top.line_start <= top.line_end
    assert len(answer.answer.split()) <= 80


def test_pdf_citations_name_the_page(store_assistant):
    top = store_assistant.ask("Where is the highest tidal range in the world?").citations[0]
    assert top.page == 2
    assert store_assistant.ask("Who built the Bell Rock Lighthouse?").citations[0].page is None


def test_threshold_comes_from_the_caller_then_the_calibration_then_the_default(
    built_index, tmp_path
):
    index = tmp_path / "index"
    shutil.copytree(built_index[1], index)
    assert Assistant(index).threshold_source() == (default_threshold(), "default")
    (index / "calibration.json").write_text('{"threshold": 0.5}')
    assert Assistant(index).threshold_source() == (0.5, "index calibration.json")
    assert Assistant(index, threshold=0.2).threshold_source() == (0.2, "explicit")
    assert Assistant(index).threshold_source()[1] is ThresholdSource.INDEX


def test_weak_evidence_abstains_and_still_lists_passages(store_assistant):
    answer = store_assistant.ask("What is the capital of Mongolia?")
    assert answer.abstained
    assert "do not contain" in answer.answer
    assert answer.citations  # the nearest passages
    assert answer.confidence < store_assistant.threshold


def test_a_sentence_in_two_different_files_is_shown_once(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    fact = "The Zorblax fruit turns bright violet when it is ripe."
    (seeds / "a.txt").write_text(f"Notes on fruit.\n{fact} It grows on Quell.\n")
    (seeds / "b.txt").write_text(f"Market report.\n{fact} Traders pay well for it.\n")
    build_index(seeds, tmp_path / "index")
    # What is tested is the de-duplication, not the abstention: threshold 0 always answers
    # (the default 0.40 abstains here, probability 0.31: a two-line corpus is far from the
    # mix the probability was calibrated on).
    answer = Assistant(tmp_path / "index").ask("What colour is a ripe Zorblax fruit?", threshold=0)
    assert not answer.abstained
    assert answer.answer.count("violet") == 1, answer.answer


SEED_QUESTIONS = [
    "Which camp in Syria have Central Asians been returned from?",
    "How many Central Asian migrants did DHS link to a smuggling network?",
    "Where were the eight Tajik nationals arrested?",
    "What happened in Manhattan on Halloween 2017?",
    "Which countries had disrupted ISIS-K plots?",
    "Where do most Central Asians who migrate go?",
    "When was the Crocus attack in Moscow?",
    "Who pressures Central Asian migrants to join its military?",
    "How many people have returned from the camps in Syria?",
    "Which city was the Uzbekistani attacker from?",
]


OFF_TOPIC = [
    "When did the 1973 oil crisis begin?",
    "Who was the first person to walk on the moon?",
    "What is the atomic number of oxygen?",
    "How many students attend Harvard University?",
    "What is a prime number?",
    "Where is the Victoria and Albert Museum?",
    "What powers does the Scottish Parliament have?",
    "Who invented the steam engine?",
    "What is the population of Fresno, California?",
    "What are ctenophores?",
]


@pytest.fixture(scope="module")
def seed_assistant(tmp_path_factory, embedder):
    index = tmp_path_factory.mktemp("seed") / "index"
    build_index(ROOT / "seeds", index)
    return Assistant(index)


def test_seed_questions_are_answered(seed_assistant):
    answers = [seed_assistant.ask(q) for q in SEED_QUESTIONS]
    assert [a.question for a in answers if a.abstained] == []
    assert "al-Hol" in answers[0].answer


def test_squad_questions_against_the_seed_article_abstain(seed_assistant):
    answers = [seed_assistant.ask(q) for q in OFF_TOPIC]
    assert [a.question for a in answers if not a.abstained] == []


@pytest.mark.parametrize(
    "question, sentence, expected",
    [
        ("How many people died in the attack?", "Eight people died in the attack.", True),
        ("How many people died in the attack?", "People died in the attack.", False),
        ("In what year was the group founded?", "The group was founded in 2015.", True),
        ("How many of the 8 men were charged?", "The 8 men were arrested.", False),
        ("What are the names of the men?", "The men were arrested by agents.", False),
        ("Who built the Bell Rock Lighthouse?", "It was built by Robert Stevenson.", True),
        ("Who built the Bell Rock Lighthouse?", "The Bell Rock Lighthouse is tall.", False),
        ("Why did crops fail?", "Sulphur dioxide spread.", None),
    ],
)
def test_answer_type_check(question, sentence, expected):
    wants = expected_answer(question)
    if expected is None:
        assert wants is None
    else:
        assert offers(wants, sentence, question_words(question)) is expected


# --- issue 9 (hardening) -----------------------------------------------------------


@pytest.mark.parametrize("question", ["caf\udce9?", "Who \ud800 built it?", b"Who?", 42])
def test_library_refuses_undecodable_or_non_text_questions(assistant, question):
    with pytest.raises(BadInputError, match="not valid UTF-8|must be text"):
        assistant.ask(question)


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "3", None])
def test_library_refuses_a_bad_k(assistant, k):
    with pytest.raises(BadInputError, match="k must be"):
        assistant.ask("Who decoded the waggle dance?", k=k)
    with pytest.raises(BadInputError, match="k must be"):
        assistant.retriever.search("Who decoded the waggle dance?", k=k)


def test_k_of_one_still_answers(store_assistant):
    answer = store_assistant.ask("Who decoded the waggle dance?", k=1)
    assert len(answer.citations) == 1 and "Karl von Frisch" in answer.answer


@pytest.mark.parametrize(
    "threshold", [float("nan"), float("inf"), float("-inf"), "0.3", True, 1.5, -0.1]
)
def test_library_refuses_a_bad_threshold(built_index, assistant, threshold):
    with pytest.raises(BadInputError, match="threshold must be"):
        assistant.ask("Who decoded the waggle dance?", threshold=threshold)
    with pytest.raises(BadInputError, match="threshold must be"):
        Assistant(built_index[1], threshold=threshold)


def test_threshold_is_a_probability_and_its_ends_mean_always_and_never(store_assistant):
    """The confidence is a calibrated probability: 0 always answers, 1 abstains unless sure."""
    q = "Who decoded the waggle dance?"
    assert store_assistant.ask(q, threshold=0.0).abstained is False
    answer = store_assistant.ask(q, threshold=1.0)
    assert answer.abstained is (answer.confidence < 1.0)
