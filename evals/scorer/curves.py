"""Print the trade-off curves saved by experiments.py as markdown tables.

    .venv/bin/python evals/scorer/curves.py baseline lr-all hand-s1 ...

Rows: share of the SQuAD 2.0 unanswerable questions abstained on (out-of-fold); cells:
answer-correct on the SQuAD sample (or the paraphrased set) at the lowest threshold that
abstains on at least that share.
"""

import json
import sys
from pathlib import Path

CACHE = Path(__file__).resolve().parents[2] / ".cache" / "scorer"
LEVELS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def at(points, level):
    for _, correct, abstain in points:
        if abstain >= level - 1e-9:
            return correct
    return None


def main(names):
    curves = {n: json.loads((CACHE / f"curves-{n}.json").read_text()) for n in names}
    for key, title in (("squad", "SQuAD sample"), ("para", "paraphrased")):
        print(f"\nanswer-correct on {title} vs abstention on SQuAD 2.0 unanswerable\n")
        print("| abstain | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for level in LEVELS:
            cells = [at(curves[n][key], level) for n in names]
            print(f"| {level:.0%} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    print("\nseed-reworded (8 unanswerable): answer-correct on the 45 answerable vs abstention\n")
    print("| abstain | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for level in (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75):
        cells = [at(curves[n]["reworded"], level) for n in names]
        print(f"| {level:.1%} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
