"""Let any detector run as a plain Keras callback, in anyone's ``model.fit``.

``Detector`` inherits these hooks, so ``model.fit(x, y, callbacks=[LayerTrend()])``
works with no patched Keras: when Keras hands the detector its model, the
detector installs the fused probe (``harness.training.probe``) and then observes each
batch and epoch end exactly as a replay would. Keras is imported only then.

Where the probe would change the user's program or cannot see the layers (a custom
``train_step``, ``jit_compile=True``, a subclassed model), the model keeps its own step
and a log-reading probe (``harness.training.live_probe``) records the loss and metrics:
one printed line says the layers are not watched, every check that needs no layer
statistics goes on.
"""

from __future__ import annotations

import inspect
import warnings

# Every hook keras.callbacks.CallbackList may call; the ones not defined below do nothing.
_HOOKS = ("on_batch_begin", "on_batch_end", "on_train_batch_begin",
          "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
          "on_predict_begin", "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end")


# Hooks Keras calls before it first traces the training step (fit: set_model, set_params,
# make_train_function, on_train_begin, then the first step).
_BEFORE_TRACING = ("set_model", "set_params", "on_train_begin")


def _noop(self, *args, **kwargs):
    return None


class LiveHooks:
    """The Keras callback protocol, driving ``reset``/``start``/``observe``/``finish``.

    Live options (plain attributes, set after construction or by subclasses):
    ``stop_on_finding`` stops training at the first *error* finding (a
    warning never stops a fit); ``verbose`` prints each finding as it is made,
    with its severity and fix.

    A detector never breaks a fit that works without it: whatever goes wrong
    inside it or its probe (a model the probe cannot trace, labels it cannot
    read) switches it off with one warning, and the model trains with its own
    step. After the fit the model is as it was (its own ``train_step``).
    """

    stop_on_finding = False
    verbose = 1
    async_safe = False  # findings must be read batch by batch
    model = None
    params: dict = {}
    _disabled = False
    _owns = False

    def set_model(self, model) -> None:
        """Install the probe, or share the one an earlier detector of this fit installed.

        Keras hands every callback the model before training starts; the first
        detector owns the probe (and drives it), later ones read its records.
        """
        self.model, self._disabled, self._owns = model, False, False
        self._guard("set_model", self._install_probe, model)

    def _install_probe(self, model) -> None:
        from harness.training.live_probe import LogProbe, unprobed
        from harness.training.probe import StreamingProbe, steps_per_call

        shared = getattr(model, "_bugbench_live_probe", None)
        if shared is not None and not shared.started:
            self._probe = shared
            return
        reason = unprobed(model)
        if reason is not None:  # the model's own step must run as written: watch what its logs say
            self._probe, self._owns = LogProbe(model, reason), True
        else:
            # A live detector sees every batch as its call ends: one batch, or steps_per_execution of them.
            self._probe, self._owns = StreamingProbe(model, chunk=steps_per_call(model)), True
            self._probe.fallback = True  # a step the probe cannot trace becomes the model's own
        self._probe.set_model(model)
        self._probe.started = False
        object.__setattr__(model, "_bugbench_live_probe", self._probe)  # not a tracked Keras attribute

    def set_params(self, params) -> None:
        self.params = dict(params or {})
        if self._owns:
            self._guard("set_params", self._probe.set_params, params)  # it reads steps_per_execution here

    def on_train_begin(self, logs=None) -> None:
        self._guard("on_train_begin", self._train_begin, logs)

    def _train_begin(self, logs) -> None:
        self.reset()
        self._live_outputs = self._measure_outputs()
        if self._owns:
            self._probe.started = True  # the next fit's detectors install a fresh probe
            self._probe.on_train_begin(logs)
            if self.verbose and hasattr(self._probe, "unwatched"):  # known once the model is built (or not)
                print(f"[{getattr(self, 'name', type(self).__name__)}] not watched in this fit: "
                      f"{self._probe.unwatched()}; the loss, metrics, data sample and end-of-training checks go on")
        self._index, self._live_rows, self._started = 0, 0, False

    def on_epoch_begin(self, epoch, logs=None) -> None:
        if self._owns:
            self._guard("on_epoch_begin", self._probe.on_epoch_begin, epoch, logs)

    def on_train_batch_end(self, batch, logs=None) -> None:
        self._guard("on_train_batch_end", self._batch_end, batch, logs)

    def _batch_end(self, batch, logs) -> None:
        if self._owns:
            self._probe.on_train_batch_end(batch, logs)
        if self._probe.failure is not None:
            raise RuntimeError(f"the probe cannot trace this model ({type(self._probe.failure).__name__}: "
                               f"{self._probe.failure})")
        if not self._started:
            self._started = True
            self.start(self._live_meta())
        budget, recorder = self._live_budget(), self._probe.recorder
        for row in range(self._live_rows, recorder.n_batches):  # more than one when Keras runs several steps per call
            epoch, b = recorder.batch_at(row)
            final = budget.is_final(epoch, b)
            self._emit(self.observe(recorder.batch_step_at(row, self._index, final)))
        self._live_rows = recorder.n_batches

    def on_epoch_end(self, epoch, logs=None) -> None:
        self._guard("on_epoch_end", self._epoch_end, epoch, logs)

    def _epoch_end(self, epoch, logs) -> None:
        if self._owns:
            self._probe.on_epoch_end(epoch, logs)
        if self._started:
            final = self._live_budget().is_final(epoch)
            self._learn_validation()
            if final:
                self._learn_final_outputs()
            self._emit(self.observe(self._probe.recorder.last_epoch_step(self._index, final)))
        if logs is not None:
            logs.update(self.log_values())

    def _learn_validation(self) -> None:
        """The validation labels' facts (``harness.facts.validation_facts``), once Keras holds the validation data
        (from the first validation on), for a detector given ``sample=(x, y)``: the harness's facts have them."""
        sample, facts = getattr(self, "sample", None), getattr(self, "_facts", None)
        if sample is None or facts is None or "validation" in facts:
            return
        from harness.facts import validation_facts
        from harness.training.live_probe import validation_arrays

        arrays = validation_arrays(self.model)
        if arrays is not None:
            facts["validation"] = validation_facts(sample[1], arrays[1])

    def _learn_final_outputs(self) -> None:
        """What the outputs are on the ``sample`` once training ended (``outputs_end`` in the facts): a model
        whose layers were not watched shows a constant output only so."""
        facts = getattr(self, "_facts", None)
        if facts is not None and getattr(self, "sample", None) is not None and "outputs_end" not in facts:
            facts["outputs_end"] = self._measure_outputs()  # at the last epoch's end, or where a fit stopped

    def log_values(self) -> dict[str, float]:
        """What this detector adds to the epoch's ``logs`` (so History, CSVLogger, TensorBoard or W&B record it):
        ``<name>_errors`` and ``<name>_warnings``, the findings so far, and ``<name>_first_error_epoch``, the
        1-based epoch of the first error (0: none yet). Numbers only: TensorBoard writes every log as a scalar.
        The first error's code and fix are in ``first_error`` and the printed line."""
        found = getattr(self, "findings", [])
        errors = [f for f in found if f.is_error]
        key = getattr(self, "name", type(self).__name__).replace("-", "_")
        return {f"{key}_errors": float(len(errors)), f"{key}_warnings": float(len(found) - len(errors)),
                f"{key}_first_error_epoch": float(errors[0].epoch + 1) if errors else 0.0}

    @property
    def first_error(self):
        """The first error finding of this fit (None: none yet)."""
        return next((f for f in getattr(self, "findings", []) if f.is_error), None)

    def on_train_end(self, logs=None) -> None:
        if getattr(self, "_started", False):
            self._guard("on_train_end", self._learn_final_outputs)
            self._guard("on_train_end", lambda: self._emit(self.finish(), advance=False))
        if self._owns:
            self._restore_model(rebuild=True)

    def _restore_model(self, rebuild: bool) -> None:
        """Give the model back its own step: a later fit (or a saved model) must not carry the probe.

        ``rebuild`` drops Keras' compiled step too; only allowed outside a fit's loop, which calls it.
        """
        model = self.model
        if getattr(vars(model).get("train_step"), "__self__", None) is getattr(self, "_probe", None):
            vars(model).pop("train_step", None)  # only the probe's: a train_step the user set stays
        vars(model).pop("_bugbench_live_probe", None)
        if rebuild:
            model.train_function = None

    def _guard(self, hook: str, fn, *args):
        if self._disabled:
            return None
        try:
            return fn(*args)
        except Exception as exc:  # never the user's fit's problem
            self._disabled = True
            warnings.warn(f"bugbench detector '{getattr(self, 'name', type(self).__name__)}' switched itself off "
                          f"in {hook} ({type(exc).__name__}: {exc}); the fit goes on without it",
                          RuntimeWarning, stacklevel=3)
            if self._owns and self.model is not None and hook in _BEFORE_TRACING:
                # Keras has not traced its step yet: it will trace the model's own. (Later, the traced
                # probe step simply goes on writing a buffer nobody reads.)
                self._restore_model(rebuild=hook != "on_train_begin")
            return None

    def _emit(self, findings, advance: bool = True) -> None:
        self._index += advance
        for f in findings:
            if self.verbose:
                print(format_finding(self.name, f))
        if any(f.is_error for f in findings) and self.stop_on_finding:
            self.model.stop_training = True

    def _measure_outputs(self):
        """What the model's outputs are on the detector's ``sample`` (harness.outputs), before the first
        step."""
        sample = getattr(self, "sample", None)
        if sample is None:
            return None
        from harness.outputs import measure

        return measure(self.model, sample[0])

    def _live_meta(self) -> dict:
        from harness.facts import describe
        from harness.training.probe import describe_layers

        facts = describe(self.model)
        if getattr(self, "_live_outputs", None) is not None:
            facts["outputs"] = self._live_outputs
        return {"layers": describe_layers(self.model), "metric_directions": self._probe.metric_directions(),
                "facts": facts, "budget": self._live_budget().to_dict()}

    def _live_budget(self):
        """The fit's budget as Keras states it in ``params`` (the batch size is not among them)."""
        from harness.trace import Budget

        return Budget(epochs=self.params.get("epochs"), steps_per_epoch=self.params.get("steps"))


def fit_weights(model) -> dict | None:
    """``class_weight`` and ``sample_weight`` of the ``fit`` now training ``model``, or None outside one.

    Keras weights the logged training loss by them but tells callbacks neither (``params`` holds the epochs
    and steps only), so they are read from the frame of the model's own ``fit``, which is on the stack while
    its callbacks run. A ``tf.data`` dataset of ``(x, y, weights)`` makes them unknown (they cannot be
    matched to the sample's rows).
    """
    if model is None:
        return None
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name == "fit" and frame.f_locals.get("self") is model:
            local = frame.f_locals
            spec = getattr(local.get("x"), "element_spec", None)
            if isinstance(spec, tuple) and len(spec) == 3:  # a dataset of (x, y, sample_weight)
                return {"unknown": "the dataset yields sample weights, which cannot be matched to the sample"}
            return {"class_weight": local.get("class_weight"), "sample_weight": local.get("sample_weight")}
        frame = frame.f_back
    return None


def format_finding(detector: str, f) -> str:
    """``[diagnose] epoch 2 batch 4: error HLR layer 3 (dense_1) - message; fix: lower the learning rate``."""
    if f.batch is None and f.epoch == 0 and f.seconds == 0:
        when = "before training"  # a static finding
    else:
        when = f"epoch {f.epoch + 1}" + (f" batch {f.batch + 1}" if f.batch is not None else "")
    where = f"layer {f.layer} ({f.layer_name}) " if f.layer is not None else ""
    fix = f"; fix: {f.fix}" if f.fix else ""
    return f"[{detector}] {when}: {f.severity} {f.code} {where}- {f.message}{fix}"


for _name in _HOOKS:
    setattr(LiveHooks, _name, _noop)
