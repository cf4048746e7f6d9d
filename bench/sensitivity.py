"""How much do `diagnose`'s verdicts depend on its constants? Each halved and doubled, one at a time.

Robustness, not tuning: the constants come from first principles or published
tools (docs/detectors.md); this shows how far the valid cases' counts move when
one of them is off by a factor of two. Replays `diagnose` on the stored traces
of the last run (no training); the healthy runs are fixed by the default
constants, so only the detector's verdicts move.

    .venv/bin/python bench/sensitivity.py [--results results] [--out results/sensitivity.md]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pandas as pd  # noqa: E402

from detectors import diagnose, rules  # noqa: E402
from detectors import learning_gaps as gaps  # noqa: E402
from harness import facts  # noqa: E402
from harness.reporting import tables
from harness.reporting.generated import generated_cases
from harness.running.records import StoredFinding
from harness.running.results import ResultsDir
from harness.scoring import outcomes, verdicts

# (module, name, what it is): every constant a diagnose verdict depends on.
CONSTANTS = [
    (diagnose, "WINDOW", "batches a definite failure persists"),
    (diagnose, "TOL", "relative float32 tolerance of 'constant'"),
    (diagnose, "PATIENCE", "epochs without validation improvement"),
    (diagnose, "PATIENCE_SHARE", "... or this share of the budget"),
    (diagnose, "GAP", "overfitting gap / no-learning loss"),
    (diagnose, "UPDATE_BAND", "update/weight band (both ends)"),
    (diagnose, "STILL_FALLING", "last-epoch fall that says 'train longer'"),
    (diagnose, "REACH", "most the weights could move that says 'too short to learn'"),
    (diagnose, "VANISH_RATIO", "lowest/highest layer gradient that says 'vanished'"),
    (facts, "LOSS_MARGIN", "loss margin below the constant predictor"),
    (facts, "ACC_MARGIN", "accuracy margin above the majority class"),
    (rules, "INPUT_LIMIT", "feature spread/offset of unscaled inputs"),
    (rules, "ADAPTIVE_LR_RANGE", "usual learning rates of Adam & co. (both ends)"),
    (gaps, "RECOVER", "share of the learned reference's gain the network must recover"),
    (gaps, "REMAINING", "fall still ahead (of the fall so far) that says 'still falling'"),
    (gaps, "TAIL", "share of the run the trend is read over"),
    (gaps, "SEGMENTS", "medians the batch losses are read as"),
    (gaps, "NEAR_FLOOR", "share of the fall that is 'near its floor' (suggested budget)"),
    (gaps, "NOISY_LABELS", "share of suspect labels that says 'noisy'"),
    (gaps, "EVEN", "evenness of the suspects over class pairs"),
    (gaps, "SHIFT", "class-share distance between training and validation parts"),
    (gaps, "SPREADS", "... in sampling spreads of a random split"),
    (gaps, "CHANCE", "odds of unseen classes under a random split"),
    (gaps, "HEAVY_DROPOUT", "dropout rate named as a cause"),
    (gaps, "PENALTY_SHARE", "penalty share of the loss named as a cause"),
    (gaps, "FEW_STEPS", "steps per epoch at or below which the batch size is named"),
]


def load_units(results_dir: str) -> list[tuple[dict, object]]:
    from harness.trace import Trace

    out = []
    for rec in ResultsDir(results_dir).records():
        if rec.status == "ok" and rec.trace and os.path.exists(rec.trace):
            trace = Trace.load(rec.trace)
            trace.meta["facts"] = rec.facts or trace.meta.get("facts") or {}
            out.append((rec, trace))
    return out


def replayed(units, learns: dict):
    """(records with diagnose's findings replayed under today's constants, their verdicts per case by majority)."""
    from detectors.base import replay

    records = []
    for rec, trace in units:
        found = [StoredFinding.model_validate(f.to_dict()) for f in replay(diagnose.Diagnose(), trace)]
        records.append(rec.model_copy(update={"findings": {"diagnose": found}, "localizes": {"diagnose": True},
                                              "suggests": {"diagnose": True}}))
    outcome = outcomes.outcomes(records)
    outcome["learns"] = [learns[(r.case, r.variant, r.seed)] for r in outcome.itertuples()]
    return records, verdicts.majority(outcome)


def score(units, learns: dict) -> dict:
    """Replay diagnose on every unit and count the valid cases' verdicts."""
    records, per_case = replayed(units, learns)
    row = tables.summary(per_case, records).set_index("subset").loc["valid"]
    return {k: row[k] for k in ("separates", "detected", "localized", "suggested_fix", "false_alarms")}


def score_generated(units, learns: dict) -> dict:
    """Replay diagnose on the generated suite's units: killed mutants with an error, healthy programs with one."""
    from harness.scoring.verdicts import healthy_controls

    if not units:
        return {}
    records, per_case = replayed(units, learns)
    mutants = set(generated_cases(records))
    killed = per_case[(per_case.variant == "buggy") & per_case.case.isin(mutants) & (per_case.case_status == "valid")]
    zoo = healthy_controls(per_case[per_case.case_status == "healthy"])
    flagged = int(killed["detected"].fillna(False).astype(bool).sum())
    alarms = int(zoo["detected"].fillna(False).astype(bool).sum())
    return {"killed_flagged": f"{flagged}/{len(killed)}", "zoo_false_alarms": f"{alarms}/{len(zoo)}"}


def scale(value, factor: float):
    if isinstance(value, tuple):
        return tuple(scale(v, factor) for v in value)
    if isinstance(value, int):
        return max(1, round(value * factor))
    return value * factor


@contextlib.contextmanager
def scaled(module, name: str, factor: float):
    old = getattr(module, name)
    setattr(module, name, scale(old, factor))
    try:
        yield getattr(module, name)
    finally:
        setattr(module, name, old)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--generated", default="results/zoo", help="the generated suite's results (skipped if absent)")
    ap.add_argument("--out", default=None, help="Markdown file to write (default: print)")
    args = ap.parse_args(argv)
    units = load_units(args.results)
    generated = load_units(args.generated) if os.path.isdir(args.generated) else []
    learns = {(r.case.id, r.variant, r.seed): outcomes.unit_learns(r) for r, _ in units + generated}

    def both():
        return {**score(units, learns), **score_generated(generated, learns)}
    rows = [{"constant": "(defaults)", "value": "", **both()}]
    for module, name, what in CONSTANTS:
        for factor in (0.5, 2.0):
            with scaled(module, name, factor) as value:
                rows.append({"constant": f"{name} ×{factor:g}", "value": value, "what": what, **both()})
    table = pd.DataFrame(rows).fillna("")
    suite = (f"and {len(generated)} of the generated suite (`killed_flagged`: killed mutants with an error; "
             "`zoo_false_alarms`: healthy zoo programs with one)" if generated else
             "(the generated suite is not replayed: none of its traces were on the machine that wrote this)")
    text = ("# Sensitivity of `diagnose` to its constants\n\nEach constant halved and doubled, one at a time, "
            f"replayed on the stored traces of {len(units)} units (valid cases, majority over seeds; healthy runs "
            f"fixed by the defaults) {suite}. The learned reference's own "
            "constants (rows, folds, k, width) shape the stored facts, so they are not replayed here. Written by "
            "bench/sensitivity.py.\n\n" + table.to_markdown(index=False) + "\n")
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
