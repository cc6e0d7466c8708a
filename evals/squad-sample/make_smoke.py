"""Regenerate the smoke subset: every 2nd question on three short articles, and their corpus.

Run from the repository root: ``.venv/bin/python evals/squad-sample/make_smoke.py``.
"""

import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARTICLES = ("1973_oil_crisis.txt", "Harvard_University.txt", "Jacksonville,_Florida.txt")

corpus = HERE / "smoke-corpus"
shutil.rmtree(corpus, ignore_errors=True)
corpus.mkdir()
for name in ARTICLES:
    shutil.copy2(HERE / "corpus" / name, corpus / name)

lines = (HERE / "questions.jsonl").read_text(encoding="utf-8").splitlines()
kept, seen = [], dict.fromkeys(ARTICLES, 0)
for line in lines:
    source = json.loads(line)["source"]
    if source in seen:
        if seen[source] % 2 == 0:
            kept.append(line)
        seen[source] += 1
(HERE / "smoke.jsonl").write_text("\n".join(kept) + "\n", encoding="utf-8")
print(f"{len(kept)} questions on {len(ARTICLES)} articles")
