"""Evaluation: run question sets through the assistant and report where and why answers fail.

One module per reason to change:

- ``questions``: the JSONL question-set format, loading with a check of every line.
- ``metrics``: the maths (gold rank, hit@k, MRR, answer-correct, floors), from raw fields.
- ``runs``: a run's spec (mode and depth) and its records (a line of results.jsonl).
- ``runner``: ``run_eval``, and the cached indexes of sets that bring their documents.
- ``report``: the terminal table, report.md, report.json and results.jsonl, git facts.
- ``plots``: the PNGs (the only matplotlib import).

The abstention threshold a run can calibrate lives in ``rag.calibration``; the ``rag eval``
command in ``rag.cli``. Format and metric definitions: ``evals/README.md``.
"""

from rag.evaluation.metrics import (
    HIT_KS,
    MRR_DEPTH,
    CitedSpan,
    answer_correct,
    check_floors,
    gold_rank,
    load_floors,
    normalize_answer,
    score_by_kind,
    score_results,
    strip_markers,
)
from rag.evaluation.questions import (
    Question,
    check_against_index,
    default_name,
    list_question_sets,
    load_question_set,
    set_documents,
)
from rag.evaluation.report import EvalReport, display_path
from rag.evaluation.runner import cached_index_dir, prepare_index, run_eval
from rag.evaluation.runs import EVAL_K, QuestionResult, RunSpec, parse_runs

__all__ = [
    "EVAL_K",
    "HIT_KS",
    "MRR_DEPTH",
    "CitedSpan",
    "EvalReport",
    "Question",
    "QuestionResult",
    "RunSpec",
    "answer_correct",
    "cached_index_dir",
    "check_against_index",
    "check_floors",
    "default_name",
    "display_path",
    "gold_rank",
    "list_question_sets",
    "load_floors",
    "load_question_set",
    "normalize_answer",
    "parse_runs",
    "prepare_index",
    "run_eval",
    "score_by_kind",
    "score_results",
    "set_documents",
    "strip_markers",
]
