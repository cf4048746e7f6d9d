"""The detector interface: observe one trace step at a time, never look ahead."""

from __future__ import annotations

import dataclasses

from detectors.live import LiveHooks


@dataclasses.dataclass(frozen=True)
class Finding:
    """One thing a detector reports, at one moment of training.

    ``layer`` is the index of the suspected layer (None when the finding is not
    about a layer); ``diagnosis`` names a fault code from the case schema
    (``HLR``, ``LCH``, ...) when the detector blames a layer-less cause.
    ``fix`` is a suggested change in words; ``fix_code`` names its kind with a
    fault code of the case schema (``ACH`` change an activation, ``HLR`` change
    the learning rate, ...) and ``fix_layer`` the layer it applies to, so a
    suggestion can be scored against the case's patch.

    ``severity`` is ``"error"`` when the training is failing (numerical error,
    divergence, no better than a constant predictor, an output that cannot
    vary, learning that vanished or froze) or the program cannot be right
    (softmax over one unit, a probability loss on a linear output, labels the
    output cannot reach); ``"warning"`` for a risk that is often harmless
    (unscaled inputs, a large learning rate, slow early progress). Scoring
    counts errors as detections and false alarms; warnings are scored apart.
    """

    detector: str
    code: str
    message: str
    step: int
    epoch: int
    batch: int | None
    seconds: float
    layer: int | None = None
    layer_name: str | None = None
    stage: str | None = None
    diagnosis: str | None = None
    fix: str | None = None
    fix_code: str | None = None
    fix_layer: int | None = None
    severity: str = "error"
    alternatives: tuple[str, ...] = ()  # other fixes worth trying, most likely first ("HLR: lower the ...")

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["alternatives"] = list(self.alternatives)  # as JSON stores it: a replay equals a stored copy
        return out


class Detector(LiveHooks):
    """Base class. Subclasses set ``name``, ``version`` and ``signals``.

    The constructor stores parameters only; ``reset()`` rebuilds all run state;
    ``observe(step)`` sees one :class:`harness.trace.Step` and returns the new
    findings (also appended to ``self.findings``). A detector may use only the
    steps it has been shown, so replaying a stored trace equals watching live.

    Every detector is also a Keras callback (see ``detectors.live``):
    ``model.fit(..., callbacks=[detector])``.
    """

    name = "detector"
    version = "1"
    localizes = False  # whether findings name a layer or a fault kind
    suggests = False  # whether findings carry a fix with its kind (fix_code)
    #: trace signals read: "logs", "values", "stats:<stage>", "epoch_logs"
    signals: tuple[str, ...] = ()

    def reset(self) -> None:
        self.findings: list[Finding] = []

    def start(self, meta: dict) -> None:
        """Told once per run, after ``reset()``: budget, layers, metric directions.

        What a live Keras callback learns from ``set_model``/``set_params``.
        """

    def observe(self, step) -> list[Finding]:
        raise NotImplementedError

    def finish(self) -> list[Finding]:
        """Told once when training ends (after the last step shown); may report on that last step.

        For verdicts that need the whole run (the end of training is where a
        budget's evidence is complete). Live, Keras' ``on_train_end`` calls it,
        also when training stopped early.
        """
        return []

    def _finding(self, step, code: str, message: str, static: bool = False, **kw) -> Finding:
        """Record a finding at ``step``; ``static`` ones are known before training (epoch 0, no batch, 0 s)."""
        when = (0, None, 0.0) if static else (step.epoch, step.batch, step.seconds)
        found = Finding(self.name, code, message, step.index, *when, **kw)
        self.findings.append(found)
        return found


def failing(facts: dict, loss: float, first_loss: float | None) -> bool:
    """The loss so far is no better than a constant predictor's (or the run's first loss): learning is not happening.

    What turns a symptom from advice (a warning) into an error: a dead layer in
    a model that learns is harmless, in one that does not it is the cause.
    """
    from harness.facts import learns

    return learns(loss, ((facts or {}).get("reference") or {}).get("loss"), first_loss) is False


def severity_if(failing_now: bool) -> str:
    return "error" if failing_now else "warning"


def persistence_window(meta: dict, window: int, minimum: int) -> int:
    """Batches a condition must persist: ``window``, shortened to a third of a small budget but not below
    ``minimum``."""
    budget = meta.get("budget") or {}
    total = (budget.get("epochs") or 0) * (budget.get("steps_per_epoch") or 0)
    return int(min(window, max(minimum, total // 3))) if total else window


def replay(detector: Detector, trace) -> list[Finding]:
    """Run ``detector`` over a stored trace from a fresh state; return its findings."""
    detector.reset()
    detector.start(trace.meta)
    for step in trace.steps():
        detector.observe(step)
    detector.finish()
    return list(detector.findings)


class NullDetector(Detector):
    """Reports nothing. For harness tests and as a lower bound in tables."""

    name = "null"
    signals = ()

    def observe(self, step) -> list[Finding]:
        return []
