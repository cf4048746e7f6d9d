"""One renderer for every table: Markdown (title, notes, table), CSV with numbers, and LaTeX on request.

Markdown keeps the cells a reader wants (``21/26``, ``0.81 [0.62, 0.92]``).
CSV is for analysis, so such cells are split into numbers: a count column
``detected`` with its denominator ``detected_of``; a rate ``detection_rate``
with ``detection_rate_lo``/``_hi`` (its 95 % interval). ``–`` (not measured)
becomes an empty cell. LaTeX (booktabs) is written for the tables a paper
would include (``latex=True``).
"""

from __future__ import annotations

import os
import re

import pandas as pd

_COUNT = re.compile(r"^(\d+)/(\d+)$")
_RATE = re.compile(r"^(\d+(?:\.\d+)?) \[(\d+(?:\.\d+)?), (\d+(?:\.\d+)?)\]$")
_MISSING = {"–", "-", ""}


def write_table(df: pd.DataFrame, results_dir: str, name: str, title: str, notes: list[str] = (),
                latex: bool = False) -> str:
    """Write ``name``.md and ``name``.csv (and ``name``.tex); return the Markdown path."""
    os.makedirs(results_dir, exist_ok=True)
    numeric(df).to_csv(os.path.join(results_dir, f"{name}.csv"), index=False)
    body = df.to_markdown(index=False) if len(df) else "_no rows_"
    path = os.path.join(results_dir, f"{name}.md")
    with open(path, "w") as fh:
        fh.write("\n\n".join([f"# {title}", *notes, body]) + "\n")
    if latex:
        with open(os.path.join(results_dir, f"{name}.tex"), "w") as fh:
            fh.write(to_latex(df, title, label=f"tab:{name}"))
    return path


def numeric(df: pd.DataFrame) -> pd.DataFrame:
    """The table with ``k/n`` cells split into count and denominator columns, rates into value and bounds."""
    out = {}
    for column in df.columns:
        cells = [str(v) for v in df[column] if not _missing(v)]
        if cells and all(_COUNT.match(c) for c in cells):
            parts = [_COUNT.match(str(v)) if not _missing(v) else None for v in df[column]]
            out[column] = [int(m.group(1)) if m else None for m in parts]
            out[f"{column}_of"] = [int(m.group(2)) if m else None for m in parts]
        elif cells and all(_RATE.match(c) for c in cells):
            parts = [_RATE.match(str(v)) if not _missing(v) else None for v in df[column]]
            for suffix, group in (("", 1), ("_lo", 2), ("_hi", 3)):
                out[f"{column}{suffix}"] = [float(m.group(group)) if m else None for m in parts]
        else:
            out[column] = [None if isinstance(v, str) and v in _MISSING else v for v in df[column]]
    return pd.DataFrame(out).astype(object).convert_dtypes() if out else df


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or (isinstance(value, str)
                                                                             and value in _MISSING)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "–": "--", "→": r"$\rightarrow$", "≠": r"$\neq$", "¬": r"$\neg$"}


def latex_escape(text) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def to_latex(df: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table (``\\usepackage{booktabs}``): numbers right-aligned, text left."""
    align = "".join("r" if pd.api.types.is_numeric_dtype(df[c]) else "l" for c in df.columns)
    head = " & ".join(latex_escape(c) for c in df.columns) + r" \\"
    rows = [" & ".join("" if _missing(v) and not isinstance(v, str) else latex_escape(v) for v in row) + r" \\"
            for row in df.itertuples(index=False)]
    return "\n".join([r"\begin{table}", r"\centering", rf"\caption{{{latex_escape(caption)}}}",
                      rf"\label{{{label}}}", rf"\begin{{tabular}}{{{align}}}", r"\toprule", head, r"\midrule",
                      *rows, r"\bottomrule", r"\end{tabular}", r"\end{table}", ""])
