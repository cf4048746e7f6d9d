"""Tables and the figure of the generated suite: mutants of the zoo's healthy programs.

Written beside the usual tables when a results folder holds generated cases
(``make generated`` writes results/zoo/). Only *killed* mutants count in
detection rates (an equivalent one is no bug a detector could be blamed for
missing); false alarms are errors on the zoo's healthy programs themselves.
Rates carry 95 % Wilson intervals; seeds are collapsed by majority.
"""

from __future__ import annotations

import pandas as pd

from harness.reporting.glossary import detector_order
from harness.reporting.render import write_table
from harness.scoring.intervals import rate
from harness.scoring.verdicts import healthy_controls

LEGEND = (
    "The generated suite: each mutant is a healthy program of the zoo with one fault put in by a mutation "
    "operator (its ground truth by construction); it counts only if it was *killed*: measurably worse than its "
    "program over the kill seeds (Welch's one-sided t-test on the final accuracy, or mae/loss for regression, "
    "p < 0.05, and Cohen's d >= 0.5; DeepCrime's criterion). `detected`: an error on a killed mutant (majority "
    "over the suite's seeds); `localized`, `suggested_fix` as in summary.md; `false_alarms`: an error on a "
    "healthy program of the zoo that learns. Rates with 95 % Wilson intervals."
)


def generated_cases(records: list[dict]) -> dict[str, dict]:
    """{case id: its ``generated`` block} for the mutants among the records."""
    return {r["case"]["id"]: r["case"]["generated"] for r in records if (r["case"].get("generated") or {}).get("base")}


def write_generated(per_case: pd.DataFrame, records: list[dict], results_dir: str) -> list[str]:
    mutants = generated_cases(records)
    if not mutants or per_case.empty:
        return []
    killed = per_case[(per_case.variant == "buggy") & per_case.case.isin(mutants) & (per_case.case_status == "valid")]
    zoo = healthy_controls(per_case[per_case.case_status == "healthy"])
    summary = _summary(killed, zoo)
    written = [
        write_table(summary, results_dir, "generated_summary", "Generated suite: every detector", [LEGEND],
                    latex=True),
        *(write_table(_operators(per_case, killed, mutants, column), results_dir, name, title,
                      [LEGEND, f"Cells: killed mutants whose {what} / killed mutants of the operator."], latex=True)
          for column, name, title, what in OPERATOR_TABLES),
        write_table(_equivalents(records), results_dir, "generated_equivalent",
                    "Generated suite: mutants not killed (equivalent), left out of the rates", [LEGEND]),
    ]
    from harness.reporting.detector_map import draw_detector_map

    figure = draw_detector_map(results_dir, summary_file="generated_summary.csv", subset=None,
                               out="detectors_generated.png", title="generated suite: killed mutants vs the zoo")
    return written + ([figure] if figure else [])


def _summary(killed: pd.DataFrame, zoo: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for det in sorted(set(killed.detector) | set(zoo.detector), key=detector_order):
        k, h = killed[killed.detector == det], zoo[zoo.detector == det]
        n, hits, alarms = k.case.nunique(), int(k.detected.fillna(False).astype(bool).sum()), \
            int(h.detected.fillna(False).astype(bool).sum())

        rows.append({"detector": det, "mutants": n, "detected": f"{hits}/{n}", "detection_rate": rate(hits, n),
                     "localized": _count(k, "localized", n), "suggested_fix": _count(k, "suggested", n),
                     "false_alarms": f"{alarms}/{len(h)}", "false_alarm_rate": rate(alarms, len(h))})
    return pd.DataFrame(rows)


def _count(part: pd.DataFrame, column: str, n: int) -> str:
    values = part[column].dropna()
    return f"{int(values.astype(bool).sum())}/{n}" if len(values) else "–"


OPERATOR_TABLES = (  # (outcome column, file, title, what a cell counts)
    ("detected", "generated_operators", "Generated suite: detection per operator", "buggy run has an error"),
    ("localized", "generated_operators_localized", "Generated suite: localization per operator",
     "first error names the mutated layer or the fault kind"),
    ("suggested", "generated_operators_fix", "Generated suite: suggested fix per operator",
     "first error suggests a fix of the mutation's kind"),
)


def _operators(per_case: pd.DataFrame, killed: pd.DataFrame, mutants: dict, column: str = "detected") -> pd.DataFrame:
    generated = per_case[(per_case.variant == "buggy") & per_case.case.isin(mutants)]
    op_of = {case: g["operator"] for case, g in mutants.items()}
    rows = []
    for op in sorted({g["operator"] for g in mutants.values()}):
        cases = {c for c in generated.case.unique() if op_of[c] == op}
        k = killed[killed.case.isin(cases)]
        row = {"operator": op, "killed": f"{k.case.nunique()}/{len(cases)}"}
        for det in sorted(killed.detector.unique(), key=detector_order):
            d = k[k.detector == det]
            values = d[column].dropna()
            row[det] = f"{int(values.astype(bool).sum())}/{d.case.nunique()}" if len(values) else "–"
        rows.append(row)
    return pd.DataFrame(rows)


def _equivalents(records: list[dict]) -> pd.DataFrame:
    seen, rows = set(), []
    for r in records:
        g, case = r["case"].get("generated") or {}, r["case"]
        if case.get("status") == "equivalent" and case["id"] not in seen:
            seen.add(case["id"])
            kill = g.get("kill") or {}
            rows.append({"mutant": case["id"], "operator": g.get("operator"), "metric": kill.get("metric"),
                         "program": kill.get("base"), "mutant's": kill.get("mutant"), "p": kill.get("p_value"),
                         "d": kill.get("effect_size")})
    return pd.DataFrame(sorted(rows, key=lambda row: row["mutant"]))

