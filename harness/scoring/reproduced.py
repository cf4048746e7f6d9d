"""Does a run show its case's symptom? Judged from run summaries alone."""

from __future__ import annotations

import math

from detectors.steps import ACCURACY_LOGS


def final(summary: dict, name: str) -> float:
    """A final epoch log value as a float (NaN when absent or non-numeric)."""
    value = (summary or {}).get("final", {}).get(name)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def final_accuracy(summary: dict) -> float:
    """The final accuracy under whichever name the case's metric logs it (``accuracy`` first)."""
    for name in ACCURACY_LOGS:
        value = final(summary, name)
        if not math.isnan(value):
            return value
    return math.nan


def shows(symptom: dict, summary: dict, patched_summary: dict | None = None) -> bool | None:
    """Whether a run with ``summary`` shows ``symptom``; None when it cannot be told.

    ``patched_summary`` is the patched run of the same seed, needed by the
    symptoms that compare against it.
    """
    if symptom.get("on") == "test":  # the held-out rows' numbers stand in for the final epoch's
        summary = {"final": (summary or {}).get("test") or {}}
        patched_summary = None if patched_summary is None else {"final": patched_summary.get("test") or {}}
    kind, value = symptom["kind"], symptom.get("value")
    loss, acc = final(summary, "loss"), final_accuracy(summary)
    if kind == "none":
        return None
    if kind == "nan_loss":
        return bool(summary.get("loss_nonfinite")) or not math.isfinite(loss)
    if kind == "accuracy_at_most":
        return None if math.isnan(acc) else acc <= value
    if kind == "loss_at_least":
        return (not math.isfinite(loss)) or loss >= value
    if kind == "overfit_gap_at_least":
        # Overfitting as a Keras user sees it: validation loss well above training loss.
        val = final(summary, "val_loss")
        return None if math.isnan(val) or math.isnan(loss) else val - loss >= value
    if patched_summary is None:
        return None
    if kind == "loss_ratio_at_least":
        ref = final(patched_summary, "loss")
        return (not math.isfinite(loss)) or (math.isfinite(ref) and loss >= value * ref)
    if kind == "accuracy_gap_at_least":
        ref = final_accuracy(patched_summary)
        return None if math.isnan(acc) or math.isnan(ref) else ref - acc >= value
    raise ValueError(f"unknown symptom kind {kind!r}")
