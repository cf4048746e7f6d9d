"""The DeepLocalize authors' released callback (Wardat et al., ICSE 2021), replayed on the trace.

Its rules, as the callback ran them: means only; windows of 5 non-overlapping
batches; "unchanged" means the 5 means are exactly equal (mean == max); a mean
exactly 0 is an error once it happened in at least half the batches seen so
far; weight trends and weight gradients only on Dense layers; Flatten exempt
from the forward and output-gradient trend checks; the callback's order
(forward, weights, loss, accuracy, weight gradients, output gradients); the
first hit ends the run. Message codes as ``detectors.layer_trend``. Two
differences are unavoidable and documented: the statistics come from the
training step itself (the callback recomputed the forward pass after the
update, on an unshuffled slice that was not the batch just trained), and the
per-batch loss/accuracy are the batch's own values as Keras 2.2 logged them.
"""

from __future__ import annotations

import math

import numpy as np

from detectors import rules
from detectors.base import Detector, Finding
from detectors.layer_trend import LayerTrend

N = 5  # the released callback's window


class LayerTrendFaithful(Detector):
    """The released DeepLocalize callback: its first finding, with a layer and a message code, no fix.

    Args:
        stop_on_finding: as a live Keras callback, stop training at the finding.
        verbose: as a live callback, print the finding when it is made.
    """

    name = "layer-trend-faithful"
    version = "3"
    codes = {code: words for code, words in LayerTrend.codes.items() if code != "ELR"}
    localizes = True
    suggests = False  # the released callback suggested no fixes

    def reset(self) -> None:
        super().reset()
        self._done = False
        self._counter = 0  # batches seen, as the callback counted them
        self._windows: dict = {}  # (stage, layer) -> means of the current window
        self._zeros: dict = {}  # (stage, layer) -> batches whose mean was exactly zero
        self._metrics: dict = {}  # "loss"/"accuracy" -> values of the current window

    def observe(self, step) -> list[Finding]:
        if self._done:
            return []
        self._describe_layers(step)
        if step.kind != "batch":
            return []
        before = len(self.findings)
        self._counter += 1
        for check in (self._forward, self._weights, self._metrics_trend, self._delta, self._output_grad):
            if check(step):
                break
        self._done = len(self.findings) > before
        return self.findings[before:]

    def _flag(self, step, code: str, message: str, layer: int | None = None, stage: str | None = None) -> bool:
        self.report(step, code, message, layer=layer, stage=stage, severity="error")
        return True

    def _cls(self, layer: int) -> str:
        return rules.layer_class(self._layers, layer)

    def _series(self, step, stage: str, layers, code, exempt=(), weights_check=None) -> bool:
        """NaN/Inf, zero-frequency and 5-batch-unchanged checks of one stage, as the callback ran them."""
        means = step.stat(stage, "mean")
        for layer in layers:
            m = float(means[layer])
            if not math.isfinite(m):
                return self._flag(step, code(layer), f"{stage} mean is {m}", layer, stage)
            self._windows.setdefault((stage, layer), []).append(m)
            if m == 0:
                self._zeros[(stage, layer)] = self._zeros.get((stage, layer), 0) + 1
                if self._zeros[(stage, layer)] >= self._counter / 2:
                    return self._flag(step, code(layer), f"{stage} mean is zero too often", layer, stage)
        if self._counter % N == 0:
            for layer in layers:
                window = self._windows.get((stage, layer), [])[-N:]
                if (weights_check or (lambda i: True))(layer) and self._cls(layer) not in exempt and window \
                        and np.mean(window) == np.max(window):
                    return self._flag(step, code(layer), f"{stage} mean unchanged over {N} batches", layer, stage)
                self._windows[(stage, layer)] = []
        return False

    def _forward(self, step) -> bool:
        layers = list(range(len(step.stats)))
        return self._series(step, "output", layers, lambda i: rules.forward_code(self._layers, i),
                            exempt=("Flatten",))

    def _weights(self, step) -> bool:
        layers = [i for i in reversed(range(len(step.stats))) if step.applies("weights")[i]]
        return self._series(step, "weights", layers, lambda i: "EBW", weights_check=lambda i: self._cls(i) == "Dense")

    def _delta(self, step) -> bool:
        layers = [i for i in reversed(range(len(step.stats))) if self._cls(i) == "Dense"]
        return self._series(step, "weight_grad", layers, lambda i: "EBDW")

    def _output_grad(self, step) -> bool:
        layers = [i for i in reversed(range(len(step.stats))) if step.applies("output_grad")[i]]
        return self._series(step, "output_grad", layers, lambda i: "EOG", exempt=("Flatten",))

    def _metrics_trend(self, step) -> bool:
        for key, code in (("loss", "ELF"), ("accuracy", "EAF")):
            if key not in step.values:
                continue
            v = step.values[key]
            if not math.isfinite(v):
                return self._flag(step, code, f"invalid {key} ({v})")
            self._metrics.setdefault(key, []).append(v)
            if self._counter % N == 0:
                window = self._metrics[key][-N:]
                if np.mean(window) == np.max(window):
                    return self._flag(step, "MDL", f"{key} unchanged over {N} batches")
                self._metrics[key] = []
        return False
