"""Copy the mini profile's regenerated Table 2 (results/mini/table2.csv) and the cross-generator
summary into README.md between the ``mini-results`` markers, so the README shows exactly what
``./run_all.sh`` produced. A maintainer's tool: run it after a mini study, then commit."""

from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- mini-results:start -->", "<!-- mini-results:end -->"


def main() -> None:
    res = ROOT / "results" / "mini"
    t2 = pd.read_csv(res / "table2.csv")
    cols = ["experiment", "method", "setup", "ap_mean", "ap_2std", "iou", "iou_sm", "acc", "acc_sm"]
    shown = t2[cols].round(1).astype(object).where(t2[cols].notna(), "-")
    table = shown.to_markdown(index=False)
    cg = pd.read_csv(res / "cross_generator.csv")
    avg = cg.groupby(["panel", "in_domain"])["iou"].mean().unstack()
    lines = [START, "", "Table 2 on DOLOS-mini (`results/mini/table2.csv`; %, authors' protocol; detection AP only "
             "for the weak setups A and B):", "", table, ""]
    for panel in ("single", "all-but"):
        if panel in avg.index:
            lines.append(f"- Cross-generator, {panel} panel: in-domain IoU {avg.loc[panel, True]:.1f}, "
                         f"out-of-domain {avg.loc[panel, False]:.1f}.")
    lines += ["", "![cross-generator IoU on DOLOS-mini](figures/mini/cross_generator.png)", "", END]
    readme = ROOT / "README.md"
    text = readme.read_text()
    a, b = text.index(START), text.index(END) + len(END)
    readme.write_text(text[:a] + "\n".join(lines) + text[b:])


if __name__ == "__main__":
    main()
