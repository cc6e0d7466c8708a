"""Write questions.jsonl: the SQuAD sample's questions, asked of the default article.

The default article (seeds/) answers none of them, so each is `answers: []`: the assistant
should abstain. Run from the repository root: python evals/squad-on-seed/make_set.py
"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "squad-sample" / "questions.jsonl"

with SOURCE.open(encoding="utf-8") as f, (HERE / "questions.jsonl").open("w") as out:
    for line in f:
        q = json.loads(line)
        row = {"id": q["id"], "question": q["question"], "answers": [], "kind": "off-topic"}
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
