"""The core contract: documents, chunks, index, retrieval and cited answers (issue 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rag.answer import Assistant
from rag.chunking import chunk_document, count_tokens, split_sentences
from rag.documents import Document, load_documents
from rag.errors import IndexMismatchError, IndexNotFoundError, RagError
from rag.store import Index, build_index, write_atomically

ROOT = Path(__file__).resolve().parent.parent
SQUAD = ROOT / "evals" / "squad-sample" / "corpus"
if not SQUAD.is_dir():  # before the eval set is copied in
    SQUAD = ROOT.parent / "shared" / "data" / "squad-v1.1-dev-sample" / "corpus"


def _same(a, b) -> bool:
    strip = lambda d: {k: v for k, v in d.to_dict().items() if k != "latency_ms"}  # noqa: E731
    return strip(a) == strip(b)


# --- documents -------------------------------------------------------------------------


def test_every_format_has_one_canonical_text(corpus_dir):
    docs = {d.source: d for d in load_documents(corpus_dir)}
    assert set(docs) == {"bees.md", "lighthouse.html", "tides.pdf", "volcanoes.txt"}
    assert docs["volcanoes.txt"].text == (corpus_dir / "volcanoes.txt").read_text(encoding="utf-8")
    html = docs["lighthouse.html"].text
    assert "Robert Stevenson between 1807 and 1810" in html
    assert "tracking" not in html and "font-family" not in html and "<" not in html
    pdf = docs["tides.pdf"]
    assert pdf.page_starts is not None and len(pdf.page_starts) == 2
    assert pdf.page_of(pdf.text.index("Bay of Fundy")) == 2
    assert pdf.page_of(pdf.text.index("High tides")) == 1


def test_unreadable_files_are_skipped_with_a_warning(seeds_copy):
    (seeds_copy / "empty.txt").write_text("   \n")
    (seeds_copy / "binary.txt").write_bytes(b"\x00\x01\x02PK\x03\x04")
    (seeds_copy / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (seeds_copy / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (seeds_copy / "image.png").write_bytes(b"\x89PNG\r\n")
    warnings: list[str] = []
    docs = load_documents(seeds_copy, warn=warnings.append)
    assert len(docs) == 4
    for name in ("empty.txt", "binary.txt", "latin1.txt", "broken.pdf", "image.png"):
        (line,) = [w for w in warnings if name in w]
        assert "\n" not in line


# --- chunking --------------------------------------------------------------------------


def _all_docs():
    return (
        load_documents(ROOT / "seeds")
        + load_documents(SQUAD)
        + load_documents(ROOT / "tests" / "data" / "corpus")
    )


def test_chunks_are_exact_slices_and_fit_the_model_window(embedder):
    docs = _all_docs()
    assert len(docs) >= 17
    n = 0
    for doc in docs:
        chunks = chunk_document(
            doc,
            chunk_tokens=128,
            overlap_sentences=1,
            window_tokens=embedder.count_tokens,
            window=embedder.window,
        )
        assert chunks, doc.source
        for c in chunks:
            assert c.text == doc.text[c.start : c.end]
            assert count_tokens(c.text) <= 128 or len(c.sentences) == 1
            assert embedder.count_tokens(c.text) <= embedder.window
            assert c.sentences[0][0] == c.start and c.sentences[-1][1] == c.end
            for a, b in c.sentences:
                assert c.start <= a < b <= c.end
            n += 1
    assert n > 1000


def test_window_is_counted_with_the_models_own_tokenizer(embedder):
    # A budget the model window cannot hold: the window (in word pieces) must win.
    doc = Document("x.txt", " ".join(["Pneumonoultramicroscopicsilicovolcanoconiosis."] * 40), "h")
    chunks = chunk_document(
        doc, chunk_tokens=400, overlap_sentences=0, window_tokens=embedder.count_tokens, window=48
    )
    assert len(chunks) > 1
    assert all(embedder.count_tokens(c.text) <= 48 for c in chunks)
    assert all(c.text == doc.text[c.start : c.end] for c in chunks)


def test_overlong_sentence_is_split_on_words():
    text = "word " * 500 + "end."
    doc = Document("long.txt", text, "h")
    chunks = chunk_document(doc, chunk_tokens=64, overlap_sentences=1)
    assert len(chunks) > 5
    assert all(count_tokens(c.text) <= 64 and c.text == text[c.start : c.end] for c in chunks)


def test_overlap_repeats_whole_sentences():
    doc = load_documents(SQUAD)[0]
    chunks = chunk_document(doc, chunk_tokens=128, overlap_sentences=1)
    shared = [a.sentences[-1] == b.sentences[0] for a, b in zip(chunks, chunks[1:], strict=False)]
    assert sum(shared) >= len(shared) * 0.9  # all but single-sentence chunks


def test_sentences_never_cross_lines():
    text = "Heading without a stop\nFirst sentence here. Second one!\n\nThird."
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == [
        "Heading without a stop",
        "First sentence here.",
        "Second one!",
        "Third.",
    ]


# --- index store -----------------------------------------------------------------------


def test_manifest_records_settings_hashes_and_versions(built_index):
    _, index = built_index
    m = json.loads((index / "manifest.json").read_text())
    assert m["format_version"] == 1
    assert m["model"]["dimension"] == 384 and m["model"]["window"] == 256
    assert m["settings"]["chunk_tokens"] > 0
    assert set(m["documents"]) == {"bees.md", "lighthouse.html", "tides.pdf", "volcanoes.txt"}
    assert all(len(d["content_hash"]) == 64 and d["chunks"] >= 1 for d in m["documents"].values())
    assert {"faiss-cpu", "sentence-transformers", "torch"} <= set(m["versions"])
    assert not list(index.glob("*.pkl")) and not list(index.glob("*.pickle"))


def test_round_trip_gives_identical_answers(built_index, assistant, tmp_path):
    copy = tmp_path / "moved-index"
    shutil.copytree(built_index[1], copy)
    again = Assistant(copy)
    for q in (
        "When did Eyjafjallajökull erupt?",
        "Who built the Bell Rock Lighthouse?",
        "How many eggs can a queen lay?",
        "what is the price of tea in China",
    ):
        assert _same(assistant.ask(q), again.ask(q))


def test_missing_index_and_other_model_are_clear_errors(built_index, tmp_path):
    with pytest.raises(IndexNotFoundError, match="rag index"):
        Index.load(tmp_path / "nothing")
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        Index.load(built_index[1], model="some/other-model")
    copy = tmp_path / "old-format"
    shutil.copytree(built_index[1], copy)
    m = json.loads((copy / "manifest.json").read_text())
    m["format_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexMismatchError, match="rag index --rebuild"):
        Index.load(copy)


def test_failed_write_leaves_the_previous_index_intact(built_index, tmp_path, assistant):
    index = tmp_path / "index"
    shutil.copytree(built_index[1], index)
    before = {p.name: p.read_bytes() for p in index.iterdir()}

    def crash(tmp: Path) -> None:
        (tmp / "chunks.jsonl").write_text("half written")
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-build

    with pytest.raises(KeyboardInterrupt):
        write_atomically(index, crash)
    assert {p.name: p.read_bytes() for p in index.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["index"]  # no temporary left behind
    q = "Who decoded the waggle dance?"
    assert _same(Assistant(index).ask(q), assistant.ask(q))


def test_a_folder_that_is_not_an_index_is_never_replaced(seeds_copy, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(RagError, match="another --index"):
        build_index(seeds_copy, precious)
    assert (precious / "thesis.txt").read_text() == "do not delete"


# --- incremental rebuild (through the real CLI) ----------------------------------------


def test_add_change_delete_and_unchanged_rebuild(seeds_copy, tmp_path, rag_cli):
    index = tmp_path / "index"
    first = rag_cli("index", "--seeds", seeds_copy, "--index", index, "--quiet")
    assert first.returncode == 0, first.stderr
    assert "4 added" in first.stdout

    again = rag_cli("index", "--seeds", seeds_copy, "--index", index)
    assert again.returncode == 0 and "0 of" in again.stdout and "4 unchanged" in again.stdout

    q = "What colour is the Zorblax fruit?"
    before = Assistant(index).ask(q)
    assert before.abstained
    (seeds_copy / "zorblax.txt").write_text(
        "The Zorblax fruit is bright violet when ripe. It grows only on the island of Quell.\n"
    )
    (seeds_copy / "bees.md").write_text("# Honey bees\n\nThe queen bee can lay 9,999 eggs a day.\n")
    (seeds_copy / "volcanoes.txt").unlink()
    out = rag_cli("index", "--seeds", seeds_copy, "--index", index)
    assert out.returncode == 0, out.stderr
    assert "1 added, 1 changed, 1 removed, 2 unchanged" in out.stdout

    after = Assistant(index)
    got = after.ask(q)
    assert not got.abstained and "violet" in got.answer
    assert got.citations[0].source == "zorblax.txt"
    assert "9,999" in after.ask("How many eggs can the queen bee lay in a day?").answer
    for c in after.ask("When did Eyjafjallajökull erupt?", k=50).citations:
        assert c.source != "volcanoes.txt"


def test_build_report_counts_only_the_texts_it_embedded(seeds_copy, tmp_path):
    index = tmp_path / "index"
    first = build_index(seeds_copy, index)
    assert first.chunks_embedded == first.chunks_total > 0 and first.sentences_embedded > 0
    unchanged = build_index(seeds_copy, index)
    assert (unchanged.chunks_embedded, unchanged.sentences_embedded) == (0, 0)

    # One chunk of two new sentences: 1 chunk + 2 sentence vectors. One chunk that is a
    # single sentence: its vector serves both, counted once as a chunk.
    (seeds_copy / "pair.txt").write_text("Quell island has violet fruit. Its harbour is small.\n")
    (seeds_copy / "single.txt").write_text("The lighthouse on Quell is painted green.\n")
    added = build_index(seeds_copy, index)
    assert added.added == ("pair.txt", "single.txt")
    assert (added.chunks_embedded, added.sentences_embedded) == (2, 2)
    assert added.chunks_total == first.chunks_total + 2


def test_same_passage_in_two_files_is_shown_once(seeds_copy, tmp_path):
    shutil.copy(seeds_copy / "volcanoes.txt", seeds_copy / "volcanoes-copy.txt")
    build_index(seeds_copy, tmp_path / "index")
    answer = Assistant(tmp_path / "index").ask("When did Eyjafjallajökull erupt?", k=20)
    # A passage is listed from one file only (two shown sentences may share a passage: one
    # citation per shown sentence), and no (passage, sentence) pair is listed twice.
    source_of: dict[str, str] = {}
    for c in answer.citations:
        assert source_of.setdefault(" ".join(c.excerpt.split()), c.source) == c.source
    pairs = [(" ".join(c.excerpt.split()), c.highlight) for c in answer.citations]
    assert len(pairs) == len(set(pairs))
    sentences = [
        c.excerpt[c.highlight[0] - c.start : c.highlight[1] - c.start] for c in answer.citations[:2]
    ]
    assert len(sentences) == len(set(sentences))


def test_a_sentence_in_two_different_files_is_shown_once(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    fact = "The Zorblax fruit turns bright violet when it is ripe."
    (seeds / "a.txt").write_text(f"Notes on fruit.\n{fact} It grows on Quell.\n")
    (seeds / "b.txt").write_text(f"Market report.\n{fact} Traders pay well for it.\n")
    build_index(seeds, tmp_path / "index")
    answer = Assistant(tmp_path / "index").ask("What colour is a ripe Zorblax fruit?")
    assert not answer.abstained
    assert answer.answer.count("violet") == 1, answer.answer


# --- answers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question, source, needle",
    [
        ("Which eruption caused crops to fail across Europe?", "volcanoes.txt", "Laki in 1783"),
        ("Who built the Bell Rock Lighthouse?", "lighthouse.html", "Robert Stevenson"),
        ("Where is the highest tidal range in the world?", "tides.pdf", "Bay of Fundy"),
        ("Who decoded the waggle dance?", "bees.md", "Karl von Frisch"),
    ],
)
def test_answer_is_a_cited_verbatim_sentence(assistant, question, source, needle):
    answer = assistant.ask(question)
    assert not answer.abstained
    assert needle in answer.answer and "[1]" in answer.answer
    top = answer.citations[0]
    assert top.source == source
    doc = assistant.index.documents[source]
    assert doc.text[top.start : top.end] == top.excerpt
    a, b = top.highlight
    assert top.start <= a < b <= top.end
    assert f"{doc.text[a:b]} [1]" in answer.answer
    assert top.line_start <= top.line_end
    assert len(answer.answer.split()) <= 80


def test_pdf_citations_name_the_page(assistant):
    top = assistant.ask("Where is the highest tidal range in the world?").citations[0]
    assert top.page == 2
    assert assistant.ask("Who built the Bell Rock Lighthouse?").citations[0].page is None


def test_threshold_comes_from_the_caller_then_the_calibration_then_the_default(
    built_index, tmp_path
):
    from rag.answer import default_threshold

    index = tmp_path / "index"
    shutil.copytree(built_index[1], index)
    assert Assistant(index).threshold_source() == (default_threshold(), "default")
    (index / "calibration.json").write_text('{"threshold": 0.5}')
    assert Assistant(index).threshold_source() == (0.5, "index calibration.json")
    assert Assistant(index, threshold=0.2).threshold_source() == (0.2, "explicit")


def test_weak_evidence_abstains_and_still_lists_passages(assistant):
    answer = assistant.ask("What is the capital of Mongolia?")
    assert answer.abstained
    assert "do not contain" in answer.answer
    assert answer.citations  # the nearest passages
    assert answer.confidence < assistant.threshold


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_k_larger_than_the_corpus(assistant, mode):
    n = len(assistant.index.chunks)
    answer = assistant.ask("When did Eyjafjallajökull erupt?", k=n + 100, mode=mode)
    ids = [(c.source, c.start, c.end, c.highlight) for c in answer.citations]
    assert 0 < len(ids) <= n + 2 and len(ids) == len(set(ids))
    assert all(c.start >= 0 for c in answer.citations)


# --- the CLI contract ------------------------------------------------------------------

ANSWER_KEYS = {"id", "question", "answer", "abstained", "citations", "latency_ms"}
CITATION_KEYS = {
    "n",
    "source",
    "start",
    "end",
    "line_start",
    "line_end",
    "page",
    "excerpt",
    "highlight",
    "score",
}


def test_ask_json_contract(built_index, rag_cli):
    seeds, index = built_index
    out = rag_cli(
        "ask", "--json", "--seeds", seeds, "--index", index, "Who built the Bell Rock Lighthouse?"
    )
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert ANSWER_KEYS <= set(d)
    assert d["abstained"] is False and d["citations"]
    assert all(set(c) >= CITATION_KEYS for c in d["citations"])
    assert [c["n"] for c in d["citations"]] == list(range(1, len(d["citations"]) + 1))


def test_ask_jsonl_batch(built_index, rag_cli):
    seeds, index = built_index
    lines = [
        json.dumps({"id": "q1", "question": "Who decoded the waggle dance?"}),
        "When did Eyjafjallajökull erupt?",
        "",
        json.dumps({"id": "q3", "question": "What is the capital of Mongolia?"}),
    ]
    out = rag_cli(
        "ask",
        "--jsonl",
        "-k",
        "3",
        "--seeds",
        seeds,
        "--index",
        index,
        input="\n".join(lines) + "\n",
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["q1", None, "q3"]
    assert "Karl von Frisch" in rows[0]["answer"] and "2010" in rows[1]["answer"]
    assert rows[2]["abstained"] is True and rows[2]["citations"]
    assert all(len(r["citations"]) <= 3 + 1 for r in rows)


def test_jsonl_bad_lines_are_reported_and_the_rest_answered(built_index, rag_cli):
    seeds, index = built_index
    text = '{"question": ""}\n{not json\nWho built the Bell Rock Lighthouse?\n'
    out = rag_cli("ask", "--jsonl", "--index", index, "--seeds", seeds, input=text)
    assert out.returncode == 1
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert "error" in rows[0] and "error" in rows[1] and "Stevenson" in rows[2]["answer"]
    assert "line 1" in out.stderr and "line 2" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["ask", "--index", "{tmp}/none", "Who?"], "run `rag index`"),
        (["ask", "--index", "{index}", "   "], "empty"),
        (["ask", "--index", "{index}", "-k", "0", "Who?"], "must be >= 1"),
        (["ask", "--index", "{index}", "--mode", "magic", "Who?"], "invalid choice"),
        (["ask", "--index", "{index}", "--model", "other/model", "Who?"], "--rebuild"),
        (["ask", "--index", "{index}"], "no question"),
        (["index", "--seeds", "{tmp}/no-such-dir", "--index", "{tmp}/i"], "seeds folder not found"),
        (["ask", "--bogus"], "unrecognized"),
    ],
)
def test_bad_input_is_one_line_without_traceback(built_index, tmp_path, rag_cli, args, message):
    args = [a.format(tmp=tmp_path, index=built_index[1]) for a in args]
    out = rag_cli(*args)
    assert out.returncode != 0
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


# --- the seed article --------------------------------------------------------------------

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
    "question, sentence, offers",
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
def test_answer_type_check(question, sentence, offers):
    from rag.scorer import expected_answer, question_words
    from rag.scorer import offers as _offers

    wants = expected_answer(question)
    if offers is None:
        assert wants is None
    else:
        assert _offers(wants, sentence, question_words(question)) is offers
