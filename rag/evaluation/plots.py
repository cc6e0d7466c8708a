"""The report's PNG plots: hit@k per run, and the primary run's confidence histogram.

The only module that imports matplotlib (inside the functions: it costs a second to import
and only ``rag eval`` needs it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rag.evaluation.metrics import HIT_KS

if TYPE_CHECKING:  # numpy loads when used, not with this module (`rag --help`)
    pass


def write_plots(
    report_dir: Path, *, name: str, rows: list[dict], recs: list[dict], threshold: float
) -> list[Path]:
    """Write ``hit_at_k.png`` (when gold passages are known) and ``confidence.png``.

    Returns:
        The files written.
    """
    written = []
    if any(r.get("hit@1") is not None for r in rows):
        written.append(hit_at_k_plot(report_dir / "hit_at_k.png", name=name, rows=rows))
    primary = rows[0]["run"]
    prim = [r for r in recs if r["run"] == primary]
    groups = [
        ("answerable", [r["confidence"] for r in prim if r.get("answers")]),
        ("unanswerable", [r["confidence"] for r in prim if r.get("answers") == []]),
        ("no gold answer", [r["confidence"] for r in prim if r.get("answers") is None]),
    ]
    groups = [(label, xs) for label, xs in groups if xs]
    if groups:
        title = f"{name} ({primary}): confidence"
        path = report_dir / "confidence.png"
        written.append(confidence_plot(path, groups=groups, threshold=threshold, title=title))
    return written


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def hit_at_k_plot(path: Path, *, name: str, rows: list[dict]) -> Path:
    """hit@k against k, one line per run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for r in rows:
        ax.plot(HIT_KS, [r[f"hit@{k}"] or 0 for k in HIT_KS], marker="o", label=r["run"])
    ax.set_xticks(HIT_KS)
    ax.set_xlabel("k (citations looked at)")
    ax.set_ylabel("hit@k (share of questions)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{name}: gold passage among the first k citations", fontsize="medium")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def confidence_plot(
    path: Path, *, groups: list[tuple[str, list[float]]], threshold: float, title: str
) -> Path:
    """Histograms (densities) of the confidence of each group of questions, and the threshold."""
    import numpy as np

    plt = _pyplot()
    values = [x for _, xs in groups for x in xs] + [threshold]
    bins = np.linspace(min(values), max(values), 31)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for label, xs in groups:
        # density, not counts: the groups differ a lot in size
        ax.hist(xs, bins=bins, alpha=0.55, density=True, label=f"{label} (n={len(xs)})")
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    if not any(label == "unanswerable" for label, _ in groups):
        ax.plot([], [], " ", label="no unanswerable questions in the set")
    ax.set_xlabel("confidence (best sentence score); abstain left of the threshold")
    ax.set_ylabel("density")
    ax.legend(fontsize="small")
    ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
