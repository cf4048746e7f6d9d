"""What detectors compute from the steps they observe: NaN/Inf masks, RMS, conditions that persist.

Here rather than on ``harness.trace.Step``: the trace module shapes the stored
traces (and their cache key), these are the detectors' own reading of them.
"""

from __future__ import annotations

import numpy as np

from harness.trace import Budget

# Shared by every detector that judges persistence (layer-trend, symptoms, diagnose), so that "persists" and
# "does not move" mean the same in each.
WINDOW = 20  # batches a condition must persist: longer than the noise of one epoch of a small dataset, short
#              enough for budgets of ~100 batches
MIN_WINDOW = 5  # never judge "persistent" on fewer batches than the paper's callback
TOL = 1e-6  # relative: a spread or change below this is float32 rounding (2^-23 = 1.2e-7, a few ulps), i.e. none
UPDATE_BAND = (1e-5, 1e-1)  # DeepDiagnosis's sane band for lr * |dW| / |W| (here: the update the optimizer made)
# The names Keras logs an accuracy under (``acc``: Keras 2's spelling, still written by hand-made logs).
ACCURACY_LOGS = ("accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy", "acc")


def nonfinite(step, stage: str) -> np.ndarray:
    """[layer] booleans: ``stage`` has NaN/Inf elements, or values so large that their float32 mean overflows.

    The elements are counted in-graph, so one NaN among a million values shows;
    layers without the stage (a Flatten's weights) are never flagged.
    """
    with np.errstate(invalid="ignore"):
        bad = (step.stat(stage, "nan") > 0) | (step.stat(stage, "inf") > 0) | ~np.isfinite(step.stat(stage, "mean"))
    return np.asarray(step.applies(stage) & bad)


def rms(step, stage: str) -> np.ndarray:
    """[layer] root mean square of ``stage``'s elements, sqrt(mean^2 + std^2); NaN where the stage does not apply.

    ``hypot`` so that float32 statistics near 1e19 do not overflow when squared.
    """
    return np.hypot(step.stat(stage, "mean"), step.stat(stage, "std"))


def persistence_window(meta: dict, window: int, minimum: int) -> int:
    """Batches a condition must persist: ``window``, shortened to a third of a small budget but not below
    ``minimum``."""
    total = Budget.of(meta.get("budget")).total_steps
    return int(min(window, max(minimum, total // 3))) if total else window


class Persistence:
    """Consecutive steps a condition held, per key; the condition *persists* once it held ``window`` steps in a row.

    A key counts either one condition (``holds`` a bool) or one per layer
    (``holds`` a boolean array, the same length at every step)::

        persist = Persistence(20)
        if persist(("frozen", layer), update_is_zero):   # True from the 20th step in a row on
            ...
    """

    def __init__(self, window: int):
        self.window = window
        self._runs: dict = {}

    @classmethod
    def for_run(cls, meta: dict, window: int, minimum: int) -> Persistence:
        """A counter whose window fits the run's budget (see ``persistence_window``)."""
        return cls(persistence_window(meta, window, minimum))

    def __call__(self, key, holds):
        """Count this step for ``key``; True (per layer, for an array) where the condition persists."""
        runs = self._runs.get(key, 0)
        if isinstance(holds, np.ndarray):
            runs = np.where(holds, runs + 1, 0)
        else:
            runs = runs + 1 if holds else 0
        self._runs[key] = runs
        return runs >= self.window


def kernel_sizes(layers: list[dict], n: int) -> np.ndarray:
    """[layer] element count of each layer's first weight (its kernel), estimated from the trace's layer list.

    The trace keeps a layer's parameter count, not its kernel's size: the count
    less one bias per unit stands in (exact for a Dense or Conv layer with bias).
    """
    sizes = np.ones(n, np.float64)
    for i, layer in enumerate(layers[:n]):
        params, units = layer.get("params") or 0, layer.get("units") or 0
        sizes[i] = max(1, params - units if params > units else params)
    return sizes


def l2_norm(step, stage: str, layers: list[dict]) -> np.ndarray:
    """[layer] estimated L2 norm of ``stage``'s tensor: its RMS times the square root of its element count."""
    return rms(step, stage) * np.sqrt(kernel_sizes(layers, len(step.stats)))
