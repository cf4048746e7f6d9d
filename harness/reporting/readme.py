"""The README's headline table, written from results/summary.csv by ``report``, so that it never goes stale.

Only the block between the two markers is rewritten, and only in the README
beside a results folder (``results/`` -> ``README.md``): a newcomer whose own
``make tables`` moved a cell gets a README that says what they measured, and
the test checks that the block is current with the summary in the tree.
"""

from __future__ import annotations

import os

import pandas as pd

from harness.reporting.glossary import TARGET_DETECTOR

START = "<!-- headline: written by `bugbench report` from results/summary.csv (valid cases) -->"
END = "<!-- /headline -->"
COLUMNS = (("separates", "separates"), ("detected", "detected"), ("localized", "localized"),
           ("suggested_fix", "fix"), ("false_alarms", "false alarms"))
LEFT_OUT = ("keras-ton", "keras-es-loss", "keras-es-acc")  # keras-union stands for the three


def headline(summary: pd.DataFrame) -> str:
    """The table: the recommended detector first, then by cases separated, fewer false alarms first."""
    valid = summary[(summary.subset == "valid") & ~summary.detector.isin(LEFT_OUT)].copy()
    valid["_first"] = valid.detector != TARGET_DETECTOR
    valid = valid.sort_values(["_first", "separates", "false_alarms", "detector"], ascending=[True, False, True, True])
    lines = ["| detector (valid cases) | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for _, row in valid.iterrows():
        cells = ["–" if pd.isna(row[c]) else f"{int(row[c])}/{int(row[c + '_of'])}" for c, _ in COLUMNS]
        lines.append(f"| `{row['detector']}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def update_readme(results_dir: str) -> str | None:
    """Rewrite the headline block of the README beside ``results_dir``; its path when it changed."""
    readme = os.path.join(os.path.dirname(os.path.abspath(results_dir)), "README.md")
    summary_csv = os.path.join(results_dir, "summary.csv")
    if not (os.path.isfile(readme) and os.path.isfile(summary_csv)):
        return None
    text = open(readme, encoding="utf-8").read()
    if START not in text or END not in text:
        return None
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    new = f"{before}{START}\n{headline(pd.read_csv(summary_csv))}\n{END}{after}"
    if new == text:
        return None
    with open(readme, "w", encoding="utf-8") as fh:
        fh.write(new)
    return readme
