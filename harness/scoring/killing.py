"""Is a mutant killed? DeepCrime's criterion: measurably worse than its healthy program over the same seeds.

A mutant that trains as well as the program it came from is an *equivalent*
mutant: no detector should be blamed for missing a bug that does not show, so
it is kept out of the detection rates and listed instead. "Measurably worse"
is the criterion of DeepCrime (Humbatova et al., ISSTA 2021): a statistical
test on the final metric over repeated trainings, and an effect size that is
not negligible. Here: Welch's one-sided t-test at ALPHA on the accuracy
(classification) or the mean absolute error, else loss (regression), measured
on the program's held-out test rows as DeepCrime does (the final training
value is decided the same way and kept beside it), and Cohen's d of at least
MIN_EFFECT. A run whose metric is NaN or Inf counts as worse than any finite run.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

ALPHA = 0.05  # the usual significance level, DeepCrime's
MIN_EFFECT = 0.5  # Cohen's d: a "medium" effect; below it a difference is too small to call a bug


# The names under which Keras logs a metric a program compiles: "mae" resolves to the function
# mean_absolute_error and is logged under that name; accuracy under the name of the class chosen for it.
LOGGED_AS = {"accuracy": ("accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy"),
             "mae": ("mae", "mean_absolute_error"), "mean_absolute_error": ("mean_absolute_error", "mae"),
             "loss": ("loss",)}


class MetricMissing(KeyError):
    pass


def logged(logs: dict, wanted: str, where: str = "") -> float:
    """The value of metric ``wanted`` in one run's logs, under whichever name Keras gave it.

    Raises MetricMissing, naming the logged names, rather than read a NaN that
    would compare equal to the program's NaN and hide every mutant.
    """
    for name in LOGGED_AS.get(wanted, (wanted,)):
        if name in (logs or {}):
            value = logs[name]
            try:
                return float(value)
            except (TypeError, ValueError):
                return math.nan  # a logged "nan"/"inf" string: a diverged run
    raise MetricMissing(f"{where}metric '{wanted}' is not in the run's logs (logged: "
                        f"{', '.join(sorted(logs or {})) or 'nothing'})")


def decide(base: list[float], mutant: list[float], higher_is_better: bool) -> dict:
    """The kill decision and its numbers, for the final metric of the base program and the mutant per seed."""
    b, m = _worse_is_larger(base, higher_is_better), _worse_is_larger(mutant, higher_is_better)
    b, m = _finite_or_worst(b, m)
    diff = float(np.mean(m) - np.mean(b))  # > 0: the mutant is worse
    spread = math.sqrt((np.var(b, ddof=1) + np.var(m, ddof=1)) / 2) if len(b) > 1 and len(m) > 1 else 0.0
    if spread == 0:
        effect = math.inf if diff > 1e-9 else 0.0
        p_value = 0.0 if diff > 1e-9 else 1.0
    else:
        from scipy.stats import ttest_ind

        effect = diff / spread
        with warnings.catch_warnings():
            # A group of one value in every seed (a mutant stuck at chance) makes scipy warn of precision loss in
            # that group's moments; Welch's test then rests on the other group's variance, and stays sound.
            warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
            p_value = float(ttest_ind(m, b, equal_var=False, alternative="greater").pvalue)
    killed = p_value < ALPHA and effect >= MIN_EFFECT
    return {"killed": bool(killed), "p_value": _round(p_value), "effect_size": _round(effect),
            "base": [_round(v) for v in base], "mutant": [_round(v) for v in mutant]}


def _worse_is_larger(values: list[float], higher_is_better: bool) -> np.ndarray:
    a = np.asarray(values, float)
    return -a if higher_is_better else a


def _finite_or_worst(b: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN/Inf (a diverged run) become worse than the worst finite value of either group."""
    finite = np.concatenate([b[np.isfinite(b)], m[np.isfinite(m)]])
    top = float(finite.max()) if finite.size else 0.0
    worst = top + max(1.0, abs(top))
    return np.where(np.isfinite(b), b, worst), np.where(np.isfinite(m), m, worst)


def _round(v: float) -> float | str:
    if not math.isfinite(v):
        return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
    return float(f"{v:.6g}")
