"""One verdict per run: is this training failing, why, and what to change.

``diagnose`` combines the evidence the other detectors collect and reports an
*error* only when the training is failing or the program cannot be right:

* before training, a program that cannot be right (the error issues of
  ``detectors.rules``, as ``structure`` reports them: softmax over one unit, a
  probability loss on an output that is no probability, labels the output
  cannot reach or the loss cannot read);
* at once, NUMERICAL (NaN/Inf in the loss or in any layer: named at the first
  layer whose forward output has them, with the activation that overflowed
  there as the cause), CONSTANT_OUTPUT
  (the model's output does not vary for WINDOW batches) and VANISHED (no
  gradient reaches any layer for WINDOW batches while the loss is no better
  than the reference);
* at the first validation, SPLIT (the validation labels come from classes the
  training part lacks, or in shares far from its: shuffle before splitting);
* at the end of training, NOT_LEARNING (the final training loss no better
  than the best constant predictor's for these labels, and the accuracy no
  better than the majority class: ``harness.facts.learns``); then, for a run
  that learns, worse than its data allow (``detectors.learning_gaps``):
  UNRELATED_LABELS (the network fits labels that no simple learner predicts
  from their inputs out of fold: misaligned or shuffled apart),
  NOT_GENERALISING (validation never beats the constant predictor),
  LOSS_ABOVE_CONSTANT (the accuracy beats chance but the loss ends above the
  constant predictor's), UNDERFITTING (less than half of a simple learner's
  out-of-fold gain on the same training data; in a run too short to show a
  trend, with the budget as the cause), LABEL_NOISE (many
  labels the reference confidently disagrees with, spread like random
  relabelling); and OVERFITTING (validation loss not improved for PATIENCE
  epochs while the training loss fell, ending GAP times the no-learning loss
  above it; an error only when it rose materially above its best and above
  the reference's out-of-fold loss). A loss still falling when the budget ends
  is UNDERTRAINED, with the budget that would bring it near its floor: an
  error when the loss is slowing towards that floor and the run is behind the
  simple learner, else a warning.

Each error names one root cause with its layer and one fix, the most likely
first, the others as ``alternatives``. Static red flags (unscaled inputs, a
learning rate outside its usual range, MSE on class labels, ...) explain a
failing run; on a run that learns they are reported once, as warnings. The
order of causes: what the program states (output and loss against the labels,
then the inputs' scale, the learning rate, the initialisers, missing
non-linearities), then what the run showed (updates too large or too small for
the weights, a dead or saturated layer, a gradient vanishing through squashing
activations, a loss still falling at the end).

Without layer statistics (a model that trains with its own step: a subclass, a
custom ``train_step``, ``jit_compile=True``) it judges the loss, the metrics,
the facts and the end of training.

It reads the batch values, the epoch logs (validation too), the facts (with
the reference), and the statistics of outputs, weights, updates and output
gradients.

Example::

    >>> from detectors.toy_traces import toy_traces
    >>> [f.code for f in replay(Diagnose(), toy_traces()["nan"])]
    ['NUMERICAL']
"""

from __future__ import annotations

import math

import numpy as np

from detectors import learning_gaps as gaps
from detectors import rules
from detectors.base import Detector
from detectors.live import fit_weights
from detectors.rules import DEAD, SATURATED, Issue, saturated_fraction
from detectors.steps import ACCURACY_LOGS, MIN_WINDOW, TOL, UPDATE_BAND, WINDOW, Persistence, nonfinite, rms
from harness.facts import LOSS_MARGIN, accuracy_reference, learns, with_sample
from harness.trace import STAGES, STATS

PATIENCE = 2  # epochs the validation loss has not improved on its best (EarlyStopping's patience, doubled) ...
PATIENCE_SHARE = 0.1  # ... or a tenth of the budget's epochs, if more: a long noisy run wanders for a few epochs
GAP = 0.2  # final validation minus training loss, as a share of the no-learning loss: a fifth of it lost on new data
STILL_FALLING = 0.05  # the last epoch still 5 % below the one before: the budget ended mid-descent
# The most any layer's weights could have moved in the whole run, as a share of their size: the sum over the steps
# of the largest update/weights ratio bounds it (triangle inequality). Below a tenth, every layer computes within
# about a tenth of what its initialisation did: a run that learned nothing was too short to, whatever its optimizer.
REACH = 0.1
# AUTOTRAINER's vanishing-gradient ratio (beta_1): the lowest weight layer gets under a thousandth of the gradient
# the highest one gets. Eight sigmoid layers (slope <= 1/4 each) shrink it by 4^-8 = 1.5e-5 at best.
VANISH_RATIO = 1e-3
SQUASHING = {"sigmoid", "tanh", "hard_sigmoid", "softsign"}  # bounded activations whose slope vanishes in their tails

WEAK_FLAGS = ("INIT", "LINEAR")  # program smells weaker than what a failing run shows

_OUTPUT, _WEIGHTS, _UPDATE, _OUTPUT_GRAD = (STAGES.index(s) for s in ("output", "weights", "update", "output_grad"))
_MEAN, _STD, _ZERO, _NAN, _INF = (STATS.index(s) for s in ("mean", "std", "zero_frac", "nan", "inf"))
WATCHED = ("output", "weights", "update")  # NaN/Inf in any of these is a numerical error (searched in this order)
STAGE_WORDS = {"output": "output", "weights": "kernel", "update": "update"}
STAGE_PLACES = {"output": "the forward pass", "weights": "the kernels", "update": "the updates"}
OVERFLOWING = {"exponential"}  # activations growing faster than their input: exp(x) is Inf in float32 above 88.7
_WATCHED = [STAGES.index(s) for s in WATCHED]


def _same_layers(a: list[dict], b: list[dict]) -> bool:
    """The run's layer list and the facts' describe the same layers (same count, same names in order)."""
    return len(a) == len(b) and all(x.get("name") == y.get("name") for x, y in zip(a, b))


def _with_activations(layers: list[dict], described: list[dict]) -> list[dict]:
    """The run's layers with the activations the facts read (an activation layer's class, a wrapper's inner
    layer: harness.outputs.activation_name), where the two describe the same layers; the facts' layers when the
    run has none."""
    if not layers:
        return list(described)
    if not _same_layers(layers, described):
        return layers
    return [dict(a, activation=b.get("activation", a.get("activation"))) for a, b in zip(layers, described)]


def _with_params(described: list[dict], layers: list[dict]) -> list[dict]:
    """The facts' layers with the parameter counts the run's layers carry (the facts describe the program, the
    trace counts its weights), where the two describe the same layers."""
    if not _same_layers(described, layers):
        return described
    return [dict(a, params=a.get("params", b.get("params"))) for a, b in zip(described, layers)]


class Diagnose(Detector):
    """Tell a failing training from a healthy one; name the root cause, its layer and a fix.

    Args:
        sample: ``(x, y)`` of the training data, for a live Keras callback: the
            constant-predictor reference and the data checks need the labels
            (the harness passes them as facts). Without it, "not learning" is
            judged against the run's own initial loss.
        stop_on_finding: as a live callback, stop at the first error.
        verbose: as a live callback, print findings as they are made.
    """

    name = "diagnose"
    # 2: learns-but-worse verdicts (a learned reference), OVERFITTING an error only when material; 3: measured
    # outputs, SPLIT, UNRELATED_LABELS, NUMERICAL at the forward origin, vanishing through squashing layers
    # 4: a run behind the reference while still falling, or too short to show a trend, is an error; the loss above
    # the constant predictor's with the accuracy above chance; penalties from the run's parameter counts
    version = "8"  # 5: imbalanced labels learn by log loss; 6: categorical cross-entropy over one unit is an error;
    # 7: a run that did not learn while its weights could barely move names the budget; 8: two classes coded
    # other than 0/1 under a binary cross-entropy name the labels (structure 5)
    codes = {
        **rules.RULE_CODES,
        "NUMERICAL": "NaN/Inf values", "CONSTANT_OUTPUT": "an output that does not vary",
        "VANISHED": "no gradient reaches the layers", "NOT_LEARNING": "no better than a constant predictor",
        "OVERFITTING": "validation loss rises while training loss falls",
        "NOT_GENERALISING": "validation no better than a constant predictor",
        "UNDERFITTING": "fits its data worse than a simple learner", "LABEL_NOISE": "labels that look relabelled",
        "UNDERTRAINED": "loss still falling when training ended",
        "LOSS_ABOVE_CONSTANT": "loss above a constant predictor's while the accuracy beats chance",
        "SPLIT": "validation classes unlike the training classes",
        "UNRELATED_LABELS": "labels no simple learner predicts from their inputs",
    }
    localizes = True
    suggests = True

    def __init__(self, sample=None, stop_on_finding: bool = False, verbose: int = 1):
        self.sample = sample
        super().__init__(stop_on_finding=stop_on_finding, verbose=verbose)

    def reset(self) -> None:
        super().reset()
        self._persist = Persistence(WINDOW)
        self._errors = 0
        self._static_done = self._judged = self._numerical = False
        self._prev_out = None
        self._ratios: list[float] = []
        self._dead: set = set()
        self._saturated: set = set()
        self._vanishing = None  # the Issue of a gradient that vanished through squashing layers, once seen
        self._at = None  # where each watched statistic sits in a step, found at the first batch (see _layout)
        self._first_loss = None
        self._epochs: list[dict] = []
        self._last = self._last_batch = None
        self._losses: list[float] = []  # every batch's own loss: the under-training evidence reads its trend

    def start(self, meta: dict) -> None:
        super().start(meta)
        # fit is on the stack at the first batch: its weights are read there, live only
        weights = fit_weights(getattr(self, "model", None)) if self.sample is not None else None
        self._facts = with_sample(self._facts, self.sample, weights)
        self._layers = _with_activations(self._layers, self._facts.get("layers") or [])
        self._persist = Persistence.for_run(meta, WINDOW, MIN_WINDOW)
        skipped = (self._facts.get("baseline") or {}).get("skipped")
        if self.sample is not None and skipped and self.verbose:  # live, with data the reference cannot use
            print(f"[diagnose] no learned reference for this fit ({skipped}); the other checks go on")

    def observe(self, step):
        before = len(self.findings)
        self._last = step
        if not self._static_done:
            self._static(step)
        if step.kind == "batch" and step.stats is not None:
            self._batch(step)
        elif step.kind == "epoch":
            self._epoch(step)
        return self.findings[before:]

    def finish(self):
        before = len(self.findings)
        if self._last is not None and not self._judged:
            self._verdict(self._last)
        return self.findings[before:]

    # -- reporting -----------------------------------------------------------------

    def _report(self, step, code, message, *, severity, cause=None, layer=None, static=False, alternatives=None):
        """One finding with its root cause (``cause``, or the most likely one) and up to three alternatives
        (``alternatives``, or the next likeliest); it names the cause's layer, else ``layer``."""
        causes = [cause] if cause else self._causes()
        first = causes[0]  # never empty: a change of optimizer is always left
        others = causes[1:4] if alternatives is None else alternatives
        alternatives = tuple(f"{c.fix_code}: {c.fix}" for c in others if c is not first)
        found = self.report(step, code, message, layer=first.layer if first.layer is not None else layer,
                            diagnosis=first.fix_code, fix=first.fix, fix_code=first.fix_code, fix_layer=first.layer,
                            severity=severity, static=static, alternatives=alternatives)
        self._errors += found is not None and severity == "error"

    def _causes(self) -> list:
        """Candidate root causes, most likely first.

        What the program states about outputs, loss, labels, inputs and the learning rate; then what the
        run showed (update sizes, dead or saturated layers); then weaker smells of the program
        (initialisers, missing non-linearities); then the budget; then a change of optimizer.
        """
        static = rules.issues(self._facts)
        strong = [i for i in static if i.code not in WEAK_FLAGS]
        weak = [i for i in static if i.code in WEAK_FLAGS]
        evidence, fallback = self._dynamic_causes()
        return [*strong, *evidence, *weak, *fallback]

    def _dynamic_causes(self) -> tuple[list, list]:
        """(what the run showed, what is left when nothing did)."""
        out, fallback = [], []
        if self._ratios:
            ratio = float(np.median(self._ratios))
            if ratio > UPDATE_BAND[1]:
                out.append(Issue("LR", f"updates are {ratio:.2g} of the weights per step", None, "HLR",
                                 "lower the learning rate"))
            elif ratio < UPDATE_BAND[0]:
                out.append(Issue("LR", f"updates are only {ratio:.2g} of the weights per step", None,
                                 "HLR", "raise the learning rate"))
        for layer in sorted(self._dead | self._saturated):
            what = "dead (ReLU outputs all zero)" if layer in self._dead else "saturated"
            out.append(Issue("LAYER", f"layer {layer} is {what}", layer, "ACH",
                             f"change the activation of layer {layer}"))
        if self._vanishing is not None:
            out.append(self._vanishing)
        if gaps.reference_learns(self._facts) is False:  # before the budget: more epochs only memorise such labels
            fallback.append(Issue("LABELS", "no simple learner predicts these labels from their inputs", None, "CPP",
                                  "check that each label belongs to its input row (labels misaligned or shuffled "
                                  "apart from the inputs)"))
        losses = [e["loss"] for e in self._epochs if math.isfinite(e["loss"])]
        if len(losses) >= 2 and losses[-1] < (1 - STILL_FALLING) * losses[-2]:
            fallback.append(Issue("BUDGET", "the loss was still falling when training ended", None, "HNE",
                                  "train for more epochs"))
        reach = float(np.sum(self._ratios)) if self._ratios else None
        if reach is not None and reach < REACH:
            moved = f"in all {len(self._ratios)} steps the weights could move by at most {reach:.1%} of their size"
            fallback.append(Issue("BUDGET", moved, None, "HNE", f"train for more epochs (or raise the learning rate): "
                                  f"{moved} ({np.median(self._ratios):.2g} per step)"))
        fallback.append(Issue("OTHER", "no specific cause found", None, "OCH",
                              "change the optimizer (or its learning rate)"))
        return out, fallback

    # -- before training -------------------------------------------------------------

    def _static(self, step) -> None:
        self._static_done = True
        for issue in rules.issues(self._facts):
            if issue.severity == "error":
                self._report(step, issue.code, issue.message, severity="error", cause=issue, static=True)

    # -- during training ---------------------------------------------------------------

    def _batch(self, step) -> None:
        loss = step.values.get("loss", math.nan)
        self._losses.append(loss)
        self._last_batch = step
        if self._first_loss is None and math.isfinite(loss):
            self._first_loss = loss
        if self._numerical:
            return
        if self._at is None:
            self._layout(step)
        flat = step.stats.reshape(-1)
        if self._nonfinite(step, flat, loss) or not flat.size:
            return  # no layer statistics (a model that trains with its own step): the loss was all there was
        self._evidence(step, flat)
        if self._errors:
            return  # one error explains the run; later symptoms are its consequences
        if self._at["out"] is not None:  # the output watched (not so where only weights are: a subclass, live)
            self._constant_output(step, flat)
        self._vanished(step, flat, loss)

    def _layout(self, step) -> None:
        """Where each watched statistic sits in a step's flattened [layer, stage, stat] array, and which
        hidden layers are ReLU, sigmoid, tanh: fixed for a run, so found once (the per-step cost stays a
        handful of numpy calls)."""
        n = step.stats.shape[0]
        acts = [layer.get("activation") for layer in self._layers[:n]] + [None] * max(0, n - len(self._layers))
        out = rules.output_layer(self._layers[:n])
        hidden = np.arange(n) < (out if out is not None else n)
        mask = step.mask

        def pos(i, stage, stat):
            return (i * len(STAGES) + stage) * len(STATS) + stat

        def at(layers, stage, stat):
            return np.asarray([pos(i, stage, stat) for i in layers], np.int64)

        def where(stage, extra=None):
            return np.flatnonzero(mask[:, stage] if extra is None else mask[:, stage] & extra)

        def hidden_with(act):
            return where(_OUTPUT, hidden & np.array([a == act for a in acts], bool))

        pairs = [(int(i), stage) for stage in _WATCHED for i in where(stage)]
        weighted, grads = where(_WEIGHTS, mask[:, _UPDATE]), where(_OUTPUT_GRAD)
        chain = where(_OUTPUT_GRAD, mask[:, _WEIGHTS])  # weight layers the loss gradient reaches, input to output
        relu, sig, tanh = hidden_with("relu"), hidden_with("sigmoid"), hidden_with("tanh")
        self._at = {
            "counts": np.asarray([pos(i, st, c) for i, st in pairs for c in (_NAN, _INF)], np.int64),
            "means": np.asarray([pos(i, st, _MEAN) for i, st in pairs], np.int64),
            "weighted": weighted,
            "relu": (relu, at(relu, _OUTPUT, _ZERO)),
            "sigmoid": (sig, at(sig, _OUTPUT, _MEAN), at(sig, _OUTPUT, _STD)),
            "tanh": (tanh, at(tanh, _OUTPUT, _MEAN), at(tanh, _OUTPUT, _STD)),
            "grads": at(grads, _OUTPUT_GRAD, _ZERO),
            "out": (pos(n - 1, _OUTPUT, _MEAN), pos(n - 1, _OUTPUT, _STD)) if n and mask[n - 1, _OUTPUT] else None,
            "chain": (chain[[0, -1]], at(chain[[0, -1]], _OUTPUT_GRAD, _MEAN), at(chain[[0, -1]], _OUTPUT_GRAD, _STD))
            if len(chain) >= 2 else None,
            "squashing": [i for i in range(n) if hidden[i] and acts[i] in SQUASHING],
        }

    def _nonfinite(self, step, flat, loss) -> bool:
        at = self._at
        if math.isfinite(loss) and not flat[at["counts"]].any() and np.isfinite(flat[at["means"]]).all():
            return False
        self._numerical = True
        first, stage = self._nonfinite_origin(step)
        causes = self._causes()
        cause = (self._overflow(first) if stage == "output" else None) or causes[0]
        layer = cause.layer if cause.layer is not None else first
        # One layer per finding: the message names where NaN/Inf began only when the finding points there.
        where = "the loss" if first is None else f"layer {first}'s {STAGE_WORDS[stage]}" if first == layer else \
            STAGE_PLACES[stage]
        self._report(step, "NUMERICAL", f"NaN/Inf values, first in {where} (loss {loss:.4g})", severity="error",
                     layer=layer, cause=cause, alternatives=[c for c in causes if c is not cause][:3])
        return True

    def _nonfinite_origin(self, step) -> tuple[int | None, str | None]:
        """Where NaN/Inf began: the first layer whose forward output has them (the forward pass runs in layer
        order, and an update made from an Inf gradient spoils every layer below at once); else the lowest layer
        whose kernel or update has them; (None, None) when only the loss does."""
        for stage in WATCHED:  # rare: once per run at most, so clarity over speed
            bad = nonfinite(step, stage)
            if bad.any():
                return int(np.flatnonzero(bad)[0]), stage
        return None, None

    def _overflow(self, layer: int | None):
        """The cause when a layer's own activation produced the first NaN/Inf: one that grows faster than its
        input (exp overflows float32 above 88.7)."""
        act = self._layers[layer].get("activation") if layer is not None and layer < len(self._layers) else None
        if act not in OVERFLOWING:
            return None
        return Issue("OVERFLOW", f"layer {layer}'s {act} activation overflows", layer, "ACH",
                     f"change the activation of layer {layer} (bounded or linear growth: relu, tanh)")

    def _evidence(self, step, flat) -> None:
        """Update sizes, dead and saturated hidden layers: the run's evidence for a cause."""
        at = self._at
        w, u = rms(step, "weights")[at["weighted"]], rms(step, "update")[at["weighted"]]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = u / w
        ratio = ratio[(w > 0) & (u > 0) & np.isfinite(ratio)]
        if ratio.size:
            self._ratios.append(float(ratio.max()))
        layers, zero = at["relu"]
        if len(layers):
            self._dead.update(layers[self._persist("dead", flat[zero] >= DEAD)].tolist())
        for act in ("sigmoid", "tanh"):
            layers, mean, std = at[act]
            if len(layers):
                with np.errstate(invalid="ignore"):
                    held = saturated_fraction(act, flat[mean], flat[std]) > SATURATED
                self._saturated.update(layers[self._persist(("saturated", act), held)].tolist())
        self._shrinking(flat)

    def _shrinking(self, flat) -> None:
        """The loss gradient reaching the lowest weight layer is under VANISH_RATIO of the one at the highest, for
        WINDOW batches, with squashing activations (slope at most 1/4 for a sigmoid) in between: a vanishing
        gradient, caused by those activations."""
        if self._at["chain"] is None or self._vanishing is not None:
            return
        (low, high), means, stds = self._at["chain"]
        g = np.hypot(flat[means], flat[stds])
        squashing = [i for i in self._at["squashing"] if low <= i < high]
        with np.errstate(invalid="ignore"):
            held = bool(squashing) and bool(g[1] > 0) and bool(g[0] < VANISH_RATIO * g[1])
        if self._persist("shrinking", held):
            acts = sorted({self._layers[i].get("activation") for i in squashing})
            self._vanishing = Issue("VANISHING", f"the loss gradient reaching layer {low} is {g[0] / g[1]:.2g} of the "
                                    f"one at layer {high}: it shrinks through {len(squashing)} {'/'.join(acts)} "
                                    "layers", squashing[0], "ACH", f"change the activation of layer {squashing[0]} "
                                    f"(and the {'/'.join(acts)} layers above it) to relu")

    def _constant_output(self, step, flat) -> None:
        mean_at, std_at = self._at["out"]  # present: _batch calls this only where the output is watched
        mean, std = float(flat[mean_at]), float(flat[std_at])
        scale = max(1.0, abs(mean))
        prev, self._prev_out = self._prev_out, mean
        still = prev is not None and abs(mean - prev) <= TOL * scale and std <= TOL * scale
        if self._persist("constant", still):
            means, stds = step.stat("output", "mean"), step.stat("output", "std")
            first = len(means) - 1  # the lowest layer from which every output on is flat
            while first > 0 and float(stds[first - 1]) <= TOL * max(1.0, abs(float(means[first - 1]))):
                first -= 1
            self._report(step, "CONSTANT_OUTPUT", f"the model's output is the same value ({mean:.4g}) for every "
                         f"input for {self._persist.window} batches (first flat at layer {first})", severity="error",
                         layer=first)

    def _vanished(self, step, flat, loss) -> None:
        grads = flat[self._at["grads"]]
        zero = bool(grads.size) and bool((grads >= 1.0).all())
        if self._persist("vanished", zero and not self._beats_reference(loss)):
            self._report(step, "VANISHED", f"no gradient reaches any layer for {self._persist.window} batches while "
                         f"the loss ({loss:.4g}) is no better than a constant predictor's", severity="error")

    def _beats_reference(self, loss) -> bool:
        ref = (self._facts.get("reference") or {}).get("loss")
        return bool(learns(loss, ref, self._first_loss))

    # -- epoch ends and the end of training -----------------------------------------------

    def _epoch(self, step) -> None:
        logs = step.logs
        if not self._errors and "val_loss" in logs:
            self._split(step)
        acc = next((logs[k] for k in ACCURACY_LOGS if k in logs and math.isfinite(logs[k])), None)
        metric = next((k for k in ACCURACY_LOGS if k in logs), "accuracy")
        val_acc = logs.get(f"val_{metric}")
        self._epochs.append({"loss": logs.get("loss", math.nan), "acc": acc, "metric": metric,
                             "val_loss": logs.get("val_loss", math.nan),
                             "val_acc": val_acc if val_acc is not None and math.isfinite(val_acc) else None})
        if step.final and not self._judged:
            self._verdict(step)

    def _split(self, step) -> None:
        """The validation labels are drawn from other classes than the training labels (detectors.learning_gaps):
        whatever the network does, its validation numbers cannot say whether it generalises."""
        if self.reported(("SPLIT", None, None)):
            return
        found = gaps.shifted_split(self._facts.get("validation"))
        if found:
            self._report(step, "SPLIT", found["message"], severity="error", cause=Issue(
                "SPLIT", "", None, "CPP", found["fix"]))

    def _verdict(self, step) -> None:
        self._judged = True
        if self._errors or not self._epochs:
            return
        if not self._constant_at_end(step) and not self._learning_verdict(step) and not self._learns_worse(step):
            self._overfitting(step)
        if not self._errors:
            self._warnings(step)

    def _learns_worse(self, step) -> bool:
        """A run that learns, judged against references that do not depend on any fix (detectors.learning_gaps):
        validation no better than a constant, training behind a simple learner's, a budget cut mid-descent,
        labels that look randomly relabelled. One error, with the most likely cause."""
        last, facts = self._epochs[-1], self._facts
        noise = gaps.label_noise(facts)
        falling = gaps.still_falling(self._losses, self._budget)
        noisy = [Issue("LABELS", noise["message"], None, "CPP", "check that each label belongs to its input row "
                       "(labels shuffled or misaligned apart from the inputs)")] if noise else []
        budget = [Issue("BUDGET", falling["message"], None, "HNE", falling["fix"])] if falling else []
        weights = rms(self._last_batch, "weights").tolist() if self._last_batch is not None else None
        program = gaps.program_causes(dict(facts, layers=_with_params(facts.get("layers") or [], self._layers)),
                                      last["loss"], weights)
        chance = accuracy_reference(facts.get("reference"), last["metric"], facts.get("loss"),
                                    rules.output_units(self._layers))
        unrelated = gaps.unrelated_labels(facts, self._epochs, chance)
        if unrelated:
            self._report(step, "UNRELATED_LABELS", unrelated["message"], severity="error", cause=Issue(
                "LABELS", "", None, "CPP", "check that each label belongs to its input row (labels misaligned or "
                "shuffled apart from the inputs)"))
            return True
        found = gaps.not_generalising(facts, self._epochs, chance)
        if found:
            cause = (noisy or [Issue("SPLIT", "", None, "CPP", "check that the validation rows come from the "
                                     "training rows' distribution, with their own labels")])[0]
            self._report(step, "NOT_GENERALISING", found["message"], severity="error", cause=cause)
            return True
        above = gaps.loss_above_constant(facts, last, chance)
        if above:
            causes = [*[c for c in program if c.code == "REGULARISER"], *self._causes()]
            self._report(step, "LOSS_ABOVE_CONSTANT", above["message"], severity="error", cause=causes[0],
                         alternatives=causes[1:4])
            return True
        # A run too short to show a trend has not been shown to converge: RECOVER's allowance (a converged model
        # weaker than the reference on these data) does not apply, and any shortfall counts.
        trend = gaps.trend_known(self._losses)
        behind = gaps.behind_reference(facts, last["acc"], last["loss"], recover=None if trend else 1.0)
        if falling:
            # Still descending. Slowing towards a floor the fit can place (a factor) and behind the reference, the
            # budget (or what the program states) ended the run short of it, worse than a simple learner: an error.
            # Falling as fast as ever (no floor in sight: a plateau being left), or not behind, it is advice.
            broken = bool(behind) and falling["factor"] is not None
            also = f"; at the end: {behind['message']}" if behind else ""
            cause = program[0] if behind and program else budget[0]  # far behind: what the program states first
            self._report(step, "UNDERTRAINED", falling["message"] + also, severity="error" if broken else "warning",
                         cause=cause, alternatives=[c for c in (*program, *budget) if c is not cause][:3])
            if broken:
                return True
        elif behind and not trend:
            short = gaps.short_budget(len(self._losses), self._budget)
            causes = [*program, short, *noisy]
            self._report(step, "UNDERFITTING", behind["message"] + f"; {short.message}", severity="error",
                         cause=causes[0], alternatives=causes[1:4])
            return True
        elif behind:
            causes = [*program, *noisy, *self._causes()]
            self._report(step, "UNDERFITTING", behind["message"] + " after its loss levelled off", severity="error",
                         cause=causes[0], alternatives=causes[1:4])
            return True
        if noise:
            self._report(step, "LABEL_NOISE", noise["message"], severity="error", cause=noisy[0])
            return True
        return False

    def _constant_at_end(self, step) -> bool:
        """Without the output's statistics (a model trained with its own step), the output measured on the sample
        after training (``outputs_end``, live): the same value for every row is a constant output."""
        if self._at is not None and self._at["out"] is not None:
            return False  # the per-batch check watched the output itself
        final = self._facts.get("outputs_end") or []
        if not final or any(o.get("spread") is None for o in final):
            return False
        if not all(o["spread"] <= TOL * max(1.0, abs(o["max"])) for o in final):
            return False
        self._report(step, "CONSTANT_OUTPUT", f"after training the model's output is the same value "
                     f"({final[0]['max']:.4g}) for every row of the sample", severity="error", layer=final[0]["layer"])
        return True

    def _learning_verdict(self, step) -> bool:
        last = self._epochs[-1]
        ref = self._facts.get("reference") or {}
        units = rules.output_units(self._layers)
        chance = accuracy_reference(ref, last["metric"], self._facts.get("loss"), units)
        verdict = learns(last["loss"], ref.get("loss"), self._first_loss, last["acc"], chance)
        if verdict is not False:
            return False
        against = f"a constant predictor's {ref['loss']:.4g}" if ref.get("loss") else \
            f"its first batch's {self._first_loss:.4g}"
        acc = f", accuracy {last['acc']:.3f} against the majority class's {chance:.3f}" \
            if last["acc"] is not None and chance is not None else ""
        self._report(step, "NOT_LEARNING", f"after {len(self._epochs)} epochs the training loss {last['loss']:.4g} "
                     f"is no better than {against}{acc}", severity="error")
        return True

    def _overfitting(self, step) -> None:
        """Validation loss stopped improving PATIENCE epochs ago while the training loss kept falling,
        leaving a gap of GAP times the no-learning loss."""
        val = np.array([e["val_loss"] for e in self._epochs], np.float64)
        if not len(val) or not np.isfinite(val).all():
            return
        if "validation_loss" in (self._facts.get("reference") or {}):
            return  # a weighted fit: its training and validation losses are weighted differently, no gap is read
        best, last = int(np.argmin(val)), self._epochs[-1]
        scale = (self._facts.get("reference") or {}).get("loss") or self._first_loss
        patience = max(PATIENCE, int(PATIENCE_SHARE * (self._budget.epochs or len(val))))
        if not scale or len(val) - 1 - best < patience or last["loss"] >= self._epochs[best]["loss"]:
            return
        if val[-1] - last["loss"] >= GAP * scale:
            cause = Issue("OVERFIT", "", None, "REG", f"add regularisation (dropout) or stop at "
                          f"epoch {best + 1}")
            reference = (self._facts.get("baseline") or {}).get("loss")
            # An error only when new rows fare materially worse than at the best epoch (by the margin that says
            # "learns") and worse than a simple learner's out-of-fold loss: a flat validation curve is no fault.
            worse = val[-1] - val[best] >= LOSS_MARGIN * scale and (reference is None or val[-1] > reference)
            self._report(step, "OVERFITTING", f"validation loss {val[-1]:.4g} has not improved on epoch {best + 1}'s "
                         f"{val[best]:.4g} for {len(val) - 1 - best} epochs while the training loss fell to "
                         f"{last['loss']:.4g}", severity="error" if worse else "warning", cause=cause)

    def _warnings(self, step) -> None:
        """A run that learns: its red flags did no harm, so they are advice."""
        for issue in rules.issues(self._facts):
            self._report(step, issue.code, issue.message, cause=issue, severity="warning")
