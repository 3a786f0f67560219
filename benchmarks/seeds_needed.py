"""How many training seeds a claim of a given effect size needs, from the study's own spreads.

    .venv/bin/python benchmarks/seeds_needed.py [--profile mini]

Reads ``results/<profile>/seed_spread.csv`` (each cell's IoU-lg at 0.5 under every seed) and
writes ``results/<profile>/seeds_needed.{csv,md}``: for a difference between two cells whose
seed-to-seed standard deviations are both s (independent trainings: the difference's is s x
sqrt(2)), the least number of seeds n per cell for which Student's 95% t interval of the mean
difference, t(0.975, n - 1) x s sqrt(2) / sqrt(n), is narrower than the effect d, so that an
effect of d points can be told from 0. s is read from the study: the median, the 75th percentile
and the largest seed standard deviation over its cells (each estimated from the seeds it has, so
itself uncertain with 3). Image-level noise is left out: with 200 test images per cell it is
small beside the seed spread.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from scipy import stats

from _results import results_dir
from dolos_core.evaluate import save_table

EFFECTS = (2.0, 5.0, 10.0, 20.0)
MAX_SEEDS = 200


def seeds_for(d: float, s: float) -> int | None:
    """The least n >= 2 with t(0.975, n - 1) s sqrt(2) / sqrt(n) < d (None: more than MAX_SEEDS)."""
    for n in range(2, MAX_SEEDS + 1):
        if stats.t.ppf(0.975, n - 1) * s * np.sqrt(2) / np.sqrt(n) < d:
            return n
    return None


def table(spread: pd.DataFrame) -> pd.DataFrame:
    sd = spread.loc[spread["seeds"] > 1, "iou_std"].dropna()
    rows = []
    for label, s in (("median cell", sd.median()), ("75th percentile cell", sd.quantile(0.75)), ("noisiest cell", sd.max())):
        row = {"seed spread": label, "s (IoU points)": float(s)}
        for d in EFFECTS:
            n = seeds_for(d, float(s))
            row[f"effect {d:g}"] = f"{n}" if n is not None else f"> {MAX_SEEDS}"
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    res = results_dir(argv, __doc__)
    spread = pd.read_csv(res / "seed_spread.csv")
    t = table(spread)
    save_table(t, res, "seeds_needed")
    print(f"seeds per cell for a difference of d IoU points to be told from 0 ({int((spread['seeds'] > 1).sum())} "
          f"cells with several seeds, up to {int(spread['seeds'].max())} seeds each):")
    print(t.to_markdown(index=False, floatfmt=".1f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
