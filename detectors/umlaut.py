"""UMLAUT's heuristics (Schoop, Huang, Hartmann, CHI 2021) as its authors released them, replayed on the trace.

Source: https://github.com/BerkeleyHCI/umlaut at commit
68c2a0226d14c1ef8c8bc7856d594b8a4a3c6c68: ``umlaut/heuristics.py`` (the checks,
last changed in 3502516798690e4b6b22fa71a364a9e34adbc460), ``umlaut/callback.py``
(when they run) and ``umserver/errors.py`` (titles, hence severities, and the
solutions, hence the fixes).

Before training (``run_pretrain_heuristics``), from the program's facts:

* NO_SOFTMAX (critical): the last layer's *name* does not contain ``softmax``
  and the loss is not ``from_logits``;
* MISSING_ACTIVATION (critical): a layer before the last has a linear
  activation (except just before a layer named ``softmax``);
* FINAL_ACTIVATION (warning): the last layer (the one before it, if the last
  is named ``softmax``) has a non-linear activation.

At every epoch end (``run_epoch_heuristics``):

* INPUT_NOT_NORMALIZED (error): an input below -1 or above 1;
* LR_HIGH / LR_LOW (warnings): the learning rate above 0.01 or below 1e-7;
* OVERFITTING (warning): the validation loss rose since the previous epoch
  while the training loss did not (the one-epoch test);
* HIGH_VAL_ACCURACY (warning): from the 4th epoch (0-based 3) on, validation
  accuracy above 0.95, or more than 0.05 above the training accuracy.

UMLAUT only reports; it never stops a fit. Severity follows each message's
own title: "Critical:" and "Error:" are errors, "Warning:" warnings. Each
finding is made once (UMLAUT repeats it every epoch). Fixes are the
solutions' first suggestion in this project's codes, the others as
alternatives.

Deviations (the trace, not the tool, forces them):

* The input checks read the data sample in the facts (up to 4096 rows spread
  over the training set; live, ``sample=(x, y)``), where UMLAUT read the last
  batch's input tensor; they are reported at the first epoch end.
* Not reproducible from a trace, so left out: the dropout-rate check (>0.5:
  the facts keep no rates), the image-shape check and the floating-dtype
  check (no input shape or dtype), and NaN in the input under a NaN loss (the
  facts' sample keeps no NaN count).
* OVERFITTING compares with the previous epoch's logs, as Keras' History
  (last in the callback list) held them when UMLAUT read it; without
  validation logs the epoch checks that need them are skipped (UMLAUT raised
  KeyError). The learning rate is the one the epoch's last batch used.
"""

from __future__ import annotations

import math

from detectors.base import Detector

LR_RANGE = (1e-7, 0.01)  # check_learning_rate_range
INPUT_RANGE = (-1.0, 1.0)  # check_input_normalization
HIGH_VAL_ACC, VAL_OVER_TRAIN = 0.95, 0.05  # check_high_validation_acc
FIRST_ACC_EPOCH = 3  # "validation accuracy can be a bit random at first": epochs 0-2 skipped


class Umlaut(Detector):
    """UMLAUT's released heuristics: static checks before training, epoch checks after each epoch.

    Args:
        sample: ``(x, y)`` for a live Keras callback's input checks (the harness passes the case's facts).
        stop_on_finding: as a live Keras callback, stop at the first error (UMLAUT itself never stopped).
        verbose: as a live callback, print findings as they are made.

    Example (the toy trace's learning rate of 0.01 is float32 0.00999..., inside the range; its facts name no
    layers, so no static check runs)::

        replay(Umlaut(), make_trace([0.7] * 4, steps_per_epoch=2))   # []
    """

    name = "umlaut"
    version = "1"
    codes = {
        "NO_SOFTMAX": "no softmax layer before the loss", "MISSING_ACTIVATION": "a layer with a linear activation",
        "FINAL_ACTIVATION": "a non-linear last layer", "INPUT_NOT_NORMALIZED": "inputs beyond [-1, 1]",
        "LR_HIGH": "learning rate above 0.01", "LR_LOW": "learning rate below 1e-7",
        "HIGH_VAL_ACCURACY": "validation accuracy suspiciously high",
        "OVERFITTING": "validation loss rises while training loss falls",
    }
    localizes = True
    suggests = True

    def __init__(self, sample=None, stop_on_finding: bool = False, verbose: int = 1):
        self.sample = sample
        super().__init__(stop_on_finding=stop_on_finding, verbose=verbose)

    def reset(self) -> None:
        super().reset()
        self._static_done = False
        self._previous = None  # the previous epoch's logs
        self._lr = None  # the learning rate of the last batch seen

    def start(self, meta: dict) -> None:
        from harness.facts import with_sample

        super().start(meta)
        self._facts = with_sample(self._facts, self.sample)

    def observe(self, step):
        before = len(self.findings)
        self._describe_layers(step)
        if not self._static_done:
            self._static_done = True
            self._pretrain(step)
        if step.kind == "batch":
            self._lr = step.values.get("learning_rate", self._lr)
        else:
            self._epoch(step)
        return self.findings[before:]

    def _say(self, step, code, message, severity, layer=None, fix_code=None, fix=None, alternatives=(), static=False):
        self.report(step, code, message, severity=severity, layer=layer, diagnosis=fix_code, fix=fix,
                    fix_code=fix_code, fix_layer=layer if fix_code in ("ACH", "AAL") else None,
                    alternatives=alternatives, static=static)

    # -- run_pretrain_heuristics -----------------------------------------------------------

    def _pretrain(self, step) -> None:
        layers = self._facts.get("layers") or []
        if not layers:
            return
        last = len(layers) - 1
        softmax_last = "softmax" in str(layers[last].get("name", ""))
        if not softmax_last and not self._facts.get("from_logits"):
            self._say(step, "NO_SOFTMAX", f"the last layer ({layers[last].get('name')}) is not a softmax layer and the "
                      "loss does not take logits", "error", last, "LCH", "pass from_logits=True to the loss",
                      ("LAD: add a Softmax layer at the end of the model",), static=True)
        linear = [i for i, layer in enumerate(layers[:-1]) if layer.get("activation") == "linear"
                  and not (i == last - 1 and softmax_last)]
        if linear:
            names = ", ".join(f"{i} ({layers[i].get('name')})" for i in linear)
            self._say(step, "MISSING_ACTIVATION", f"layers {names} have a missing or linear activation", "error",
                      linear[0], "AAL", f"pass an activation (e.g. relu) to layer {linear[0]}", static=True)
        k = last - 1 if softmax_last and last > 0 else last
        act = layers[k].get("activation")
        if act is not None and act != "linear":
            self._say(step, "FINAL_ACTIVATION", f"the last layer ({layers[k].get('name')}) has activation {act}",
                      "warning", k, "ACH", f"remove the activation of layer {k}", static=True)

    # -- run_epoch_heuristics ----------------------------------------------------------------

    def _epoch(self, step) -> None:
        logs = step.logs
        x = self._facts.get("x") or {}
        if x.get("min") is not None and (x["min"] < INPUT_RANGE[0] or x["max"] > INPUT_RANGE[1]):
            self._say(step, "INPUT_NOT_NORMALIZED", f"inputs span [{x['min']:.4g}, {x['max']:.4g}], beyond the "
                      "typical [-1, 1]", "error", None, "CPP", "normalize the inputs to [-1, 1]")
        lr = self._learning_rate()
        if lr is not None and lr > LR_RANGE[1]:
            self._say(step, "LR_HIGH", f"the learning rate is {lr:.3g}", "warning", None, "HLR",
                      "lower the learning rate (typically 1e-5 to 1e-2)")
        elif lr is not None and lr < LR_RANGE[0]:
            self._say(step, "LR_LOW", f"the learning rate is {lr:.3g}", "warning", None, "HLR",
                      "raise the learning rate (typically 1e-5 to 1e-2)")
        previous, self._previous = self._previous, dict(logs)
        if previous is not None and all(_has(d, k) for d in (logs, previous) for k in ("loss", "val_loss")):
            d_loss, d_val = logs["loss"] - previous["loss"], logs["val_loss"] - previous["val_loss"]
            if d_val > 0 and d_loss <= 0:
                self._say(step, "OVERFITTING", f"epoch {step.epoch + 1}: the training loss changed by {d_loss:.2g} "
                          f"while the validation loss changed by {d_val:.2g}", "warning", None, "REG",
                          "add dropout (or reduce the model's power)", ("LSZ: reduce the units or filters of a layer",))
        val_key = "val_acc" if logs.get("val_acc") else "val_accuracy"
        acc_key = "acc" if logs.get("acc") else "accuracy"
        if step.epoch >= FIRST_ACC_EPOCH and _has(logs, val_key) and _has(logs, acc_key):
            val, acc = logs[val_key], logs[acc_key]
            if val > HIGH_VAL_ACC or val - acc > VAL_OVER_TRAIN:
                self._say(step, "HIGH_VAL_ACCURACY", f"epoch {step.epoch + 1}: validation accuracy {val:.3f}, "
                          f"training accuracy {acc:.3f}", "warning", None, None,
                          "check the labels and the split between training and validation data")

    def _learning_rate(self) -> float | None:
        lr = self._lr if self._lr is not None else (self._facts.get("optimizer") or {}).get("learning_rate")
        return lr if lr is not None and math.isfinite(lr) else None


def _has(logs: dict, key: str) -> bool:
    return key in logs and logs[key] is not None and math.isfinite(logs[key])

