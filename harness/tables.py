"""Every table in results/, rendered from the stored unit results alone.

One renderer writes each table as Markdown and CSV. Nothing here trains or
imports TensorFlow: ``bugbench report`` is this module.
"""

from __future__ import annotations

import glob
import json
import math
import os
import sys

import pandas as pd

from harness import fidelity, paper_tables, scoring

# The paper's table column for each detector whose published cells we hold.
# CB is the authors' released callback, which the faithful mode reimplements.
PAPER_COLUMN = {"keras-ton": "TON", "keras-es-loss": "ESloss", "keras-es-acc": "ESacc", "keras-union": "X",
                "layer-trend-faithful": "CB"}


def load_records(results_dir: str) -> list[dict]:
    """Every result file under ``results_dir/runs``; an unreadable one is named on stderr and left out."""
    records = []
    for path in sorted(glob.glob(os.path.join(results_dir, "runs", "*", "*.json"))):
        try:
            with open(path) as fh:
                record = json.load(fh)
            if not isinstance(record, dict) or "case" not in record:
                raise ValueError("not a unit record")
        except (OSError, ValueError) as exc:
            print(f"bugbench: skipping unreadable result file {path}: {exc}", file=sys.stderr)
            continue
        records.append(record)
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
                    [SUMMARY_LEGEND, *target_notes(summ), *paper_note(summ), not_learning_note(per_case)]),
        write_table(comparison(summ), results_dir, "comparison", "All detectors compared",
                    [COMPARISON_LEGEND, *target_notes(summ), *paper_note(summ), not_learning_note(per_case)]),
        *paper_tables.write_all(per_case, records, results_dir),
    ]
    outcome.to_csv(os.path.join(results_dir, "outcomes.csv"), index=False)
    from harness.detector_map import draw_detector_map

    figure = draw_detector_map(results_dir)
    return written + [os.path.join(results_dir, "outcomes.csv")] + ([figure] if figure else [])


CASE_LEGEND = (
    "Cell: buggy variant / patched variant. `Y e3 b12 1.4s` = first finding at epoch 3, batch 12, 1.4 s "
    "into training; `N` = nothing reported; `FA` = a finding on the patched model (false alarm); `ok` = "
    "silent on the patched model; `ERR` = the run failed. `~` marks a majority over seeds that disagreed. "
    "`paper` = the paper's published identified-the-bug cell for that method (X is the union only for GitHub rows)."
)

SUMMARY_LEGEND = (
    "Only *error* findings count as detections and false alarms; warnings (advice that is often harmless) are "
    "scored apart: `warned_fault` = a warning on the buggy variant names a fault of the case, "
    "`warnings_per_healthy_run` = mean warnings on a healthy run. Healthy runs are the patched variants of valid "
    "cases and both variants of `no_bug` cases, when they learn (beat the best constant predictor's loss by 5 %, "
    "or the majority-class accuracy by 5 points, in most seeds). `separates` = valid cases with a healthy patched "
    "variant where the buggy variant has an error and the patched one none. Rates carry 95 % Wilson intervals. "
    "Subsets: `paper` = the cases in the paper's headline totals (SO 50079585 excluded, as the paper did); "
    "`all` = every case present; `valid` = cases whose status is valid. Counts are over cases present, by "
    "majority over seeds. `detected`: any finding on the buggy variant; `localized`: the first finding names "
    "a faulty layer of the ground truth, or the kind of a layer-less fault (loss, optimizer, learning rate, "
    "...); `localized_fused`: the same, counting a Dense/Conv layer and the separate Activation layer after "
    "it as one layer, as the original programs had them; `diagnosed`: the first finding's diagnosis is one of the case's fault kinds; "
    "`suggested_fix`: the detector's first suggested fix names the kind of change the case's patch made (a fault "
    "code of its ground truth: change the activation, the loss, the learning rate, ...); `false_alarms`: an error "
    "on a healthy run (count over healthy runs). Time and steps to detect are medians over detected cases (steps count "
    "batch ends and epoch ends). `paper_detected`/`paper_localized` = the paper's published counts for the "
    "same cases, where it has a column for the method (CB = the authors' callback, which "
    "`layer-trend-faithful` reimplements)."
)


VOTES = ["detected", "localized", "localized_fused", "diagnosed", "suggested", "warned", "learns"]
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
    out["n_warnings"] = good.groupby(keys)["n_warnings"].mean().reindex(out.index)
    hits = good[good["detected"].astype(bool)].sort_values("seed").groupby(keys).head(1).set_index(keys)
    out = out.join(hits[FIRST])
    columns = ["case_status", "in_paper", "ok", "errors", *VOTES, "flaky", "n_warnings", *FIRST, "error"]
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


# Published totals on the paper's 40 cases: DeepLocalize (ICSE'21) and DeepDiagnosis (ICSE'22, same 40).
PUBLISHED = {"DeepLocalize": (34, 21), "DeepDiagnosis": (35, 29)}


def paper_note(summ: pd.DataFrame) -> list[str]:
    """The recommended detector on the paper's cases, beside the published tools (which never measured false alarms)."""
    rows = summ[(summ["detector"] == TARGET_DETECTOR) & (summ["subset"] == "paper")] if not summ.empty else summ
    if rows.empty:
        return []
    row = rows.iloc[0]
    published = "; ".join(f"{tool} {d}/40 and {loc}/40" for tool, (d, loc) in PUBLISHED.items())
    return [f"On the paper's {row['cases']} cases `{TARGET_DETECTOR}` detects {row['detected']} and localizes "
            f"{row['localized']}, with false alarms on {row['false_alarms']} healthy runs; published: {published} "
            "(detected and localized; false alarms were not measured)."]


def not_learning_note(per_case: pd.DataFrame) -> str:
    cases = fixed_not_learning(per_case) if not per_case.empty else []
    return ("Fixed, not learning (valid cases whose patched variant does not beat the constant predictor in most "
            f"seeds; no healthy control, so left out of `false_alarms` and `separates`): {', '.join(cases) or 'none'}.")


def healthy_controls(part: pd.DataFrame) -> pd.DataFrame:
    """The runs on which any error is a false alarm: patched variants of valid cases and both variants of
    ``no_bug`` cases, that learn (beat the no-learning reference in most seeds)."""
    control = ((part.variant == "patched") & (part.case_status == "valid")) | (part.case_status == "no_bug")
    return part[control & (part["learns"] == True)]  # noqa: E712  (None: not judged)


def fixed_not_learning(per_case: pd.DataFrame) -> list[str]:
    """Valid cases whose patched variant does not learn: no healthy control, left out of false alarms."""
    p = per_case[(per_case.variant == "patched") & (per_case.case_status == "valid") & (per_case["learns"] == False)]  # noqa: E712
    return sorted(p["case"].unique())


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a rate k/n (sound for small n and rates near 0 or 1)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k / n:.2f} [{lo:.2f}, {hi:.2f}]" if n else "–"


def separates(part: pd.DataFrame) -> tuple[int, int]:
    """Valid cases with a healthy patched variant: flagged buggy and silent patched (majority over seeds)."""
    buggy = part[(part.variant == "buggy") & (part.case_status == "valid")].set_index("case")["detected"]
    patched = healthy_controls(part[part.variant == "patched"]).set_index("case")["detected"]
    pairs = [c for c in patched.index if c in buggy.index]
    return sum(bool(buggy[c]) and not bool(patched[c]) for c in pairs), len(pairs)


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
            if part[part.variant == "buggy"]["case"].nunique():
                rows.append(_summary_row(det, subset, part, paper))
    return pd.DataFrame(rows)


def _summary_row(det: str, subset: str, part: pd.DataFrame, paper: dict) -> dict:
    buggy = part[part.variant == "buggy"]
    n = buggy["case"].nunique()
    healthy = healthy_controls(part)
    detected = buggy["detected"].fillna(False).astype(bool)
    alarms = int(healthy["detected"].fillna(False).astype(bool).sum())
    sep, pairs = separates(part)

    def count(column):
        values = buggy[column].dropna()
        return f"{int(values.astype(bool).sum())}/{n}" if len(values) else "–"

    return {
        "detector": det, "subset": subset, "cases": n, "detected": f"{int(detected.sum())}/{n}",
        "localized": count("localized"), "localized_fused": count("localized_fused"), "diagnosed": count("diagnosed"),
        "suggested_fix": count("suggested"), "false_alarms": f"{alarms}/{len(healthy)}",
        "separates": f"{sep}/{pairs}" if pairs else "–",
        "detection_rate": rate(int(detected.sum()), n), "false_alarm_rate": rate(alarms, len(healthy)),
        "warned_fault": count("warned"),
        "warnings_per_healthy_run": round(float(healthy["n_warnings"].mean()), 2) if len(healthy) else None,
        "errors": int(part["errors"].sum()), "flaky": int(part["flaky"].sum()),
        "median_seconds_to_detect": _median(buggy.loc[detected, "first_seconds"]),
        "median_steps_to_detect": _median(buggy.loc[detected, "first_step"]),
        "paper_detected": _paper_count(det, buggy["case"].unique(), paper),
        "paper_localized": _paper_count(det, buggy["case"].unique(), paper, "FL"),
    }


COMPARISON_COLUMNS = ["detector", "cases", "separates", "detected", "localized", "localized_fused", "diagnosed",
                      "suggested_fix", "false_alarms", "detection_rate", "false_alarm_rate", "warned_fault",
                      "warnings_per_healthy_run", "median_seconds_to_detect", "median_steps_to_detect"]

COMPARISON_LEGEND = (
    "Every detector on every case (subset `all`) and on the valid cases (`valid`), by majority over seeds. "
    "Only error findings count; warnings are scored apart (see summary.md). `separates`: valid cases with a "
    "healthy patched variant where the buggy run has an error and the patched run none. "
    "Columns as in summary.md: `detected` an error on the buggy variant; `localized` its first finding names a "
    "faulty layer or the kind of a layer-less fault; `diagnosed` its diagnosis is a fault kind of the case; "
    "`suggested_fix` its first suggested fix names the kind of change the patch made (– : the detector suggests "
    "no fixes); `false_alarms` an error on a healthy run (patched variants of valid cases and both variants of "
    "`no_bug` cases, that learn); rates with 95 % Wilson intervals; times are medians over detected cases "
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


# The project's goals for its recommended detector on the valid cases (met or not, the table says).
TARGET_DETECTOR = "diagnose"
TARGETS = {"separates": (">=", 23), "localized": (">=", 20), "suggested_fix": (">=", 18), "false_alarms": ("<=", 2)}


def target_notes(summ: pd.DataFrame) -> list[str]:
    if summ.empty:
        return []
    rows = summ[(summ["detector"] == TARGET_DETECTOR) & (summ["subset"] == "valid")]
    if rows.empty:
        return []
    row, parts = rows.iloc[0], []
    for column, (op, goal) in TARGETS.items():
        cell = str(row[column])
        if not cell.split("/")[0].isdigit():
            parts.append(f"{column} {cell} (goal {op} {goal}: not measured)")
            continue
        got = int(cell.split("/")[0])
        met = got >= goal if op == ">=" else got <= goal
        parts.append(f"{column} {cell} (goal {op} {goal}: {'met' if met else 'missed'})")
    return [f"Goals for `{TARGET_DETECTOR}` on the valid cases: " + "; ".join(parts) + "."]


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
             "symptoms", "training-problems", "structure", "diagnose"]
    return (order.index(name) if name in order else len(order), name)
