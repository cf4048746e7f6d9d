"""The layer-trend localizer (after DeepLocalize, Wardat et al., ICSE 2021), with our constants.

Watches, per layer and per training batch, the forward output, the kernel, its
gradient, the update the optimizer made, and the gradient of the loss with
respect to the layer's output, and reports where a trend goes wrong: NaN/Inf,
stuck at zero, or never changing. Loss and accuracy are checked too ("model
does not learn"). Each finding names the layer, the stage and the paper's
message code: EBA/EAA error before/after activation (forward output of a
Dense/Conv or of an Activation layer), EBW error in weights, EBDW error in
weight gradients, ELF error in the loss, EAF error in accuracy, MDL model does
not learn; EOG (output gradient) and ELR (learning rate) are ours. The
authors' released callback, replayed as they ran it, is
``detectors.layer_trend_faithful``.

The rules (constants below, one set for every case):

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

Example (a loss that turns NaN at the second batch: an error in the loss, the loss function blamed)::

    f = replay(LayerTrend(), make_trace([1.0, math.nan], 1))[0]   # detectors.toy_traces.make_trace
    f.code, f.epoch, f.diagnosis   # ('ELF', 1, 'LCH')
"""

from __future__ import annotations

import math

import numpy as np

from detectors import rules
from detectors.base import Detector, Finding, failing, severity_if
from detectors.steps import MIN_WINDOW, TOL, WINDOW, Persistence, nonfinite, rms

PATIENCE = 5  # epochs after which a loss that never fell is "model does not learn"
MIN_GAIN = 0.01  # ... "never fell" = never 1 % below the first epoch's loss (noise-proof)
UPDATE_RATIO = 0.9  # |update| >= 0.9 |weights after it|: the step replaced the weights
EXPLOSION = 10.0  # loss rising 10x above its first value inside the first epoch

LOWER_LR = {"fix_code": "HLR", "fix": "lower the learning rate"}


class LayerTrend(Detector):
    """Localize faults from per-layer trends.

    Args:
        mode: only ``"default"``, kept so that existing calls still work; the
            released callback's rules are :class:`LayerTrendFaithful`.
        stop_on_finding: as a live Keras callback, stop training at the first error.
        verbose: as a live callback, print findings as they are made.
    """

    name = "layer-trend"
    version = "3"
    # The paper's message codes; EOG and ELR are this detector's.
    codes = {
        "EBA": "error before activation (a layer's output)", "EAA": "error after activation",
        "EBW": "error in the weights", "EBDW": "error in the weight gradients", "ELF": "error in the loss",
        "EAF": "error in the accuracy", "MDL": "model does not learn", "EOG": "error in the output gradient",
        "ELR": "learning rate too high",
    }
    localizes = True
    suggests = True

    def __init__(self, mode: str = "default", stop_on_finding: bool = False, verbose: int = 1):
        if mode != "default":
            raise ValueError(f"mode is 'default', not {mode!r}; the released callback's rules are "
                             "detectors.layer_trend_faithful.LayerTrendFaithful ('layer-trend-faithful')")
        super().__init__(stop_on_finding=stop_on_finding, verbose=verbose)

    def reset(self) -> None:
        super().reset()
        self._persist = Persistence(WINDOW)
        self._prev_mean: dict = {}
        self._hlr_evidence = None
        self._first_loss = None
        self._epoch_losses: list[float] = []

    def start(self, meta: dict) -> None:
        super().start(meta)
        self._persist = Persistence.for_run(meta, WINDOW, MIN_WINDOW)

    def observe(self, step) -> list[Finding]:
        self._describe_layers(step)
        before = len(self.findings)
        if step.kind == "epoch":
            self._epoch_checks(step)
        else:
            self._learning_rate_evidence(step)
            if not self._numerical(step):  # the trends of a batch with NaN/Inf are meaningless
                self._constant_outputs(step)
                self._vanished_gradients(step)
                self._frozen_weights(step)
        return self.findings[before:]

    def _activation_fix(self, layer: int) -> dict:
        """Change the activation of ``layer``, or of the nearest layer before it that has one."""
        k = rules.activation_layer(self._layers, layer)
        return {"fix_code": "ACH", "fix": f"change the activation of layer {k}", "fix_layer": k} if k is not None \
            else {}

    def _fix(self) -> dict:
        return LOWER_LR if self._hlr_evidence else {}

    # -- batch checks ------------------------------------------------------------

    def _numerical(self, step) -> bool:
        """NaN/Inf anywhere; True when this batch had any.

        Layer findings come before the loss's: when the loss and a layer go bad
        in the same batch, the layer is the more useful pointer.
        """
        bad = nonfinite(step, "output")
        for layer in np.flatnonzero(bad)[:1]:
            self.report(step, rules.forward_code(self._layers, layer), "output has NaN/Inf values", layer=int(layer),
                        stage="output", diagnosis=self._hlr_evidence, severity="error", **self._fix())
        any_bad = bool(bad.any())
        for stage, code in (("output_grad", "EOG"), ("weight_grad", "EBDW"), ("weights", "EBW")):
            for layer in np.flatnonzero(nonfinite(step, stage))[-1:]:
                any_bad = True
                self.report(step, code, f"{stage.replace('_', ' ')} has NaN/Inf values", layer=int(layer),
                            stage=stage, diagnosis=self._hlr_evidence, severity="error", **self._fix())
        loss = step.values.get("loss", 0.0)
        if not math.isfinite(loss):
            any_bad = True
            self.report(step, "ELF", f"the loss is {loss}", diagnosis=self._hlr_evidence or "LCH", severity="error",
                        **(self._fix() or {"fix_code": "LCH",
                                           "fix": "check the loss against the output activation and labels"}))
        if not math.isfinite(step.values.get("accuracy", 0.0)):
            self.report(step, "EAF", "accuracy is not a number", diagnosis=self._hlr_evidence, severity="error")
        return any_bad

    def _constant_outputs(self, step) -> None:
        mean, std = step.stat("output", "mean"), step.stat("output", "std")
        constant = []
        for layer in range(len(mean)):
            scale = max(1.0, abs(mean[layer])) if math.isfinite(mean[layer]) else 1.0
            prev = self._prev_mean.get(layer, math.nan)
            still = abs(mean[layer] - prev) <= TOL * scale
            flat = std[layer] <= TOL * scale
            self._prev_mean[layer] = mean[layer]
            constant.append(self._persist(("constant", layer), bool(flat and still)))
        for layer, is_constant in enumerate(constant):
            if is_constant and (layer == 0 or not constant[layer - 1]):  # blame the first constant layer only
                value = float(mean[layer])
                what = "only zeros" if value == 0 else f"the same value ({value:.4g}) for every input"
                self.report(step, rules.forward_code(self._layers, layer),
                            f"output is {what} for {self._persist.window} batches", layer=layer, stage="output",
                            diagnosis=self._hlr_evidence, severity="error",
                            **(self._fix() or self._activation_fix(layer)))

    def _vanished_gradients(self, step) -> None:
        zero = step.stat("output_grad", "zero_frac")
        applies = step.applies("output_grad")
        held = [bool(applies[i]) and self._persist(("no-grad", i), zero[i] >= 1.0) for i in range(len(zero))]
        for layer in range(len(held) - 1, -1, -1):
            above = next((held[j] for j in range(layer + 1, len(held)) if applies[j]), False)
            if held[layer] and not above:
                failing_now = failing(self._facts, step.values.get("loss", math.nan), self._first_loss)
                self.report(step, "EOG", f"the loss gradient w.r.t. the output is exactly zero for "
                            f"{self._persist.window} batches: nothing below this layer learns", layer=layer,
                            stage="output_grad", diagnosis=self._hlr_evidence, severity=severity_if(failing_now),
                            **self._activation_fix(layer))
                return

    def _frozen_weights(self, step) -> None:
        frozen = step.stat("update", "zero_frac")
        grad_zero = step.stat("weight_grad", "zero_frac")
        for layer in np.flatnonzero(step.applies("update")):
            if self._persist(("frozen", int(layer)), frozen[layer] >= 1.0 and grad_zero[layer] < 1.0):
                self.report(step, "EBW", f"weights never change for {self._persist.window} batches although the "
                            "gradient is not zero", layer=int(layer), stage="weights", diagnosis="HLR",
                            severity="error", fix_code="HLR", fix="raise the learning rate")

    def _learning_rate_evidence(self, step) -> None:
        loss = step.values.get("loss", math.nan)
        if self._first_loss is None:
            self._first_loss = loss
        if step.epoch != 0 or self._hlr_evidence:
            return
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = rms(step, "update") / rms(step, "weights")
        replaced = bool(np.any(ratio[np.isfinite(ratio)] >= UPDATE_RATIO))
        exploded = not math.isfinite(loss) or (math.isfinite(self._first_loss) and self._first_loss > 0
                                               and loss >= EXPLOSION * self._first_loss)
        if replaced and exploded:
            # Evidence, not yet a finding: it becomes the diagnosis of the layer
            # findings it explains, and a finding of its own only if none follows.
            self._hlr_evidence = "HLR"

    # -- epoch checks ------------------------------------------------------------

    def _epoch_checks(self, step) -> None:
        if self._hlr_evidence and not self.findings:
            self.report(step, "ELR", "the learning rate looks too high: an update was as large as the "
                        "weights while the loss blew up", diagnosis="HLR", severity="error", **LOWER_LR)
        loss = step.logs.get("loss", math.nan)
        if not math.isfinite(loss):
            return
        self._epoch_losses.append(loss)
        first, best = self._epoch_losses[0], min(self._epoch_losses)
        if len(self._epoch_losses) >= PATIENCE and best >= (1 - MIN_GAIN) * first:
            self.report(step, "MDL", f"in {len(self._epoch_losses)} epochs the training loss never got "
                        f"{MIN_GAIN:.0%} below its first epoch ({first:.4g})", diagnosis=self._hlr_evidence,
                        severity=severity_if(failing(self._facts, best, first)), **self._fix())
