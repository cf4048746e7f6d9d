"""What only a live detector uses from training: a probe that leaves the model's step alone, and the fit's
validation labels.

The full probe (``harness.training.probe``) runs the training step itself to see every layer. Where that
would change the user's program, or cannot see the layers, the model keeps its own step and this probe
records, per batch, the loss and metrics from the logs Keras hands every callback: a subclassed model
(no layer graph to run), a model with its own ``train_step`` (the probe's step would replace it), a step
compiled with XLA (``jit_compile=True``: the probe's statistics op has no XLA kernel). No layer
statistics of outputs or gradients; each layer's kernel (its first trainable weight, as the full probe
reads it) and its change over each batch are read on the host, when the model is built before training
(a subclass is built by its first call: ``Diagnose(sample=...)`` makes one) and its kernels hold at most
WATCH_LIMIT elements. The detectors' loss, metric, sample and end-of-training checks run as usual, and
those that read weights and updates (update sizes, NaN weights) as well.

Keras logs running means over the epoch; a batch's own value is recovered from two consecutive means,
``(n m_n - k m_k) / (n - k)``, exact for equal batches (a smaller last batch is weighted as a full one). A
custom ``train_step`` may return raw batch values instead of its metrics' results: at the first hook after
two batches, each logged name is compared with the model's metrics (``get_metrics_result``, what Keras's own
step returns); a name no metric's running result matches is read as the batch's own value.

No training worker imports this module (``tests/test_layout.py`` checks), so it shapes no stored trace and
the unit key does not hash it (``harness.provenance.LIVE_ONLY``). The private Keras names it reads, beside
``harness.training.keras_step``'s (checked against Keras 3.15.1): a graph's ``_run_through_graph`` (as
``keras_step.layer_graph``), and the running fit's ``_eval_epoch_iterator`` with its adapter's ``_inputs``.
"""

from __future__ import annotations

import math
import time

import numpy as np

from harness.trace import STAGES, STATS, TraceRecorder
from harness.training import keras_step

# Kernel elements read to the host at each batch end: 1 MB of float32, about 3 ms per batch on one CPU core for
# the copy, the update and both stages' statistics (16 ms at 2^20); a larger model's weights would tax every step
# of a fit whose own step is kept so as not to change it.
WATCH_LIMIT = 2**18


def unprobed(model) -> str | None:
    """Why the full probe must not take over this model's step (None: it may)."""
    import keras

    if "train_step" in vars(model) or type(model).train_step is not keras.Model.train_step:
        return "the model has its own train_step, which the probe would replace"
    if getattr(model, "jit_compile", False):  # "auto" resolves to False on CPU
        return "the step is compiled with XLA (jit_compile=True), which the probe's statistics cannot join"
    graph = model._functional if isinstance(model, keras.Sequential) else model
    if not hasattr(graph, "_run_through_graph"):
        return "a subclassed model has no layer graph to run layer by layer"
    return None


def validation_arrays(model):
    """``(x, y)`` of the running fit's validation data when they are in-memory arrays, else None.

    Keras keeps the validation iterator on the model from the first validation to the end of ``fit``.
    """
    iterator = getattr(model, "_eval_epoch_iterator", None)
    inputs = getattr(getattr(iterator, "data_adapter", None), "_inputs", None)
    if not isinstance(inputs, tuple) or len(inputs) < 2 or inputs[1] is None:
        return None
    return inputs[0], inputs[1]


class LogProbe:
    """Record each batch's loss and metrics from Keras' logs; the model trains with its own step.

    Not a Keras callback itself: the detector that owns it forwards the hooks, as it does a full probe's.

    Args:
        model: a compiled Keras model of any kind.
        reason: why the layers are not watched (printed by the detector that installs it).
    """

    fallback = True  # the interface of Probe: nothing here can fail to trace
    failure = None

    def __init__(self, model, reason: str):
        self.reason = reason
        self._model_ref = model
        self.recorder = None
        self._per_call = keras_step.steps_per_call(model)
        self._epoch, self._seen, self._means = 0, 0, {}
        self._raw: set[str] | None = None  # names logged as batch values, not running means (None: not judged yet)

    def set_model(self, model):
        self._model_ref = model

    def set_params(self, params):
        self._per_call = keras_step.steps_per_call(self._model_ref)

    def metric_directions(self) -> dict[str, str]:
        compiled = keras_step.compiled_metrics(self._model_ref)
        metrics = compiled.metrics if compiled is not None else []
        return {m.name: keras_step.metric_direction(m) for m in metrics if keras_step.metric_direction(m)}

    def on_train_begin(self, logs=None):
        self.recorder = None
        self._t0 = time.perf_counter()
        self.kernels = KernelWatch(self._model_ref)

    def unwatched(self) -> str:
        """What this fit's trace lacks, for the line the detector prints."""
        if self.kernels.layers:
            return f"the layers' outputs and gradients ({self.reason}; their weights and updates are watched)"
        return f"the layers' statistics ({self.reason}{self.kernels.why})"

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._seen, self._means = epoch, 0, {}

    def on_train_batch_end(self, batch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0}
        if self.recorder is None:
            names = ["loss", *sorted(k for k in logs if k != "loss"), "learning_rate"]
            self.recorder = TraceRecorder([layer.name for layer in self.kernels.layers], names)
        seen = batch + 1  # batches of this epoch so far (steps_per_execution runs several per hook)
        if self._raw is None and seen >= 2:  # one batch's mean is its value: the two readings differ from the second
            self._raw = raw_values(logs, self._model_ref)
        values = [self._own(name, logs.get(name, math.nan), seen) for name in self.recorder.value_names[:-1]]
        values.append(self._learning_rate())
        self._seen, self._means = seen, {k: logs.get(k, math.nan) for k in self.recorder.value_names[:-1]}
        self.recorder.add_batch(epoch=self._epoch, batch=batch, seconds=time.perf_counter() - self._t0,
                                stats=self.kernels.step(), mask=self.kernels.mask,
                                values=np.array(values, np.float64), logs=logs)

    def _own(self, name: str, mean: float, seen: int) -> float:
        if self._raw and name in self._raw:
            return mean  # the step logged the batch's own value
        before = self._means.get(name, 0.0) if self._seen else 0.0
        if seen <= self._seen:
            return mean
        return (seen * mean - self._seen * before) / (seen - self._seen)

    def _learning_rate(self) -> float:
        try:
            return float(np.asarray(self._model_ref.optimizer.learning_rate))
        except (AttributeError, TypeError, ValueError):
            return math.nan

    def on_epoch_end(self, epoch, logs=None):
        if self.recorder is not None:
            self.recorder.add_epoch(epoch=epoch, seconds=time.perf_counter() - self._t0, logs=logs or {})


def raw_values(logs: dict, model) -> set[str]:
    """The names in a step's ``logs`` that are no running result of the model's metrics: batch values.

    Keras's own ``train_step`` returns ``get_metrics_result()``; a custom one may return what it computed for
    the batch. Relative tolerance 1e-6: the same float32 result read twice agrees to the bit.
    """
    try:
        results = {k: float(np.asarray(v)) for k, v in model.get_metrics_result().items() if np.ndim(v) == 0}
    except Exception:  # a model without Keras's trainer (or metrics that fail to read): keep the means reading
        return set()
    return {name for name, value in logs.items()
            if name not in results or abs(results[name] - value) > 1e-6 * max(1.0, abs(value))}


class KernelWatch:
    """Each probed layer's kernel after every batch and its change since the last, read on the host.

    ``layers`` is empty (nothing watched, ``why`` says so) when the model is not built before training (its
    kernels' first values unknown) or its kernels exceed WATCH_LIMIT. With several steps per hook
    (``steps_per_execution``) an update spans them all, as the full probe's chunked statistics do not.
    """

    def __init__(self, model):
        layers = [layer for layer in getattr(model, "layers", []) if type(layer).__name__ != "InputLayer"]
        self.layers, self.why, self._kernels = [], "", []
        self.mask = np.zeros((0, len(STAGES)), bool)
        if not getattr(model, "built", False):
            self.why = "; not built before training, so the weights' first values are unknown"
            return
        kernels = [layer.trainable_weights[0] if layer.trainable_weights else None for layer in layers]
        size = sum(int(np.prod(k.shape)) for k in kernels if k is not None)
        if size > WATCH_LIMIT:
            self.why = f"; {size:,} kernel elements, above the {WATCH_LIMIT:,} read to the host per batch"
            return
        self.layers, self._kernels = layers, kernels
        self.mask = np.zeros((len(layers), len(STAGES)), bool)
        for i, k in enumerate(kernels):
            self.mask[i, [STAGES.index("weights"), STAGES.index("update")]] = k is not None
        self._before = [None if k is None else np.array(k, np.float32) for k in kernels]

    def step(self) -> np.ndarray:
        """[layer, stage, stat] of this batch: the kernel and its update; zeros where a stage is not watched."""
        out = np.zeros((len(self.layers), len(STAGES), len(STATS)), np.float32)
        for i, k in enumerate(self._kernels):
            if k is None:
                continue
            now = np.array(k, np.float32)
            out[i, STAGES.index("weights")] = tensor_stats(now)
            out[i, STAGES.index("update")] = tensor_stats(now - self._before[i])
            self._before[i] = now
        return out


def tensor_stats(a: np.ndarray) -> np.ndarray:
    """STATS of one array as the full probe computes them: mean and (population) std of every element, min and
    max of the finite ones, the share of zeros, NaN and Inf counts."""
    a = a.ravel()
    with np.errstate(invalid="ignore", over="ignore"):
        mean, std = a.mean(dtype=np.float64), a.std(dtype=np.float64)
        if np.isfinite(mean):  # a finite sum: no NaN/Inf anywhere, so the plain reductions stand (the usual case)
            lo, hi, nan, inf = a.min(), a.max(), 0, 0
        else:
            finite = np.isfinite(a)
            lo = a[finite].min() if finite.any() else np.nan
            hi = a[finite].max() if finite.any() else np.nan
            nan, inf = np.isnan(a).sum(), np.isinf(a).sum()
    values = {"mean": mean, "std": std, "min": lo, "max": hi, "zero_frac": np.count_nonzero(a == 0) / max(a.size, 1),
              "nan": nan, "inf": inf}
    return np.array([values[name] for name in STATS], np.float32)
