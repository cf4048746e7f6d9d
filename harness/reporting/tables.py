"""Every table in results/, rendered from the stored unit results alone.

One renderer writes each table as Markdown and CSV. Nothing here trains or
imports TensorFlow: ``bugbench report`` is this module.
"""

from __future__ import annotations

import os

import pandas as pd

from harness.reporting import paper_tables
from harness.reporting.generated import write_generated
from harness.reporting.glossary import (
    CASE_LEGEND,
    COMPARISON_LEGEND,
    FIDELITY_LEGEND,
    PAPER_COLUMN,
    PUBLISHED,
    SUMMARY_LEGEND,
    TARGET_DETECTOR,
    TARGETS,
    detector_order,
)
from harness.reporting.paper_tables import has_cell, paper_cell, papers
from harness.reporting.render import write_table
from harness.running.records import UnitRecord
from harness.running.results import ResultsDir
from harness.scoring import fidelity, outcomes
from harness.scoring.intervals import Count, count_true, rate
from harness.scoring.verdicts import every_fix, fixed_not_learning, healthy_controls, majority, separates


def report(results_dir: str = "results") -> list[str]:
    """Rebuild every table from ``results_dir/runs``; return the files written."""
    records = ResultsDir(results_dir).records()
    outcome = outcomes.outcomes(records)
    per_case = majority(outcome)
    runs = outcomes.runs(records)
    fid = fidelity.fidelity(runs, records)
    written = [
        write_table(runs, results_dir, "runs", "Runs: one row per case x variant x seed",
                    ["`symptom_shown`: the buggy variant should show the case's symptom and the patched one "
                     "should not."]),
        write_table(fid, results_dir, "fidelity", "Fidelity: do the cases misbehave, and does the patch fix them?",
                    [FIDELITY_LEGEND, fidelity.summary_line(fid)]),
        write_table(case_table(per_case, records), results_dir, "cases", "Per case: what each detector did",
                    [CASE_LEGEND, unsettled_note(per_case)]),
        write_table(summ := summary(per_case, records), results_dir, "summary", "Summary per detector",
                    [SUMMARY_LEGEND, *target_notes(summ), *paper_note(summ), not_learning_note(per_case),
                     machine_note(records)],
                    latex=True),
        write_table(comparison(summ), results_dir, "comparison", "All detectors compared",
                    [COMPARISON_LEGEND, *target_notes(summ), *paper_note(summ), not_learning_note(per_case),
                     machine_note(records)],
                    latex=True),
        *paper_tables.write_all(per_case, records, results_dir),
        *write_generated(per_case, records, results_dir),
    ]
    outcome.to_csv(os.path.join(results_dir, "outcomes.csv"), index=False)
    from harness.reporting.detector_map import draw_detector_map

    figure = draw_detector_map(summ, results_dir)
    from harness.reporting.readme import update_readme

    readme = update_readme(results_dir)
    return written + [os.path.join(results_dir, "outcomes.csv")] + ([figure] if figure else []) + \
        ([readme] if readme else [])


def _cell(row) -> str:
    if row is None:
        return "–"  # not trained: a healthy program has no buggy variant
    if not row["ok"]:
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


def case_table(per_case: pd.DataFrame, records: list[UnitRecord]) -> pd.DataFrame:
    if per_case.empty:
        return pd.DataFrame()
    paper = papers(records)
    index = {(r.case, r.variant, r.detector): r._asdict() for r in per_case.itertuples(index=False)}
    rows = []
    for case in sorted(per_case["case"].unique()):
        row = {"case": case, "status": per_case[per_case.case == case]["case_status"].iloc[0]}
        for det in sorted(per_case["detector"].unique(), key=detector_order):
            buggy, patched = index.get((case, "buggy", det)), index.get((case, "patched", det))
            row[det] = f"{_cell(buggy)} / {_cell(patched)}"
            column = PAPER_COLUMN.get(det)
            if has_cell(paper[case], column):
                row[f"{det} paper"] = paper_cell(paper[case], column)
        rows.append(row)
    return pd.DataFrame(rows)


def paper_note(summ: pd.DataFrame) -> list[str]:
    """The recommended detector on the paper's cases, beside the published tools (which never measured false alarms)."""
    rows = summ[(summ["detector"] == TARGET_DETECTOR) & (summ["subset"] == "paper")] if not summ.empty else summ
    if rows.empty:
        return []
    row = rows.iloc[0]
    parts = []
    for tool, (d, loc, ours) in PUBLISHED.items():
        mine = summ[(summ["detector"] == ours) & (summ["subset"] == "paper")]
        measured = "" if mine.empty else (f" (our run of it as released, `{ours}`: {mine.iloc[0]['detected']}, "
                                          f"{mine.iloc[0]['localized']}, false alarms {mine.iloc[0]['false_alarms']})")
        parts.append(f"{tool} {d}/40 and {loc}/40{measured}")
    return [f"On the paper's {row['cases']} cases `{TARGET_DETECTOR}` detects {row['detected']} and localizes "
            f"{row['localized']}, with false alarms on {row['false_alarms']} healthy runs; published (detected and "
            f"localized, on the authors' runs; false alarms were not measured): {'; '.join(parts)}."]


def machine_note(records: list[UnitRecord]) -> str:
    """Where the units were trained: bits reproduce on the same CPU and library versions, verdicts beyond."""
    seen: dict[tuple, int] = {}
    for r in records:
        v = r.versions
        if r.status == "ok":
            key = (v.cpu or v.machine or "?", v.cpu_isa or "?", v.keras, v.numpy)
            seen[key] = seen.get(key, 0) + 1
    parts = [f"{n} on {cpu} ({isa}; keras {keras}, numpy {np_})" for (cpu, isa, keras, np_), n in sorted(seen.items())]
    return "Units trained: " + ("; ".join(parts) or "none") + "."


def unsettled_note(per_case: pd.DataFrame) -> str:
    """How many cells rest on seeds that disagreed (``~``): the ones another CPU kind moves first."""
    if per_case.empty:
        return "No cells."
    flaky = per_case[per_case["flaky"].fillna(False).astype(bool)]
    by = flaky.groupby("detector").size().to_dict()
    order = sorted(by, key=detector_order)
    return (f"Cells that may read otherwise on another machine: {len(flaky)} of {len(per_case)} rest on a majority "
            f"of seeds that disagreed (`~`), in {flaky['case'].nunique()} cases"
            + (f" ({', '.join(f'{d} {by[d]}' for d in order)})" if order else "") + ". Their verdict already "
            "depends on the seed, so they are the first to change where float rounding differs (another CPU kind "
            "or library version: the machine line in summary.md); a cell whose seeds agree can still move.")


def not_learning_note(per_case: pd.DataFrame) -> str:
    cases = fixed_not_learning(per_case) if not per_case.empty else []
    text = ("Fixed, not learning (valid cases whose patched variant does not beat the constant predictor in most "
            f"seeds; no healthy control, so left out of `false_alarms` and `separates`): {', '.join(cases) or 'none'}.")
    mine = per_case[per_case["detector"] == TARGET_DETECTOR] if not per_case.empty else per_case
    if mine.empty:
        return text
    fixes, healthy = every_fix(mine), healthy_controls(mine)
    flagged = sorted(set(fixes[fixes["detected"].fillna(False).astype(bool)]["case"]))
    beyond = sorted(set(flagged) - set(healthy[healthy["detected"].fillna(False).astype(bool)]["case"]))
    return text + (f" `false_alarms` counts errors on the fixes that learn; the rule that picks them is the one "
                   f"NOT_LEARNING applies, so NOT_LEARNING cannot be a false alarm there. "
                   f"`false_alarms_any_fix` counts every fix: `{TARGET_DETECTOR}` flags "
                   f"{len(flagged)} of {fixes['case'].nunique()} fixed cases, beyond the learning ones: "
                   f"{', '.join(beyond) or 'none'}.")


def summary(per_case: pd.DataFrame, records: list[UnitRecord]) -> pd.DataFrame:
    if per_case.empty:
        return pd.DataFrame()
    paper = papers(records)
    subsets = {"paper": per_case["in_paper"].astype(bool), "all": per_case["case"].notna(),
               "valid": per_case["case_status"] == "valid"}
    from_paper = per_case["from_paper"].astype(bool)
    if from_paper.any():  # beside the paper's pairs: the valid ones from elsewhere (a suite of its own has no `new`)
        subsets["new"] = (per_case["case_status"] == "valid") & ~from_paper
    rows = []
    for det in sorted(per_case["detector"].unique(), key=detector_order):
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
    fixes = every_fix(part)
    any_fix = int(fixes["detected"].fillna(False).astype(bool).sum())
    sep, pairs = separates(part)

    def count(column):
        return count_true(buggy[column], n)

    return {
        "detector": det, "subset": subset, "cases": n, "detected": Count(int(detected.sum()), n),
        "localized": count("localized"), "localized_fused": count("localized_fused"), "diagnosed": count("diagnosed"),
        "suggested_fix": count("suggested"), "false_alarms": Count(alarms, len(healthy)),
        "false_alarms_any_fix": Count(any_fix, len(fixes)),
        "separates": Count(sep, pairs) if pairs else "–",
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
                      "suggested_fix", "false_alarms", "false_alarms_any_fix", "detection_rate", "false_alarm_rate",
                      "warned_fault",
                      "warnings_per_healthy_run", "median_seconds_to_detect", "median_steps_to_detect"]

def comparison(summ: pd.DataFrame) -> pd.DataFrame:
    """One row per detector and subset (all 41 cases, valid cases): the table to compare detectors by."""
    if summ.empty:
        return summ
    rows = summ[summ["subset"].isin(["all", "valid"])].copy()
    rows["order"] = rows["subset"].map({"all": 0, "valid": 1})
    rows = rows.sort_values(["order"], kind="stable")
    return rows.reindex(columns=["subset", *COMPARISON_COLUMNS])


def target_notes(summ: pd.DataFrame) -> list[str]:
    """The goals set for the paper's valid cases (the `valid` subset less the `new` one, when there is one); none
    for a suite without them (the generated one)."""
    if summ.empty or not (summ["subset"] == "paper").any():
        return []
    mine = summ[summ["detector"] == TARGET_DETECTOR].set_index("subset")
    if "valid" not in mine.index:
        return []
    parts = []
    for column, (op, goal) in TARGETS.items():
        got = mine.loc["valid", column]
        new = mine.loc["new", column] if "new" in mine.index else None
        if not isinstance(got, Count):
            parts.append(f"{column} {got} (goal {op} {goal}: not measured)")
            continue
        got = got - new if isinstance(new, Count) else got
        met = got.k >= goal if op == ">=" else got.k <= goal
        parts.append(f"{column} {got} (goal {op} {goal}: {'met' if met else 'missed'})")
    return [f"Goals for `{TARGET_DETECTOR}` on the paper's valid cases: " + "; ".join(parts) + "."]


def _paper_count(detector: str, cases, paper: dict, field: str = "IB") -> Count | str:
    column = PAPER_COLUMN.get(detector)
    cells = [paper_cell(paper[c], column, field) for c in cases if has_cell(paper.get(c), column)]
    cells = [c for c in cells if c in ("Y", "N")]
    return Count(cells.count("Y"), len(cells)) if cells else "–"


def _median(values: pd.Series):
    values = values.dropna()
    return round(float(values.median()), 2) if len(values) else None


