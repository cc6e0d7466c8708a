"""The scale benchmark's table: one row a metric, one column a size, and the growth exponent."""

from __future__ import annotations

#: (key, label, unit) of each reported metric, in table order.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("chunks", "passages (chunks)", ""),
    ("sentences", "sentences", ""),
    ("documents", "documents", ""),
    ("build_s", "full build, vectors reused", "s"),
    ("embed_est_s", "embedding a real corpus of this size (est.)", "s"),
    ("build_est_s", "full build incl. embedding (est.)", "s"),
    ("reindex_s", "no-change re-index", "s"),
    ("one_change_s", "one file changed", "s"),
    ("one_change_pct", "one file changed, % of full build (est.)", "%"),
    ("load_s", "load: Index.load + Retriever", "s"),
    ("rss_mb", "RSS after load + asks (VmRSS)", "MiB"),
    ("hwm_mb", "peak RSS of that process (VmHWM)", "MiB"),
    ("build_hwm_mb", "peak RSS of the full build", "MiB"),
    ("disk_mb", "index on disk", "MiB"),
    ("ask_p50_ms", "warm ask p50", "ms"),
    ("ask_p95_ms", "warm ask p95", "ms"),
    ("embed_p50_ms", "of which: embedding the question, p50", "ms"),
    ("status_s", "`rag status` (whole command)", "s"),
    ("serve_start_s", "`rag serve --no-build` until the page answers", "s"),
    ("page_ms", "warm page GET /", "ms"),
    ("status_api_ms", "warm GET /api/status (the page's status panel)", "ms"),
    ("load_avg", "load average (1 min) during the size", ""),
)


def _fmt(value, unit: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) or (unit == "" and float(value).is_integer()):
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(result: dict) -> str:
    """Markdown: a row per metric, a column per size (projections marked ``*``), and the
    fitted exponent."""
    sizes = result["sizes"]
    head = ["metric"] + [f"{s['target']:,}" for s in sizes] + ["exponent"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, unit in METRICS:
        cells = []
        for s in sizes:
            if key in s.get("measured", {}):
                cells.append(_fmt(s["measured"][key], unit))
            elif key in s.get("projected", {}):
                cells.append(_fmt(s["projected"][key], unit) + "*")
            else:
                cells.append("–")
        growth = result["growth"].get(key)
        exp = "–" if growth is None else f"{growth['exponent']:.2f}"
        name = f"{label} ({unit})" if unit else label
        lines.append("| " + " | ".join([name, *cells, exp]) + " |")
    notes = [
        "",
        f"label `{result['label']}`, commit {result['commit']}, {result['cpus']} cores, "
        f"started {result['started']}. Exponent: slope of log(value) on log(passages).",
    ]
    for s in sizes:
        if s.get("projected"):
            why = s.get("error") or result.get("skip_reason") or "not run"
            notes.append(f"* {s['target']:,}: projected from the fit, not measured ({why}).")
    return "\n".join(lines + notes) + "\n"
