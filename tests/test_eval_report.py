"""Reports: every number in report.json and report.md is what results.jsonl gives, checked
against an independent implementation of the definitions in evals/README.md."""

from __future__ import annotations

import json
import re
import string
import unicodedata

import pytest

from rag.evaluation import score_results


def _independent_answer_correct(records: list[dict]) -> float:
    """Answer-correct from the definition in evals/README.md, sharing no code with the scorer."""

    def norm(s: str) -> str:
        s = s.lower()
        s = "".join(
            c for c in s if c not in string.punctuation and unicodedata.category(c)[0] != "P"
        )
        s = re.sub(r"\b(a|an|the)\b", " ", s)
        return " ".join(s.split())

    answerable = [r for r in records if r["answers"]]
    right = 0
    for r in answerable:
        if r["abstained"]:
            continue
        shown = " " + norm(re.sub(r" \[\d+\]", "", r["answer"])) + " "
        right += any(" " + norm(a) + " " in shown for a in r["answers"] if norm(a))
    return round(right / len(answerable), 4)


def _independent_hit_at(records: list[dict], k: int) -> float:
    gold = [r for r in records if r["answers"] and r["source"]]
    hits = 0
    for r in gold:
        a, b = r["span"]
        top = r["citations"][:k]
        hits += any(c["source"] == r["source"] and c["start"] < b and a < c["end"] for c in top)
    return round(hits / len(gold), 4)


@pytest.mark.slow
def test_report_numbers_are_what_the_results_give(squad_smoke):
    folder = squad_smoke.report_dir
    for name in ("report.json", "report.md", "results.jsonl", "hit_at_k.png", "confidence.png"):
        assert (folder / name).stat().st_size > 0, name
    records = [json.loads(line) for line in (folder / "results.jsonl").open(encoding="utf-8")]
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert report["git"]["commit"] and report["index"]["counts"]["documents"] == 3
    md = (folder / "report.md").read_text(encoding="utf-8")
    header = next(line for line in md.splitlines() if line.startswith("| run |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    for row in report["metrics"]:
        mine = [r for r in records if r["run"] == row["run"]]
        assert len(mine) == row["n"] == 157
        assert row == {**row, **score_results(mine)}
        correct = _independent_answer_correct(mine)
        assert row["answer_correct"] == correct
        assert row["hit@5"] == _independent_hit_at(mine, 5)
        line = next(x for x in md.splitlines() if x.startswith(f"| {row['run']} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[columns.index("correct")] == f"{correct:.3f}"
    assert "## Worst misses (hybrid)" in md
    assert "hybrid" in squad_smoke.table() and "dense@k=1" in squad_smoke.table()
