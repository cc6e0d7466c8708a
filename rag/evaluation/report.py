"""Eval reports: the terminal table, ``report.md``, ``report.json`` and ``results.jsonl``.

Rendering only: the numbers come from ``metrics``, the runs from ``runner``, the PNGs from
``plots``. ``write_report`` writes one report folder and returns its ``EvalReport``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rag.calibration import Calibration, ThresholdSource
from rag.evaluation.metrics import answer_correct, gold_rank, strip_markers
from rag.evaluation.plots import write_plots

#: Columns of the terminal and markdown tables: (metric key, header).
COLUMNS = (
    ("n", "n"),
    ("hit@1", "hit@1"),
    ("hit@3", "hit@3"),
    ("hit@5", "hit@5"),
    ("hit@10", "hit@10"),
    ("mrr@10", "MRR@10"),
    ("answer_correct", "correct"),
    ("median_words", "words"),
    ("abstain_unanswerable", "abstain"),
    ("false_abstention", "false-abst"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p95_ms", "p95 ms"),
)
LEGEND = (
    "hit@k, MRR@10: gold passage among the first k citations. correct: shown answer holds a "
    "gold answer (answerable).\nwords: median words shown. abstain: unanswerable abstained. "
    "false-abst: answerable abstained. p50/p95: latency."
)
#: Worst misses listed in report.md, and answers to unanswerable questions.
WORST_MISSES = 20
FALSE_ANSWERS = 10


@dataclass(frozen=True)
class EvalReport:
    """What ``run_eval`` measured and where it wrote it.

    Attributes:
        rows: one metrics dict per run (``score_results`` plus ``run``, ``mode``, ``k``), in
            the order the runs were given; the first is the primary run.
        by_kind: per run label, ``score_by_kind`` of its results ({} when the set has no kinds).
        markdown: the text of ``report.md``.
        plots: the PNG files written.
        threshold, threshold_source: the abstention threshold used and where it came from
            (``explicit``, ``calibrated on this set``, ``index calibration.json``, ``default``).
    """

    name: str
    rows: list[dict]
    by_kind: dict[str, dict]
    report_dir: Path
    markdown: str
    plots: list[Path]
    threshold: float
    threshold_source: ThresholdSource
    index_dir: Path
    calibration: Calibration | None = None

    def table(self) -> str:
        """The terminal table: one row per run, then the primary run by kind."""
        lines = [_text_table("run", [(r["run"], r) for r in self.rows])]
        primary = self.rows[0]["run"]
        kinds = self.by_kind.get(primary) or {}
        if kinds:
            lines.append("")
            lines.append(_text_table(f"kind ({primary})", list(kinds.items())))
        lines.append("")
        lines.append(LEGEND)
        return "\n".join(lines)


def write_report(
    report_dir: Path,
    *,
    meta: dict,
    rows: list[dict],
    by_kind: dict[str, dict],
    recs: list[dict],
    calibration: Calibration | None,
    index_dir: Path,
) -> EvalReport:
    """Write results.jsonl, the plots, report.json and report.md into ``report_dir``.

    ``meta`` holds the run's facts (``name``, ``threshold``, ``threshold_source``, ``index``,
    ``git``, ...); ``rows`` one metrics dict per run, the primary run first.
    """
    name = meta["name"]
    report_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("hit_at_k.png", "confidence.png", "tradeoff.png", "reliability.png"):
        (report_dir / stale).unlink(missing_ok=True)
    with (report_dir / "results.jsonl").open("w", encoding="utf-8") as f:
        for rec in recs:
            f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
    plots = write_plots(report_dir, name=name, rows=rows, recs=recs, threshold=meta["threshold"])
    report = {
        **meta,
        "metrics": rows,
        "by_kind": by_kind,
        "plots": [p.name for p in plots],
        "definitions": "evals/README.md",
    }
    (report_dir / "report.json").write_text(
        json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    markdown = render_markdown(meta=meta, rows=rows, by_kind=by_kind, recs=recs, plots=plots)
    (report_dir / "report.md").write_text(markdown, encoding="utf-8")
    return EvalReport(
        name=name,
        rows=rows,
        by_kind=by_kind,
        report_dir=report_dir,
        markdown=markdown,
        plots=plots,
        threshold=meta["threshold"],
        threshold_source=meta["threshold_source"],
        index_dir=index_dir,
        calibration=calibration,
    )


def _fmt(key: str, value) -> str:
    if value is None:
        return "-"
    if key in ("n", "answerable", "unanswerable"):
        return str(value)
    if key.startswith("latency"):
        return f"{value:.0f}"
    if key == "median_words":
        return f"{value:g}"
    return f"{value:.3f}"


def _text_table(first: str, rows: list[tuple[str, Mapping]]) -> str:
    header = [first] + [h for _, h in COLUMNS]
    body = [[label] + [_fmt(k, m.get(k)) for k, _ in COLUMNS] for label, m in rows]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    out = []
    for r in [header, *body]:
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def _md_table(first: str, rows: list[tuple[str, Mapping]]) -> str:
    header = [first] + [h for _, h in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, m in rows:
        lines.append("| " + " | ".join([label] + [_fmt(k, m.get(k)) for k, _ in COLUMNS]) + " |")
    return "\n".join(lines)


def _md_cell(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def _rank_text(r: Mapping) -> str:
    if not r.get("source"):
        return "no gold source"
    rank = gold_rank(r["citations"], r["source"], r.get("span"))
    return f"{rank} of {len(r['citations'])}" if rank else f"not in top {r['k']}"


def _worst_misses(recs: list[dict], limit: int) -> list[dict]:
    """Answerable questions answered wrongly: gold passage not retrieved first, then the
    deeper the gold passage ranked, then the more confident the wrong answer."""
    misses = [
        r
        for r in recs
        if r.get("answers") and not answer_correct(r["answer"], r["answers"], r["abstained"])
    ]

    def key(r):
        rank = gold_rank(r["citations"], r["source"], r.get("span")) if r.get("source") else None
        return (rank is None, rank or 0, r["confidence"])

    return sorted(misses, key=key, reverse=True)[:limit]


def render_markdown(
    *,
    meta: dict,
    rows: list[dict],
    by_kind: dict[str, dict],
    recs: list[dict],
    plots: list[Path],
) -> str:
    """The text of ``report.md``."""
    primary = rows[0]["run"]
    lines = _md_summary(meta, rows)
    if meta.get("calibration"):
        c = meta["calibration"]
        lines += [
            "",
            "## Calibration",
            "",
            f"Threshold {c['threshold']:.4f} chosen on `{primary}`: answers "
            f"{c['answered']:.1%} of answerable questions, abstains on {c['abstained']:.1%} of "
            f"unanswerable ones (balanced accuracy {c['balanced_accuracy']:.3f}). Criterion: "
            f"{c['criterion']}. Stored in `{c['path']}`.",
        ]
    kinds = by_kind.get(primary) or {}
    if kinds:
        lines += ["", f"## By kind ({primary})", "", _md_table("kind", list(kinds.items()))]
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{p.stem}]({p.name})" for p in plots]
    primary_recs = [r for r in recs if r["run"] == primary]
    lines += _md_worst_misses(primary, primary_recs)
    lines += _md_false_answers(primary, primary_recs)
    return "\n".join(lines) + "\n"


def _md_summary(meta: dict, rows: list[dict]) -> list[str]:
    """Title, what was run on what, and the results table."""
    idx = meta["index"]
    counts = idx.get("counts") or {}
    s = idx.get("settings") or {}
    git = meta["git"]
    commit = f"`{(git.get('commit') or 'unknown')[:12]}`"
    if git.get("dirty"):
        commit += " with uncommitted changes to " + ", ".join(
            f"`{f}`" for f in git.get("changed", [])
        )
    return [
        f"# Eval report: {meta['name']}",
        "",
        f"- Question set: `{meta['question_set']}` ({rows[0]['n']} questions: "
        f"{rows[0]['answerable']} answerable, {rows[0]['unanswerable']} unanswerable)",
        f"- Index: `{idx['path']}`, built {idx.get('built_at')}: {counts.get('documents')} "
        f"documents, {counts.get('chunks')} chunks; model {s.get('model')}, "
        f"{s.get('chunk_tokens')} tokens/chunk, overlap {s.get('overlap_sentences')} sentence(s)",
        f"- Abstention threshold: {meta['threshold']:.4f} ({meta['threshold_source']}), "
        "on the calibrated probability that the shown answer is right",
        _scorer_line(meta.get("scorer") or {}),
        f"- Git commit: {commit}; run at {meta['created_at']}",
        "",
        "## Results",
        "",
        _md_table("run", [(r["run"], r) for r in rows]),
        "",
        " ".join(LEGEND.split()) + " Definitions: `evals/README.md`.",
    ]


def _scorer_line(scorer: Mapping) -> str:
    """Which answer-scorer models scored the primary run (``runner.scorer_summary``)."""
    used = scorer.get("scored_by") or {}
    folds = sum(n for why, n in used.items() if why.startswith("fold"))
    full = used.get("full model", 0)
    line = f"- Answer scorer: {full} questions scored by the shipped model"
    if folds:
        line += (
            f", {folds} by the fold model that never saw their article (the question or its "
            "article was in the scorer's training data; article-level folds)"
        )
    return line


def _md_worst_misses(primary: str, primary_recs: list[dict]) -> list[str]:
    worst = _worst_misses(primary_recs, WORST_MISSES)
    lines = ["", f"## Worst misses ({primary})", ""]
    if not worst:
        return [*lines, "None: every answerable question was answered correctly."]
    lines += [
        "Answerable questions whose shown answer holds no gold answer: gold passage not "
        "retrieved first, then by how deep it ranked, then by confidence.",
        "",
        "| id | question | gold answer | shown | gold passage rank | confidence |",
        "|---|---|---|---|---|---|",
    ]
    for r in worst:
        shown = "(abstained)" if r["abstained"] else strip_markers(r["answer"])
        lines.append(
            f"| {_md_cell(r['id'])} | {_md_cell(r['question'])} | "
            f"{_md_cell(' / '.join(r['answers']))} | {_md_cell(shown)} | "
            f"{_rank_text(r)} | {r['confidence']:.3f} |"
        )
    return lines


def _md_false_answers(primary: str, primary_recs: list[dict]) -> list[str]:
    """Unanswerable questions answered anyway, most confident first (if the set has any)."""
    if not any(r.get("answers") == [] for r in primary_recs):
        return []
    false_answers = sorted(
        (r for r in primary_recs if r.get("answers") == [] and not r["abstained"]),
        key=lambda r: -r["confidence"],
    )[:FALSE_ANSWERS]
    lines = ["", f"## Answered although the documents do not answer it ({primary})", ""]
    if not false_answers:
        return [*lines, "None: the assistant abstained on every unanswerable question."]
    lines += ["| id | question | shown | confidence |", "|---|---|---|---|"]
    for r in false_answers:
        lines.append(
            f"| {_md_cell(r['id'])} | {_md_cell(r['question'])} | "
            f"{_md_cell(strip_markers(r['answer']))} | {r['confidence']:.3f} |"
        )
    return lines


def index_summary(index, index_dir: Path) -> dict:
    """What report.json records of the index the run used."""
    m = index.manifest
    return {
        "path": display_path(index_dir),
        "store": m.get("store", "faiss"),
        "built_at": m.get("built_at"),
        "settings": m.get("settings"),
        "model": m.get("model"),
        "counts": m.get("counts"),
        "documents": {
            s: {"chunks": d.get("chunks"), "characters": d.get("characters")}
            for s, d in sorted(m.get("documents", {}).items())
        },
    }


def git_info() -> dict:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    diff = git("diff", "--name-only", "HEAD")
    changed = sorted(diff.splitlines()) if diff else []
    # A report made with uncommitted changes names them: the commit alone is not the code.
    return {"commit": commit, "dirty": bool(changed) if diff is not None else None,
            "changed": changed}  # fmt: skip


def display_path(path: Path | str) -> str:
    """``path`` relative to the working directory when it lies inside it."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)
