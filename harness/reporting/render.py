"""One renderer for every table: Markdown (title, notes, table), CSV with numbers, and LaTeX on request.

Tables are built from numbers (``Count``, ``Rate``) and formatted here, last:
Markdown keeps the cells a reader wants (``21/26``, ``0.81 [0.62, 0.92]``);
CSV is for analysis, so such cells are split into numbers: a count column
``detected`` with its denominator ``detected_of``; a rate ``detection_rate``
with ``detection_rate_lo``/``_hi`` (its 95 % interval). ``–`` (not measured)
becomes an empty cell. LaTeX (booktabs) is written for the tables a paper
would include (``latex=True``).
"""

from __future__ import annotations

import os

import pandas as pd

from harness.scoring.intervals import Count, Rate

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
    """The table with ``Count`` cells split into count and denominator columns, ``Rate`` cells into value and
    bounds (as shown); a column of anything else, or of a mix, is written as shown."""
    out = {}
    for column in df.columns:
        cells = [v for v in df[column] if not _missing(v)]
        if cells and all(isinstance(c, Count) for c in cells):
            out[column] = [None if _missing(v) else v.k for v in df[column]]
            out[f"{column}_of"] = [None if _missing(v) else v.n for v in df[column]]
        elif cells and all(isinstance(c, Rate) for c in cells):
            shown = [None if _missing(v) else v.shown() for v in df[column]]
            for suffix, i in (("", 0), ("_lo", 1), ("_hi", 2)):
                out[f"{column}{suffix}"] = [None if s is None else s[i] for s in shown]
        else:
            out[column] = [None if isinstance(v, str) and v in _MISSING else
                           str(v) if isinstance(v, (Count, Rate)) else v for v in df[column]]
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
