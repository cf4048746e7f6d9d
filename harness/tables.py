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
        write_table(comparison(summ), results_dir, "comparison", "All detectors compared",
                    [COMPARISON_LEGEND]),
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
    "it as one layer, as the original programs had them; `diagnosed`: the first finding's diagnosis is one of the case's fault kinds; "
    "`suggested_fix`: the detector's first suggested fix names the kind of change the case's patch made (a fault "
    "code of its ground truth: change the activation, the loss, the learning rate, ...); `false_alarms`: any "
    "finding on the patched variant. Time and steps to detect are medians over detected cases (steps count "
    "batch ends and epoch ends). `paper_detected`/`paper_localized` = the paper's published counts for the "
    "same cases, where it has a column for the method (CB = the authors' callback, which "
    "`layer-trend-faithful` reimplements)."
)


VOTES = ["detected", "localized", "localized_fused", "diagnosed", "suggested"]
FIRST = ["first_epoch", "first_batch", "first_step", "first_code", "first_layer", "first_seconds", "message"]


def majority(outcome: pd.DataFrame) -> pd.DataFrame:
    """Collapse seeds: a case counts as detected (localized, ...) when most of its scored seeds say so."""
    if outcome.empty:
        return outcome.assign(flaky=[])
    keys = ["case", "variant", "detector"]
    groups = outcome.groupby(keys, sort=True)
    out = groups.agg(case_status=("case_status", "first"), in_paper=("in_paper", "first"),
                     errors=("status", lambda s: int((s != "ok").sum())),
                     error=("error", lambda s: s.dropna().iloc[0] if s.notna().any() else None))
    good = outcome[outcome["status"] == "ok"]
    out["ok"] = good.groupby(keys).size().reindex(out.index).fillna(0) > 0
    for column in VOTES:
        values = good[column].map({True: 1.0, False: 0.0}).astype(float)  # None/NaN: not scored
        share = values.groupby([good[k] for k in keys]).agg(["mean", "count"]).reindex(out.index)
        out[column] = [bool(m > 0.5) if c else None for m, c in zip(share["mean"], share["count"].fillna(0))]
    out["flaky"] = (good.groupby(keys)["detected"].nunique().reindex(out.index).fillna(1) > 1)
    hits = good[good["detected"].astype(bool)].sort_values("seed").groupby(keys).head(1).set_index(keys)
    out = out.join(hits[FIRST])
    columns = ["case_status", "in_paper", "ok", "errors", *VOTES, "flaky", *FIRST, "error"]
    out = out[columns].astype(object).where(out[columns].notna(), None)
    return out.reset_index()


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
            fixes = buggy["suggested"].dropna()
            fused = buggy["localized_fused"].dropna()
            rows.append({
                "detector": det, "subset": subset, "cases": n,
                "detected": f"{int(buggy['detected'].fillna(False).astype(bool).sum())}/{n}",
                "localized": f"{int(loc.astype(bool).sum())}/{n}" if len(loc) else "–",
                "localized_fused": f"{int(fused.astype(bool).sum())}/{n}" if len(fused) else "–",
                "diagnosed": f"{int(diag.astype(bool).sum())}/{n}" if len(diag) else "–",
                "suggested_fix": f"{int(fixes.astype(bool).sum())}/{n}" if len(fixes) else "–",
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


COMPARISON_COLUMNS = ["detector", "cases", "detected", "localized", "localized_fused", "diagnosed", "suggested_fix",
                      "false_alarms", "median_seconds_to_detect", "median_steps_to_detect"]

COMPARISON_LEGEND = (
    "Every detector on every case (subset `all`) and on the valid cases (`valid`), by majority over seeds. "
    "Columns as in summary.md: `detected` any finding on the buggy variant; `localized` its first finding names a "
    "faulty layer or the kind of a layer-less fault; `diagnosed` its diagnosis is a fault kind of the case; "
    "`suggested_fix` its first suggested fix names the kind of change the patch made (– : the detector suggests "
    "no fixes); `false_alarms` any finding on the patched variant; times are medians over detected cases "
    "(`structure` judges the program before training: 0 s)."
)


def comparison(summ: pd.DataFrame) -> pd.DataFrame:
    """One row per detector and subset (all 41 cases, valid cases): the table to compare detectors by."""
    if summ.empty:
        return summ
    rows = summ[summ["subset"].isin(["all", "valid"])].copy()
    rows["order"] = rows["subset"].map({"all": 0, "valid": 1})
    rows = rows.sort_values(["order"], kind="stable")
    return rows.reindex(columns=["subset", *COMPARISON_COLUMNS])


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
    order = ["keras-ton", "keras-es-loss", "keras-es-acc", "keras-union", "layer-trend-faithful", "layer-trend",
             "symptoms", "training-problems", "structure"]
    return (order.index(name) if name in order else len(order), name)
