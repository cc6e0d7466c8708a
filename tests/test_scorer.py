"""The answer scorer: shipped weights, the probability and abstention, a deterministic recipe."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.scorer import QUESTION_FEATURES, SENTENCE_FEATURES, WEIGHTS, Scorer, question_key

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_weights_load_and_match_the_training_data_in_the_repository():
    from rag.training import SQUAD, data_hash

    scorer = Scorer.load(WEIGHTS)
    data = json.loads(WEIGHTS.read_text())
    assert data["sentence_features"] == list(SENTENCE_FEATURES)
    assert data["question_features"] == list(QUESTION_FEATURES)
    assert len(scorer.model.sentence_coef) == len(SENTENCE_FEATURES)
    assert len(scorer.model.question_coef) == len(QUESTION_FEATURES)
    # The weights name the data they were trained on: the files of this repository.
    digest, files = data_hash(ROOT, SQUAD)
    assert data["training"]["files"] == files
    assert data["training"]["data_hash"] == digest
    # Four article-level folds, each holding out articles no other fold holds out.
    held_out = [a for f in scorer.folds for a in f.held_out]
    assert len(scorer.folds) == 4 and len(held_out) == len(set(held_out)) == 16
    assert set(held_out) == set(scorer.training_articles)


def test_a_training_question_is_scored_by_the_fold_that_never_saw_its_article():
    scorer = Scorer.load(WEIGHTS)
    line = (ROOT / "evals/squad-sample/questions.jsonl").read_text().splitlines()[0]
    q = json.loads(line)
    model, why = scorer.for_question(q["question"], q["source"])
    assert why.startswith("fold") and q["source"] in model.held_out
    # Unknown question and unknown article: the full model.
    model, why = scorer.for_question("Who built the Bell Rock Lighthouse?", "lighthouse.html")
    assert model is scorer.model and why == "full model"
    # A training article's name with other content is not the training article.
    text_hash = hashlib.sha256(b"other text").hexdigest()
    model, why = scorer.for_question("What is it?", q["source"], text_hash)
    assert model is scorer.model
    assert question_key("  When did the 1973 oil crisis begin? ") == question_key(
        "when did the 1973 oil crisis begin?"
    )


QUESTIONS = [
    "Who built the Bell Rock Lighthouse?",
    "Where is the highest tidal range in the world?",
    "What is the capital of Mongolia?",
    "When did Eyjafjallajökull erupt?",
    "How do bees communicate?",
]


@pytest.mark.parametrize("question", QUESTIONS)
def test_probability_is_a_probability_and_abstention_follows_the_threshold(assistant, question):
    answer = assistant.ask(question)
    assert 0.0 <= answer.probability <= 1.0
    assert answer.confidence == answer.probability
    assert answer.abstained == (answer.probability < assistant.threshold)
    d = answer.to_dict()
    assert d["probability"] == d["confidence"] == round(answer.probability, 4)
    # The threshold decides, and only the threshold: the probability does not move.
    below = assistant.ask(question, threshold=max(answer.probability - 0.01, 0.0))
    above = assistant.ask(question, threshold=min(answer.probability + 0.01, 1.0))
    assert below.probability == above.probability == answer.probability
    assert not below.abstained and above.abstained
    assert below.quoted >= 1 and above.quoted == 0


def test_a_question_the_documents_answer_is_more_probable_than_one_they_do_not(assistant):
    right = assistant.ask("Who built the Bell Rock Lighthouse?")
    off_topic = assistant.ask("What is the capital of Mongolia?")
    assert "Stevenson" in right.answer and not right.abstained
    assert off_topic.abstained and right.probability > off_topic.probability + 0.3


# --- the recipe ---------------------------------------------------------------------------

TINY = {
    "bees.md": [
        ("How many eggs can the queen lay in a day?", "2,000"),
        ("Who decoded the waggle dance?", "Karl von Frisch"),
        ("How long do foraging workers live in summer?", "six weeks"),
        ("When did von Frisch share the Nobel Prize?", "1973"),
    ],
    "lighthouse.html": [
        ("Who built the Bell Rock Lighthouse?", "Robert Stevenson"),
        ("How far off the coast is the reef?", "eleven miles"),
        ("How tall is the lighthouse?", "35 metres"),
        ("What is the light range?", "18 nautical miles"),
    ],
    "tides.pdf": [
        ("How often do high tides happen?", "12 hours and 25 minutes"),
        ("Where is the highest tidal range in the world?", "Bay of Fundy"),
        ("When do spring tides occur?", "new and full moon"),
        ("What raises a bulge of water on the Earth?", "Moon"),
    ],
    "volcanoes.txt": [
        ("When did Eyjafjallajökull erupt?", "April 2010"),
        ("How many volcanic mountains does Iceland have?", "130"),
        ("How long did the Laki eruption last?", "eight months"),
        ("How long is the pipeline to Reykjavík?", "27 kilometres"),
    ],
}
TINY_UNANSWERABLE = {
    "bees.md": ["How many bees live in London?", "Who was the first beekeeper?"],
    "lighthouse.html": ["Who painted the Bell Rock Lighthouse?", "When was the lamp replaced?"],
    "tides.pdf": ["What is the lowest tidal range in Asia?", "Who first measured the tides?"],
    "volcanoes.txt": ["When will Eyjafjallajökull erupt next?", "How deep is Lake Myvatn?"],
}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, corpus_dir, embedder):
    from rag.training import TrainingData

    root = tmp_path_factory.mktemp("tiny")
    shutil.copytree(corpus_dir, root / "corpus")
    with (root / "answerable.jsonl").open("w") as f:
        for source, pairs in TINY.items():
            for question, answer in pairs:
                row = {"question": question, "answers": [answer], "source": source}
                f.write(json.dumps(row) + "\n")
    articles = {}
    with (root / "unanswerable.jsonl").open("w") as f:
        for source, questions in TINY_UNANSWERABLE.items():
            for question in questions:
                qid = f"u{len(articles)}"
                f.write(json.dumps({"id": qid, "question": question, "answers": []}) + "\n")
                articles[qid] = source
    (root / "articles.json").write_text(json.dumps(articles))
    data = TrainingData(
        Path("answerable.jsonl"), Path("unanswerable.jsonl"), Path("articles.json"), Path("corpus")
    )
    return root, data


def test_the_recipe_is_deterministic_and_writes_what_the_scorer_reads(tiny_data, tmp_path):
    from rag.training import compare_weights, train_scorer, write_weights

    root, data = tiny_data
    first = train_scorer(root, data=data)
    second = train_scorer(root, data=data)
    # Same data, same weights (to the tolerance `make scorer-check` uses: torch's kernels may
    # move an embedding's last bits between processes).
    assert compare_weights(second, first) == []
    moved = json.loads(json.dumps(second))
    moved["model"]["stage1"]["coef"][0] += 0.001
    assert compare_weights(moved, first) == [
        f"/model/stage1/coef[0]: {moved['model']['stage1']['coef'][0]!r}, "
        f"committed {first['model']['stage1']['coef'][0]!r}"
    ]
    assert first["training"]["folds"] == [[a] for a in sorted(TINY)]
    assert first["training"]["n_answerable"] == 16 and first["training"]["n_unanswerable"] == 8
    path = tmp_path / "scorer.json"
    write_weights(first, path)
    scorer = Scorer.load(path)
    assert [f.held_out for f in scorer.folds] == [(a,) for a in sorted(TINY)]
    p = scorer.model.probability(np.zeros(len(QUESTION_FEATURES)))
    assert 0.0 < p < 1.0


def test_damaged_weights_are_a_clear_error(tmp_path):
    from rag.scorer import ScorerError

    bad = tmp_path / "scorer.json"
    bad.write_text("{not json")
    with pytest.raises(ScorerError, match="cannot read"):
        Scorer.load(bad)
    bad.write_text(json.dumps({"format": 99}))
    with pytest.raises(ScorerError, match="make scorer"):
        Scorer.load(bad)


def test_a_question_asked_without_its_gold_paragraph_sees_the_rest_of_the_index(assistant):
    """The synthetic on-topic negatives of the research log (evals/scorer/nogold_train.py)."""
    from rag.evaluation import Question
    from rag.fitting import DEPTH, _without_gold, dump_questions

    retriever = assistant.retriever
    q = Question("q1", "When did Eyjafjallajökull erupt?", ("April 2010",), "volcanoes.txt")
    full = dump_questions(retriever, [q])
    without = dump_questions(retriever, [q], without_gold=True)
    assert full.in_span.any() and not without.in_span.any()
    assert without.qinfo[0]["no_gold"] and "no_gold" not in full.qinfo[0]
    kept = [h for h in full.qinfo[0]["hits"] if h[0] != "volcanoes.txt"]
    assert without.qinfo[0]["hits"] == kept and kept
    # The other chunks close up: ranks 1..n, and each dense rank drops by the gold chunks
    # ranked above it.
    hits = retriever.search(q.question, k=DEPTH)
    gone = [h for h in hits if h.chunk.source == "volcanoes.txt"]
    closed = _without_gold(hits, q)
    assert [h.rank for h in closed] == list(range(1, len(kept) + 1))
    for h in closed:
        before = next(o for o in hits if o.chunk.id == h.chunk.id)
        above = sum(1 for g in gone if g.dense_rank and g.dense_rank < before.dense_rank)
        assert h.dense_rank == before.dense_rank - above


def test_listwise_stage_one_learns_which_candidate_of_each_question_is_the_answer():
    from rag.fitting import fit_listwise, logit

    rng = np.random.default_rng(0)
    groups, xs, ys = [], [], []
    for g in range(200):
        n = int(rng.integers(2, 8))
        # Column 0 marks the answer, column 1 is the same for a whole question (a softmax
        # cannot use it), column 2 is noise.
        x = np.c_[rng.normal(size=n), np.full(n, rng.normal()), rng.normal(size=n)]
        y = np.zeros(n, dtype=bool)
        y[int(np.argmax(x[:, 0] + 0.5 * rng.normal(size=n)))] = True
        groups += [g] * n
        xs.append(x)
        ys.append(y)
    groups.append(200)  # a question without a positive is left out of the fit
    xs.append(np.array([[9.0, 0.0, 0.0]]))
    ys.append(np.array([False]))
    x, y, group = np.vstack(xs), np.concatenate(ys), np.array(groups)
    model = fit_listwise(x, y, group)
    coef = model["coef"]
    assert coef[0] > 1.0 and abs(coef[1]) < 1e-3 and abs(coef[2]) < 0.3 * coef[0]
    s = logit(model, x)
    top = [np.flatnonzero(group == g)[np.argmax(s[group == g])] for g in range(200)]
    assert np.mean(y[top]) > 0.7
    assert fit_listwise(x, y, group) == model  # deterministic
    from rag.fitting import Recipe

    with pytest.raises(ValueError, match="stage1_loss"):
        Recipe(stage1_loss="listwize")


def test_a_no_answer_option_anchors_the_listwise_logits():
    from rag.fitting import fit_listwise, logit

    rng = np.random.default_rng(1)
    groups, xs, ys, nulls = [], [], [], []
    for g in range(300):
        n = int(rng.integers(5, 12))
        unanswerable = g % 3 == 0
        # Column 0 is how well a candidate matches; an answerable question's best candidate
        # matches well, every candidate of an unanswerable one less well.
        x = rng.normal(size=(n, 1)) - (1.0 if unanswerable else 0.0)
        y = np.zeros(n, dtype=bool)
        if not unanswerable:
            best = int(np.argmax(x[:, 0]))
            x[best, 0] += 2.0
            y[best] = True
        groups += [g] * n
        xs.append(x)
        ys.append(y)
        nulls += [unanswerable] * n
    x, y, group, null = np.vstack(xs), np.concatenate(ys), np.array(groups), np.array(nulls)
    answerable = np.arange(300) % 3 != 0

    def told_apart(model) -> float:
        """Share of questions whose best logit's sign says whether they are answerable."""
        s = logit(model, x)
        best = np.array([s[group == g].max() for g in range(300)])
        return float(np.mean((best > 0) == answerable))

    # Positive when the best candidate beats "no answer". Without the option only the
    # ranking is learned, and the level is whatever the standardisation left.
    with_null = told_apart(fit_listwise(x, y, group, null=null))
    assert with_null > 0.95 and told_apart(fit_listwise(x, y, group)) < 0.8


def test_the_default_threshold_keeps_both_answer_correct_floors():
    from rag.training import choose_threshold

    # Answerable questions right with probability 0.05, 0.15, ..., 0.95; five of them wrong.
    prob = np.r_[np.arange(0.05, 1.0, 0.1), np.full(5, 0.9), np.full(4, 0.5)]
    right = np.r_[np.ones(10, bool), np.zeros(5, bool), np.zeros(4, bool)]
    answerable = np.r_[np.ones(15, bool), np.zeros(4, bool)]
    # 10 of 15 right at most: no threshold keeps 0.80, so the rule falls back to 0.
    assert choose_threshold(prob, right, answerable) == 0.0
    answerable[10:15] = False  # the wrong ones become unanswerable questions
    # 0.80 of the 10 right answers are kept up to 0.25.
    assert choose_threshold(prob, right, answerable) == 0.25
    # Reworded questions right at 0.15 and 0.95, and one wrong: 2/3 < 0.82 at any threshold.
    reworded = (np.array([0.15, 0.95, 0.5]), np.array([True, True, False]))
    assert choose_threshold(prob, right, answerable, reworded=reworded) == 0.0
    # 50 reworded questions, all right: above 0.15, 41 of them (0.82, held) or 40 (0.80, not).
    held = (np.array([0.15] * 9 + [0.95] * 41), np.ones(50, bool))
    assert choose_threshold(prob, right, answerable, reworded=held) == 0.25
    binding = (np.array([0.15] * 10 + [0.95] * 40), np.ones(50, bool))
    assert choose_threshold(prob, right, answerable, reworded=binding) == 0.15
