"""Score the output of ``rag ask --jsonl`` against a question set (issue 2's acceptance run).

    rag index --seeds evals/squad-sample/corpus --index /tmp/squad-index
    rag ask --jsonl -k 10 --index /tmp/squad-index \\
        < evals/squad-sample/questions.jsonl > /tmp/answers.jsonl
    python evals/score_answers.py evals/squad-sample/questions.jsonl /tmp/answers.jsonl

Prints the metrics of ``rag.evaluation.score_results`` (the scorer ``rag eval`` uses) as JSON.
"""

import json
import sys

from rag.evaluation import load_question_set, score_results


def main(questions_path: str, answers_path: str) -> None:
    questions = {q.id: q for q in load_question_set(questions_path)}
    records = []
    with open(answers_path, encoding="utf-8") as f:
        for line in f:
            a = json.loads(line)
            q = questions[a["id"]]
            records.append({**a, "answers": q.answers, "source": q.source, "span": q.span,
                            "kind": q.kind})  # fmt: skip
    missing = len(questions) - len(records)
    print(json.dumps({"questions": len(questions), "answered_lines": len(records),
                      "missing": missing, **score_results(records)}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main(*sys.argv[1:3])
