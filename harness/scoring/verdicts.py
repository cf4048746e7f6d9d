"""Per-case verdicts: seeds collapsed by majority, and which runs are healthy controls.

A case counts as detected (localized, ...) when most of its scored seeds say
so; a healthy control is a run on which any error is a false alarm.
"""

from __future__ import annotations

import pandas as pd

VOTES = ["detected", "localized", "localized_fused", "diagnosed", "suggested", "warned", "learns"]
FIRST = ["first_epoch", "first_batch", "first_step", "first_code", "first_layer", "first_seconds", "message"]


def majority(outcome: pd.DataFrame) -> pd.DataFrame:
    """Collapse seeds: a case counts as detected (localized, ...) when most of its scored seeds say so."""
    if outcome.empty:
        return outcome.assign(flaky=[])
    keys = ["case", "variant", "detector"]
    groups = outcome.groupby(keys, sort=True)
    out = groups.agg(case_status=("case_status", "first"), in_paper=("in_paper", "first"),
                     from_paper=("from_paper", "first"),
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
    columns = ["case_status", "in_paper", "from_paper", "ok", "errors", *VOTES, "flaky", "n_warnings", *FIRST, "error"]
    out = out[columns].astype(object).where(out[columns].notna(), None)
    return out.reset_index()


def healthy_controls(part: pd.DataFrame) -> pd.DataFrame:
    """The runs on which any error is a false alarm: patched variants of valid cases, both variants of
    ``no_bug`` cases and healthy programs, that learn (beat the no-learning reference in most seeds)."""
    fixes = every_fix(part)
    return fixes[fixes["learns"] == True]  # noqa: E712  (None: not judged)


def every_fix(part: pd.DataFrame) -> pd.DataFrame:
    """Every run that should be healthy, learning or not: the controls of ``healthy_controls`` before its ``learns``
    filter. That filter is the rule NOT_LEARNING applies, so over the learning controls NOT_LEARNING cannot be a
    false alarm; over every fix it can."""
    control = (((part.variant == "patched") & (part.case_status == "valid")) | (part.case_status == "no_bug")
               | (part.case_status == "healthy"))
    return part[control]


def fixed_not_learning(per_case: pd.DataFrame) -> list[str]:
    """Valid cases whose patched variant does not learn: no healthy control, left out of false alarms."""
    p = per_case[(per_case.variant == "patched") & (per_case.case_status == "valid") & (per_case["learns"] == False)]  # noqa: E712
    return sorted(p["case"].unique())


def separates(part: pd.DataFrame) -> tuple[int, int]:
    """Valid cases with a healthy patched variant: flagged buggy and silent patched (majority over seeds)."""
    buggy = part[(part.variant == "buggy") & (part.case_status == "valid")].set_index("case")["detected"]
    patched = healthy_controls(part[part.variant == "patched"]).set_index("case")["detected"]
    pairs = [c for c in patched.index if c in buggy.index]
    return sum(bool(buggy[c]) and not bool(patched[c]) for c in pairs), len(pairs)
