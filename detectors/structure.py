"""A static checker (UMLAUT/NeuraLint-style): judge the program before it trains.

Reads only the static facts of a run (``harness.facts``: layers, loss,
optimizer, a data sample) and reports what is wrong with the program itself:

* OUT_LOSS  the output activation (as measured on the data sample, where the
  facts carry it: ``harness.outputs``) does not fit the loss (categorical
  cross-entropy on a non-softmax output, binary cross-entropy on a
  non-sigmoid output, softmax over a single unit);
* LOSS_LABELS a regression loss on class labels, or integer labels given to
  categorical cross-entropy;
* OUT_RANGE the labels lie outside what the output activation can produce;
* INPUT_SCALE inputs far outside a normalised range;
* LR_RANGE  a learning rate outside a sane range for the optimizer;
* INIT      a constant (or absurdly scaled) kernel initialiser;
* LINEAR    two weight layers with no non-linearity between them.

Every finding names its layer (when it has one) and a fix with its fault code,
and a severity: ``error`` when the program cannot be right (softmax over one
unit, a probability loss on an output that is no probability, labels the
output cannot reach, labels in an encoding the loss cannot read), ``warning``
for the rest, which many programs that train well carry (raw inputs, MSE on
class labels, a large learning rate). It needs no training: all findings are made at the first step, at 0 s. As a
live Keras callback it sees the model; pass ``sample=(x, y)`` for the data checks. The rules themselves
are in ``detectors.rules``, where the other detectors take their fixes from.
"""

from __future__ import annotations

from detectors.base import Detector
from detectors.rules import RULE_CODES, Issue, issues, output_units

# Re-exported for callers that read the rules from the detector (harness.scoring reads output_units).
__all__ = ["Structure", "Issue", "issues", "output_units"]


class Structure(Detector):
    """Static checks of the model, loss, optimizer and a data sample (no training needed).

    Args:
        sample: ``(x, y)`` to summarise when used as a live Keras callback
            (the harness passes the facts of the case's data instead).
        stop_on_finding: as a live callback, stop at the first error (before the first batch ends).
        verbose: as a live callback, print findings as they are made.
    """

    name = "structure"
    version = "5"  # 3: the measured output kind, token and scaling first layers, affine stacks; 4: CCE on one unit;
    # 5: two classes coded other than 0/1 under a binary cross-entropy name the labels
    codes = RULE_CODES
    localizes = True
    suggests = True

    def __init__(self, sample=None, stop_on_finding: bool = False, verbose: int = 1):
        self.sample = sample
        super().__init__(stop_on_finding=stop_on_finding, verbose=verbose)

    def reset(self) -> None:
        super().reset()
        self._done = False

    def start(self, meta: dict) -> None:
        from harness.facts import with_sample

        super().start(meta)
        self._facts = with_sample(self._facts, self.sample)
        self._layers = list(self._facts.get("layers") or [])  # the findings are about the layers the facts describe

    def observe(self, step):
        if self._done:
            return []
        self._done = True
        found = [self.report(step, i.code, i.message, layer=i.layer, diagnosis=i.fix_code, fix=i.fix,
                             fix_code=i.fix_code, fix_layer=i.layer, severity=i.severity, static=True)
                 for i in issues(self._facts)]
        return [f for f in found if f is not None]
