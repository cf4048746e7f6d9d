"""The detector interface: observe one trace step at a time, never look ahead."""

from __future__ import annotations

import dataclasses
from typing import Literal, get_args

from detectors.live import LiveHooks
from harness.trace import Budget

Severity = Literal["error", "warning"]
SEVERITIES: tuple[str, ...] = get_args(Severity)


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
    severity: Severity = "error"
    alternatives: tuple[str, ...] = ()  # other fixes worth trying, most likely first ("HLR: lower the ...")

    def __post_init__(self):
        if self.severity not in SEVERITIES:  # a misspelt severity would count as neither in every table
            raise ValueError(f"{self.detector} {self.code}: severity {self.severity!r} is not one of {SEVERITIES}")

    @property
    def is_error(self) -> bool:
        """Whether this finding counts as a detection (and a false alarm on a healthy run)."""
        return self.severity == "error"

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["alternatives"] = list(self.alternatives)  # as JSON stores it: a replay equals a stored copy
        return out


class Detector(LiveHooks):
    """Base class of every detector, in the spirit of a Keras monitor callback.

    Subclasses set ``name`` and ``version``, store their own parameters, then
    call ``super().__init__(stop_on_finding=..., verbose=...)``, which calls
    ``reset()``. ``reset()`` rebuilds all run state (subclasses extend it);
    ``start(meta)`` keeps the run's layers, facts and budget; ``observe(step)``
    sees one :class:`harness.trace.Step` and returns the new findings, made
    with ``self.report(...)`` (which also appends them to ``self.findings``). A
    detector may use only the steps it has been shown, so replaying a stored
    trace equals watching live.

    Every detector is also a Keras callback (see ``detectors.live``):
    ``model.fit(..., callbacks=[detector])``; ``stop_on_finding`` stops the fit
    at the first error, ``verbose`` prints findings as they are made.
    """

    name = "detector"
    version = "1"
    # Every finding code the detector emits, in words: the tables' legends and figures read them from here.
    codes: dict[str, str] = {}
    localizes = False  # whether findings name a layer or a fault kind
    suggests = False  # whether findings carry a fix with its kind (fix_code)

    def __init__(self, stop_on_finding: bool = False, verbose: int = 1):
        self.stop_on_finding = stop_on_finding
        self.verbose = verbose
        self.reset()

    def reset(self) -> None:
        self.findings: list[Finding] = []
        self._seen: set = set()  # keys of the findings made, so each is reported once
        self._layers: list[dict] = []
        self._facts: dict = {}
        self._budget = Budget()

    def start(self, meta: dict) -> None:
        """Told once per run, after ``reset()``: budget, layers, facts, metric directions.

        What a live Keras callback learns from ``set_model``/``set_params``.
        """
        self._layers = list(meta.get("layers") or [])
        self._facts = dict(meta.get("facts") or {})
        self._budget = Budget.of(meta.get("budget"))

    def observe(self, step) -> list[Finding]:
        raise NotImplementedError

    def finish(self) -> list[Finding]:
        """Told once when training ends (after the last step shown); may report on that last step.

        For verdicts that need the whole run (the end of training is where a
        budget's evidence is complete). Live, Keras' ``on_train_end`` calls it,
        also when training stopped early.
        """
        return []

    def report(self, step, code: str, message: str, *, severity: Severity, fix_code: str | None = None,
               fix: str | None = None, fix_layer: int | None = None, layer: int | None = None,
               stage: str | None = None, diagnosis: str | None = None, key=None, static: bool = False,
               alternatives=()) -> Finding | None:
        """Record a finding at ``step``, once per ``key`` (default ``(code, layer, stage)``); None if made before.

        ``severity`` is ``"error"`` or ``"warning"`` (see :class:`Finding`); the
        layer's name comes from the run's layers. ``static`` findings are known
        before training: epoch 0, no batch, 0 s.
        """
        key = (code, layer, stage) if key is None else key
        if key in self._seen:
            return None
        self._seen.add(key)
        when = (0, None, 0.0) if static else (step.epoch, step.batch, step.seconds)
        found = Finding(self.name, code, message, step.index, *when, layer=layer, layer_name=self._layer_name(layer),
                        stage=stage, diagnosis=diagnosis, fix=fix, fix_code=fix_code, fix_layer=fix_layer,
                        severity=severity, alternatives=tuple(alternatives))
        self.findings.append(found)
        return found

    def reported(self, key) -> bool:
        """Whether a finding under ``key`` was made: lets a detector skip working out one it would not report."""
        return key in self._seen

    def _layer_name(self, layer: int | None) -> str | None:
        return self._layers[layer].get("name") if layer is not None and layer < len(self._layers) else None

    def _describe_layers(self, step) -> None:
        """Without a layer list (a bare trace), name the layers by position: ``layer0``, ``layer1``, ..."""
        if not self._layers and step.stats is not None:
            self._layers = [{"name": f"layer{i}"} for i in range(step.stats.shape[0])]


def failing(facts: dict, loss: float, first_loss: float | None) -> bool:
    """The loss so far is no better than a constant predictor's (or the run's first loss): learning is not happening.

    What turns a symptom from advice (a warning) into an error: a dead layer in
    a model that learns is harmless, in one that does not it is the cause.
    """
    from harness.facts import learns

    return learns(loss, ((facts or {}).get("reference") or {}).get("loss"), first_loss) is False


def severity_if(failing_now: bool) -> Severity:
    return "error" if failing_now else "warning"


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

    def observe(self, step) -> list[Finding]:
        return []
