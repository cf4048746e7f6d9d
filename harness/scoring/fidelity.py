"""Does each case reproduce? The buggy variant must show its symptom and the patched one must not.

A pure function of the stored runs (all seeds), written as results/fidelity.md|csv.
"""

from __future__ import annotations

import pandas as pd

from harness.running.records import CaseSnapshot, SymptomSnapshot, UnitRecord
from harness.scoring.intervals import Count, count_true


def fidelity(runs: pd.DataFrame, records: list[UnitRecord]) -> pd.DataFrame:
    if runs.empty:
        return pd.DataFrame()
    cases = {r.case.id: r.case for r in records}
    rows = []
    for case_id, g in runs.groupby("case", sort=True):
        case = cases[case_id]
        ok = g[g.status == "ok"]
        buggy, patched = ok[ok.variant == "buggy"], ok[ok.variant == "patched"]
        rows.append({
            "case": case_id, "status": case.status, "symptom": _symptom(case.symptom),
            "buggy shows": _count(buggy), "patched shows": _count(patched),
            "buggy learns": _count(buggy, "learns"), "patched learns": _count(patched, "learns"),
            "buggy loss": _median(buggy, "final_loss"), "patched loss": _median(patched, "final_loss"),
            "buggy val loss": _median(buggy, "final_val_loss", absent=""),
            "patched val loss": _median(patched, "final_val_loss", absent=""),
            "buggy acc": _median(buggy, "final_accuracy"), "patched acc": _median(patched, "final_accuracy"),
            "reported loss": _reported(case, "loss"), "reported acc": _reported(case, "acc"),
            "reproduced": verdict(case.symptom.kind, buggy, patched),
            "errors": int((g.status != "ok").sum()),
            "max fit s": round(float(g["fit_seconds"].max()), 1) if g["fit_seconds"].notna().any() else None,
        })
    return pd.DataFrame(rows)


def verdict(kind: str, buggy: pd.DataFrame, patched: pd.DataFrame) -> str:
    if kind == "none":
        return "n/a"
    if buggy.empty or patched.empty:
        return "error"
    b = buggy["symptom_shown"].astype(float)
    p = patched["symptom_shown"].astype(float)
    majority = b.mean() > 0.5 and p.mean() < 0.5
    unanimous = b.min() == 1 and p.max() == 0
    if majority:
        return "yes" if unanimous else "flaky"
    return "flaky" if (b.max() == 1 and p.min() == 0) else "no"


def summary_line(table: pd.DataFrame) -> str:
    if table.empty:
        return ""
    counts = table["reproduced"].value_counts().to_dict()
    valid = table[table.status == "valid"]
    ok = int((valid["reproduced"] == "yes").sum() + (valid["reproduced"] == "flaky").sum())
    not_learning = [r["case"] for _, r in valid.iterrows() if _majority_no(r["patched learns"])]
    return (f"{len(table)} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            + f". Valid cases reproducing by majority: {ok}/{len(valid)}. Fixed, not learning: "
            + (", ".join(not_learning) or "none") + ".")


def _majority_no(cell) -> bool:
    return isinstance(cell, Count) and cell.n > 0 and cell.k <= cell.n / 2


def _symptom(s: SymptomSnapshot) -> str:
    return s.kind if s.value is None else f"{s.kind} {s.value:g}"


def _count(df: pd.DataFrame, column: str = "symptom_shown") -> Count | str:
    return count_true(df[column])


def _median(df: pd.DataFrame, col: str, absent="nan"):
    """Median over seeds; ``absent`` where every seed's value is NaN (a NaN loss, or no such log)."""
    values = pd.to_numeric(df[col], errors="coerce")
    if values.isna().all():
        return absent if len(values) else None
    return float(f"{values.median():.4g}")


def _reported(case: CaseSnapshot, what: str) -> str:
    before, after = getattr(case.original, f"{what}_before"), getattr(case.original, f"{what}_after")
    if before is None and after is None:
        return ""
    return f"{_fmt(before)} → {_fmt(after)}"


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.4g}"
