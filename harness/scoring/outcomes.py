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
from harness.running.records import CaseSnapshot, StoredFinding, Summary, TruthSnapshot, UnitRecord
from harness.scoring import reproduced


def outcomes(records: list[UnitRecord]) -> pd.DataFrame:
    """One row per (case, variant, seed, detector)."""
    rows = []
    for rec in records:
        base = dict(_unit_columns(rec), learns=unit_learns(rec))
        if rec.status != "ok":
            rows.extend(dict(base, detector=d, detected=None) for d in rec.detectors)
            continue
        for name, findings in rec.findings.items():
            # A detector missing from `localizes` or `suggests` claims neither (a record of fewer detectors).
            rows.append(dict(base, detector=name, **_score(findings, rec.case.truth, rec.variant,
                                                           rec.localizes.get(name, False), rec.layers,
                                                           rec.suggests.get(name, False))))
    return pd.DataFrame(rows, columns=OUTCOME_COLUMNS)


OUTCOME_COLUMNS = ["case", "variant", "seed", "status", "case_status", "in_paper", "from_paper", "learns", "detector",
                   "detected", "localized", "localized_fused", "diagnosed", "suggested", "warned", "fix_code",
                   "n_findings", "n_warnings", "first_code", "first_layer", "first_epoch", "first_batch", "first_step",
                   "first_seconds", "message", "error"]


def unit_learns(rec: UnitRecord) -> bool | None:
    """Whether a trained unit beat the no-learning reference (``harness.facts.learns``) by its final epoch."""
    if rec.status != "ok" or rec.summary is None or "loss" not in rec.summary.final:
        return None  # nothing to judge by
    summary, facts = rec.summary, rec.facts or {}
    # facts are harness.facts' own dict (versioned there, read by detectors too): read as that module writes it
    ref = facts.get("reference") or {}
    units = output_units(facts.get("layers") or [])
    metric = next((m for m in ACCURACY_LOGS if m in summary.final), "accuracy")
    chance = accuracy_reference(ref, metric, facts.get("loss"), units)
    first_loss = reproduced.logged(summary.first, "loss")
    return learns(reproduced.final(summary, "loss"), ref.get("loss"), first_loss, reproduced.final_accuracy(summary),
                  chance)


def _unit_columns(rec: UnitRecord) -> dict:
    case = rec.case
    return {"case": case.id, "variant": rec.variant, "seed": rec.seed, "status": rec.status,
            "case_status": case.status, "in_paper": in_paper(case),
            "from_paper": case.paper is not None, "error": rec.error}


def in_paper(case: CaseSnapshot) -> bool:
    """Counted in the paper's headline totals (the paper dropped SO 50079585)."""
    return case.paper is not None and case.paper.counted


def _score(findings: list[StoredFinding], truth: TruthSnapshot, variant: str, localizes: bool,
           layers: list | None, suggests: bool = False) -> dict:
    """Errors detect (and, on a healthy run, false-alarm); warnings are scored apart."""
    warnings = [f for f in findings if not f.is_error]
    findings = [f for f in findings if f.is_error]
    first = findings[0] if findings else None
    out = {"detected": bool(findings), "n_findings": len(findings), "n_warnings": len(warnings),
           "localized": None, "localized_fused": None, "diagnosed": None, "suggested": None, "fix_code": None,
           "warned": None}
    if variant == "buggy":
        # Does a warning name a fault of the case (its layer, or the kind of change the patch made)?
        out["warned"] = any(localized(w, truth) or w.fix_code in _codes(truth) for w in warnings)
    if first:
        out.update(first_code=first.code, first_layer=first.layer, first_epoch=first.epoch,
                   first_batch=first.batch, first_step=first.step, first_seconds=first.seconds,
                   message=first.message)
    if variant == "buggy" and localizes:
        # The first finding is the one a user acts on (and the one the paper scored).
        out["localized"] = bool(first) and localized(first, truth)
        out["localized_fused"] = bool(first) and localized(first, truth, fused_groups(layers))
        out["diagnosed"] = bool(first) and first.diagnosis in _codes(truth)
    if variant == "buggy" and suggests:
        # The first suggestion is the one a user would try; it counts when it names
        # the kind of change the case's patch made (its layer is localization's job).
        fix = next((f for f in findings if f.fix_code), None)
        out["fix_code"] = fix.fix_code if fix else None
        out["suggested"] = fix is not None and fix.fix_code in _codes(truth)
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


def localized(finding: StoredFinding, truth: TruthSnapshot, groups: list[int] | None = None) -> bool:
    """The finding names a faulty layer, or the fault kind of a layer-less fault.

    With ``groups`` (see fused_groups), layers are compared in the fused view.
    """
    where = (lambda i: groups[i] if groups and 0 <= i < len(groups) else i)
    layers = {where(f.layer) for f in truth.faults if f.layer is not None}
    layerless = {f.code for f in truth.faults if f.layer is None}
    if finding.layer is not None and where(finding.layer) in layers:
        return True
    return finding.diagnosis is not None and finding.diagnosis in layerless


def _codes(truth: TruthSnapshot) -> set[str]:
    return {f.code for f in truth.faults}


def runs(records: list[UnitRecord]) -> pd.DataFrame:
    """One row per unit: final metrics and whether the case's symptom shows."""
    by_key = {(r.case.id, r.variant, r.seed): r for r in records}
    rows = []
    for (case, variant, seed), rec in sorted(by_key.items()):
        patched = by_key.get((case, "patched", seed))
        shown = reproduced.shows(rec.case.symptom, rec.summary, patched.summary if patched else None) \
            if rec.status == "ok" else None
        summary = rec.summary or Summary()
        rows.append({"case": case, "variant": variant, "seed": seed, "status": rec.status,
                     "case_status": rec.case.status, "semantics": rec.semantics,
                     "symptom": rec.case.symptom.kind, "symptom_shown": shown, "learns": unit_learns(rec),
                     "final_loss": reproduced.final(summary, "loss"),
                     "final_accuracy": reproduced.final_accuracy(summary),
                     "final_val_loss": reproduced.final(summary, "val_loss"),
                     "loss_nonfinite": summary.loss_nonfinite, "epochs": summary.epochs,
                     "batches": summary.batches, "fit_seconds": rec.fit_seconds,
                     "data": rec.data.source, "error": rec.error})
    return pd.DataFrame(rows)
