"""The gates' statistics: a paired comparison of two models on 100,000 examples with 1,000
bootstrap resamples, per metric kind. Prints seconds per comparison; writes
bench/results/gates.json.

    python bench/gates.py [--examples N] [--resamples B]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence

import numpy as np

import common
from common import REPO_ROOT
from conveyor.stats.paired import paired


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    n = args.examples
    y = rng.integers(0, 2, n)
    c = 1 / (1 + np.exp(-(1.2 * (2 * y - 1) + rng.normal(size=n))))
    b = 1 / (1 + np.exp(-(1.0 * (2 * y - 1) + rng.normal(size=n))))
    cases = {
        "accuracy": ((c > 0.5).astype(int), (b > 0.5).astype(int)),
        "f1": ((c > 0.5).astype(int), (b > 0.5).astype(int)),
        "auc": (c, b),
        "logloss": (c, b),
    }
    paired("accuracy", y[:100], cases["accuracy"][0][:100], cases["accuracy"][1][:100])
    results = {}
    print(f"paired comparison of {n:,} examples, {args.resamples:,} resamples", end="")
    print(f" (median of {args.repeats})")
    for name, (cand, base) in cases.items():
        times = []
        for seed in range(args.repeats):
            start = time.perf_counter()
            r = paired(name, y, cand, base, resamples=args.resamples, seed=seed)
            times.append(time.perf_counter() - start)
        results[name] = round(statistics.median(times), 4)
        interval = f"[{r.low:+.4f}, {r.high:+.4f}]"
        print(f"  {name:9} {results[name]:7.3f} s   {r.method}: {r.difference:+.4f} {interval}")
    out = REPO_ROOT / "bench" / "results" / "gates.json"
    out.write_text(
        json.dumps({"examples": n, "resamples": args.resamples, "seconds": results}, indent=2)
        + "\n"
    )
    print(f"wrote {out.relative_to(REPO_ROOT)}")


def main(argv: Sequence[str] | None = None) -> int:
    return common.main(run, parse_args, argv)


if __name__ == "__main__":
    sys.exit(main())
