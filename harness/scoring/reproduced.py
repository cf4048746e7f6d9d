"""Does a run show its case's symptom? Judged from run summaries alone."""

from __future__ import annotations

import math

from detectors.steps import ACCURACY_LOGS
from harness.running.records import Summary, SymptomSnapshot


def logged(logs: dict, name: str) -> float:
    """A logged value as a float (NaN when absent or non-numeric: results store NaN as the string 'nan')."""
    try:
        return float(logs.get(name))
    except (TypeError, ValueError):
        return math.nan


def accuracy(logs: dict) -> float:
    """The accuracy under whichever name the case's metric logs it (``accuracy`` first)."""
    for name in ACCURACY_LOGS:
        value = logged(logs, name)
        if not math.isnan(value):
            return value
    return math.nan


def final(summary: Summary | None, name: str) -> float:
    """A final epoch log value as a float (NaN when absent, also when the unit has no summary)."""
    return logged(summary.final if summary else {}, name)


def final_accuracy(summary: Summary | None) -> float:
    return accuracy(summary.final if summary else {})


def shows(symptom: SymptomSnapshot, summary: Summary | None, patched_summary: Summary | None = None) -> bool | None:
    """Whether a run with ``summary`` shows ``symptom``; None when it cannot be told.

    ``patched_summary`` is the patched run of the same seed, needed by the
    symptoms that compare against it.
    """
    summary = summary or Summary()
    if symptom.on == "test":  # the held-out rows' numbers stand in for the final epoch's
        summary = Summary(final=summary.test or {})
        patched_summary = None if patched_summary is None else Summary(final=patched_summary.test or {})
    kind, value = symptom.kind, symptom.value
    loss, acc = final(summary, "loss"), final_accuracy(summary)
    if kind == "none":
        return None
    if kind == "nan_loss":
        return bool(summary.loss_nonfinite) or not math.isfinite(loss)
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
