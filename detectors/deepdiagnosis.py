"""DeepDiagnosis's callback (Wardat, Cruz, Le, Rajan, ICSE 2022) as its authors released it, replayed on the trace.

Source: https://github.com/DeepDiagnosis/ICSE2022 at commit
500b0176e38d53bf6744231526c545e0554a2230, ``callback/callbacks.py``: the callback
``mapFaluireToFix`` (its ``on_epoch_end``), the ``identify*`` tests and the
``*Analysis`` functions that map a symptom to a root cause and a fix.

Once per epoch, in the callback's order, the first symptom ends the run (every
finding is an error):

1. each layer, first to last: the output layer's range (epoch 0 only, unless
   its name is ``softmax``: labels outside the activation's range; a ``dense``
   or linear output wider than 10x the labels' range; a ReLU or linear output
   under a categorical cross-entropy); a numerical error (output mean NaN, Inf
   or exactly 0); a dead layer (a ReLU/exponential layer with >= 70 % of its
   outputs <= 0, at the last epoch only); a saturated activation (every 5th
   epoch: more than half of a sigmoid/tanh's inputs beyond +-5);
2. every 5th epoch: a hidden layer's output mean unchanged over the last 5
   epochs (mean == max, exactly; Flatten exempt);
3. the epoch loss: NaN/Inf; exactly flat over windows of 5 epochs; the epoch
   accuracy: NaN, Inf or 0; exactly flat over windows of 20 epochs;
4. each Dense layer, last to first: weight-gradient mean NaN, Inf or 0; mean
   |gradient| below 1e-7 (vanishing); kernel mean NaN, Inf or 0; every 5th
   epoch, gradient or kernel mean unchanged over the last 5 epochs.

Layers are told apart by name, as in the release: an activation is seen only
in a separate Activation layer (a name containing ``activation``); a Dense
layer is one whose name contains ``dense``, so a Dense layer's own activation
counts as linear.

The fix follows the released decision tree. Its evidence: inputs outside
[-1, 1] ("normalize the data", CPP); the learning-rate test, lr x |grad W| /
|mean W| per layer outside [1e-5, 1e-1] ("learning rate", HLR); then per symptom
a change of activation (ACH), loss (LCH), optimizer (OCH), or a layer added
(LAD). The release's "poor weight" test is dead code (it takes the sample
variance, ddof=1, of one number: NaN), so it never names the initialisation,
and neither does this port.

Deviations (the trace, not the tool, forces them):

* Statistics are those of the epoch's last training batch, taken inside the
  training step; the callback recomputed outputs and gradients after the
  epoch on the first ``batch_size`` training rows. Kernel means are exact
  (the kernel after the epoch's last update).
* Counts the trace does not keep are bounded: the share of a sigmoid/tanh's
  saturated inputs from below, from the activation's output mean and spread
  (``detectors.rules.saturated_fraction``), so only heavy saturation shows;
  mean |gradient| from above, by min(RMS, nonzero share x largest |value|).
  A dead ReLU counts exact zeros (a ReLU's outputs <= 0 are its zeros).
* The learning-rate test pairs each layer's kernel mean with its own kernel
  gradient; the release zipped the per-layer list with the list of all weight
  tensors (kernels and biases interleaved), which the trace cannot reproduce.
  The gradient norm is estimated (``detectors.steps.l2_norm``); the learning
  rate is the one the step used, where the release took a constructor argument.
* The release calls ``LossAnalysis`` without its file argument, so "loss not
  decreasing" crashes the fit before a fix is written; this port gives that
  function's fix. An output activation the release has no range for raised
  NameError; here it has no range problem. The inputs' range is that of the
  data sample in the facts (up to 4096 rows; live, ``sample=(x, y)``).
"""

from __future__ import annotations

import math

import numpy as np

from detectors import rules
from detectors.base import Detector
from detectors.steps import l2_norm, nonfinite, rms

N = 5  # the window of the unchanged-tensor and loss tests (epochs)
FRQ = 20  # the window of the accuracy test (epochs)
DEAD = 0.7  # threshold_layer_1
SATURATION, SATURATED = 5.0, 0.5  # +-5 on the input; more than half of it
VANISHING = 1e-7  # threshold_VG
LR_BAND = (1e-3 / 100, 1e-3 * 100)  # LearnRate_threshold / 100 and x 100
SPREAD = 10.0  # a linear output wider than 10x the labels' range
RANGE = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, math.inf), "elu": (-1.0, math.inf),
         "linear": (-math.inf, math.inf)}
CATEGORICAL = ("categorical_crossentropy", "sparse_categorical_crossentropy")


class DeepDiagnosis(Detector):
    """DeepDiagnosis's released callback: eight symptoms once per epoch, a root cause and a fix, the first ends the run.

    Args:
        sample: ``(x, y)`` for a live Keras callback's range tests (the harness passes the case's facts).
        stop_on_finding: as a live Keras callback, stop at the finding (the tool stopped training there).
        verbose: as a live callback, print the finding when it is made.

    Example (the toy trace's statistics are all 0: a layer output's mean of exactly 0 is a numerical error)::

        f = replay(DeepDiagnosis(), make_trace([0.7] * 6, steps_per_epoch=1))[0]
        f.code, f.epoch, f.fix   # ('NUMERICAL', 0, 'change the activation function at layer 1')
    """

    name = "deepdiagnosis"
    version = "1"
    codes = {
        "NUMERICAL": "NaN/Inf values", "DEAD_NODE": "dead ReLU outputs", "SATURATED": "saturated activations",
        "UNCHANGED": "an output that does not move", "VANISHING": "vanishing weight gradients",
        "OUT_OF_RANGE": "output cannot reach the labels", "INVALID_LOSS": "NaN/Inf loss",
        "INVALID_ACCURACY": "NaN/Inf or zero accuracy", "LOSS_NOT_DECREASING": "the loss is exactly flat",
        "ACCURACY_NOT_INCREASING": "the accuracy is exactly flat",
    }
    localizes = True
    suggests = True

    def __init__(self, sample=None, stop_on_finding: bool = False, verbose: int = 1):
        self.sample = sample
        super().__init__(stop_on_finding=stop_on_finding, verbose=verbose)

    def reset(self) -> None:
        super().reset()
        self._counter = 1  # epochs seen, plus one, as the callback counted them
        self._forward: dict = {}  # layer -> output means of the current window
        self._grads: dict = {}  # Dense layer -> weight-gradient means of the current window
        self._kernels: dict = {}  # Dense layer -> kernel means of the current window
        self._losses: list = []
        self._accs: list = []
        self._last = None
        self._done = False
        self._names: list[str] = []
        self._unscaled = self._lr_off = False
        self._ratios = np.array([])

    def start(self, meta: dict) -> None:
        from harness.facts import with_sample

        super().start(meta)
        self._facts = with_sample(self._facts, self.sample)

    def observe(self, step):
        if self._done:
            return []
        self._describe_layers(step)
        if step.kind == "batch":
            self._last = step
            return []
        before = len(self.findings)
        last = self._last
        if last is not None and last.stats is not None:
            self._names = [self._name(i) for i in range(len(last.stats))]
            self._evidence(last)
            if not self._forward_checks(step, last) and not self._metrics(step):
                self._weight_checks(step, last)
        else:
            self._metrics(step)
        self._counter += 1
        self._done = len(self.findings) > before
        return self.findings[before:]

    def _name(self, i: int) -> str:
        """``get_layer_name``: an Activation layer by its activation, any other layer by its name."""
        layer = self._layers[i] if i < len(self._layers) else {}
        name = str(layer.get("name", f"layer{i}"))
        return str(layer.get("activation")) if "activation" in name and layer.get("activation") else name

    # -- the evidence of the decision tree --------------------------------------------------

    def _evidence(self, step) -> None:
        x = self._facts.get("x") or {}
        self._unscaled = x.get("min") is not None and (x["min"] < -1 or x["max"] > 1)
        lr = step.values.get("learning_rate", (self._facts.get("optimizer") or {}).get("learning_rate"))
        has = step.applies("weights")
        grad, mean = l2_norm(step, "weight_grad", self._layers), step.stat("weights", "mean").astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = (lr or math.nan) * grad[has] / np.abs(mean[has])
        self._lr_off = bool(np.any((ratios > LR_BAND[1]) | (ratios < LR_BAND[0])))
        self._ratios = ratios

    def _fix(self, chain: tuple, layer: int | None = None):
        """Walk one *Analysis function: the first of its tests that holds names the fix."""
        n = len(self._names)
        for test in chain:
            if n == 0 and test in ("activation", "last_activation", "loss"):
                continue
            if test == "data" and self._unscaled:
                return "CPP", "normalize the data", None, ()
            if test == "lr" and self._lr_off:
                shown = ", ".join(f"{r:.2g}" for r in self._ratios[:4])
                return "HLR", f"change the learning rate (lr x |grad W| / |mean W| = {shown}, outside [1e-5, 1e-1])", \
                    None, ()
            if test == "activation":
                k = min(layer + 1, n - 1)
                return "ACH", f"change the activation function at layer {k}", k, ()
            if test == "last_activation":
                return "ACH", f"change the activation function at layer {n - 1}", n - 1, ()
            if test == "optimizer":
                return "OCH", "change the optimizer", None, ()
            if test == "softmax":
                return "ACH", "change the activation function to softmax", layer, ()
            if test == "loss":
                k = min(layer + 1, n - 1)
                return "LCH", "change the loss function", None, (f"ACH: change the activation function at layer {k}",)
            if test == "dropout":
                return "LAD", "add a dropout layer", None, ("AAL: add the missing activation function",)
            if test == "layers":
                return "LAD", "add or delete a layer", None, ("LRM: delete a layer",
                                                               "ACH: change the sigmoid activation")
        return None, None, None, ()

    def _flag(self, step, code: str, message: str, chain: tuple, layer: int | None = None, stage: str | None = None):
        fix_code, fix, fix_layer, alternatives = self._fix(chain, layer)
        self.report(step, code, f"{message} (epoch {step.epoch + 1})", severity="error", layer=layer, stage=stage,
                    diagnosis=fix_code, fix=fix, fix_code=fix_code, fix_layer=fix_layer, alternatives=alternatives)
        return True

    def _numerical_chain(self, location: str, layer: int) -> tuple:
        """``NumericalErrorAnalysis``."""
        n = len(self._names)
        if location in ("FW", "W"):
            return ("data", "lr", "activation")
        if layer + 2 == n:
            return ("loss",)
        return ("activation",) if layer + 1 < n else ()

    # -- the checks, in the callback's order ------------------------------------------------

    def _forward_checks(self, step, last) -> bool:
        names, n = self._names, len(self._names)
        means = last.stat("output", "mean")
        bad = nonfinite(last, "output")
        for i in range(n):
            self._forward.setdefault(i, []).append(means[i])
            if i + 1 == n and names[i] != "softmax" and step.epoch == 0 and self._out_of_range(last, i):
                return self._flag(step, "OUT_OF_RANGE", f"layer {i}'s output cannot match the labels' range",
                                  ("softmax",), i, "output")
            if bad[i] or means[i] == 0:
                return self._flag(step, "NUMERICAL", f"layer {i}'s output mean is {means[i]:g}",
                                  self._numerical_chain("FW", i), i, "output")
            if names[i] in ("relu", "exponential") and self._budget.is_final(step.epoch) \
                    and last.stat("output", "zero_frac")[i] >= DEAD:
                return self._flag(step, "DEAD_NODE", f"at least {DEAD:.0%} of layer {i}'s outputs are <= 0",
                                  ("data", "lr", "dropout"), i, "output")
            if self._counter % N == 0 and i + 1 < n and names[i + 1] in ("sigmoid", "tanh") \
                    and self._saturated(last, i, names[i + 1]):
                return self._flag(step, "SATURATED", f"more than half of layer {i + 1}'s inputs are beyond "
                                  f"+-{SATURATION:g}", ("data", "lr", "dropout"), i, "output")
        if self._counter % N == 0:
            for i in range(n - 1):
                if _flat(self._forward[i][-N:]) and "flatten" not in names[i]:
                    return self._flag(step, "UNCHANGED", f"layer {i}'s output mean unchanged over {N} epochs",
                                      ("lr", "optimizer"), i, "output")
                self._forward[i] = []
        return False

    def _out_of_range(self, last, k: int) -> bool:
        """``identifyRange`` of the output layer against the labels."""
        y, loss, act = self._facts.get("y") or {}, self._facts.get("loss"), self._names[k]
        linear = "dense" in act or act == "linear"
        if (act == "relu" or linear) and loss in CATEGORICAL:
            return True
        lo, hi = RANGE["linear" if linear else act] if linear or act in RANGE else (None, None)
        if lo is None or y.get("min") is None:
            return False
        spread = float(last.stat("output", "max")[k]) - float(last.stat("output", "min")[k])
        if linear and abs(spread) > abs(y["max"] - y["min"]) * SPREAD:
            return True
        return y["min"] < lo or y["max"] > hi

    def _saturated(self, last, k: int, act: str) -> bool:
        """More than half of the activation's inputs (layer k's outputs) beyond +-5: a lower bound from the trace."""
        lo, hi = float(last.stat("output", "min")[k]), float(last.stat("output", "max")[k])
        if lo >= SATURATION or hi <= -SATURATION:
            return True
        share = rules.saturated_fraction(act, last.stat("output", "mean")[k + 1], last.stat("output", "std")[k + 1])
        return bool(share > SATURATED)

    def _metrics(self, step) -> bool:
        loss = step.logs.get("loss")
        if loss is not None:
            self._losses.append(loss)
            if not math.isfinite(loss):
                return self._flag(step, "INVALID_LOSS", f"the loss is {loss}", self._invalid_chain())
            if self._counter % N == 0:
                if _flat(self._losses[-N:]):
                    return self._flag(step, "LOSS_NOT_DECREASING", f"the loss is unchanged over {N} epochs",
                                      ("data", "lr", "optimizer"))
                self._losses = []
        acc = step.logs.get("acc", step.logs.get("accuracy"))
        if acc is not None:
            self._accs.append(acc)
            if not math.isfinite(acc) or acc == 0:
                return self._flag(step, "INVALID_ACCURACY", f"the accuracy is {acc}", self._invalid_chain())
            if self._counter % FRQ == 0:
                if _flat(self._accs[-FRQ:]):
                    return self._flag(step, "ACCURACY_NOT_INCREASING", f"the accuracy is unchanged over {FRQ} epochs",
                                      ("data", "lr", "optimizer"))
                self._accs = []
        return False

    def _invalid_chain(self) -> tuple:
        """``AccuracyInvalid``: a dense/linear last layer -> its activation; else the learning rate, the optimizer."""
        top = self._names[-1] if self._names else ""
        return ("last_activation",) if "dense" in top or top == "linear" else ("lr", "optimizer")

    def _weight_checks(self, step, last) -> bool:
        names, n = self._names, len(self._names)
        g_mean, w_mean = last.stat("weight_grad", "mean"), last.stat("weights", "mean")
        g_bad, w_bad = nonfinite(last, "weight_grad"), nonfinite(last, "weights")
        zero, peak = last.stat("weight_grad", "zero_frac"), np.maximum(np.abs(last.stat("weight_grad", "min")),
                                                                       np.abs(last.stat("weight_grad", "max")))
        g_abs = np.minimum(rms(last, "weight_grad"), (1 - zero) * peak)  # >= mean |gradient|
        has_g, has_w = last.applies("weight_grad"), last.applies("weights")
        for i in reversed(range(n)):
            if "dense" in names[i] and has_g[i]:
                if g_bad[i] or g_mean[i] == 0:
                    return self._flag(step, "NUMERICAL", f"layer {i}'s weight-gradient mean is {g_mean[i]:g}",
                                      self._numerical_chain("DW", i), i, "weight_grad")
                if g_abs[i] < VANISHING:
                    return self._flag(step, "VANISHING", f"layer {i}'s mean |weight gradient| is below {VANISHING:g}",
                                      ("lr", "layers"), i, "weight_grad")
                self._grads.setdefault(i, []).append(g_mean[i])
            if has_w[i]:
                self._kernels.setdefault(i, []).append(w_mean[i])
                if w_bad[i] or w_mean[i] == 0:
                    return self._flag(step, "NUMERICAL", f"layer {i}'s kernel mean is {w_mean[i]:g}",
                                      self._numerical_chain("W", i), i, "weights")
        if self._counter % N == 0:
            for i in reversed(range(n)):
                if "dense" in names[i] and _flat(self._grads.get(i, [])[-N:]):
                    return self._flag(step, "UNCHANGED", f"layer {i}'s weight-gradient mean unchanged over {N} epochs",
                                      ("lr", "optimizer"), i, "weight_grad")
                self._grads[i] = []
                if "dense" in names[i] and _flat(self._kernels.get(i, [])[-N:]):
                    return self._flag(step, "UNCHANGED", f"layer {i}'s kernel mean unchanged over {N} epochs",
                                      ("lr", "optimizer"), i, "weights")
                self._kernels[i] = []
        return False


def _flat(window) -> bool:
    """``meanResult``: the mean of the window equals its maximum (so every value is the same), exactly."""
    return bool(len(window)) and bool(np.mean(window) == np.max(window))
