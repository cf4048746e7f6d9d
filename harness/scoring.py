"""Score stored findings against each case's ground truth.

Input: unit result records (one per case x variant x seed, as stored under
results/runs/). Output: one outcome row per detector x unit. Pure functions:
``bugbench report`` re-scores without training.
"""

from __future__ import annotations

import pandas as pd

from harness import symptoms


def outcomes(records: list[dict]) -> pd.DataFrame:
    """One row per (case, variant, seed, detector)."""
    rows = []
    for rec in records:
        base = _unit_columns(rec)
        if rec.get("status") != "ok":
            rows.extend(dict(base, detector=d, detected=None) for d in rec.get("detectors", []))
            continue
        for name, findings in rec.get("findings", {}).items():
            rows.append(dict(base, detector=name, **_score(findings, rec["case"]["truth"], rec["variant"],
                                                           rec.get("localizes", {}).get(name, False))))
    return pd.DataFrame(rows, columns=OUTCOME_COLUMNS)


OUTCOME_COLUMNS = ["case", "variant", "seed", "status", "case_status", "in_paper", "detector", "detected",
                   "localized", "diagnosed", "n_findings", "first_code", "first_layer", "first_epoch",
                   "first_batch", "first_step", "first_seconds", "message", "error"]


def _unit_columns(rec: dict) -> dict:
    case = rec["case"]
    return {"case": case["id"], "variant": rec["variant"], "seed": rec["seed"], "status": rec.get("status"),
            "case_status": case.get("status", "valid"), "in_paper": in_paper(case), "error": rec.get("error")}


def in_paper(case: dict) -> bool:
    """Counted in the paper's headline totals (the paper dropped SO 50079585)."""
    paper = case.get("paper") or {}
    return bool(paper) and paper.get("counted", True)


def _score(findings: list[dict], truth: dict, variant: str, localizes: bool) -> dict:
    first = findings[0] if findings else None
    out = {"detected": bool(findings), "n_findings": len(findings), "localized": None, "diagnosed": None}
    if first:
        out.update(first_code=first["code"], first_layer=first.get("layer"), first_epoch=first["epoch"],
                   first_batch=first.get("batch"), first_step=first["step"], first_seconds=first["seconds"],
                   message=first["message"])
    if variant == "buggy" and localizes:
        out["localized"] = any(localized(f, truth) for f in findings)
        out["diagnosed"] = any(f.get("diagnosis") in _codes(truth) for f in findings)
    return out


def localized(finding: dict, truth: dict) -> bool:
    """The finding names a faulty layer, or the fault kind of a layer-less fault."""
    layers = {f["layer"] for f in truth["faults"] if f.get("layer") is not None}
    layerless = {f["code"] for f in truth["faults"] if f.get("layer") is None}
    if finding.get("layer") is not None and finding["layer"] in layers:
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
        shown = symptoms.shows(rec["case"]["symptom"], summary, patched) if rec.get("status") == "ok" else None
        rows.append({"case": case, "variant": variant, "seed": seed, "status": rec.get("status"),
                     "case_status": rec["case"].get("status", "valid"), "semantics": rec.get("semantics"),
                     "symptom": rec["case"]["symptom"]["kind"], "symptom_shown": shown,
                     "final_loss": symptoms.final(summary, "loss"),
                     "final_accuracy": symptoms.final(summary, "accuracy"),
                     "loss_nonfinite": summary.get("loss_nonfinite"), "epochs": summary.get("epochs"),
                     "batches": summary.get("batches"), "fit_seconds": rec.get("fit_seconds"),
                     "data": (rec.get("data") or {}).get("source"), "error": rec.get("error")})
    return pd.DataFrame(rows)
