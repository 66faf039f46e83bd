"""Split data/raw/cells.csv into data/prepared/{train,test}.csv (stratified, seeded).

Every row gets an ``id`` column, its index in the raw file, so that predictions of different
models on the test set can be paired row by row.
"""

from __future__ import annotations

import csv
from pathlib import Path

import yaml
from sklearn.model_selection import train_test_split

RAW = Path("data/raw/cells.csv")
OUT = Path("data/prepared")
LABEL = "malignant"


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())["prepare"]
    with RAW.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [[str(i), *row] for i, row in enumerate(reader)]
    labels = [row[header.index(LABEL) + 1] for row in rows]
    train, test = train_test_split(
        rows,
        test_size=params["test_size"],
        random_state=params["seed"],
        stratify=labels,
    )
    OUT.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("test", test)):
        # Sorted by id: the same split always gives the same bytes.
        part.sort(key=lambda row: int(row[0]))
        with (OUT / f"{name}.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", *header])
            writer.writerows(part)
    print(f"{len(train)} train rows, {len(test)} test rows")


if __name__ == "__main__":
    main()
