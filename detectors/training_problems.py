"""Our training-problem detector, after AUTOTRAINER (Zhang et al., ICSE 2021), reported with the epoch.

Ours, not the released tool (that is ``detectors.autotrainer``): it borrows
AUTOTRAINER's problems and thresholds but changes the schedule and the rules
(docs/detectors.md says what and why).

AUTOTRAINER checks gradients on one batch every few epochs. Here a *period*
is an epoch when the budget has at least MIN_PERIODS epochs, else an equal
slice of the budget's batches (so short budgets are judged too); statistics
are averaged over the period. At each period end:

* VANISHING_GRADIENT |grad W_first| / |grad W_last| < 1e-3 and |grad W_first| < 1e-4;
* EXPLODING_GRADIENT that ratio > 70, or NaN/Inf in any gradient (at once);
* DYING_RELU  >= 70 % of all weight-gradient entries exactly zero (models with ReLU);
* OSCILLATING training accuracy swings >= 0.03 against its previous move in >= 20 % of periods;
* SLOW_CONVERGENCE best accuracy < 0.6 and no period gained >= 0.01 (for
  models without accuracy: the loss never fell 1 % below the first period's).

As in AUTOTRAINER, gradient problems are reported only while accuracy is poor
(< 0.6; always for models without accuracy). Norms are estimated from each
layer's gradient RMS times the square root of its parameter count. Findings
name the problem and a repair; they point at no layer. A program that cannot be
right (the error issues of ``detectors.rules``: softmax over one unit, ...) gets that
error's fix instead of a tuning repair.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from detectors import rules
from detectors.base import Detector, failing, severity_if
from detectors.steps import nonfinite, rms

MIN_PERIODS = 5  # epochs needed to judge per epoch; otherwise the budget is cut into this many periods
VANISH_RATIO, VANISH_NORM = 1e-3, 1e-4
EXPLODE_RATIO = 70.0
DYING = 0.7
SWING, SWING_SHARE = 0.03, 0.2
POOR_ACC, MIN_GAIN = 0.6, 0.01

REPAIRS = {  # problem -> (fault code, repair in words), AUTOTRAINER's first repair for each
    "VANISHING_GRADIENT": ("ACH", "use ReLU-family activations (or batch normalisation, He initialisation)"),
    "EXPLODING_GRADIENT": ("HLR", "lower the learning rate (or clip gradients)"),
    "DYING_RELU": ("ACH", "use LeakyReLU/ELU instead of ReLU (or lower the learning rate)"),
    "OSCILLATING": ("HLR", "lower the learning rate (or raise the batch size)"),
    "SLOW_CONVERGENCE": ("HLR", "raise the learning rate (or change the optimizer)"),
}


class TrainingProblems(Detector):
    """Report AUTOTRAINER's five training problems with the epoch they show in."""

    name = "training-problems"
    version = "3"
    codes = {
        "DYING_RELU": "dying ReLU (zero gradients)", "VANISHING_GRADIENT": "vanishing gradient",
        "EXPLODING_GRADIENT": "exploding gradient", "OSCILLATING": "oscillating accuracy",
        "SLOW_CONVERGENCE": "slow convergence",
    }
    localizes = True
    suggests = True  # findings name a fault kind (the repair), never a layer

    def reset(self) -> None:
        super().reset()
        self._period = None
        self._acc: list[float] = []  # per period
        self._loss: list[float] = []
        self._batch: list[tuple] = []  # (grad rms per layer, zero_frac per layer, accuracy, loss) of this period
        self._count = 0

    def start(self, meta: dict) -> None:
        super().start(meta)
        epochs, steps = self._budget.epochs or 0, self._budget.steps_per_epoch or 0
        self._period = steps if epochs >= MIN_PERIODS else max(1, (epochs * steps) // MIN_PERIODS)

    def observe(self, step):
        if step.kind != "batch" or step.stats is None:
            return []
        before = len(self.findings)
        applies = step.applies("weight_grad")
        g = rms(step, "weight_grad")
        bad = nonfinite(step, "weight_grad") | (applies & ~np.isfinite(g))  # a spread that overflows counts too
        if bad.any() or not math.isfinite(step.values.get("loss", 0.0)):
            self._report(step, "EXPLODING_GRADIENT", "gradients (or the loss) became NaN/Inf", "error")
            return self.findings[before:]
        zero = step.stat("weight_grad", "zero_frac")
        self._batch.append((np.where(applies, g, np.nan), np.where(applies, zero, np.nan),
                            step.values.get("accuracy", math.nan), step.values.get("loss", math.nan)))
        self._count += 1
        if self._count % (self._period or 1) == 0:
            self._period_end(step)
            self._batch = []
        return self.findings[before:]

    def _report(self, step, code: str, message: str, severity: str | None = None) -> None:
        """A problem, once, with its repair. Severity: NaN/Inf is an error; the other problems are errors only
        while the loss is no better than a constant predictor's (AUTOTRAINER's "only while accuracy is poor",
        judged against the data)."""
        if self.reported(code):
            return  # gradients that stay NaN: no repair to work out again
        fix_code, fix = REPAIRS[code]
        broken = next((i for i in rules.issues(self._facts) if i.severity == "error"), None)
        if broken is not None and code != "OSCILLATING":
            # No tuning repairs a program that cannot be right (softmax over one unit, ...): name its fix.
            fix_code, fix = broken.fix_code, broken.fix
        if severity is None:
            first = next((v for v in self._loss if math.isfinite(v)), None)
            now = self._loss[-1] if self._loss else math.nan
            severity = "warning" if code == "OSCILLATING" else severity_if(failing(self._facts, now, first))
        self.report(step, code, f"{message} (epoch {step.epoch + 1})", diagnosis=fix_code, fix=fix,
                    fix_code=fix_code, severity=severity, key=code)

    def _period_end(self, step) -> None:
        with warnings.catch_warnings():  # layers without weights are all-NaN columns, by design
            warnings.simplefilter("ignore", RuntimeWarning)
            grads = np.nanmean(np.array([b[0] for b in self._batch]), axis=0)
            zeros = np.nanmean(np.array([b[1] for b in self._batch]), axis=0)
            acc = float(np.nanmean([b[2] for b in self._batch]))  # NaN for models without accuracy
            loss = float(np.nanmean([b[3] for b in self._batch]))
        self._acc.append(acc)
        self._loss.append(loss)
        has_acc = math.isfinite(acc)
        poor = not has_acc or acc < POOR_ACC
        if poor:
            self._gradients(step, grads, zeros)
        if has_acc:
            self._accuracy_trend(step)
        else:
            self._loss_trend(step)

    def _gradients(self, step, grads: np.ndarray, zeros: np.ndarray) -> None:
        params = np.array([max(1, (layer.get("params") or 1)) for layer in self._layers][:len(grads)]
                          + [1] * max(0, len(grads) - len(self._layers)), np.float64)
        weighted = np.flatnonzero(np.isfinite(grads))
        if len(weighted) >= 2:
            norms = grads * np.sqrt(params)
            first, last = norms[weighted[0]], norms[weighted[-1]]
            # Both zero: nothing flows back at all, which is a vanished gradient, not an exploded one.
            ratio = first / last if last > 0 else (0.0 if first == 0 else math.inf)
            if ratio < VANISH_RATIO and first < VANISH_NORM:
                self._report(step, "VANISHING_GRADIENT", f"first layer's gradient norm {first:.2g} is {ratio:.2g} "
                             "of the last layer's")
            elif ratio > EXPLODE_RATIO:
                self._report(step, "EXPLODING_GRADIENT", f"first layer's gradient norm is {ratio:.3g}x the last's")
        uses_relu = any(layer.get("activation") == "relu" for layer in self._layers)
        if uses_relu and len(weighted):
            share = float(np.sum(zeros[weighted] * params[weighted]) / np.sum(params[weighted]))
            if share >= DYING:
                self._report(step, "DYING_RELU", f"{share:.0%} of the weight gradients are exactly zero")

    def _accuracy_trend(self, step) -> None:
        acc = self._acc
        moves = np.diff(acc)
        if len(moves) >= 2:
            swings = sum(1 for a, b in zip(moves[:-1], moves[1:]) if abs(b) >= SWING and np.sign(a) != np.sign(b))
            if len(acc) >= MIN_PERIODS and swings / len(acc) >= SWING_SHARE:
                self._report(step, "OSCILLATING", f"training accuracy swung by >= {SWING} in {swings} of "
                             f"{len(acc)} periods")
        if len(acc) >= 3 and max(acc) < POOR_ACC and (len(moves) == 0 or max(moves) < MIN_GAIN):
            self._report(step, "SLOW_CONVERGENCE", f"best accuracy {max(acc):.3f} after {len(acc)} periods and "
                         f"no period gained {MIN_GAIN}")

    def _loss_trend(self, step) -> None:
        loss = self._loss
        if len(loss) >= 3 and math.isfinite(loss[0]) and min(loss) >= loss[0] - MIN_GAIN * abs(loss[0]):
            self._report(step, "SLOW_CONVERGENCE", f"the loss never fell {MIN_GAIN:.0%} below the first period's "
                         f"({loss[0]:.4g}) in {len(loss)} periods")
