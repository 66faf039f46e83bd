"""Write the example's raw data: scikit-learn's breast-cancer table, as CSV files.

The data set ships inside scikit-learn, so this needs no network. ``--extra N`` appends N
bootstrapped rows (seeded), standing in for a new batch of labelled data arriving. ``--drift F``
is the demo's world change: the lab measures every cell again with a new instrument, whose
texture and smoothness read F times higher (the labels stay what they were).
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

from sklearn.datasets import load_breast_cancer

# What the demo's new instrument reads higher.
DRIFTED = frozenset({
    "mean_texture", "worst_texture", "texture_error", "mean_smoothness", "worst_smoothness",
})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="data/raw")
    parser.add_argument("--extra", type=int, default=0)
    parser.add_argument("--drift", type=float, default=1.0)
    args = parser.parse_args()

    bunch = load_breast_cancer()
    names = [n.replace(" ", "_") for n in bunch.feature_names]
    # scikit-learn codes benign as 1; the column says malignant, so 1 must mean malignant.
    rows = [[*map(float, x), int(y == 0)] for x, y in zip(bunch.data, bunch.target, strict=True)]
    rng = random.Random(7)
    rows += [rng.choice(rows) for _ in range(args.extra)]
    if args.drift != 1.0:
        drifted = [i for i, name in enumerate(names) if name in DRIFTED]
        rows = [
            [round(v * args.drift, 6) if i in drifted else v for i, v in enumerate(row)]
            for row in rows
        ]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "cells.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*names, "malignant"])
        writer.writerows(rows)
    (out / "SOURCE.txt").write_text(
        "Wisconsin diagnostic breast cancer data, as shipped with scikit-learn.\n"
        f"{len(rows)} rows, {len(names)} features, label column: malignant.\n"
    )
    print(f"wrote {len(rows)} rows to {out}/cells.csv")


if __name__ == "__main__":
    main()
