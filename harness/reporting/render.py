"""One renderer for every table: Markdown (a title, notes, the table) and CSV side by side."""

from __future__ import annotations

import os

import pandas as pd


def write_table(df: pd.DataFrame, results_dir: str, name: str, title: str, notes: list[str] = ()) -> str:
    """Write ``name``.md and ``name``.csv; return the Markdown path."""
    os.makedirs(results_dir, exist_ok=True)
    df.to_csv(os.path.join(results_dir, f"{name}.csv"), index=False)
    body = df.to_markdown(index=False) if len(df) else "_no rows_"
    text = "\n\n".join([f"# {title}", *notes, body]) + "\n"
    path = os.path.join(results_dir, f"{name}.md")
    with open(path, "w") as fh:
        fh.write(text)
    return path
