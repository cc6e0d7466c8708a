"""Runs: every question of a set through one or more retrieval runs, scored and reported.

``run_eval`` answers every question in-process with ``Assistant.ask`` (one model load),
scores the answers (``metrics.score_results``, the one scorer: the report's numbers are what
it computes from ``results.jsonl``) and writes the report (``report.write_report``). A set
with its own documents is run on a cached index of them (``prepare_index``).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from rag.answer import Answer, Assistant
from rag.calibration import Calibration, ThresholdSource, calibrate_threshold, write_calibration
from rag.errors import BadInputError
from rag.evaluation.metrics import score_by_kind, score_results
from rag.evaluation.questions import (
    Question,
    check_against_index,
    default_name,
    load_question_set,
)
from rag.evaluation.report import EvalReport, display_path, git_info, index_summary, write_report
from rag.evaluation.runs import (
    EVAL_K,
    QuestionResult,
    RunSpec,
    parse_runs,
    result_of,
)
from rag.indexing import BuildReport
from rag.retrieval import DEFAULT_MODE, RetrievalMode
from rag.settings import INDEX_CACHE_DIR, INDEX_DIR, REPORTS_DIR, IndexSettings, utc_now
from rag.stores import FAISS, StoreKind, StoreSpec, build_store

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def cached_index_dir(
    seeds: Path | str,
    settings: IndexSettings | None = None,
    *,
    cache_dir: Path | str = INDEX_CACHE_DIR,
    store: str | None = None,
) -> Path:
    """Where the index of ``seeds`` under ``settings`` (in ``store``) lives in the cache.

    Returns:
        ``<cache_dir>/<folder name>-<10 hex>``, the hash covering the folder's absolute path,
        every index setting and a Milvus store's URI, so another folder, setting or store
        never reuses the index (FAISS keys are those of before stores existed).
    """
    settings = settings or IndexSettings()
    seeds = Path(seeds).resolve()
    what = {"seeds": str(seeds), "settings": settings.to_dict()}
    spec = StoreSpec.parse(store)
    if spec.kind is not StoreKind.FAISS:
        what["store"] = spec.client_uri
    key = json.dumps(what, sort_keys=True)
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:10]
    return Path(cache_dir) / f"{seeds.name}-{digest}"


def prepare_index(
    seeds: Path | str,
    *,
    settings: IndexSettings | None = None,
    cache_dir: Path | str = INDEX_CACHE_DIR,
    progress: bool = False,
    warn: Callable[[str], None] | None = None,
    store: str | None = None,
) -> tuple[Path, BuildReport]:
    """Build or refresh the cached index of ``seeds`` (a no-op when nothing changed), in
    ``store`` (``rag.stores.build_store``; None: FAISS).

    Returns:
        (index folder, ``BuildReport``).
    """
    settings = settings or IndexSettings()
    index_dir = cached_index_dir(seeds, settings, cache_dir=cache_dir, store=store)
    report = build_store(
        seeds, index_dir, store=store or FAISS, settings=settings, progress=progress, warn=warn
    )
    return index_dir, report


def run_eval(
    questions_path: Path | str,
    *,
    seeds: Path | str | None = None,
    index: Path | str = INDEX_DIR,
    k: int = EVAL_K,
    mode: RetrievalMode | str = DEFAULT_MODE,
    modes: str | Sequence[str] | None = None,
    threshold: float | None = None,
    name: str | None = None,
    reports_dir: Path | str = REPORTS_DIR,
    calibrate: bool = False,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    settings: IndexSettings | None = None,
    cache_dir: Path | str = INDEX_CACHE_DIR,
    build_progress: bool = False,
    warn: Callable[[str], None] | None = None,
    assistant: Assistant | None = None,
    store: str | None = None,
) -> EvalReport:
    """Answer every question of a set, score the answers and write the report.

    Args:
        seeds: a documents folder: its index is built (or refreshed) in ``cache_dir`` and
            ``index`` is not used. None: use the index at ``index`` as it is.
        k: passages retrieved per question (hit@k is measured up to it).
        mode, modes: the run, or several runs to compare (``"hybrid,dense,bm25"`` or a list;
            ``MODE@k=N`` sets another depth). The first run is the primary one (worst misses,
            confidence plot, calibration).
        threshold: abstain below this confidence (default: the index's calibrated threshold,
            else the scorer's default). A probability, like the confidence.
        name: report folder under ``reports_dir`` (default: ``default_name``).
        calibrate: choose the threshold on this set (``calibrate_threshold``) from the primary
            run's confidences, store it in the index's ``calibration.json`` and report with it.
        limit: run the first ``limit`` questions only.
        progress: called with (questions done, questions total) across all runs.
        settings: ``IndexSettings`` for an index built from ``seeds`` (default: the defaults).
        assistant: an ``Assistant`` already serving ``index`` (the UI's), used instead of
            loading the index again when the run is on that index.
        store: with ``seeds``, the store to build its index in (``--store``; None: FAISS).

    Raises:
        BadInputError: a bad question set, run list, name or option combination, before any
            question runs.

    Returns:
        The EvalReport; ``report_dir`` holds report.json, report.md, results.jsonl, PNGs.
    """
    questions_path = Path(questions_path)
    runs, name, questions = _checked(
        questions_path,
        k=k,
        runs=modes if modes is not None else [mode],
        threshold=threshold,
        name=name,
        calibrate=calibrate,
        limit=limit,
    )
    if seeds is not None:
        index = prepare_index(
            seeds,
            settings=settings,
            cache_dir=cache_dir,
            progress=build_progress,
            warn=warn,
            store=store,
        )[0]
    index_dir = Path(index)
    if assistant is None or assistant.index_dir != index_dir:
        assistant = Assistant(index_dir)
    check_against_index(questions, assistant.index, path=questions_path)
    used, source = (
        assistant.threshold_source() if threshold is None else (threshold, ThresholdSource.EXPLICIT)
    )

    calibration, cal_meta = None, None
    git = git_info()
    from rag.embedding import one_torch_thread

    # One thread for the whole run: every question skips the switch (and its lock).
    with one_torch_thread():
        by_run = _ask_all(assistant, runs, questions, threshold=used, progress=progress)
        if calibrate:
            calibration, cal_meta = _calibrate(
                by_run[runs[0].label],
                index_dir,
                question_set=display_path(questions_path),
                run=runs[0].label,
                previous_threshold=used,
                git_commit=git["commit"],
            )
            used, source = calibration.threshold, ThresholdSource.CALIBRATED_NOW
            by_run = _apply_threshold(assistant, runs, questions, by_run, threshold=used)

    recs = [r.to_dict() for run in runs for r in by_run[run.label]]
    meta = {
        "name": name,
        "question_set": display_path(questions_path),
        "questions": len(questions),
        "limit": limit,
        "created_at": utc_now(),
        "git": git,
        "python": sys.version.split()[0],
        "index": index_summary(assistant.index, index_dir),
        "seeds": None if seeds is None else display_path(seeds),
        "threshold": used,
        "threshold_source": source,
        "scorer": scorer_summary(assistant, recs),
        "calibration": cal_meta,
        "runs": [{"run": r.label, "mode": r.mode, "k": r.k} for r in runs],
    }
    rows, by_kind = _scores(runs, recs)
    report_dir = Path(reports_dir) / name
    return write_report(report_dir, meta=meta, rows=rows, by_kind=by_kind, recs=recs,
                        calibration=calibration, index_dir=index_dir)  # fmt: skip


def _checked(
    questions_path: Path,
    *,
    k: int,
    runs: str | Sequence[str],
    threshold: float | None,
    name: str | None,
    calibrate: bool,
    limit: int | None,
) -> tuple[list[RunSpec], str, list[Question]]:
    """Every option and the question set checked, before any index is built or loaded.

    Returns:
        (runs, report name, the questions to run).
    """
    if limit is not None and limit < 1:
        raise BadInputError(f"limit must be >= 1, got {limit}")
    if k < 1:
        raise BadInputError(f"k must be >= 1, got {k}")
    if calibrate and threshold is not None:
        raise BadInputError("--calibrate chooses the threshold: leave out --threshold")
    specs = parse_runs(runs, k=k)
    name = name or default_name(questions_path)
    if not _NAME.match(name):
        raise BadInputError(f"report name must be a plain folder name, got {name!r}")
    questions = load_question_set(questions_path)
    if limit is not None:
        questions = questions[:limit]
    if calibrate:
        n_ans = sum(q.answerable for q in questions)
        n_un = sum(q.unanswerable for q in questions)
        if not n_ans or not n_un:
            raise BadInputError(
                f"--calibrate needs answerable and unanswerable questions (answers: []); "
                f"{questions_path} has {n_ans} and {n_un}"
            )
    return specs, name, questions


def _scores(runs: Sequence[RunSpec], recs: list[dict]) -> tuple[list[dict], dict[str, dict]]:
    """One metrics row per run (in the runs' order), and each run's metrics by kind."""
    rows, by_kind = [], {}
    for run in runs:
        mine = [r for r in recs if r["run"] == run.label]
        rows.append({"run": run.label, "mode": run.mode, "k": run.k, **score_results(mine)})
        by_kind[run.label] = score_by_kind(mine)
    return rows, by_kind


def _calibrate(
    results: Sequence[QuestionResult], index_dir: Path, **extra
) -> tuple[Calibration, dict]:
    """Choose the threshold on the primary run's results and store it beside the index.

    Returns:
        (the calibration, what report.json records of it).
    """
    calibration = calibrate_threshold(
        [r.confidence for r in results if r.answers],
        [r.confidence for r in results if r.answers == ()],
    )
    path = write_calibration(index_dir, calibration, **extra)
    return calibration, {**calibration.to_dict(), "path": display_path(path)}


def _ask_all(
    assistant: Assistant,
    runs: Sequence[RunSpec],
    questions: Sequence[Question],
    *,
    threshold: float,
    progress: Callable[[int, int], None] | None,
) -> dict[str, list[QuestionResult]]:
    """Every question through every run, in order; ``progress`` counts across runs."""
    total, done = len(questions) * len(runs), 0
    by_run: dict[str, list[QuestionResult]] = {}
    for run in runs:
        # Untimed first question: lazy set-up (BM25 arrays, torch kernels) is not latency.
        assistant.ask(questions[0].question, k=run.k, mode=run.mode, threshold=threshold)
        out = []
        for q in questions:
            answer = _ask(assistant, q, run, threshold)
            shown = _if_answered(assistant, q, run, answer)
            out.append(result_of(run, q, answer, threshold, shown))
            done += 1
            if progress:
                progress(done, total)
        by_run[run.label] = out
    return by_run


def _apply_threshold(
    assistant: Assistant,
    runs: Sequence[RunSpec],
    questions: Sequence[Question],
    by_run: dict[str, list[QuestionResult]],
    *,
    threshold: float,
) -> dict[str, list[QuestionResult]]:
    """The results as a run at ``threshold`` would give them.

    Only the questions whose abstention the new threshold flips are asked again (confidence
    does not depend on the threshold); their answer text and citation order change, and must
    be exactly what ``rag ask`` shows.
    """
    by_id = {q.id: q for q in questions}
    out: dict[str, list[QuestionResult]] = {}
    for run in runs:
        fixed = []
        for r in by_run[run.label]:
            if (r.confidence < threshold) != r.abstained:
                q = by_id[r.id]
                a = _ask(assistant, q, run, threshold)
                fixed.append(result_of(run, q, a, threshold, _if_answered(assistant, q, run, a)))
            else:
                fixed.append(replace(r, threshold=threshold))
        out[run.label] = fixed
    return out


def _ask(assistant: Assistant, q: Question, run: RunSpec, threshold: float) -> Answer:
    """Ask ``q`` as ``rag ask`` would, except that a question the answer scorer was trained
    on (or one whose gold source is a training article) is scored by the fold model that
    never saw its article: the report never scores a model on its own training data."""
    docs = assistant.index.documents
    source_hash = docs[q.source].content_hash if q.source in docs else None
    model, why = assistant.scorer.for_question(q.question, q.source, source_hash)
    return assistant.ask(
        q.question,
        k=run.k,
        mode=run.mode,
        threshold=threshold,
        id=q.id,
        model=model,
        scored_by=why,
    )


def _if_answered(assistant: Assistant, q: Question, run: RunSpec, answer: Answer) -> str | None:
    """The answer an abstention on an answerable question would have shown."""
    if not (answer.abstained and q.answerable):
        return None
    return _ask(assistant, q, run, 0.0).answer


def scorer_summary(assistant: Assistant, recs: list[dict]) -> dict:
    """Which answer-scorer models scored the primary run, and the weights' training data."""
    primary = recs[0]["run"] if recs else None
    used = Counter(r.get("scored_by", "full model") for r in recs if r["run"] == primary)
    training = assistant.scorer.meta.get("training", {})
    return {
        "data_hash": training.get("data_hash"),
        "folds": len(training.get("folds", [])),
        "scored_by": dict(sorted(used.items())),
    }
