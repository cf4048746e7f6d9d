"""The layer-trend localizer (DeepLocalize, Wardat et al., ICSE 2021).

Watches, per layer and per training batch, the forward output, the kernel, its
gradient, the update the optimizer made, and the gradient of the loss with
respect to the layer's output, and reports where a trend goes wrong: NaN/Inf,
stuck at zero, or never changing. Loss and accuracy are checked too ("model
does not learn"). Each finding names the layer, the stage and the paper's
message code: EBA/EAA error before/after activation (forward output of a
Dense/Conv or of an Activation layer), EBW error in weights, EBDW error in
weight gradients, ELF error in the loss, EAF error in accuracy, MDL model does
not learn; EOG (output gradient) and ELR (learning rate) are ours.

Two modes:

``faithful`` replays the authors' released callback: means only; windows of 5
non-overlapping batches; "unchanged" means the 5 means are exactly equal
(mean == max); a mean exactly 0 is an error once it happened in at least half
the batches seen so far; weight trends and weight gradients only on Dense
layers; Flatten exempt from the forward and output-gradient trend checks; the
callback's order (forward, weights, loss, accuracy, weight gradients, output
gradients); the first hit ends the run. Two differences are unavoidable and
documented: the statistics come from the training step itself (the callback
recomputed the forward pass after the update, on an unshuffled slice that was
not the batch just trained), and the per-batch loss/accuracy are the batch's
own values as Keras 2.2 logged them.

``default`` is ours (constants below, one set for every case):

* numerical error: any NaN/Inf element (counted in-graph, not only the mean)
  in a layer's output, weights, gradients, or in the loss/accuracy;
* constant output: a layer whose output has no spread within the batch and
  whose batch mean does not move for WINDOW batches, while its input does
  (so a softmax classifier, whose mean is always 1/K, is not flagged, and only
  the first constant layer is blamed, not everything downstream);
* vanished gradient: the gradient of the loss w.r.t. a layer's output is
  exactly zero everywhere for WINDOW batches, blamed on the layer nearest the
  output where that starts;
* frozen weights: a layer's kernel never changes for WINDOW batches although
  its gradient is not zero;
* model does not learn: after PATIENCE epochs the epoch loss has never been
  MIN_GAIN below the first epoch's (a plateau after progress is not flagged);
* learning rate: a step whose update is as large as the weights themselves
  while the loss blows up (too high), or weights that never move while the
  gradient does not vanish (too low), names HLR as the diagnosis of findings.

Example::

    >>> from tests.synthetic import make_trace          # doctest: +SKIP
    >>> replay(LayerTrend(), make_trace([1, nan], 1))   # doctest: +SKIP
    [Finding(code='ELF', ...)]
"""

from __future__ import annotations

import math

import numpy as np

from detectors import structure
from detectors.base import Detector, Finding, failing, persistence_window, severity_if

# --- default-mode constants (one set for every case; why each value) ---------
WINDOW = 20  # batches a condition must persist: longer than the noise of one
#             epoch of a small dataset, short enough for budgets of ~100 batches
MIN_WINDOW = 5  # never judge "persistent" on fewer batches than the paper's callback
TOL = 1e-6  # relative: spreads/changes below this are float32 rounding (eps 1.2e-7, a few ulps), i.e. none
PATIENCE = 5  # epochs after which a loss that never fell is "model does not learn"
MIN_GAIN = 0.01  # ... "never fell" = never 1 % below the first epoch's loss (noise-proof)
UPDATE_RATIO = 0.9  # |update| >= 0.9 |weights after it|: the step replaced the weights
EXPLOSION = 10.0  # loss rising 10x above its first value inside the first epoch

FAITHFUL_N = 5  # the released callback's window



class LayerTrend(Detector):
    """Localize faults from per-layer trends.

    Args:
        mode: "default" (ours) or "faithful" (the authors' released callback).
        stop_on_finding: as a live Keras callback, stop training at the first
            finding (the faithful mode always reports only its first finding).
        verbose: as a live callback, print findings as they are made.
    """

    name = "layer-trend"
    version = "3"
    localizes = True
    signals = ("values", "epoch_logs", "stats:output", "stats:weights", "stats:weight_grad",
               "stats:output_grad", "stats:update")

    def __init__(self, mode: str = "default", stop_on_finding: bool = False, verbose: int = 1):
        if mode not in ("default", "faithful"):
            raise ValueError(f"mode is 'default' or 'faithful', not {mode!r}")
        self.mode = mode
        self.suggests = mode == "default"  # the released callback suggested no fixes
        self.stop_on_finding = stop_on_finding
        self.verbose = verbose
        self.reset()

    # -- run state ---------------------------------------------------------------

    def reset(self) -> None:
        super().reset()
        self._layers: list[dict] = []
        self._window = WINDOW
        self._done = False
        self._seen: set = set()
        self._runs: dict = {}  # (check, layer) -> consecutive batches the condition held
        self._prev_mean: dict = {}
        self._facts: dict = {}
        self._hlr_evidence = None
        self._first_loss = None
        self._steps_per_epoch = None
        self._epoch_losses: list[float] = []
        self._faithful = _FaithfulState()

    def start(self, meta: dict) -> None:
        self._layers = list(meta.get("layers") or [])
        self._facts = dict(meta.get("facts") or {})
        self._steps_per_epoch = (meta.get("budget") or {}).get("steps_per_epoch")
        self._window = persistence_window(meta, WINDOW, MIN_WINDOW)

    def observe(self, step) -> list[Finding]:
        if self._done:
            return []
        if not self._layers and step.stats is not None:
            self._layers = [{"name": f"layer{i}", "class": "?"} for i in range(step.stats.shape[0])]
        before = len(self.findings)
        if self.mode == "faithful":
            self._observe_faithful(step)
            self._done = len(self.findings) > before
        else:
            self._observe_default(step)
        return self.findings[before:]

    def _report(self, step, code, message, layer=None, stage=None, diagnosis=None, fix=None, key=None,
                severity="error"):
        """``fix`` is (fault code, words, layer it applies to) or None."""
        key = key or (code, layer, stage)
        if key in self._seen:
            return
        self._seen.add(key)
        name = self._layers[layer]["name"] if layer is not None and layer < len(self._layers) else None
        fix_code, words, fix_layer = fix or (None, None, None)
        self._finding(step, code, message, layer=layer, layer_name=name, stage=stage,
                      diagnosis=diagnosis, fix=words, fix_code=fix_code, fix_layer=fix_layer,
                      severity="error" if self.mode == "faithful" else severity)

    def _activation_fix(self, layer: int):
        """Change the activation of ``layer``, or of the nearest layer before it that has one."""
        k = structure.activation_layer(self._layers, layer)
        return ("ACH", f"change the activation of layer {k}", k) if k is not None else None

    def _cls(self, layer: int) -> str:
        return self._layers[layer].get("class", "?") if layer < len(self._layers) else "?"

    def _forward_code(self, layer: int) -> str:
        return "EAA" if self._cls(layer) == "Activation" else "EBA"

    # -- default mode ------------------------------------------------------------

    def _observe_default(self, step) -> None:
        if step.kind == "epoch":
            self._epoch_checks(step)
            return
        self._learning_rate_evidence(step)
        if self._numerical(step):
            return
        self._constant_outputs(step)
        self._vanished_gradients(step)
        self._frozen_weights(step)

    def _numerical(self, step) -> bool:
        """NaN/Inf anywhere; True when this batch had any (its trends are meaningless then).

        Layer findings come before the loss's: when the loss and a layer go bad
        in the same batch, the layer is the more useful pointer.
        """
        bad = _nonfinite(step, "output")
        for layer in np.flatnonzero(bad)[:1]:
            self._report(step, self._forward_code(layer), "output has NaN/Inf values", int(layer), "output",
                         diagnosis=self._hlr_evidence, fix=self._fix())
        any_bad = bool(bad.any())
        for stage, code in (("output_grad", "EOG"), ("weight_grad", "EBDW"), ("weights", "EBW")):
            for layer in np.flatnonzero(_nonfinite(step, stage))[-1:]:
                any_bad = True
                self._report(step, code, f"{stage.replace('_', ' ')} has NaN/Inf values", int(layer), stage,
                             diagnosis=self._hlr_evidence, fix=self._fix())
        loss = step.values.get("loss", 0.0)
        if not math.isfinite(loss):
            any_bad = True
            self._report(step, "ELF", f"the loss is {loss}", diagnosis=self._hlr_evidence or "LCH",
                         fix=self._fix() or ("LCH", "check the loss against the output activation and labels", None))
        if not math.isfinite(step.values.get("accuracy", 0.0)):
            self._report(step, "EAF", "accuracy is not a number", diagnosis=self._hlr_evidence)
        return any_bad

    def _persist(self, check: str, layer: int, holds: bool) -> bool:
        """Count consecutive batches a condition held; True once it reached the window."""
        key = (check, layer)
        self._runs[key] = self._runs.get(key, 0) + 1 if holds else 0
        return self._runs[key] >= self._window

    def _constant_outputs(self, step) -> None:
        mean, std = step.stat("output", "mean"), step.stat("output", "std")
        constant = []
        for layer in range(len(mean)):
            scale = max(1.0, abs(mean[layer])) if math.isfinite(mean[layer]) else 1.0
            prev = self._prev_mean.get(layer, math.nan)
            still = abs(mean[layer] - prev) <= TOL * scale
            flat = std[layer] <= TOL * scale
            self._prev_mean[layer] = mean[layer]
            constant.append(self._persist("constant", layer, bool(flat and still)))
        for layer, is_constant in enumerate(constant):
            if is_constant and (layer == 0 or not constant[layer - 1]):
                value = float(mean[layer])
                what = "only zeros" if value == 0 else f"the same value ({value:.4g}) for every input"
                self._report(step, self._forward_code(layer), f"output is {what} for {self._window} batches",
                             layer, "output", diagnosis=self._hlr_evidence,
                             fix=self._fix() or self._activation_fix(layer))

    def _vanished_gradients(self, step) -> None:
        zero = step.stat("output_grad", "zero_frac")
        applies = step.applies("output_grad")
        held = [bool(applies[i]) and self._persist("no-grad", i, zero[i] >= 1.0) for i in range(len(zero))]
        for layer in range(len(held) - 1, -1, -1):
            above = next((held[j] for j in range(layer + 1, len(held)) if applies[j]), False)
            if held[layer] and not above:
                self._report(step, "EOG", f"the loss gradient w.r.t. the output is exactly zero for "
                             f"{self._window} batches: nothing below this layer learns", layer, "output_grad",
                             diagnosis=self._hlr_evidence, fix=self._activation_fix(layer),
                             severity=severity_if(failing(self._facts, step.values.get("loss", math.nan),
                                                          self._first_loss)))
                return

    def _frozen_weights(self, step) -> None:
        frozen = step.stat("update", "zero_frac")
        grad_zero = step.stat("weight_grad", "zero_frac")
        applies = step.applies("update")
        for layer in np.flatnonzero(applies):
            if self._persist("frozen", int(layer), frozen[layer] >= 1.0 and grad_zero[layer] < 1.0):
                self._report(step, "EBW", f"weights never change for {self._window} batches although the "
                             "gradient is not zero", int(layer), "weights", diagnosis="HLR",
                             fix=("HLR", "raise the learning rate", None))

    def _learning_rate_evidence(self, step) -> None:
        loss = step.values.get("loss", math.nan)
        if self._first_loss is None:
            self._first_loss = loss
        first_epoch = step.epoch == 0
        if not first_epoch or self._hlr_evidence:
            return
        um, us = step.stat("update", "mean"), step.stat("update", "std")
        wm, ws = step.stat("weights", "mean"), step.stat("weights", "std")
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.sqrt(um**2 + us**2) / np.sqrt(wm**2 + ws**2)
        replaced = bool(np.any(ratio[np.isfinite(ratio)] >= UPDATE_RATIO))
        exploded = not math.isfinite(loss) or (math.isfinite(self._first_loss) and self._first_loss > 0
                                               and loss >= EXPLOSION * self._first_loss)
        if replaced and exploded:
            # Evidence, not yet a finding: it becomes the diagnosis of the layer
            # findings it explains, and a finding of its own only if none follows.
            self._hlr_evidence = "HLR"

    def _fix(self):
        return ("HLR", "lower the learning rate", None) if self._hlr_evidence else None

    def _epoch_checks(self, step) -> None:
        if self._hlr_evidence and not self.findings:
            self._report(step, "ELR", "the learning rate looks too high: an update was as large as the "
                         "weights while the loss blew up", diagnosis="HLR",
                         fix=("HLR", "lower the learning rate", None))
        loss = step.logs.get("loss", math.nan)
        if not math.isfinite(loss):
            return
        self._epoch_losses.append(loss)
        first, best = self._epoch_losses[0], min(self._epoch_losses)
        if len(self._epoch_losses) >= PATIENCE and best >= (1 - MIN_GAIN) * first:
            self._report(step, "MDL", f"in {len(self._epoch_losses)} epochs the training loss never got "
                         f"{MIN_GAIN:.0%} below its first epoch ({first:.4g})",
                         diagnosis=self._hlr_evidence, fix=self._fix(),
                         severity=severity_if(failing(self._facts, best, first)))

    # -- faithful mode -------------------------------------------------------------

    def _observe_faithful(self, step) -> None:
        if step.kind != "batch":
            return
        f = self._faithful
        f.counter += 1
        for check in (self._f_forward, self._f_weights, self._f_metrics, self._f_delta, self._f_output_grad):
            if check(step, f):
                return

    def _f_flag(self, step, code, message, layer=None, stage=None) -> bool:
        self._report(step, code, message, layer, stage)
        return True

    def _f_series(self, step, f, stage, layers, code, exempt=(), weights_check=None):
        """NaN/Inf, zero-frequency and 5-batch-unchanged checks of one stage, as the callback ran them."""
        means = step.stat(stage, "mean")
        for layer in layers:
            m = float(means[layer])
            if not math.isfinite(m):
                return self._f_flag(step, code(layer), f"{stage} mean is {m}", layer, stage)
            f.windows.setdefault((stage, layer), []).append(m)
            if m == 0:
                f.zeros[(stage, layer)] = f.zeros.get((stage, layer), 0) + 1
                if f.zeros[(stage, layer)] >= f.counter / 2:
                    return self._f_flag(step, code(layer), f"{stage} mean is zero too often", layer, stage)
        if f.counter % FAITHFUL_N == 0:
            for layer in layers:
                window = f.windows.get((stage, layer), [])[-FAITHFUL_N:]
                if (weights_check or (lambda i: True))(layer) and self._cls(layer) not in exempt and window \
                        and np.mean(window) == np.max(window):
                    return self._f_flag(step, code(layer), f"{stage} mean unchanged over {FAITHFUL_N} batches",
                                        layer, stage)
                f.windows[(stage, layer)] = []
        return False

    def _f_forward(self, step, f) -> bool:
        layers = list(range(len(step.stats)))
        return self._f_series(step, f, "output", layers, self._forward_code, exempt=("Flatten",))

    def _f_weights(self, step, f) -> bool:
        layers = [i for i in reversed(range(len(step.stats))) if step.applies("weights")[i]]
        return self._f_series(step, f, "weights", layers, lambda i: "EBW",
                              weights_check=lambda i: self._cls(i) == "Dense")

    def _f_delta(self, step, f) -> bool:
        layers = [i for i in reversed(range(len(step.stats))) if self._cls(i) == "Dense"]
        return self._f_series(step, f, "weight_grad", layers, lambda i: "EBDW")

    def _f_output_grad(self, step, f) -> bool:
        layers = [i for i in reversed(range(len(step.stats))) if step.applies("output_grad")[i]]
        return self._f_series(step, f, "output_grad", layers, lambda i: "EOG", exempt=("Flatten",))

    def _f_metrics(self, step, f) -> bool:
        for key, code in (("loss", "ELF"), ("accuracy", "EAF")):
            if key not in step.values:
                continue
            v = step.values[key]
            if not math.isfinite(v):
                return self._f_flag(step, code, f"invalid {key} ({v})")
            f.metrics.setdefault(key, []).append(v)
            if f.counter % FAITHFUL_N == 0:
                window = f.metrics[key][-FAITHFUL_N:]
                if np.mean(window) == np.max(window):
                    return self._f_flag(step, "MDL", f"{key} unchanged over {FAITHFUL_N} batches")
                f.metrics[key] = []
        return False


class _FaithfulState:
    def __init__(self):
        self.counter = 0
        self.windows: dict = {}
        self.zeros: dict = {}
        self.metrics: dict = {}


def _nonfinite(step, stage: str) -> np.ndarray:
    """[layer] NaN/Inf elements, or values so large that their float32 mean overflows."""
    applies = step.applies(stage)
    with np.errstate(invalid="ignore"):
        bad = (step.stat(stage, "nan") > 0) | (step.stat(stage, "inf") > 0) | ~np.isfinite(step.stat(stage, "mean"))
    return np.asarray(applies & bad)
