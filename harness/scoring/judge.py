"""Train the zoo's programs and their mutants over seeds, and write each mutant's kill decision into its file.

A killed mutant becomes a ``valid`` case (its symptom: the gap the test found,
halved, so that a rerun on another CPU still shows it); an equivalent one
becomes ``equivalent``, with the numbers, and stays out of detection rates.
Training goes through the normal runner and its content-addressed store, so the
seeds trained here are the seeds the suite's run finds in the cache.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile

from harness.cases.load import LoadedCase
from harness.cases.mutants import metric_for
from harness.cases.writer import dump, write_case_file
from harness.running.runner import RunConfig, run
from harness.scoring.killing import decide, logged


def judge_mutants(cases: list[LoadedCase], seeds: int, jobs: int, cache: str, timeout: float | None,
                  backend: str = "loky", scheduler: str | None = None, trust_case_code: bool = False) -> dict:
    """{mutant id: decision}; every mutant's case file is rewritten with its decision."""
    programs = {c.id: c for c in cases if c.case.status == "healthy"}
    mutants = [c for c in cases if (c.case.generated or {}).get("base") in programs]
    with tempfile.TemporaryDirectory(prefix="bugbench-kill-") as results:
        config = RunConfig(results_dir=results, cache_dir=cache, jobs=jobs, seeds=tuple(range(seeds)),
                           detectors=(), timeout=timeout, backend=backend, scheduler=scheduler,
                           trust_case_code=trust_case_code)
        # A program trains as its patched variant (its only one); a mutant as its buggy variant: the mutant's
        # patched variant is its program, trained already.
        records = run(list(programs.values()), config) + run(mutants, dataclasses.replace(config, variants=("buggy",)))
    finals = {(r["case"]["id"], r["variant"], r["seed"]): r for r in records}
    decisions = {}
    for mutant in mutants:
        base = programs[mutant.case.generated["base"]]
        decision = _decide(base, mutant, finals, seeds)
        decisions[mutant.id] = decision
        record_decision(mutant.path, decision, decision.pop("higher_is_better"))
    return decisions


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
    crash = next((r.get("error") for r in runs["mutant"] if r and r.get("status") != "ok"), None)
    if crash and all(r is None or r.get("status") != "ok" for r in runs["mutant"]):
        decision.update(killed=False, crashed=crash)  # a program that does not run is no training bug
    return dict(decision, higher_is_better=higher)


def _value(record: dict | None, name: str, where: str, case_id: str) -> float:
    if not record or record.get("status") != "ok":
        return math.nan  # a run that failed counts as the worst
    summary = record.get("summary") or {}
    logs = summary.get("test") if where == "test" else summary.get("final")
    return logged(logs or {}, name, where=f"{case_id} seed {record.get('seed')} ({where}): ")


def record_decision(path: str, decision: dict, higher_is_better: bool) -> None:
    """Rewrite a mutant's case file: its status, symptom and ``generated.kill``."""
    import yaml

    with open(path) as fh:
        header = "".join(line for line in fh if line.startswith("#"))
    with open(path) as fh:
        case = yaml.safe_load(fh)
    case["generated"]["kill"] = decision
    if decision.get("crashed"):
        case["status"] = "questionable"
        case["status_reason"] = f"the mutant does not train, in any seed: {decision['crashed'][:200]}"
        case["symptom"] = {"kind": "none"}
    elif decision["killed"]:
        case["status"], case["status_reason"] = "valid", None
        case["symptom"] = _symptom(decision, higher_is_better)
        if decision.get("on") == "test" and case["symptom"]["kind"] in ("accuracy_gap_at_least", "loss_ratio_at_least"):
            case["symptom"]["on"] = "test"
    else:
        case["status"] = "equivalent"
        case["status_reason"] = (f"not killed: {decision.get('on', 'train')} {decision['metric']} "
                                 f"{decision['mutant']} against the program's "
                                 f"{decision['base']} (p = {decision['p_value']}, d = {decision['effect_size']})")
        case["symptom"] = {"kind": "none"}
    case = {k: v for k, v in case.items() if v is not None}
    write_case_file(path, header + dump(case), replaces="anything")  # the mutant named is rewritten


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
