"""Each mutant's kill decision from the runs of it and its program, and the case it becomes (pure: no training,
no files; ``harness.cli.kill`` trains and writes).

A killed mutant becomes a ``valid`` case (its symptom: the gap the test found,
halved, so that a rerun on another CPU still shows it); an equivalent one
becomes ``equivalent``, with the numbers, and stays out of detection rates.
"""

from __future__ import annotations

import math

from harness.cases.load import LoadedCase
from harness.cases.mutants import metric_for
from harness.running.records import KillDecision, UnitRecord
from harness.scoring.killing import decide, logged


def decisions(programs: dict[str, LoadedCase], mutants: list[LoadedCase], records: list[UnitRecord],
              seeds: int) -> dict[str, dict]:
    """{mutant id: decision, with ``higher_is_better``} from the records of every program and mutant."""
    finals = {(r.case.id, r.variant, r.seed): r for r in records}
    return {m.id: _decide(programs[m.case.generated["base"]], m, finals, seeds) for m in mutants}


def _decide(base: LoadedCase, mutant: LoadedCase, finals: dict, seeds: int) -> dict:
    """Killed on the held-out test rows when the program has them (DeepCrime's criterion), else on the final
    training epoch; the training-data decision is kept beside the test one."""
    spec = base.spec("patched").model_dump(mode="json")
    name, higher = metric_for(spec)
    on = "test" if spec["data"].get("test") else "train"
    runs = {who: [finals.get((case.id, variant, s)) for s in range(seeds)]
            for who, case, variant in (("base", base, "patched"), ("mutant", mutant, "buggy"))}
    values = {(who, where): [_value(r, name, where, case_id) for r in runs[who]]
              for who, case_id in (("base", base.id), ("mutant", mutant.id)) for where in ("test", "train")}
    decision = dict(decide(values["base", on], values["mutant", on], higher), metric=name, on=on, seeds=seeds)
    if on == "test":
        train = decide(values["base", "train"], values["mutant", "train"], higher)
        decision["train"] = {k: train[k] for k in ("killed", "p_value", "effect_size", "base", "mutant")}
    crash = next((r.error for r in runs["mutant"] if r and r.status != "ok"), None)
    if crash and all(r is None or r.status != "ok" for r in runs["mutant"]):
        decision.update(killed=False, crashed=crash)  # a program that does not run is no training bug
    return dict(decision, higher_is_better=higher)


def _value(record: UnitRecord | None, name: str, where: str, case_id: str) -> float:
    if record is None or record.status != "ok":
        return math.nan  # a run that failed counts as the worst
    summary = record.summary
    logs = None if summary is None else summary.test if where == "test" else summary.final
    return logged(logs or {}, name, where=f"{case_id} seed {record.seed} ({where}): ")


def decided_case(case: dict, decision: dict, higher_is_better: bool) -> dict:
    """The mutant's case, as a dict, with its status, symptom and ``generated.kill`` from the decision."""
    case = dict(case, generated=dict(case["generated"], kill=decision))
    kill = KillDecision.model_validate(decision)  # read as the records will read it back
    if kill.crashed:
        case["status"] = "questionable"
        case["status_reason"] = f"the mutant does not train, in any seed: {kill.crashed[:200]}"
        case["symptom"] = {"kind": "none"}
    elif kill.killed:
        case["status"], case["status_reason"] = "valid", None
        case["symptom"] = _symptom(decision, higher_is_better)
        if kill.on == "test" and case["symptom"]["kind"] in ("accuracy_gap_at_least", "loss_ratio_at_least"):
            case["symptom"]["on"] = "test"
    else:
        case["status"] = "equivalent"
        case["status_reason"] = (f"not killed: {kill.on} {kill.metric} {kill.mutant} against the program's "
                                 f"{kill.base} (p = {kill.p_value}, d = {kill.effect_size})")
        case["symptom"] = {"kind": "none"}
    return {k: v for k, v in case.items() if v is not None}


def _symptom(decision: dict, higher_is_better: bool) -> dict:
    """What the buggy variant shows against its fix: half the gap measured, or a NaN loss."""
    def finite(values):
        return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]

    mutant, base = finite(decision["mutant"]), finite(decision["base"])
    if len(mutant) * 2 <= len(decision["mutant"]):
        return {"kind": "nan_loss"} if decision["metric"] == "loss" else {"kind": "none"}
    gap = abs(sum(mutant) / len(mutant) - sum(base) / len(base))
    if higher_is_better:
        return {"kind": "accuracy_gap_at_least", "value": float(f"{max(gap / 2, 1e-3):.3g}")}
    if decision["metric"] != "loss":
        return {"kind": "none"}  # symptoms judge the loss; a mutant judged by its mae has a loss of its own
    ratio = (sum(mutant) / len(mutant)) / max(sum(base) / len(base), 1e-12)
    return {"kind": "loss_ratio_at_least", "value": float(f"{max(1 + (ratio - 1) / 2, 1.0001):.4g}")}
