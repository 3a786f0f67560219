"""Why Patches-MIL is a setup-B method: IoU-lg at 0.5 by mask area, setups A and B.

    .venv/bin/python benchmarks/mil_by_area.py [--profile mini]

Reads the study's ``results/<profile>/per_image.csv`` (every Table 2 run on the Repaint-P2 test
images, every seed) and writes ``results/<profile>/mil_by_area.{csv,md}``: for Patches and
Patches-MIL in setups A and B, Patches C and the everything-fake baseline, the mean IoU-lg at 0.5
of the test images in each mask-area bin, as the mean over seeds with Student's t interval over
the seed means (the baseline has no seed), and ``figures/<profile>/mil_by_area.png``, the same
as curves. In setup A every training fake is fake everywhere:
pooling the top k of its cells tells the network that a few cells suffice, which is the wrong
prior for a large fake region; in setup B it is the right one.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from _results import results_dir
from dolos_core.evaluate import seed_t_interval, save_table

BINS = (0.0, 0.05, 0.1, 0.2, 0.35, 1.0)
ROWS = ("patches-A", "patches-mil-A", "patches-B", "patches-mil-B", "patches-C", "baseline-everything-fake")


def by_area(per_image: pd.DataFrame, test_set: str = "celebahq/repaint-p2") -> pd.DataFrame:
    d = per_image[(per_image.test_set == test_set) & per_image.experiment.isin(ROWS)].copy()
    labels = [f"{lo:.0%}-{hi:.0%}" for lo, hi in zip(BINS[:-1], BINS[1:])]
    d["area_bin"] = pd.cut(d["area"], BINS, labels=labels, include_lowest=True)
    rows = []
    for (exp, b), g in d.groupby(["experiment", "area_bin"], observed=True, sort=False):
        seeds = g.groupby(g["seed"].fillna(-1))["iou"].mean() * 100
        lo, hi = seed_t_interval(seeds.values)
        rows.append({"experiment": exp, "area_bin": b, "n_images": int(len(g) / max(len(seeds), 1)),
                     "seeds": int((seeds.index >= 0).sum()), "iou": float(seeds.mean()), "iou_t_low": lo,
                     "iou_t_high": hi})
    out = pd.DataFrame(rows)
    out["experiment"] = pd.Categorical(out["experiment"], ROWS, ordered=True)
    out["area_bin"] = pd.Categorical(out["area_bin"], labels, ordered=True)
    return out.sort_values(["experiment", "area_bin"]).reset_index(drop=True)


def figure(table: pd.DataFrame):
    """IoU-lg at 0.5 against the mask-area bin, one line per row (mean over seeds, Student's t
    band over the seeds; the baseline has none): setup A dashed, B solid, C and the baseline grey."""
    import matplotlib.pyplot as plt

    from dolos_core.plots import method_colour

    bins = list(table["area_bin"].cat.categories)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for exp, g in table.groupby("experiment", observed=True, sort=True):
        g = g.set_index("area_bin").reindex(bins)
        x = np.arange(len(bins))
        base = exp.startswith("baseline")
        colour = "0.45" if base or exp.endswith("-C") else method_colour(exp.rsplit("-", 1)[0])
        style = ":" if base else "--" if exp.endswith("-A") else "-"
        ax.plot(x, g["iou"], style, marker="o", color=colour, label=exp, lw=2 if "mil" in exp else 1.3)
        if not base:
            ax.fill_between(x, g["iou_t_low"], g["iou_t_high"], color=colour, alpha=0.12, lw=0)
    n = table.groupby("area_bin", observed=False)["n_images"].max().reindex(bins)
    ax.set_xticks(range(len(bins)), [f"{b}\n({int(k)} images)" for b, k in zip(bins, n.fillna(0))])
    ax.set_xlabel("fake share of the image (mask area)")
    ax.set_ylabel("IoU-lg at 0.5 (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Where the maps miss, by mask area (Repaint-P2 test; mean over seeds, t band)", fontsize=10)
    ax.legend(fontsize=8, ncol=2, loc="upper left")
    fig.tight_layout()
    return fig


def main(argv=None) -> int:
    res = results_dir(argv, __doc__)
    table = by_area(pd.read_csv(res / "per_image.csv"))
    save_table(table, res, "mil_by_area", missing="n/a")
    from dolos_core.plots import save_figure

    save_figure(figure(table), res.parent.parent / "figures" / res.name, "mil_by_area")
    wide = table.assign(cell=[f"{r.iou:.1f}" + ("" if np.isnan(r.iou_t_low) else f" [{r.iou_t_low:.1f}, {r.iou_t_high:.1f}]")
                              for r in table.itertuples()]).pivot(index="experiment", columns="area_bin", values="cell")
    print(wide.to_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
