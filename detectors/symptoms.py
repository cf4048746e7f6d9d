"""Our symptom detector with fix suggestions, after DeepDiagnosis (Wardat et al., ICSE 2022).

Ours, not the released tool (that is ``detectors.deepdiagnosis``): it borrows
DeepDiagnosis's symptoms and several thresholds but changes the rules
(docs/detectors.md says what and why).

Watches every training batch and reports eight symptoms, each with the layer
and stage where it shows:

* NUMERICAL  NaN/Inf in a layer's output, weights or weight gradients, or in the loss;
* UNCHANGED  a layer's output (mean and spread) does not move for a window of batches;
* SATURATED  most outputs of a hidden sigmoid/tanh are in the flat tails (|input| >= 5);
* DEAD_RELU  >= 70 % of a hidden ReLU layer's outputs are exactly zero;
* OUT_OF_RANGE the output cannot reach the labels' range, or a linear output
  spreads over > 10x the labels' range;
* LOSS_FLAT / ACC_FLAT the loss does not fall / the accuracy does not rise;
* VANISHING  a layer's weight gradients are below 1e-7 in magnitude.

Unlike the original (which probed once per epoch and looked only at separate
Activation layers) it reads activations fused into Dense/Conv layers too, and
judges every batch. Saturation is bounded from the output's mean and spread:
for a sigmoid output in (0, 1), E[x(1-x)] = mean(1-mean) - var, and an output
outside the tails has x(1-x) >= e(1-e) with e = sigmoid(-5), so Markov's
inequality gives a lower bound on the saturated fraction (likewise for tanh
with 1 - x^2). The detector therefore never overstates saturation; the price
is that it sees only heavy saturation (nearly every unit in the tails, as with
raw inputs in the thousands), not the milder cases the original counted.

The fix is chosen from the evidence in DeepDiagnosis's order: poor weight
initialisation (kernel variance outside [1e-5, 10]) -> change initialisation;
inputs far outside a normalised range -> normalize the data; the update/weight
ratio outside [1e-5, 1e-1] -> change the learning rate; then, ours, a static
output/loss/label mismatch (``detectors.rules``) -> its fix; else by
symptom: change the activation at the layer, or change the optimizer.
"""

from __future__ import annotations

import math

import numpy as np

from detectors import rules
from detectors.base import Detector, failing, severity_if
from detectors.rules import DEAD, SATURATED, saturated_fraction
from detectors.steps import MIN_WINDOW, TOL, UPDATE_BAND, WINDOW, Persistence, nonfinite, rms

VANISHING = 1e-7  # DeepDiagnosis: mean |weight gradient| below this
SPREAD = 10.0  # a linear output spreading over 10x the label range
MIN_GAIN = 0.01  # the loss must fall 1 % (or the accuracy rise 0.01) between the first and the last window
ACC_CEILING = 0.99  # an accuracy this high cannot be expected to rise

class Symptoms(Detector):
    """Report training symptoms per layer, each with a suggested fix.

    Args:
        stop_on_finding: as a live Keras callback, stop at the first finding.
        verbose: as a live callback, print findings as they are made.
    """

    name = "symptoms"
    version = "3"
    codes = {
        "NUMERICAL": "NaN/Inf values", "DEAD_RELU": "dead ReLU outputs", "SATURATED": "saturated activations",
        "UNCHANGED": "an output that does not move", "VANISHING": "vanishing weight gradients",
        "LOSS_FLAT": "the loss did not fall", "ACC_FLAT": "the accuracy did not rise",
        "OUT_OF_RANGE": "output cannot reach the labels",
    }
    localizes = True
    suggests = True

    def reset(self) -> None:
        super().reset()
        self._persist = Persistence(WINDOW)
        self._prev = None
        self._first_var = None
        self._ratio = (math.nan, math.nan)
        self._losses: list[float] = []
        self._accs: list[float] = []
        self._nan_done = False
        self._acts = None  # per-layer layout, read once at the first batch (see _layout)

    def start(self, meta: dict) -> None:
        super().start(meta)
        self._persist = Persistence.for_run(meta, WINDOW, MIN_WINDOW)

    def observe(self, step):
        if step.kind != "batch" or step.stats is None:
            return []
        self._describe_layers(step)
        if self._acts is None:
            self._layout(step.stats.shape[0])
        before = len(self.findings)
        self._evidence(step)
        if not self._numerical(step):
            self._layer_symptoms(step)
            self._output_range(step)
            self._progress(step)
        return self.findings[before:]

    # -- evidence for the fix ----------------------------------------------------

    def _evidence(self, step) -> None:
        applies = step.applies("weights")
        w, u = rms(step, "weights"), rms(step, "update")
        if self._first_var is None:
            self._first_var = np.where(applies, step.stat("weights", "std").astype(np.float64) ** 2, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            # A zero update says the gradient vanished, not how large the learning rate is.
            ratio = np.where(applies & (w > 0) & (u > 0), u / w, np.nan)
        if np.isfinite(ratio).any():
            self._ratio = (float(np.nanmin(ratio)), float(np.nanmax(ratio)))

    def _suggest(self, symptom: str, layer: int | None) -> tuple[str, str, int | None]:
        """(fault code, fix in words, layer it applies to), in DeepDiagnosis's order."""
        var = self._first_var if self._first_var is not None else np.array([])
        with np.errstate(invalid="ignore"):
            poor = np.flatnonzero((var < rules.INIT_VARIANCE[0]) | (var > rules.INIT_VARIANCE[1]))
        if len(poor):
            k = int(poor[0])
            return "WCI", f"change the weight initialisation of layer {k} (kernel variance {var[k]:.3g})", k
        if rules.input_scale(self._facts):
            return "CPP", "normalize the input data", None
        lo, hi = self._ratio
        if hi > UPDATE_BAND[1]:
            return "HLR", f"lower the learning rate (an update moved a layer's weights by {hi:.2g} of their size)", None
        if hi < UPDATE_BAND[0]:
            return "HLR", f"raise the learning rate (updates move the weights by only {hi:.2g} of their size)", None
        for issue in rules.issues(self._facts):
            if issue.code in ("OUT_LOSS", "LOSS_LABELS", "OUT_RANGE"):
                return issue.fix_code, issue.fix, issue.layer
        k = rules.activation_layer(self._layers, layer)
        if k is not None and symptom in ("SATURATED", "DEAD_RELU", "VANISHING", "UNCHANGED", "OUT_OF_RANGE"):
            return "ACH", f"change the activation of layer {k}", k
        return "OCH", "change the optimizer", None

    # Symptoms that are harmless in a model that learns (advice), whatever the loss does.
    ADVICE = ("SATURATED", "DEAD_RELU")
    # Symptoms that are errors only while the loss is no better than a constant predictor's.
    GATED = ("UNCHANGED", "VANISHING", "LOSS_FLAT", "ACC_FLAT", "SPREAD")

    def _severity(self, step, code: str) -> str:
        if code in self.ADVICE:
            return "warning"
        if code in self.GATED:
            recent = [v for v in self._losses[-self._persist.window:] if math.isfinite(v)] \
                or [step.values.get("loss", math.nan)]
            first = next((v for v in self._losses if math.isfinite(v)), None)
            return severity_if(failing(self._facts, float(np.mean(recent)), first))
        return "error"

    def _report(self, step, code: str, message: str, layer: int | None = None, stage: str | None = None,
                kind: str | None = None) -> None:
        """A symptom, once per (code, layer), with the fix the evidence points to; a layer-less one names
        the fix's layer."""
        if self.reported((code, layer)):
            return  # a symptom that persists: no fix to work out again
        fix_code, fix, fix_layer = self._suggest(code, layer)
        self.report(step, code, message, layer=layer if layer is not None else fix_layer, stage=stage,
                    diagnosis=fix_code, fix=fix, fix_code=fix_code, fix_layer=fix_layer,
                    severity=self._severity(step, kind or code), key=(code, layer))

    # -- symptoms ------------------------------------------------------------------

    def _numerical(self, step) -> bool:
        if self._nan_done:
            return True
        for stage in ("output", "weights", "weight_grad"):
            bad = nonfinite(step, stage)
            if bad.any():
                self._report(step, "NUMERICAL", f"{stage.replace('_', ' ')} has NaN/Inf values",
                             int(np.flatnonzero(bad)[0]), stage)
                self._nan_done = True
                return True
        loss = step.values.get("loss", 0.0)
        if not math.isfinite(loss):
            self._report(step, "NUMERICAL", f"the loss is {loss}")
            self._nan_done = True
        return self._nan_done

    def _layout(self, n: int) -> None:
        """Activations, hidden layers and the output layer: fixed for a run, so not recomputed per batch."""
        self._acts = [layer.get("activation") for layer in self._layers[:n]]
        out = rules.output_layer(self._layers[:n])
        self._hidden = np.arange(n) < (out if out is not None else n)
        self._relu = np.array([a == "relu" for a in self._acts], bool)
        self._output = rules.output_layer(self._layers)

    def _layer_symptoms(self, step) -> None:
        n = step.stats.shape[0]
        acts, hidden = self._acts, self._hidden
        mean, std = step.stat("output", "mean"), step.stat("output", "std")
        scale = np.maximum(1.0, np.abs(mean))
        prev = self._prev if self._prev is not None else (np.full(n, np.nan), np.full(n, np.nan))
        still = (np.abs(mean - prev[0]) <= TOL * scale) & (np.abs(std - prev[1]) <= TOL * scale)
        self._prev = (mean, std)
        sat = np.array([saturated_fraction(a, m, s) > SATURATED if a in ("sigmoid", "tanh") else False
                        for a, m, s in zip(acts, mean, std)], bool)  # bool also for a step without layers
        dead = self._relu & (step.stat("output", "zero_frac") >= DEAD)
        vanishing = step.applies("weight_grad") & (rms(step, "weight_grad") < VANISHING)
        checks = (("UNCHANGED", still, "output", "output does not move for {w} batches"),
                  ("SATURATED", sat & hidden, "output", "more than half of the outputs are saturated for {w} batches"),
                  ("DEAD_RELU", dead & hidden, "output",
                   f"at least {DEAD:.0%} of the outputs are zero for {{w}} batches"),
                  ("VANISHING", vanishing, "weight_grad", f"weight gradients below {VANISHING:g} for {{w}} batches"))
        for code, held, stage, text in checks:
            hits = np.flatnonzero(self._persist(code, held))
            if len(hits):
                self._report(step, code, text.format(w=self._persist.window), int(hits[0]), stage)

    def _output_range(self, step) -> None:
        y = self._facts.get("y") or {}
        k = self._output
        if k is None or y.get("min") is None or k >= step.stats.shape[0] or self._facts.get("from_logits"):
            return
        if self._facts.get("loss") == "sparse_categorical_crossentropy":
            return  # the labels are class indices, not values the output must reach
        act = self._layers[k].get("activation") or "linear"
        lo, hi = rules.ACTIVATION_RANGE.get(act, (None, None))
        if (lo is not None and y["min"] < lo - 1e-6) or (hi is not None and y["max"] > hi + 1e-6):
            self._report(step, "OUT_OF_RANGE", f"{act} output cannot reach labels in [{y['min']:.4g}, "
                         f"{y['max']:.4g}]", k, "output")
            return
        spread = float(step.stat("output", "max")[k] - step.stat("output", "min")[k])
        label_range = y["max"] - y["min"]
        wide = act == "linear" and label_range > 0 and spread > SPREAD * label_range
        if self._persist("SPREAD", wide):
            self._report(step, "OUT_OF_RANGE", f"the linear output spreads over {spread:.4g}, more than {SPREAD:g}x "
                         f"the label range", k, "output", kind="SPREAD")

    def _progress(self, step) -> None:
        w = self._persist.window
        self._losses.append(step.values.get("loss", math.nan))
        if "accuracy" in step.values:
            self._accs.append(step.values["accuracy"])
        n = len(self._losses)
        if n < 2 * w or n % w:
            return
        first, last = np.mean(self._losses[:w]), np.mean(self._losses[-w:])
        if last >= first - MIN_GAIN * abs(first):
            self._report(step, "LOSS_FLAT", f"the loss did not fall: {first:.4g} over the first {w} batches, "
                         f"{last:.4g} over the last {w}")
        if len(self._accs) >= 2 * w:
            a0, a1 = np.mean(self._accs[:w]), np.mean(self._accs[-w:])
            if a1 <= a0 + MIN_GAIN and a1 < ACC_CEILING:
                self._report(step, "ACC_FLAT", f"the accuracy did not rise: {a0:.3f} over the first {w} batches, "
                             f"{a1:.3f} over the last {w}")
