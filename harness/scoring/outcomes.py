"""Score stored findings against each case's ground truth.

Input: unit result records (one per case x variant x seed, as stored under
results/runs/). Output: one outcome row per detector x unit. Pure functions:
``bugbench report`` re-scores without training.
"""

from __future__ import annotations

import pandas as pd

from detectors.rules import output_units
from detectors.steps import ACCURACY_LOGS
from harness.facts import accuracy_reference, learns
from harness.running.records import is_error
from harness.scoring import reproduced


def outcomes(records: list[dict]) -> pd.DataFrame:
    """One row per (case, variant, seed, detector)."""
    rows = []
    for rec in records:
        base = dict(_unit_columns(rec), learns=unit_learns(rec))
        if rec.get("status") != "ok":
            rows.extend(dict(base, detector=d, detected=None) for d in rec.get("detectors", []))
            continue
        for name, findings in rec.get("findings", {}).items():
            rows.append(dict(base, detector=name, **_score(findings, rec["case"]["truth"], rec["variant"],
                                                           rec.get("localizes", {}).get(name, False),
                                                           rec.get("layers"),
                                                           rec.get("suggests", {}).get(name, False))))
    return pd.DataFrame(rows, columns=OUTCOME_COLUMNS)


OUTCOME_COLUMNS = ["case", "variant", "seed", "status", "case_status", "in_paper", "from_paper", "learns", "detector",
                   "detected", "localized", "localized_fused", "diagnosed", "suggested", "warned", "fix_code",
                   "n_findings", "n_warnings", "first_code", "first_layer", "first_epoch", "first_batch", "first_step",
                   "first_seconds", "message", "error"]


def unit_learns(rec: dict) -> bool | None:
    """Whether a trained unit beat the no-learning reference (``harness.facts.learns``) by its final epoch."""
    if rec.get("status") != "ok":
        return None
    summary, facts = rec.get("summary") or {}, rec.get("facts") or {}
    if "loss" not in (summary.get("final") or {}):
        return None  # nothing to judge by
    ref = facts.get("reference") or {}
    units = output_units(facts.get("layers") or [])
    final = summary.get("final") or {}
    metric = next((m for m in ACCURACY_LOGS if m in final), "accuracy")
    chance = accuracy_reference(ref, metric, facts.get("loss"), units)
    first_loss = reproduced.final({"final": summary.get("first") or {}}, "loss")  # the first epoch's
    return learns(reproduced.final(summary, "loss"), ref.get("loss"), first_loss, reproduced.final_accuracy(summary),
                  chance)


def _unit_columns(rec: dict) -> dict:
    case = rec["case"]
    return {"case": case["id"], "variant": rec["variant"], "seed": rec["seed"], "status": rec.get("status"),
            "case_status": case.get("status", "valid"), "in_paper": in_paper(case),
            "from_paper": bool(case.get("paper")), "error": rec.get("error")}


def in_paper(case: dict) -> bool:
    """Counted in the paper's headline totals (the paper dropped SO 50079585)."""
    paper = case.get("paper") or {}
    return bool(paper) and paper.get("counted", True)


def _score(findings: list[dict], truth: dict, variant: str, localizes: bool, layers: list | None,
           suggests: bool = False) -> dict:
    """Errors detect (and, on a healthy run, false-alarm); warnings are scored apart."""
    warnings = [f for f in findings if not is_error(f)]
    findings = [f for f in findings if is_error(f)]
    first = findings[0] if findings else None
    out = {"detected": bool(findings), "n_findings": len(findings), "n_warnings": len(warnings),
           "localized": None, "localized_fused": None, "diagnosed": None, "suggested": None, "fix_code": None,
           "warned": None}
    if variant == "buggy":
        # Does a warning name a fault of the case (its layer, or the kind of change the patch made)?
        out["warned"] = any(localized(w, truth) or w.get("fix_code") in _codes(truth) for w in warnings)
    if first:
        out.update(first_code=first["code"], first_layer=first.get("layer"), first_epoch=first["epoch"],
                   first_batch=first.get("batch"), first_step=first["step"], first_seconds=first["seconds"],
                   message=first["message"])
    if variant == "buggy" and localizes:
        # The first finding is the one a user acts on (and the one the paper scored).
        out["localized"] = bool(first) and localized(first, truth)
        out["localized_fused"] = bool(first) and localized(first, truth, fused_groups(layers))
        out["diagnosed"] = bool(first) and first.get("diagnosis") in _codes(truth)
    if variant == "buggy" and suggests:
        # The first suggestion is the one a user would try; it counts when it names
        # the kind of change the case's patch made (its layer is localization's job).
        fix = next((f for f in findings if f.get("fix_code")), None)
        out["fix_code"] = fix.get("fix_code") if fix else None
        out["suggested"] = fix is not None and fix["fix_code"] in _codes(truth)
    return out


def fused_groups(layer_classes: list | None) -> list[int] | None:
    """Layer index -> index in the "fused" view, where an Activation layer belongs to the layer before it.

    The benchmark's authors split activations into their own layers; a finding
    at a Dense layer whose separate Activation is the faulty one (or the other
    way round) points at the same thing in the original, fused program.
    """
    if not layer_classes:
        return None
    groups, g = [], -1
    for i, cls in enumerate(layer_classes):
        if not (cls == "Activation" and i > 0):
            g += 1
        groups.append(g)
    return groups


def localized(finding: dict, truth: dict, groups: list[int] | None = None) -> bool:
    """The finding names a faulty layer, or the fault kind of a layer-less fault.

    With ``groups`` (see fused_groups), layers are compared in the fused view.
    """
    where = (lambda i: groups[i] if groups and 0 <= i < len(groups) else i)
    layers = {where(f["layer"]) for f in truth["faults"] if f.get("layer") is not None}
    layerless = {f["code"] for f in truth["faults"] if f.get("layer") is None}
    if finding.get("layer") is not None and where(finding["layer"]) in layers:
        return True
    return finding.get("diagnosis") is not None and finding["diagnosis"] in layerless


def _codes(truth: dict) -> set[str]:
    return {f["code"] for f in truth["faults"]}


def runs(records: list[dict]) -> pd.DataFrame:
    """One row per unit: final metrics and whether the case's symptom shows."""
    by_key = {(r["case"]["id"], r["variant"], r["seed"]): r for r in records}
    rows = []
    for (case, variant, seed), rec in sorted(by_key.items()):
        summary = rec.get("summary") or {}
        patched = by_key.get((case, "patched", seed), {}).get("summary")
        shown = reproduced.shows(rec["case"]["symptom"], summary, patched) if rec.get("status") == "ok" else None
        rows.append({"case": case, "variant": variant, "seed": seed, "status": rec.get("status"),
                     "case_status": rec["case"].get("status", "valid"), "semantics": rec.get("semantics"),
                     "symptom": rec["case"]["symptom"]["kind"], "symptom_shown": shown, "learns": unit_learns(rec),
                     "final_loss": reproduced.final(summary, "loss"),
                     "final_accuracy": reproduced.final_accuracy(summary),
                     "final_val_loss": reproduced.final(summary, "val_loss"),
                     "loss_nonfinite": summary.get("loss_nonfinite"), "epochs": summary.get("epochs"),
                     "batches": summary.get("batches"), "fit_seconds": rec.get("fit_seconds"),
                     "data": (rec.get("data") or {}).get("source"), "error": rec.get("error")})
    return pd.DataFrame(rows)
