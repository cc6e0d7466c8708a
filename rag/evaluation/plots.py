"""The report's PNG plots: hit@k per run, the primary run's confidence histogram, and for a
set that mixes answerable and unanswerable questions its trade-off curve and reliability
diagram (the maths: ``rag.tradeoff``).

The only module that imports matplotlib (inside the functions: it costs a second to import
and only ``rag eval`` needs it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rag.evaluation.metrics import HIT_KS, tradeoff_inputs

if TYPE_CHECKING:  # numpy loads when used, not with this module (`rag --help`)
    pass


def write_plots(
    report_dir: Path, *, name: str, rows: list[dict], recs: list[dict], threshold: float
) -> list[Path]:
    """Write ``hit_at_k.png`` (when gold passages are known), ``confidence.png``, and for a
    set with answerable and unanswerable questions ``tradeoff.png`` and ``reliability.png``.

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
    inputs = tradeoff_inputs(prim)
    if inputs is not None:
        title = f"{name} ({primary})"
        written.append(tradeoff_plot(report_dir / "tradeoff.png", inputs, threshold, title))
        a_conf, a_right, u_conf = inputs
        conf, right = a_conf + u_conf, a_right + [False] * len(u_conf)
        if all(0.0 <= c <= 1.0 for c in conf):
            path = report_dir / "reliability.png"
            written.append(reliability_plot(path, conf, right, name))
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
    ax.set_xlabel("confidence (probability the answer is right); abstain left of the threshold")
    ax.set_ylabel("density")
    ax.legend(fontsize="small")
    ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def tradeoff_plot(
    path: Path,
    inputs: tuple[list[float], list[bool], list[float]],
    threshold: float,
    title: str,
) -> Path:
    """Answer-correct on answerable questions against abstention on unanswerable ones over
    all thresholds, with the threshold in use marked; ``inputs``: ``tradeoff_inputs``."""
    from rag import tradeoff

    a_conf, a_right, u_conf = inputs
    points = tradeoff.curve(a_conf, a_right, u_conf)
    here = tradeoff.point_at(a_conf, a_right, u_conf, threshold)
    auroc = tradeoff.auroc([c for c, ok in zip(a_conf, a_right, strict=True) if ok], u_conf)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot([p.abstain_unanswerable for p in points], [p.answer_correct for p in points])
    ax.plot([here.abstain_unanswerable], [here.answer_correct], "ko",
            label=f"threshold {threshold:.3f}")  # fmt: skip
    ax.set_xlabel(f"abstention on unanswerable questions (n={len(u_conf)})")
    ax.set_ylabel(f"answer-correct on answerable (n={len(a_conf)})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(f"{title}: trade-off over all thresholds, AUROC {auroc:.3f}",
                 fontsize="medium")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def reliability_plot(path: Path, probability: list[float], right: list[bool], name: str) -> Path:
    """Share right against the predicted probability, per tenth, with the ECE in the title."""
    from rag import tradeoff

    bins = tradeoff.reliability(probability, right)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.bar([(b.low + b.high) / 2 for b in bins], [b.share_right for b in bins],
           width=0.09, alpha=0.6, label="share right")  # fmt: skip
    ax.plot([b.mean_probability for b in bins], [b.share_right for b in bins], "o-",
            label="mean probability vs share right")  # fmt: skip
    ax.set_xlabel("probability that the best answer is right")
    ax.set_ylabel("share right")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small")
    ece = tradeoff.ece(probability, right)
    ax.set_title(f"{name}: reliability, ECE {ece:.3f}", fontsize="medium")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
