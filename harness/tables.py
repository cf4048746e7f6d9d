"""Every table in results/, rendered from the stored unit results alone.

One renderer writes each table as Markdown and CSV. Nothing here trains or
imports TensorFlow: ``bugbench report`` is this module.
"""

from __future__ import annotations

import glob
import json
import os

import pandas as pd

from harness import fidelity, paper_tables, scoring

# The paper's table column for each detector whose published cells we hold.
# CB is the authors' released callback, which the faithful mode reimplements.
PAPER_COLUMN = {"keras-ton": "TON", "keras-es-loss": "ESloss", "keras-es-acc": "ESacc", "keras-union": "X",
                "layer-trend-faithful": "CB"}


def load_records(results_dir: str) -> list[dict]:
    records = []
    for path in sorted(glob.glob(os.path.join(results_dir, "runs", "*", "*.json"))):
        with open(path) as fh:
            records.append(json.load(fh))
    return records


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


def report(results_dir: str = "results") -> list[str]:
    """Rebuild every table from ``results_dir/runs``; return the files written."""
    records = load_records(results_dir)
    outcome = scoring.outcomes(records)
    per_case = majority(outcome)
    runs = scoring.runs(records)
    fid = fidelity.fidelity(runs, records)
    written = [
        write_table(runs, results_dir, "runs", "Runs: one row per case x variant x seed",
                    ["`symptom_shown`: the buggy variant should show the case's symptom and the patched one should not."]),
        write_table(fid, results_dir, "fidelity", "Fidelity: do the cases misbehave, and does the patch fix them?",
                    [fidelity.LEGEND, fidelity.summary_line(fid)]),
        write_table(case_table(per_case, records), results_dir, "cases", "Per case: what each detector did",
                    [CASE_LEGEND]),
        write_table(summ := summary(per_case, records), results_dir, "summary", "Summary per detector",
                    [SUMMARY_LEGEND, *target_notes(summ)]),
        *paper_tables.write_all(per_case, records, results_dir),
    ]
    outcome.to_csv(os.path.join(results_dir, "outcomes.csv"), index=False)
    return written + [os.path.join(results_dir, "outcomes.csv")]


CASE_LEGEND = (
    "Cell: buggy variant / patched variant. `Y e3 b12 1.4s` = first finding at epoch 3, batch 12, 1.4 s "
    "into training; `N` = nothing reported; `FA` = a finding on the patched model (false alarm); `ok` = "
    "silent on the patched model; `ERR` = the run failed. `~` marks a majority over seeds that disagreed. "
    "`paper` = the paper's published identified-the-bug cell for that method (X is the union only for GitHub rows)."
)

SUMMARY_LEGEND = (
    "Subsets: `paper` = the cases in the paper's headline totals (SO 50079585 excluded, as the paper did); "
    "`all` = every case present; `valid` = cases whose status is valid. Counts are over cases present, by "
    "majority over seeds. `detected`: any finding on the buggy variant; `localized`: the first finding names "
    "a faulty layer of the ground truth, or the kind of a layer-less fault (loss, optimizer, learning rate, "
    "...); `localized_fused`: the same, counting a Dense/Conv layer and the separate Activation layer after "
    "it as one layer, as the original programs had them; `diagnosed`: the first finding's diagnosis is one of the case's fault kinds; `false_alarms`: any "
    "finding on the patched variant. Time and steps to detect are medians over detected cases (steps count "
    "batch ends and epoch ends). `paper_detected`/`paper_localized` = the paper's published counts for the "
    "same cases, where it has a column for the method (CB = the authors' callback, which "
    "`layer-trend-faithful` reimplements)."
)


def majority(outcome: pd.DataFrame) -> pd.DataFrame:
    """Collapse seeds: a case counts as detected when most of its seeds detect."""
    if outcome.empty:
        return outcome.assign(flaky=[])
    keys = ["case", "variant", "detector"]

    def collapse(g: pd.DataFrame) -> pd.Series:
        ok = g[g["status"] == "ok"]
        det = ok["detected"].astype(bool)
        loc = ok["localized"].dropna().astype(bool)
        fused = ok["localized_fused"].dropna().astype(bool)
        diag = ok["diagnosed"].dropna().astype(bool)
        first = ok[ok["detected"].astype(bool)].sort_values("seed").head(1)
        row = first.iloc[0] if len(first) else None
        return pd.Series({
            "case_status": g["case_status"].iloc[0], "in_paper": g["in_paper"].iloc[0],
            "ok": len(ok) > 0, "errors": int((g["status"] != "ok").sum()), "detected": bool(det.mean() > 0.5) if len(ok) else None,
            "localized": bool(loc.mean() > 0.5) if len(loc) else None,
            "localized_fused": bool(fused.mean() > 0.5) if len(fused) else None,
            "diagnosed": bool(diag.mean() > 0.5) if len(diag) else None, "flaky": det.nunique() > 1,
            "first_epoch": row["first_epoch"] if row is not None else None,
            "first_batch": row["first_batch"] if row is not None else None,
            "first_step": row["first_step"] if row is not None else None,
            "first_code": row["first_code"] if row is not None else None,
            "first_layer": row["first_layer"] if row is not None else None,
            "first_seconds": row["first_seconds"] if row is not None else None,
            "message": row["message"] if row is not None else None,
            "error": g["error"].dropna().iloc[0] if g["error"].notna().any() else None,
        })

    return outcome.groupby(keys, sort=True).apply(collapse, include_groups=False).reset_index()


def _cell(row) -> str:
    if row is None or not row["ok"]:
        return "ERR"
    flaky = "~" if row["flaky"] else ""
    if row["variant"] == "patched":
        return flaky + ("FA" if row["detected"] else "ok")
    if not row["detected"]:
        return flaky + "N"
    where = f"e{int(row['first_epoch']) + 1}"
    if pd.notna(row["first_batch"]):
        where += f" b{int(row['first_batch']) + 1}"
    loc = {True: " L", False: " ¬L"}.get(row["localized"], "")
    return f"{flaky}Y {where} {row['first_seconds']:.1f}s{loc}"


def case_table(per_case: pd.DataFrame, records: list[dict]) -> pd.DataFrame:
    if per_case.empty:
        return pd.DataFrame()
    paper = {r["case"]["id"]: (r["case"].get("paper") or {}) for r in records}
    index = {(r.case, r.variant, r.detector): r._asdict() for r in per_case.itertuples(index=False)}
    rows = []
    for case in sorted(per_case["case"].unique()):
        row = {"case": case, "status": per_case[per_case.case == case]["case_status"].iloc[0]}
        for det in sorted(per_case["detector"].unique(), key=_detector_order):
            buggy, patched = index.get((case, "buggy", det)), index.get((case, "patched", det))
            row[det] = f"{_cell(buggy)} / {_cell(patched)}"
            column = PAPER_COLUMN.get(det)
            if column and paper[case].get("cells", {}).get(column):
                row[f"{det} paper"] = paper_cell(paper[case], column)
        rows.append(row)
    return pd.DataFrame(rows)


def paper_cell(paper: dict, column: str, field: str = "IB") -> str:
    """The paper's published Y/N for one method on one case ("n/a" where it has no such cell)."""
    cell = paper.get("cells", {}).get(column) or {}
    if column == "X" and paper.get("X_is") != "union":
        return "n/a"
    return str(cell.get(field, "–"))


def summary(per_case: pd.DataFrame, records: list[dict]) -> pd.DataFrame:
    if per_case.empty:
        return pd.DataFrame()
    paper = {r["case"]["id"]: (r["case"].get("paper") or {}) for r in records}
    subsets = {"paper": per_case["in_paper"].astype(bool), "all": per_case["case"].notna(),
               "valid": per_case["case_status"] == "valid"}
    rows = []
    for det in sorted(per_case["detector"].unique(), key=_detector_order):
        for subset, mask in subsets.items():
            part = per_case[mask & (per_case["detector"] == det)]
            buggy, patched = part[part.variant == "buggy"], part[part.variant == "patched"]
            n = buggy["case"].nunique()
            if n == 0:
                continue
            loc, diag = buggy["localized"].dropna(), buggy["diagnosed"].dropna()
            fused = buggy["localized_fused"].dropna()
            rows.append({
                "detector": det, "subset": subset, "cases": n,
                "detected": f"{int(buggy['detected'].fillna(False).astype(bool).sum())}/{n}",
                "localized": f"{int(loc.astype(bool).sum())}/{n}" if len(loc) else "–",
                "localized_fused": f"{int(fused.astype(bool).sum())}/{n}" if len(fused) else "–",
                "diagnosed": f"{int(diag.astype(bool).sum())}/{n}" if len(diag) else "–",
                "false_alarms": f"{int(patched['detected'].fillna(False).astype(bool).sum())}/{patched['case'].nunique()}",
                "errors": int(part["errors"].sum()),
                "flaky": int(part["flaky"].sum()),
                "median_seconds_to_detect": _median(buggy.loc[buggy["detected"].fillna(False).astype(bool),
                                                              "first_seconds"]),
                "median_steps_to_detect": _median(buggy.loc[buggy["detected"].fillna(False).astype(bool),
                                                            "first_step"]),
                "paper_detected": _paper_count(det, buggy["case"].unique(), paper),
                "paper_localized": _paper_count(det, buggy["case"].unique(), paper, "FL"),
            })
    return pd.DataFrame(rows)


# The project's goals for its own localizer, on the paper's cases (met or not, the table says).
TARGETS = {"detected": (">=", 36), "localized": (">=", 29), "false_alarms": ("<=", 4)}


def target_notes(summ: pd.DataFrame) -> list[str]:
    rows = summ[(summ.get("detector") == "layer-trend") & (summ.get("subset") == "paper")] if len(summ) else summ
    if rows is None or rows.empty:
        return []
    row, parts = rows.iloc[0], []
    for column, (op, goal) in TARGETS.items():
        got = int(str(row[column]).split("/")[0])
        met = got >= goal if op == ">=" else got <= goal
        parts.append(f"{column} {row[column]} (goal {op} {goal}: {'met' if met else 'missed'})")
    return ["Goals for `layer-trend` on the paper's cases: " + "; ".join(parts) + "."]


def _paper_count(detector: str, cases, paper: dict, field: str = "IB") -> str:
    column = PAPER_COLUMN.get(detector)
    cells = [paper_cell(paper[c], column, field) for c in cases if column and paper[c].get("cells", {}).get(column)]
    cells = [c for c in cells if c in ("Y", "N")]
    return f"{cells.count('Y')}/{len(cells)}" if cells else "–"


def _median(values: pd.Series):
    values = values.dropna()
    return round(float(values.median()), 2) if len(values) else None


def _detector_order(name: str):
    order = ["keras-ton", "keras-es-loss", "keras-es-acc", "keras-union", "layer-trend-faithful", "layer-trend"]
    return (order.index(name) if name in order else len(order), name)
