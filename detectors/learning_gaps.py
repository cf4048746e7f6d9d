"""Training that learns, but worse than its data allow: the evidence ``diagnose`` judges at the end of a run.

Each source compares the run with a reference that does not depend on any fix:

* ``behind_reference``: the network recovers less than RECOVER of what a cheap
  learner (``harness.baseline``: logistic/ridge regression or k-NN, out of fold,
  on the same training data) gains over the best constant predictor;
* ``still_falling``: the loss was still falling when the budget ended, with the
  budget that would bring it near its floor (an exponential approach fitted to
  the last part of the run);
* ``short_budget``: a run too short to show a trend, named by its optimizer
  steps (the batch size when an epoch is one or two steps, else the epochs);
* ``loss_above_constant``: the accuracy beats chance while the loss ends above
  the best constant predictor's (the objective itself is being lost);
* ``not_generalising``: the training data are learned while the validation data
  are predicted no better than the constant predictor;
* ``label_noise``: the reference's out-of-fold probabilities say many labels
  look wrong, spread over the class pairs as random relabelling spreads them;
* causes read from the program and measured in the run: a hidden layer too
  narrow for the classes, Dropout near 1, a regulariser whose penalty is a large
  share of the final loss, constant initialisers (every unit of a layer alike).

Pure functions over plain numbers, so synthetic traces test them directly.
"""

from __future__ import annotations

import math

import numpy as np

from detectors.rules import CONSTANT_INITS, Issue, output_layer
from harness.trace import Budget

# The network must recover at least half of the reference's margin over the constant predictor: a network
# that gains less than half of what a linear model or k-NN gains, on the rows it trained on (the reference on
# rows it did not see), fits its data materially worse than the simplest learners.
RECOVER = 0.5
# The reference itself must beat the constant predictor by the margins that say "learns" (harness.facts).
TAIL = 0.3  # the last 30 % of the run's batches: long enough to see a trend through mini-batch noise
SEGMENTS = 10  # the run's batch losses as ten medians: robust to a few spiky batches
# The loss still has this share of what it fell left to fall (an exponential approach's floor): a quarter
# more descent is a budget cut short, not the last polish of a converged run.
REMAINING = 0.25
NEAR_FLOOR = 0.05  # "near its floor": within 5 % of the total fall, for the suggested budget
# An epoch of at most two steps is a batch of half the data or more: full-batch descent, whose few steps a
# smaller batch multiplies (the usual mini-batch of 32 gives dozens of steps per epoch on the smallest sets).
FEW_STEPS = 2
NOISY_LABELS = 0.2  # confident learning's suspect share: twice the high end of real datasets' label errors
EVEN = 0.9  # suspects spread this evenly over the class pairs (normalised entropy) look like random relabelling
# A validation part whose class shares are this far (total variation distance) from the training part's: half its
# rows would have to change class to match. A random split of n rows over C classes is off by about sqrt(C / n) / 2.
SHIFT = 0.5
# ... and a shift a random split would give by chance less than once in a thousand runs: the distance three times
# the split's sampling spread (sum of the class shares' binomial standard deviations, halved), and classes unseen in
# training with so many validation rows that a random split would put them all there with odds below CHANCE.
SPREADS = 3
CHANCE = 1e-3
HEAVY_DROPOUT = 0.8  # four units of five dropped: the layer's signal is mostly noise while training
PENALTY_SHARE = 0.5  # the regulariser's penalty is half the final loss: it, not the data, is being fitted


def loss_above_constant(facts: dict, last: dict, chance: float | None) -> dict | None:
    """The accuracy beats the majority class while the training loss ends LOSS_MARGIN above the best constant
    predictor's: the run learns to rank the classes but loses on the objective it optimises (confident mistakes
    from steps too large, or a weight penalty larger than the data term, which Keras adds to the logged loss)."""
    from harness.facts import ACC_MARGIN, DEGENERATE, LOSS_MARGIN

    ref = (facts.get("reference") or {}).get("loss")
    loss, acc = last.get("loss"), last.get("acc")
    if ref is None or ref <= DEGENERATE or acc is None or chance is None or loss is None or not math.isfinite(loss):
        return None
    if acc < chance + ACC_MARGIN or loss < (1 + LOSS_MARGIN) * ref:
        return None
    return {"message": f"the accuracy beats the majority class ({acc:.3f} against {chance:.3f}) but the training "
                       f"loss {loss:.4g} ends above a constant predictor's {ref:.4g}: the run loses on the "
                       "objective it optimises (confident mistakes, or a weight penalty larger than the data term)"}


def behind_reference(facts: dict, accuracy: float | None, loss: float | None,
                     recover: float | None = None) -> dict | None:
    """How much of the reference learner's margin the run recovered, when that is less than ``recover``
    (RECOVER, read at call time so that bench/sensitivity.py can move it)."""
    from harness.facts import ACC_MARGIN, LOSS_MARGIN

    recover = RECOVER if recover is None else recover

    base = facts.get("baseline") or {}
    if "skipped" in base or not base:
        return None
    if base.get("task") == "classes" and accuracy is not None and math.isfinite(accuracy):
        chance, ref = base["majority"], base["accuracy"]
        if ref - chance < ACC_MARGIN:
            return None
        share = (accuracy - chance) / (ref - chance)
        what = f"accuracy {accuracy:.3f} against a {base['learner']}'s {ref:.3f} (majority class {chance:.3f})"
    else:
        constant = (facts.get("reference") or {}).get("loss") if base.get("task") == "classes" else base.get("constant")
        ref = base.get("loss")
        if ref is None or constant is None or loss is None or not math.isfinite(loss) or constant <= 0:
            return None
        if ref > (1 - LOSS_MARGIN) * constant:
            return None
        share = (constant - loss) / (constant - ref)
        what = f"loss {loss:.4g} against a {base['learner']}'s {ref:.4g} (constant predictor {constant:.4g})"
    if share >= recover:
        return None
    return {"share": float(share), "message": f"fits its training data worse than a simple learner: {what}, "
            f"{max(share, 0):.0%} of the learner's gain"}


def trend_known(losses: list[float]) -> bool:
    """Enough finite batch losses to read a trend through mini-batch noise (two per segment)."""
    return sum(1 for v in losses if math.isfinite(v)) >= 2 * SEGMENTS


def still_falling(losses: list[float], budget: Budget) -> dict | None:
    """The loss's expected further fall (as a share of its fall so far) and the budget factor to reach its floor.

    An exponential approach L(t) = c + b exp(-t / tau) (t: share of the run) is fitted through three medians:
    the first segment's, the one at the start of the last TAIL, the last. None when the fall ahead is below
    REMAINING of the fall so far, or the run is too short to say.
    """
    if not trend_known(losses):
        return None
    finite = np.asarray([v for v in losses if math.isfinite(v)], np.float64)
    medians = np.array([np.median(part) for part in np.array_split(finite, SEGMENTS)])
    start, mid, end = medians[0], medians[-1 - round(TAIL * SEGMENTS)], medians[-1]
    fallen = start - end
    if fallen <= 0 or mid <= end:
        return None
    ratio = (mid - end) / fallen  # the tail's share of the whole fall; 0.33 for a straight line
    span = TAIL * SEGMENTS / (SEGMENTS - 1)  # the tail as a share of the span the medians cover
    tau = _decay_time(ratio, span)
    remaining = math.inf if tau is None else math.exp(-1 / tau) / (1 - math.exp(-1 / tau))
    if remaining < REMAINING:
        return None
    factor = None if tau is None else max(2, math.ceil(1 + tau * math.log(remaining / NEAR_FLOOR)))
    steps, epochs = budget.steps_per_epoch, budget.epochs
    size = f", batch size {budget.batch_size}" if budget.batch_size else ""
    per_epoch = f" ({steps} steps per epoch{size}: batch size and data size set them)" if steps else ""
    longer = f"about x{factor} the epochs" if factor else "at least twice the epochs"
    return {"remaining": remaining, "factor": factor,
            "message": f"the loss was still falling when training ended: it fell {ratio:.0%} of its whole fall in "
                       f"the last {TAIL:.0%} of the run, after {epochs} epochs{per_epoch}",
            "fix": f"train longer ({longer})"}


def short_budget(batches: int, budget: Budget) -> Issue:
    """A run of fewer batches than a trend needs: too few optimizer steps, by the batch size when an epoch is at
    most FEW_STEPS steps (the batch is most of the data), else by the epochs."""
    steps, epochs, size = budget.steps_per_epoch, budget.epochs, budget.batch_size
    message = f"only {batches} optimizer steps in all"
    if steps and epochs:
        message += f" ({epochs} epochs of {steps} steps" + (f", batch size {size})" if size else ")")
    if steps and steps <= FEW_STEPS:
        return Issue("BUDGET", message, None, "HBS", "use a smaller batch (more steps per epoch; Keras's default "
                     "is 32)")
    return Issue("BUDGET", message, None, "HNE", "train for more epochs")


def _decay_time(ratio: float, span: float) -> float | None:
    """tau (in units of the fitted span) at which the last ``span`` of an exponential approach holds ``ratio``
    of its fall; None when the tail falls as fast as a straight line or faster (no floor in sight)."""
    if ratio >= span:
        return None

    def tail_share(tau):
        return (math.exp(-(1 - span) / tau) - math.exp(-1 / tau)) / (1 - math.exp(-1 / tau))
    low, high = 1e-3, 1e3  # tail_share rises monotonically in tau, from 0 to span
    for _ in range(60):
        mid = math.sqrt(low * high)
        low, high = (mid, high) if tail_share(mid) < ratio else (low, mid)
    return math.sqrt(low * high)


def not_generalising(facts: dict, epochs: list[dict], chance: float | None = None) -> dict | None:
    """The training loss learns while validation never beats the constant predictor (loss) nor the majority class
    (``chance``, accuracy)."""
    from harness.facts import learns, validation_reference

    ref, held_out = (facts.get("reference") or {}).get("loss"), validation_reference(facts)
    val = [e["val_loss"] for e in epochs if math.isfinite(e.get("val_loss", math.nan))]
    if not ref or not held_out or not val or not learns(epochs[-1]["loss"], ref):
        return None
    best = min(val)
    accuracy = max((e["val_acc"] for e in epochs if e.get("val_acc") is not None), default=None)
    if learns(best, held_out, None, accuracy, chance):
        return None  # validation learns by the loss or by the accuracy, as training is judged
    return {"message": f"the training loss fell to {epochs[-1]['loss']:.4g} while the validation loss never beat "
                       f"the constant predictor's {held_out:.4g} (best {best:.4g}): the labels it learned do not "
                       "carry over to new rows"}


def reference_learns(facts: dict) -> bool | None:
    """Whether the learned reference predicts the labels out of fold by the margins that say "learns" (None: no
    reference, one fitted on token ids it may not read, or on too few rows, where failing says nothing about
    the labels)."""
    from harness.facts import ACC_MARGIN, LOSS_MARGIN, reads_tokens

    base = facts.get("baseline") or {}
    if not base or "skipped" in base or reads_tokens(facts.get("layers") or []):
        return None
    # A reference at chance is evidence only on enough rows that a real margin of ACC_MARGIN would show: two
    # standard errors of an accuracy near the majority rate m, 2 sqrt(m (1 - m) / n), within the margin.
    m = base.get("majority") if base.get("task") == "classes" else None
    m = 0.5 if m is None else m
    if (base.get("rows") or 0) < 4 * m * (1 - m) / ACC_MARGIN ** 2:
        return None
    if base.get("task") == "classes" and base.get("accuracy") is not None and base.get("majority") is not None:
        if base["accuracy"] >= base["majority"] + ACC_MARGIN:
            return True
        # On imbalanced labels the majority rate is an accuracy bar a good learner need not clear (10 % positives:
        # 0.93 against 0.90), while its log loss still falls well below the class prior's: learning, as the
        # run's own loss is judged.
        prior = _prior_log_loss(facts)
        return bool(prior is not None and base["loss"] <= (1 - LOSS_MARGIN) * prior)
    loss, constant = base.get("loss"), base.get("constant")
    if loss is None or constant is None or constant <= 0:
        return None
    return bool(loss <= (1 - LOSS_MARGIN) * constant)


def _prior_log_loss(facts: dict) -> float | None:
    """The class prior's log loss on the training labels (facts' constant-predictor loss) where the run's loss is
    that same log loss over the classes the reference predicts: a categorical cross-entropy, or a binary one on a
    single column (on several columns it averages per-column entropies, which the classes' log loss is not)."""
    loss, y = facts.get("loss"), facts.get("y") or {}
    single = list(y.get("shape") or []) in ([], [1])
    if loss in ("categorical_crossentropy", "sparse_categorical_crossentropy") or \
            (loss == "binary_crossentropy" and single):
        return (facts.get("reference") or {}).get("loss")
    return None


def unrelated_labels(facts: dict, epochs: list[dict], chance: float | None = None) -> dict | None:
    """The network fits its training labels while no simple learner predicts them from their inputs out of fold,
    nor the network the validation labels (where there are some): labels that do not belong to their inputs."""
    from harness.facts import learns, validation_reference

    if reference_learns(facts) is not False or not epochs:
        return None
    last, ref = epochs[-1], (facts.get("reference") or {}).get("loss")
    if not learns(last["loss"], ref, None, last.get("acc"), chance):
        return None  # not even memorised: NOT_LEARNING's business
    val = [e["val_loss"] for e in epochs if math.isfinite(e.get("val_loss", math.nan))]
    val_acc = max((e["val_acc"] for e in epochs if e.get("val_acc") is not None), default=None)
    if val and learns(min(val), validation_reference(facts), None, val_acc, chance):
        return None  # new rows are predicted: the inputs do carry the labels
    base = facts["baseline"]
    theirs = f"accuracy {base['accuracy']:.3f} against the majority class's {base['majority']:.3f}" \
        if base.get("task") == "classes" else f"loss {base['loss']:.4g} against a constant's {base['constant']:.4g}"
    fit = f"accuracy {last['acc']:.3f}" if last.get("acc") is not None else f"loss {last['loss']:.4g}"
    held = ", and validation never beats the constant predictor" if val else ""
    return {"message": f"the network fits its training labels ({fit}) but a {base['learner']} predicts them from "
                       f"their inputs no better than chance out of fold ({theirs}){held}: the labels do not follow "
                       "from the inputs, as when they are misaligned or shuffled apart"}


def shifted_split(validation: dict | None) -> dict | None:
    """The validation labels' classes differ from the training labels' (facts' ``validation``): classes unseen in
    training hold at least ACC_MARGIN of the validation rows, or the class shares are SHIFT apart."""
    from harness.facts import ACC_MARGIN

    if not validation:
        return None
    train, val = np.asarray(validation["train"], np.float64), np.asarray(validation["validation"], np.float64)
    if not train.sum() or not val.sum():
        return None
    unseen = float(val[train == 0].sum() / val.sum())
    distance = 0.5 * float(np.abs(train / train.sum() - val / val.sum()).sum())
    shifted = distance >= SHIFT and distance >= SPREADS * _split_spread(train, val)
    if not (unseen >= ACC_MARGIN and _unseen_by_chance(train, val) < CHANCE) and not shifted:
        return None

    def counts(c):
        return "{" + ", ".join(f"{k}: {int(n)}" for k, n in enumerate(c) if n) + "}"
    never = [k for k in range(len(val)) if val[k] and not train[k]]
    what = f"; classes {never} never occur in training" if never else ""
    ordered = validation["runs"] <= 2 * len(train)
    how = f"; the rows are ordered by label ({validation['runs']} runs of one class in {validation['rows']} rows)" \
        if ordered else ""
    message = (f"the validation labels come from other classes than the training labels: validation {counts(val)}, "
               f"training {counts(train)} (class shares {distance:.0%} apart){what}{how}")
    fix = "shuffle the rows before splitting (validation_split takes the last rows as they are)" \
        if validation.get("tail") else "draw the validation rows from the same classes as the training rows"
    return {"message": message, "fix": fix}


def _split_spread(train: np.ndarray, val: np.ndarray) -> float:
    """The total variation distance by which a random draw of ``val.sum()`` rows from all the rows typically
    misses the class shares (an upper bound: half the sum of each share's binomial standard deviation)."""
    p = (train + val) / (train.sum() + val.sum())
    return 0.5 * float(np.sqrt(p * (1 - p) / val.sum()).sum())


def _unseen_by_chance(train: np.ndarray, val: np.ndarray) -> float:
    """The odds that a random split sends every row of the classes unseen in training to validation (about the
    validation share to the power of those rows)."""
    share = val.sum() / (train.sum() + val.sum())
    return float(share ** val[train == 0].sum())


def label_noise(facts: dict) -> dict | None:
    """Many labels the reference confidently disagrees with, spread evenly over the class pairs."""
    from harness.facts import ACC_MARGIN

    base = facts.get("baseline") or {}
    noise = base.get("label_noise") or {}
    share, spread = noise.get("share"), noise.get("spread")
    if share is None or spread is None or share < NOISY_LABELS or spread < EVEN:
        return None  # no spread: two classes, where a hard task and relabelled rows look alike
    if base["accuracy"] < base["majority"] + ACC_MARGIN:
        return None  # a reference that cannot read these inputs disagrees with every label: no evidence
    how = f", spread evenly over the class pairs ({spread:.2f})"
    return {"share": share, "message": f"{share:.0%} of the training labels disagree with a {base['learner']}'s "
                                       f"confident out-of-fold predictions{how}: they look randomly relabelled"}


def program_causes(facts: dict, final_loss: float | None, weight_rms: list[float] | None) -> list[Issue]:
    """Causes of learning less than the data allow that the program states (or the run measured), most likely first."""
    layers = facts.get("layers") or []
    out = []
    classes = ((facts.get("baseline") or {}).get("classes") or (facts.get("y") or {}).get("classes") or 0)
    head = output_layer(layers)
    for i, layer in enumerate(layers[:head] if head is not None else []):
        units = layer.get("units")
        if classes >= 3 and units and layer.get("class") in ("Dense", "Conv1D", "Conv2D", "LSTM", "GRU", "SimpleRNN") \
                and units < classes - 1:
            out.append(Issue("CAPACITY", f"layer {i} has {units} units, fewer than the {classes} classes need "
                             f"({classes - 1})", i, "LSZ", f"widen layer {i} to at least {classes - 1} units"))
    for i, layer in enumerate(layers):
        if (layer.get("rate") or 0) >= HEAVY_DROPOUT and "Dropout" in (layer.get("class") or ""):
            out.append(Issue("DROPOUT", f"layer {i} drops {layer['rate']:.0%} of its inputs", i, "LRM",
                             f"lower the dropout rate of layer {i} (or remove the layer)"))
    penalties = penalty_by_layer(layers, weight_rms)
    penalty = sum(p for _, p in penalties)
    finite = final_loss is not None and math.isfinite(final_loss) and final_loss > 0
    if penalty and finite and penalty / final_loss >= PENALTY_SHARE:
        worst = max(penalties, key=lambda kv: kv[1])[0]
        out.append(Issue("REGULARISER", f"the weight penalty is about {penalty / final_loss:.0%} of the final loss",
                         worst, "RRG", f"weaken the regulariser of layer {worst}"))
    for i, layer in enumerate(layers[:head] if head is not None else layers):
        init = (layer.get("kernel_initializer") or {}).get("class")
        if init in CONSTANT_INITS and (layer.get("units") or 0) > 1:
            out.append(Issue("SYMMETRY", f"layer {i}'s kernel starts {init}: its units start alike", i, "WCI",
                             f"use a random initialiser (glorot_uniform) at layer {i}"))
    return out


def penalty_by_layer(layers: list[dict], weight_rms: list[float] | None) -> list[tuple[int, float]]:
    """Each regularised layer's kernel penalty, estimated from its weights' RMS and parameter count."""
    out = []
    for i, layer in enumerate(layers):
        kernel = (layer.get("regularizers") or {}).get("kernel")
        if not kernel or weight_rms is None or i >= len(weight_rms) or not math.isfinite(weight_rms[i]):
            continue
        n, rms = layer.get("params") or 0, weight_rms[i]
        out.append((i, kernel.get("l2", 0.0) * n * rms ** 2 + kernel.get("l1", 0.0) * n * rms))
    return out

