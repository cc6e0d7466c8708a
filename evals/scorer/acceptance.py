"""The trade-off of `rag eval` runs: answerable sets against unanswerable ones.

    .venv/bin/python evals/scorer/acceptance.py evals/scorer/reports

Reads results.jsonl of the reports written by acceptance.sh and prints, for the SQuAD
sample and for the paraphrased set against the SQuAD 2.0 unanswerable questions (same
corpus): AUROC, answer-correct at 50 % and 80 % abstention, ECE, and the curve.
"""

import json
import sys
from pathlib import Path

from rag import tradeoff
from rag.evaluation import answer_correct, score_tradeoff


def records(reports: Path, name: str) -> list[dict]:
    path = reports / name / "results.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def right(r: dict) -> bool:
    shown = r.get("answer_if_answered") if r["abstained"] else r["answer"]
    return bool(shown) and bool(answer_correct(shown, r["answers"], False))


def main(reports: str) -> None:
    reports = Path(reports)
    un = records(reports, "squad-v2-unanswerable")
    for name in ("squad-sample", "squad-paraphrased-dev"):
        ans = records(reports, name)
        m = score_tradeoff(ans + un)
        t = ans[0]["threshold"]
        at = tradeoff.point_at(
            [r["confidence"] for r in ans],
            [right(r) for r in ans],
            [r["confidence"] for r in un],
            t,
        )
        print(f"{name} + squad-v2-unanswerable: {json.dumps(m)}")
        print(
            f"  at the threshold {t}: answer-correct {at.answer_correct:.4f}, answered "
            f"{at.answered:.4f}, unanswerable abstained {at.abstain_unanswerable:.4f}"
        )
        curve = tradeoff.curve(
            [r["confidence"] for r in ans], [right(r) for r in ans], [r["confidence"] for r in un]
        )
        print("  abstain  answer-correct  threshold")
        for level in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
            p = next(p for p in curve if p.abstain_unanswerable >= level - 1e-9)
            print(f"  {level:6.0%}  {p.answer_correct:14.3f}  {p.threshold:9.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
