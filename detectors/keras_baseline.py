"""The paper's baseline: Keras' own callbacks, replayed on a stored trace.

The real ``keras.callbacks.TerminateOnNaN`` and ``EarlyStopping`` objects are fed
the exact logs Keras gave callbacks during the fit. "Detected" has the paper's
meaning: the callback would have stopped training before the epoch budget.
Keras callbacks never localize, so findings carry no layer.

Example::

    >>> det = EarlyStoppingLossDetector()
    >>> findings = replay(det, trace)      # doctest: +SKIP
    >>> findings[0].epoch                  # doctest: +SKIP
    1
"""

from __future__ import annotations

import contextlib
import io

from detectors.base import Detector, Finding


class _StopFlag:
    """Stands in for the model: Keras callbacks only set ``stop_training``."""

    stop_training = False


def _make(kind: str, directions: dict[str, str]):
    """The real callback; None when Keras could not attach it to this model.

    EarlyStopping's default mode="auto" reads the direction of the monitored
    metric off the live model. The replay has no model, so the direction
    recorded in the trace is passed as the mode "auto" would have chosen. A
    model without an 'accuracy' metric makes Keras 3 raise at the first epoch
    end; here that callback simply never stops training.
    """
    import keras  # imported lazily: listing detectors must stay cheap

    if kind == "ton":
        return keras.callbacks.TerminateOnNaN()
    if kind == "es-loss":
        return keras.callbacks.EarlyStopping(monitor="loss", patience=1)
    if kind == "es-acc":
        mode = {"up": "max", "down": "min"}.get(directions.get("accuracy"))
        return keras.callbacks.EarlyStopping(monitor="accuracy", patience=1, mode=mode) if mode else None
    raise ValueError(kind)


class KerasCallbackDetector(Detector):
    """Replays a set of real Keras callbacks; reports the first early stop.

    Args:
        callbacks: which callbacks to attach together: any of "ton",
            "es-loss", "es-acc" (their union stops at the first of them).
        stop_on_finding, verbose: as for every detector used as a live callback.
    """

    name = "keras-callbacks"
    version = "1"
    codes = {"STOP": "the callback stopped training"}
    callbacks: tuple[str, ...] = ("ton", "es-loss", "es-acc")

    def __init__(self, callbacks: tuple[str, ...] | None = None, stop_on_finding: bool = False, verbose: int = 1):
        if callbacks is not None:
            unknown = set(callbacks) - {"ton", "es-loss", "es-acc"}
            if unknown:
                raise ValueError(f"unknown Keras callbacks {sorted(unknown)}")
            self.callbacks = tuple(callbacks)
        super().__init__(stop_on_finding=stop_on_finding, verbose=verbose)

    def reset(self) -> None:
        super().reset()
        self._directions: dict[str, str] = {}
        self._live = None
        self._done = False

    def start(self, meta: dict) -> None:
        super().start(meta)
        self._directions = dict(meta.get("metric_directions", {}))
        self._attach()

    def _attach(self) -> None:
        self._flag = _StopFlag()
        self._live = [_make(kind, self._directions) for kind in self.callbacks]
        for cb in self._live:
            if cb is not None:
                cb.set_model(self._flag)
                cb.on_train_begin()

    def observe(self, step) -> list[Finding]:
        if self._done:
            return []
        if self._live is None:
            self._attach()
        with contextlib.redirect_stdout(io.StringIO()):  # TerminateOnNaN prints its verdict
            for cb in filter(None, self._live):
                if step.kind == "batch":
                    cb.on_train_batch_end(step.batch, dict(step.logs))
                else:
                    cb.on_epoch_end(step.epoch, dict(step.logs))
        if not self._flag.stop_training:
            return []
        self._done = True
        if step.final:
            return []  # a stop at the budget's very last moment is not an early stop
        who = self._who_stopped(step)
        where = f"epoch {step.epoch + 1}" + (f", batch {step.batch + 1}" if step.batch is not None else "")
        return [self.report(step, "STOP", f"{who} stopped training at {where}", severity="error")]

    def _who_stopped(self, step) -> str:
        if step.kind == "batch":
            return "TerminateOnNaN"
        # EarlyStopping with patience 1 cannot stop at epoch 0, so stopped_epoch > 0 is exact.
        names = {"es-loss": "EarlyStopping(loss)", "es-acc": "EarlyStopping(accuracy)"}
        stopped = [names[k] for k, cb in zip(self.callbacks, self._live)
                   if k != "ton" and cb is not None and cb.stopped_epoch > 0]
        return " + ".join(stopped)

    def __getstate__(self):
        # Live Keras callbacks hold a model reference; rebuild them on unpickle.
        state = self.__dict__.copy()
        state.pop("_live", None)
        state.pop("_flag", None)
        return state

    def __setstate__(self, state):
        # Callback state mid-run is not carried over: an unpickled detector
        # resumes with fresh callbacks (use it after reset(), as the suite does).
        self.__dict__.update(state)
        self._live = None


class TerminateOnNaNDetector(KerasCallbackDetector):
    """``keras.callbacks.TerminateOnNaN()``: stops on a NaN/Inf batch loss."""

    callbacks = ("ton",)


class EarlyStoppingLossDetector(KerasCallbackDetector):
    """``EarlyStopping(monitor="loss", patience=1)``: stops when the epoch loss stops falling."""

    callbacks = ("es-loss",)


class EarlyStoppingAccuracyDetector(KerasCallbackDetector):
    """``EarlyStopping(monitor="accuracy", patience=1)``: stops when accuracy stops rising."""

    callbacks = ("es-acc",)


class KerasUnionDetector(KerasCallbackDetector):
    """All three callbacks attached together, as the paper's fourth column."""

    callbacks = ("ton", "es-loss", "es-acc")
