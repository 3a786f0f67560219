"""Render a profile's committed tables again from their CSVs, numbers unchanged: every table
``save_table`` wrote (a ``.csv`` with its ``.md`` and ``.tex``) that prints "missing" gets its
Markdown from ``evaluate.table_markdown`` ("n/a" where a value does not apply, "missing" only in
the rows of runs that should exist and do not), and ``claims.md`` one block per claim from ``claims.csv``
(``claims.claims_markdown``). Nothing is recomputed: a claims table decided under earlier rules
says so at its top.

    .venv/bin/python scripts/render_tables.py [--profile mini]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

from dolos_core.claims import COLUMNS, claims_markdown
from dolos_core.config import get_paths, repo_root
from dolos_core.evaluate import table_markdown
from dolos_core.io import atomic_path

# The tables saved with 3 significant digits (their writers say so): the CSV's 4 decimals cannot
# render them again, so their empty cells are renamed in place (none has a status column: every
# empty cell is one that does not apply).
THREE_DIGITS = ("geometry", "label_rules")
EMPTY_CELL = re.compile(r"(?<=\|)( *)missing( *)(?=\|)")
# claims.csv columns of the rules before the footing and the run's own threshold (issue 46)
EARLIER = {"verdict_val": "verdict_own", "quantity_val": "quantity_own", "quantity_val_low": "quantity_own_low",
           "quantity_val_high": "quantity_own_high"}


def render(res: Path) -> list[Path]:
    done = []
    for csv in sorted(res.glob("*.csv")):
        md, tex = csv.with_suffix(".md"), csv.with_suffix(".tex")
        # only save_table's tables (a .md that is one table, with a .tex) that print a word for an
        # empty cell: the others are already right, and a CSV keeps 4 decimals (a table of
        # 3-significant-digit thresholds would lose some)
        if csv.stem == "claims" or not (md.exists() and tex.exists()) or not md.read_text().startswith("|") \
                or "missing" not in md.read_text():
            continue
        if csv.stem in THREE_DIGITS:
            text = EMPTY_CELL.sub(lambda m: f"{m.group(1)}  n/a{m.group(2)}", md.read_text())
        else:
            text = table_markdown(pd.read_csv(csv))
        with atomic_path(md) as tmp:
            tmp.write_text(text)
        done.append(md)
    claims = res / "claims.csv"
    if claims.exists():
        df = pd.read_csv(claims)
        earlier = "verdict_val" in df.columns
        df = df.rename(columns=EARLIER).reindex(columns=COLUMNS)
        text = claims_markdown(df, second="the validation-chosen thresholds" if earlier else None)
        if earlier:
            text = text.replace("\n\n", "\n\n> These claims were decided under the earlier rules (verdicts at 0.5 and "
                                "at the validation-chosen,\n> mask-calibrated thresholds; no footing check): "
                                "the next regeneration decides them under the rules below.\n\n", 1)
        with atomic_path(res / "claims.md") as tmp:
            tmp.write_text(text)
        done.append(res / "claims.md")
    return done


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="mini")
    ap.add_argument("--root", default=str(repo_root()))
    args = ap.parse_args(argv)
    for p in render(get_paths(args.profile, root=args.root).results):
        print(f"rendered {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
