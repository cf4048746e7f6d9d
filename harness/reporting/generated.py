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
from harness.running.records import GeneratedSnapshot, KillDecision, UnitRecord
from harness.scoring.intervals import Count, count_true, rate
from harness.scoring.verdicts import healthy_controls

LEGEND = (
    "The generated suite: each mutant is a healthy program of the zoo with one fault put in by a mutation "
    "operator (its ground truth by construction); it counts only if it was *killed*: measurably worse than its "
    "program over the kill seeds on its held-out test rows (Welch's one-sided t-test on the test accuracy, or "
    "mae/loss for regression, p < 0.05, and Cohen's d >= 0.5; DeepCrime's criterion). `detected`: an error on "
    "a killed mutant (majority over the suite's seeds); `localized`, `suggested_fix` as in summary.md; "
    "`false_alarms`: an error on a healthy program of the zoo that learns. Rates with 95 % Wilson intervals."
)


def generated_cases(records: list[UnitRecord]) -> dict[str, GeneratedSnapshot]:
    """{case id: its ``generated`` block} for the mutants among the records."""
    return {r.case.id: r.case.generated for r in records if r.case.generated and r.case.generated.base}


def write_generated(per_case: pd.DataFrame, records: list[UnitRecord], results_dir: str) -> list[str]:
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
        write_table(_kills(mutants), results_dir, "generated_kill",
                    "Generated suite: killed on held-out test data (the criterion) and on training data",
                    [KILL_LEGEND]),
        write_table(_programs(records), results_dir, "generated_programs",
                    "Generated suite: the zoo's healthy programs on their held-out test rows", [PROGRAM_LEGEND]),
    ]
    from harness.reporting.detector_map import draw_detector_map

    figure = draw_detector_map(summary, results_dir, subset=None, out="detectors_generated.png",
                               title="generated suite: killed mutants vs the zoo")
    return written + ([figure] if figure else [])


def _summary(killed: pd.DataFrame, zoo: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for det in sorted(set(killed.detector) | set(zoo.detector), key=detector_order):
        k, h = killed[killed.detector == det], zoo[zoo.detector == det]
        n, hits, alarms = k.case.nunique(), int(k.detected.fillna(False).astype(bool).sum()), \
            int(h.detected.fillna(False).astype(bool).sum())

        rows.append({"detector": det, "mutants": n, "detected": Count(hits, n), "detection_rate": rate(hits, n),
                     "localized": _count(k, "localized", n), "suggested_fix": _count(k, "suggested", n),
                     "false_alarms": Count(alarms, len(h)), "false_alarm_rate": rate(alarms, len(h))})
    return pd.DataFrame(rows)


def _count(part: pd.DataFrame, column: str, n: int) -> Count | str:
    return count_true(part[column], n)


OPERATOR_TABLES = (  # (outcome column, file, title, what a cell counts)
    ("detected", "generated_operators", "Generated suite: detection per operator", "buggy run has an error"),
    ("localized", "generated_operators_localized", "Generated suite: localization per operator",
     "first error names the mutated layer or the fault kind"),
    ("suggested", "generated_operators_fix", "Generated suite: suggested fix per operator",
     "first error suggests a fix of the mutation's kind"),
)


def _operators(per_case: pd.DataFrame, killed: pd.DataFrame, mutants: dict, column: str = "detected") -> pd.DataFrame:
    generated = per_case[(per_case.variant == "buggy") & per_case.case.isin(mutants)]
    op_of = {case: g.operator for case, g in mutants.items()}
    rows = []
    for op in sorted({g.operator for g in mutants.values()}):
        cases = {c for c in generated.case.unique() if op_of[c] == op}
        k = killed[killed.case.isin(cases)]
        row = {"operator": op, "killed": Count(k.case.nunique(), len(cases))}
        for det in sorted(killed.detector.unique(), key=detector_order):
            d = k[k.detector == det]
            row[det] = count_true(d[column], d.case.nunique())
        rows.append(row)
    return pd.DataFrame(rows)


def _equivalents(records: list[UnitRecord]) -> pd.DataFrame:
    seen, rows = set(), []
    for case in (r.case for r in records):
        if case.status == "equivalent" and case.id not in seen:
            seen.add(case.id)
            g = case.generated or GeneratedSnapshot()  # an equivalent case of no mutant: its cells stay empty
            kill = g.kill or KillDecision()
            rows.append({"mutant": case.id, "operator": g.operator, "metric": kill.metric, "program": kill.base,
                         "mutant's": kill.mutant, "p": kill.p_value, "d": kill.effect_size})
    return pd.DataFrame(sorted(rows, key=lambda row: row["mutant"]))



KILL_LEGEND = ("Per operator: mutants written; killed on the held-out test rows (the criterion); killed by the same "
               "test on the final training epoch (the criterion before test splits); killed on test only (they "
               "fit their training rows as well or better: over-fitting) and on training only.")


def _kills(mutants: dict) -> pd.DataFrame:
    rows = {}
    for g in mutants.values():
        kill = g.kill or KillDecision()  # not decided yet: killed nowhere
        on_test = kill.killed and kill.on == "test"
        train = kill.train if kill.on == "test" else kill
        on_train = train is not None and train.killed
        row = rows.setdefault(g.operator, {"operator": g.operator, "mutants": 0, "killed_on_test": 0,
                                           "killed_on_train": 0, "test_only": 0, "train_only": 0})
        row["mutants"] += 1
        row["killed_on_test"] += on_test
        row["killed_on_train"] += on_train
        row["test_only"] += on_test and not on_train
        row["train_only"] += on_train and not on_test
    table = pd.DataFrame(sorted(rows.values(), key=lambda r: r["operator"]))
    if not table.empty:
        total = table.drop(columns="operator").sum()
        table = pd.concat([table, pd.DataFrame([{"operator": "all", **total.to_dict()}])], ignore_index=True)
    return table


PROGRAM_LEGEND = ("Per healthy program, mean over its seeds of the test metric (accuracy, else mae, else loss) "
                  "beside what a constant guess scores on the same rows (the majority class's share; the median's "
                  "mean absolute error). `learns`: seeds that beat it by 5 points of accuracy, or by 5 % of the "
                  "error (mae only: a loss has no constant reference here).")


def _programs(records: list[UnitRecord]) -> pd.DataFrame:
    by_case: dict[str, list[dict]] = {}
    for r in records:
        if r.case.status == "healthy" and r.status == "ok" and r.summary and r.summary.test:
            by_case.setdefault(r.case.id, []).append(r.summary.test)
    rows = []
    for case, tests in sorted(by_case.items()):
        metric, value, ref, learns = _test_learns(tests)
        rows.append({"program": case, "test_rows": tests[0].get("n"), "metric": metric, "test": value,
                     "constant_guess": ref, "learns": "–" if ref is None else Count(learns, len(tests))})
    return pd.DataFrame(rows)


def _test_learns(tests: list[dict]) -> tuple[str, float, float | None, int]:
    from harness.scoring.killing import MetricMissing, logged

    for metric in ("accuracy", "mae", "loss"):
        try:
            values = [logged(t, metric) for t in tests]
        except MetricMissing:
            continue
        refs = [(t.get("reference") or {}).get("majority_accuracy" if metric == "accuracy" else "constant_mae")
                for t in tests]
        if metric == "accuracy":
            learns = sum(v >= r + 0.05 for v, r in zip(values, refs) if r is not None)
        elif metric == "mae":
            learns = sum(v <= 0.95 * r for v, r in zip(values, refs) if r is not None)
        else:
            learns, refs = 0, [None]
        ref = refs[0] if refs and refs[0] is not None else None
        return metric, round(sum(values) / len(values), 4), None if ref is None else round(ref, 4), learns
    return "–", float("nan"), None, 0
