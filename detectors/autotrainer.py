"""AUTOTRAINER's problem checker (Zhang et al., ICSE 2021) as its authors released it, replayed on the trace.

Source: https://github.com/shiningrain/AUTOTRAINER at commit
03a463ea05691a73403d7cff99a368fb4b6720cf: ``AutoTrainer/utils/monitor.py`` (the
checks, ``IssueMonitor.determine`` and ``judge_issue``), ``AutoTrainer/utils/utils.py``
(``default_param``; ``LossHistory.on_epoch_end``, the schedule),
``AutoTrainer/utils/modules.py`` (``problem_evaluation``, the ranking) and
``AutoTrainer/utils/repair.py`` (``repair_strategy('balance')``, the repairs); the
settings of the authors' ``demo_test.py`` and ``reproduce.py`` (checks every 3
epochs, ``determine_threshold=1``).

What it checks, at the end of epochs 0, CHECKGAP, 2 CHECKGAP, ... (0-based):

* gradients (every check): NaN/Inf; vanishing when the first kernel's gradient
  norm is below BETA_1 = 1e-3 of the last kernel's and below BETA_2 = 1e-4;
  exploding when that ratio exceeds BETA_3 = 70; dying ReLU when at least
  GAMMA = 70 % of all gradient entries are exactly zero. Each adds one to a
  count that never resets; a problem needs DETERMINE = 1 of them;
* the loss: NaN/Inf or at least 1e3 (training or validation), or negative;
* from epoch 0.3 x epochs - CHECKGAP on (sticky once seen): oscillation
  (``ol_judge``: pairs of the i-th local maximum and i-th local minimum of the
  training accuracy at least ZETA = 0.03 apart, in at least ETA = 0.2 x epochs
  pairs), not converging (best training and validation accuracy below
  THETA = 0.7), slow convergence (no epoch gained DELTA = 0.01 accuracy, in
  training and in validation);
* the output: per sample, the absolute outputs of the last layer sum above
  OMEGA_2 + 0.1 = 1.1 (the output activation is not a probability); another
  layer's mean absolute output at least OMEGA_1 = 10 (abnormal data);
* the loss against the output (once): a string loss must be ``binary`` with at
  most 2 outputs or ``categorical`` with more, and then match a sigmoid /
  softmax output.

Problems are judged only at a check where the released callback took the
layers' outputs: the first check at or after half the epochs, and any check
after a loss anomaly or slow convergence was seen at an earlier one. Ranked as
``problem_evaluation`` (abnormal data 4; activation, loss 3; vanishing,
exploding, dying ReLU 2; not converging, oscillating 1), the top one is
reported and training stops: every finding is an error. Its fix is the first
repair of AUTOTRAINER's 'balance' strategy for it, the others as alternatives.

Deviations (the trace, not the tool, forces them):

* Gradients and outputs are those of the epoch's last training batch, taken
  inside the training step; the callback recomputed them after the epoch on
  the first ``batch_size`` rows of the training data.
* The trace keeps one tensor per layer (its kernel): bias gradients are missing
  from the zero share and bias weights from the NaN test; norms are RMS x
  sqrt(kernel size), the size estimated from the parameter count
  (``detectors.steps.l2_norm``); 1-D first weights (normalisation layers)
  count as biases, as in the release.
* The output tests use bounds from each layer's statistics: the largest
  per-sample sum is at least the largest element and at least units x |mean|
  (exact for softmax and one-unit sigmoid outputs); a mean absolute output is
  at least |mean| (exact for outputs of one sign).
* Where the release's ``list(set(...))`` left ties in the ranking to hash order
  (activation vs loss problem; not converging vs oscillating), the first one
  judged wins. Without validation logs (the release always validated) the
  validation halves of the tests are left out; without accuracy logs (the
  release always compiled ``accuracy``) the accuracy tests are. A loss given
  as an object counts by its name (the release skipped non-string losses).
* Not ported: ``large_weight`` and the overfitting counts, which the released
  judgement never reads.
"""

from __future__ import annotations

import math

import numpy as np

from detectors import rules
from detectors.base import Detector
from detectors.steps import kernel_sizes, l2_norm, nonfinite

BETA_1, BETA_2, BETA_3 = 1e-3, 1e-4, 70.0  # vanishing ratio and norm; exploding ratio
GAMMA = 0.7  # share of exactly-zero gradient entries: dying ReLU
ZETA, ETA = 0.03, 0.2  # oscillation: swing, and share of the epochs with one
DELTA = 0.01  # slow convergence: the largest gain of one epoch
THETA = 0.7  # the accuracy a training must reach
OMEGA_1, OMEGA_2 = 10.0, 1.0  # abnormal layer output; output sum of a probability
JUDGMENT_POINT = 0.3  # share of the epochs from which the accuracy tests run (less one CHECKGAP)
LARGE_LOSS = 1e3
CHECKGAP = 3  # epochs between checks (checktype 'epoch_3')
DETERMINE = 1  # gradient findings a problem needs (determine_threshold)

RANK = {"abnormal_data": 4, "activation_issue": 3, "loss_issue": 3, "vanish": 2, "explode": 2, "relu": 2,
        "not_converge": 1, "unstable": 1}
_REPAIRS = {  # AUTOTRAINER's repair -> (fault code, in words)
    "selu": ("ACH", "use SELU activations"), "relu": ("ACH", "use ReLU activations with He initialisation"),
    "bn": ("LAD", "add batch normalisation"), "gradient": ("OCH", "clip the gradients in the optimizer"),
    "tanh": ("ACH", "use tanh activations"), "initial": ("WCI", "change the weight initialisation"),
    "leaky": ("ACH", "use LeakyReLU activations"), "adam": ("OCH", "use the Adam optimizer"),
    "lr": ("HLR", "change the learning rate"), "ReduceLR": ("HLR", "reduce the learning rate on plateaus"),
    "batch": ("HBS", "change the batch size"), "momentum": ("OCH", "change the optimizer's momentum"),
    "GN": ("LAD", "add Gaussian noise layers"), "optimizer": ("OCH", "change the optimizer"),
    "activation": ("ACH", "change the output activation"), "loss": ("LCH", "change the loss function"),
    "data": ("CPP", "preprocess (normalise) the data"),
}
STRATEGY = {  # repair_strategy('balance'), in order
    "vanish": ("selu", "relu", "bn"), "explode": ("selu", "relu", "gradient", "tanh", "bn"),
    "relu": ("selu", "bn", "initial", "leaky"),
    "unstable": ("adam", "lr", "ReduceLR", "batch", "momentum", "GN", "initial"),
    "not_converge": ("optimizer", "lr", "initial"), "activation_issue": ("activation",), "loss_issue": ("loss",),
    "abnormal_data": ("data",),
}
_TEXT = {"abnormal_data": "a layer's outputs are abnormally large", "activation_issue": "improper output activation",
         "loss_issue": "improper loss", "vanish": "vanishing gradient", "explode": "exploding gradient",
         "relu": "dying ReLU", "not_converge": "slow convergence", "unstable": "oscillating loss"}
_ONE_D = {"BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization"}
_COUNTS = ("vanish_gradient", "explode_gradient", "died_relu")
_FLAGS = ("nan_loss", "abnormal_loss", "unstable_loss", "not_converge", "sc_accuracy", "nan_gradient", "nan_weight",
          "improper_loss", "activation_output", "abnormal_output")


class AutoTrainer(Detector):
    """AUTOTRAINER's training-problem checker as released: its schedule, thresholds, ranking and repairs.

    Args:
        checkgap: epochs between checks (the authors ran 3).
        stop_on_finding: as a live Keras callback, stop at the finding (the tool stopped training there).
        verbose: as a live callback, print the finding when it is made.

    Example (a flat accuracy of 0.5 over 10 epochs: slow convergence, judged at the check of epoch 3)::

        trace = make_trace([0.69] * 10, steps_per_epoch=1, accuracy=[0.5] * 10)
        replay(AutoTrainer(), trace)[0].code   # 'NOT_CONVERGE'
    """

    name = "autotrainer"
    version = "1"
    codes = {  # AUTOTRAINER's problem names
        "ABNORMAL_DATA": "abnormally large layer outputs", "ACTIVATION_ISSUE": "improper output activation",
        "LOSS_ISSUE": "improper loss", "VANISH": "vanishing gradient", "EXPLODE": "exploding gradient",
        "RELU": "dying ReLU", "NOT_CONVERGE": "slow convergence", "UNSTABLE": "oscillating loss",
    }
    localizes = True  # findings name a problem kind (the repair's fault code)
    suggests = True

    def __init__(self, checkgap: int = CHECKGAP, stop_on_finding: bool = False, verbose: int = 1):
        self.checkgap = checkgap
        super().__init__(stop_on_finding=stop_on_finding, verbose=verbose)

    def reset(self) -> None:
        super().reset()
        self._history = {"loss": [], "acc": [], "val_loss": [], "val_acc": []}
        self._flags = dict.fromkeys(_FLAGS, False)
        self._counts = dict.fromkeys(_COUNTS, 0)
        self._loss_checked = False
        self._mid_check = True
        self._last = None  # the epoch's last batch
        self._done = False

    def observe(self, step):
        if self._done:
            return []
        self._describe_layers(step)
        if step.kind == "batch":
            self._last = step
            return []
        h, logs = self._history, step.logs
        h["loss"].append(logs.get("loss"))
        h["acc"].append(logs.get("accuracy", logs.get("acc")))
        h["val_loss"].append(logs.get("val_loss"))
        h["val_acc"].append(logs.get("val_accuracy", logs.get("val_acc")))
        if step.epoch % self.checkgap:
            return []
        total = self._budget.epochs or 0
        mid = total * 0.5 <= step.epoch and self._mid_check
        with_outputs = self._flags["abnormal_loss"] or self._flags["nan_loss"] or self._flags["sc_accuracy"] or mid
        if mid:
            self._mid_check = False
        self._determine(with_outputs, total)
        issues = self._judge() if with_outputs else []
        return self._report_top(step, issues)

    # -- IssueMonitor.determine -------------------------------------------------------------

    def _determine(self, with_outputs: bool, total: int) -> None:
        if not self._loss_checked:
            self._loss_checked = True
            self._loss_function()
        last = self._last
        if last is not None and last.stats is not None:
            if with_outputs:
                self._layer_outputs(last)
            self._gradients(last)
            self._flags["nan_weight"] |= bool(nonfinite(last, "weights").any())
        self._loss(total)

    def _loss_function(self) -> None:
        loss, layers = self._facts.get("loss"), self._layers
        if not loss or not layers:
            return
        units = rules.output_units(layers) or 1
        top = layers[-1]
        act = top.get("activation") or str(top.get("name", "")).split("_")[0]
        self._flags["improper_loss"] = not ((units <= 2 and "binary" in loss) or (units > 2 and "categorical" in loss))
        if not self._flags["improper_loss"]:
            self._flags["activation_output"] |= ((act != "sigmoid" and "binary" in loss and units != 2)
                                                 or (act != "softmax" and "categorical" in loss)
                                                 or (act != "linear" and "mean" in loss))

    def _layer_outputs(self, step) -> None:
        n = len(step.stats)
        mean, lo, hi = (step.stat("output", s).astype(np.float64) for s in ("mean", "min", "max"))
        units = (self._layers[-1].get("units") if self._layers else None) or rules.output_units(self._layers) or 1
        top = n - 1
        biggest = max(abs(lo[top]), abs(hi[top]), units * abs(mean[top]))  # <= the largest per-sample sum of |output|
        if biggest > OMEGA_2 + 0.1 or nonfinite(step, "output")[top]:
            self._flags["activation_output"] = True
        first = max([i for i, layer in enumerate(self._layers[:n]) if "embed" in str(layer.get("name"))], default=0)
        if any(abs(mean[i]) >= OMEGA_1 for i in range(first, top)) and not self._flags["activation_output"]:
            self._flags["abnormal_output"] = True

    def _gradients(self, step) -> None:
        if nonfinite(step, "weight_grad").any():
            self._flags["nan_gradient"] = True
            return
        applies = step.applies("weight_grad")
        classes = [rules.layer_class(self._layers, i) for i in range(len(applies))]
        kernels = [i for i in np.flatnonzero(applies) if classes[i] not in _ONE_D]
        if not kernels:
            return
        norms = l2_norm(step, "weight_grad", self._layers)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.float64(norms[kernels[0]]) / np.float64(norms[kernels[-1]])
        if rate < BETA_1 and norms[kernels[0]] < BETA_2:
            self._counts["vanish_gradient"] += 1
        if rate > BETA_3:
            self._counts["explode_gradient"] += 1
        weights = kernel_sizes(self._layers, len(applies))
        zero = step.stat("weight_grad", "zero_frac").astype(np.float64)
        share = float(np.sum(zero[applies] * weights[applies]) / np.sum(weights[applies]))
        if share >= GAMMA:
            self._counts["died_relu"] += 1

    def _loss(self, total: int) -> None:
        h, f = self._history, self._flags
        losses = [v for v in h["loss"] if v is not None]
        if not losses:
            return
        vals = [v for v in h["val_loss"] if v is not None]
        if any(not math.isfinite(v) for v in losses + vals) or max(losses + vals) >= LARGE_LOSS:
            f["nan_loss"] = True
            return
        if min(losses + vals) < 0:
            f["abnormal_loss"] = True
        acc = [v for v in h["acc"] if v is not None]
        val_acc = [v for v in h["val_acc"] if v is not None]
        if len(losses) < JUDGMENT_POINT * total - self.checkgap or not acc:
            return
        if oscillates(acc, ZETA, ETA):
            f["unstable_loss"] = True
        if max(acc) < THETA and (not val_acc or max(val_acc) < THETA):
            f["not_converge"] = True
        if largest_gain(acc) < DELTA and (not val_acc or largest_gain(val_acc) < DELTA):
            f["sc_accuracy"] = True

    # -- judge_issue and filtered_issue -----------------------------------------------------

    def _judge(self) -> list[str]:
        f, c = self._flags, self._counts
        found = []
        if f["abnormal_output"]:
            found.append("abnormal_data")
        if f["nan_loss"] or f["abnormal_loss"]:
            if f["abnormal_loss"]:
                found.append("loss_issue")
            elif f["activation_output"]:
                found.append("activation_issue")
            elif f["nan_weight"] or f["nan_gradient"]:
                found.append("explode")
        if f["not_converge"] or f["sc_accuracy"]:
            if f["activation_output"]:
                found.append("activation_issue")
            elif c["died_relu"] >= DETERMINE:
                found.append("relu")
            elif c["explode_gradient"] >= DETERMINE:
                found.append("explode")
            elif c["vanish_gradient"] >= DETERMINE:
                found.append("vanish")
            elif f["not_converge"] and f["sc_accuracy"] and not f["abnormal_output"]:
                found.append("not_converge")
        if f["unstable_loss"]:
            found.append("activation_issue" if f["activation_output"] else "unstable")
        if not f["activation_output"] and f["improper_loss"]:
            found.append("loss_issue")
        return list(dict.fromkeys(found))

    def _report_top(self, step, issues: list[str]):
        if not issues:
            return []
        top = issues[0]
        for issue in issues[1:]:
            if RANK[issue] > RANK[top]:
                top = issue
        self._done = True
        repairs = [_REPAIRS[r] for r in STRATEGY[top]]
        fix_layer = rules.output_layer(self._layers) if top == "activation_issue" else None
        found = self.report(step, top.upper(), f"{_TEXT[top]} (epoch {step.epoch + 1}; also: "
                            f"{', '.join(i for i in issues if i != top) or 'nothing else'})", severity="error",
                            diagnosis=repairs[0][0], fix=repairs[0][1], fix_code=repairs[0][0], fix_layer=fix_layer,
                            alternatives=[f"{code}: {text}" for code, text in repairs[1:]])
        return [found] if found else []


def oscillates(acc: list[float], threshold: float, rate: float) -> bool:
    """``ol_judge``: the i-th local maximum and i-th local minimum (ends excluded, ties count as both) at least
    ``threshold`` apart in at least ``rate`` x len(acc) pairs."""
    peaks, troughs = [], []
    for i in range(1, len(acc) - 1):
        if acc[i] - acc[i - 1] >= 0 and acc[i] - acc[i + 1] >= 0:
            peaks.append(acc[i])
        if acc[i] - acc[i - 1] <= 0 and acc[i] - acc[i + 1] <= 0:
            troughs.append(acc[i])
    count = sum(1 for p, t in zip(peaks, troughs) if p - t >= threshold)
    return count >= rate * len(acc)


def largest_gain(acc: list[float]) -> float:
    """``max_delta_acc``: the largest rise from one epoch to the next (0 when it never rose)."""
    return max([0.0] + [b - a for a, b in zip(acc[:-1], acc[1:])])
