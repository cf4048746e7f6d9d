"""Record per-layer statistics of every training batch, inside the training step.

The probe replaces a model's ``train_step`` with one that runs the layers itself
under the same gradient tape, so a single forward and backward pass yields the
weight update *and* every statistic: forward outputs, kernels, kernel
gradients, the update the optimizer made, and the gradient of the loss with
respect to each layer's output.

Cost is what decides whether a probe is left on, so:

* on the small models of the benchmark a step is a few hundred tiny ops, and
  the probe pays per op, not per byte: every statistic of every probed tensor
  comes from one compiled op (``harness.training.stats_op``; a weight update is
  passed as its two reads and never materialised), 27-48 extra ops per step
  in all where TensorFlow's own reductions took 89-172 (1.5-1.7x a plain fit
  on small models, measured in bench/overhead.py). The op's pass runs in SIMD
  lanes, 30-130 us a step on the small bench models, where the extra ops
  themselves cost a few us each. It runs inline on the thread that readied its
  inputs: handing it to another thread cost more than it saved (so did
  computing a step's statistics in the next step, to overlap them with its
  forward pass: measured no faster, 20 % more CPU);
* without a compiler (``stats="tf"``), TensorFlow ops compute them: small
  tensors of the same shape (a kernel, its gradient and its update; an
  output and its gradient) are stacked, so five reductions serve a whole stack
  (large ones are reduced alone, which parallelises better), and
  NaN/Inf counting runs only in a step whose sums say there is something to
  count (per-tensor reductions cost 2-4x more; one concatenated vector with
  segment reductions was measured slower still on CPU);
* each step writes one row into an in-graph buffer that holds a whole
  epoch; the host reads it at the epoch's end. The batch hook only notes the
  time and is marked safe for Keras to run asynchronously, as Keras runs a
  plain fit's hooks (a hook Keras must wait for was measured at 1.3-1.5x on
  small models, before any statistic). ``StreamingProbe`` reads every
  ``chunk`` batches instead, for live detectors and epochs of unknown length.

Works for Sequential and functional models whose layers are called once.
"""

from __future__ import annotations

import functools
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from harness.trace import STAGES, STATS, TraceRecorder
from harness.training import keras_step
from harness.training.keras_step import steps_per_call

DEFAULT_CHUNK = 64
BUFFER_LIMIT = 256 * 2**20  # bytes: a longer epoch needs a StreamingProbe


STACK_LIMIT = 1 << 17  # elements: smaller tensors are stacked, larger ones reduced alone


def stack_groups(tensors) -> list[list[int]]:
    """Indices of tensors to reduce together: small ones of one static shape (but for the first dimension).

    A kernel, its gradient and its update share a shape, as do a layer's output
    and its output gradient (and equal layers of a deep stack): on small tensors
    op count is what a probe pays for, so one reduction over a stack replaces
    one per tensor. Large tensors are reduced alone: a row-wise reduction over a
    short stack uses fewer threads than a full one (measured 2x slower).
    """
    groups: dict = {}
    for i, t in enumerate(tensors):
        shape = tuple(t.shape)
        known = all(d is not None for d in shape[1:])
        size = int(np.prod([d or 64 for d in shape]))  # an unknown batch counted as 64
        key = shape if known and size <= STACK_LIMIT else ("alone", i)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def _size(g):
    """Elements per member of a [k, n] group: a float where the shape is static, else a float32 tensor."""
    n = g.shape[-1]
    return tf.cast(tf.shape(g)[-1], tf.float32) if n is None else float(n)


def _matrix(members) -> tf.Tensor:
    """[k, n]: the k same-shaped members stacked, then flattened in one op (not one reshape per member)."""
    if len(members) == 1:
        return tf.reshape(members[0], [1, -1])
    stacked = tf.stack(members)
    return stacked if stacked.shape.rank == 2 else tf.reshape(stacked, [len(members), -1])


def batched_stats(tensors) -> tf.Tensor:
    """[tensor, STATS] float32: the statistics of every tensor (NaN propagates into mean/std).

    Each group is a [k, n] matrix (k = 1 for a tensor reduced alone; a
    reduction along a size-1 axis is a full one) reduced along axis 1, and the
    divisions are done once over all groups. Finite sums everywhere mean no
    NaN/Inf element anywhere, so plain min/max stand; only a step with a
    non-finite value somewhere pays for masked min/max and NaN/Inf counts, in
    one branch that a healthy step never runs.
    """
    groups = stack_groups(tensors)
    flat = [_matrix([tf.cast(tensors[i], tf.float32) for i in idx]) for idx in groups]
    parts = {key: [] for key in ("sum", "ss", "zeros", "min", "max")}
    counts = []  # elements per tensor: numbers where static, so dividing by them builds no ops
    for g in flat:
        n = _size(g)
        counts.append(tf.fill(tf.shape(g)[:1], n) if tf.is_tensor(n) else np.full(g.shape[0], n, np.float32))
        total = tf.reduce_sum(g, axis=1, keepdims=True)
        parts["sum"].append(total)
        parts["ss"].append(tf.reduce_sum(tf.math.squared_difference(g, total / n), axis=1, keepdims=True))
        parts["zeros"].append(tf.reduce_sum(tf.cast(tf.equal(g, 0.0), tf.float32), axis=1, keepdims=True))
        parts["min"].append(tf.reduce_min(g, axis=1, keepdims=True))
        parts["max"].append(tf.reduce_max(g, axis=1, keepdims=True))
    col = {key: tf.concat(v, 0) for key, v in parts.items()}  # each [tensor, 1], in group order
    col["n"] = (tf.constant(np.concatenate(counts)) if all(isinstance(c, np.ndarray) for c in counts)
                else tf.concat([tf.cast(c, tf.float32) for c in counts], 0))[:, None]
    plain = tf.concat([col["min"], col["max"], tf.zeros_like(col["min"]), tf.zeros_like(col["min"])], 1)
    extra = tf.cond(tf.reduce_all(tf.math.is_finite(col["sum"])), lambda: plain, lambda: _non_finite(flat))
    rows = tf.concat([col["sum"] / col["n"], tf.sqrt(col["ss"] / col["n"]), extra[:, :2],
                      col["zeros"] / col["n"], extra[:, 2:]], 1)  # STATS order
    order = [i for idx in groups for i in idx]
    return tf.gather(rows, np.argsort(order))


def _non_finite(flat) -> tf.Tensor:
    """[tensor, 4]: min and max of the finite values, NaN count, Inf count (tensors in group order).

    One numpy op rather than 13 TensorFlow ops per group: a healthy step never
    runs this branch, but every fit pays for building it. Measured on the CNN
    of bench/overhead.py, the first step (trace, graph optimisation, first
    run) took about 0.15 s less; the statistics are bit-identical (a NaN case
    under op determinism compared row by row).
    """
    out = tf.numpy_function(_non_finite_numpy, flat, tf.float32, stateful=False)
    out.set_shape([sum(g.shape[0] for g in flat), 4])
    return out


def _non_finite_numpy(*groups) -> np.ndarray:
    rows = []
    for g in groups:
        finite = np.isfinite(g)
        rows.append(np.stack([np.where(finite, g, np.inf).min(axis=1), np.where(finite, g, -np.inf).max(axis=1),
                              np.isnan(g).sum(axis=1), np.isinf(g).sum(axis=1)], 1))
    return np.concatenate(rows).astype(np.float32)


def describe_layers(model) -> list[dict]:
    """Index, name, class and activation of every probed layer (input layers excluded)."""
    out = []
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    for i, layer in enumerate(layers):
        act = getattr(layer, "activation", None)
        out.append({"index": i, "name": layer.name, "class": type(layer).__name__,
                    "activation": getattr(act, "__name__", None) if act is not None else None,
                    "units": getattr(layer, "units", None) or getattr(layer, "filters", None),
                    "params": int(layer.count_params())})
    return out


def _stats_backend(stats: str):
    """(name, op module or None) for ``stats``: "native" (the one-op kernel), "tf" (TensorFlow ops) or "auto".

    "auto" takes ``BUGBENCH_STATS`` where it is set, else the native op where
    it can be built, else TensorFlow ops with a warning.
    """
    from harness.training import stats_op

    if stats == "auto":
        stats = stats_op.chosen()
        if stats is None:
            try:
                return "native", stats_op.load()
            except stats_op.StatsOpError as exc:
                warnings.warn(f"the probe computes its statistics with TensorFlow ops, slower: {exc}", stacklevel=2)
                return "tf", None
    if stats not in stats_op.BACKENDS:
        raise ValueError(f"stats={stats!r}: expected 'auto' or one of {', '.join(stats_op.BACKENDS)}")
    return stats, stats_op.load() if stats == "native" else None


class Probe(keras.callbacks.Callback):
    """Attach to a compiled model; collects a trace of every training batch.

    Usage::

        probe = Probe(model)
        model.fit(x, y, epochs=3, callbacks=[probe])
        trace = probe.recorder.finish(meta)

    The epoch's length must be known (arrays, or ``steps_per_epoch``); use
    ``StreamingProbe`` otherwise.

    Args:
        model: a compiled Sequential or functional model.
        stats: what computes the statistics: "native" (one compiled op per
            step, ``harness.training.stats_op``), "tf" (TensorFlow ops), or "auto".
    """

    chunk = None  # rows the host reads at once; None: a whole epoch
    # The batch hook only notes the time. Keras then runs it in a worker thread,
    # as it runs the default hooks of a plain fit, once the step's logs are
    # ready: the step's end. A hook Keras must wait for costs 1.3-1.5x on small
    # models; an in-graph clock (tf.timestamp) is refused under op determinism.
    async_safe = True

    def __init__(self, model: keras.Model, stats: str = "auto"):
        super().__init__()
        self.stats, self._op = _stats_backend(stats)
        self._row_order = None  # present cell of each row of the step's statistics
        self.layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        self._graph = keras_step.layer_graph(model)
        self.recorder = None
        self._buffer = None  # [rows, row width] written by the step
        self._width = 0
        self._cursor = tf.Variable(0, trainable=False, dtype=tf.int32)
        self._mask = None  # [layer, stage], known once the step is traced
        self._value_names: list[str] = []
        self._log_names: list[str] = []
        self._pending: list[tuple] = []  # (epoch, batch, seconds) of rows not yet read
        self._epoch = 0
        self._per_call = 1  # training steps per batch hook (Keras's steps_per_execution)
        self.failure = None  # why the probe fell back to the model's own step (live only)
        self._stateful = False
        self._install(model)
        if self.chunk is not None:
            self._make_buffer(self.chunk)

    def _install(self, model) -> None:
        model.train_step = self._train_step
        keras_step.rebuild_train_function(model)

    def _make_buffer(self, rows: int) -> None:
        """Create the buffer outside any trace: a variable made while tracing costs tf.function a second trace.

        Its width (statistics present, metrics) is only known in the trace,
        which sets it without adding a graph op (``_write``).
        """
        self._rows, self._width = rows, 0
        self._buffer = tf.Variable(tf.zeros([rows, 0]), shape=tf.TensorShape([rows, None]), trainable=False)

    # -- the training step ----------------------------------------------------

    #: Live (a user's fit): a model the probe cannot trace trains with its own step instead (see _train_step).
    fallback = False

    def _train_step(self, data):
        """The probed step; with ``fallback``, the model's own step when the probe fails to trace.

        Everything that can fail on an unfamiliar model (the forward pass
        through its graph, the loss, the gradients) runs before the first
        stateful op, so falling back then leaves no half-applied update.
        """
        self._stateful = False
        try:
            return self._probed_step(data)
        except Exception as exc:
            if not self.fallback or self._stateful:
                raise
            self.failure = exc
            return type(self._model_ref).train_step(self._model_ref, data)

    def _probed_step(self, data):
        model = self._model_ref
        x, y, sample_weight = keras_step.unpack(data)
        with tf.GradientTape() as tape:
            y_pred, outputs = self._forward(x, tape)
            loss = keras_step.compiled_loss(model, x, y, y_pred, sample_weight)
            scaled = model.optimizer.scale_loss(loss)
        weights = list(model.trainable_weights)
        grads = tape.gradient(scaled, weights + outputs)
        self._stateful = True  # from here on the step changes state: no falling back
        keras_step.track_loss(model, loss, tf.shape(next(i for i in tf.nest.flatten(x) if i is not None))[0])
        # A read is a snapshot: the optimizer copies a variable's buffer before updating it while a read holds it.
        kernels_before = {k.path: tf.convert_to_tensor(k.value) for k in self._kernels()}
        if weights:  # a model with nothing to train still computes its loss and metrics
            model.optimizer.apply_gradients(zip(grads[: len(weights)], weights))
        compiled = keras_step.compiled_metrics(model)
        if compiled is not None and not compiled.built:
            compiled.build(y, y_pred)  # what update_state would do, but before we read totals
        before = self._metric_totals()
        logs = model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        stats = self._stats(weights, grads[: len(weights)], outputs, grads[len(weights):], kernels_before)
        values = [tf.cast(loss, tf.float32), *self._batch_metrics(before),
                  tf.cast(model.optimizer.learning_rate, tf.float32)]
        log_names = sorted(k for k, v in logs.items() if not isinstance(v, dict))
        running = [tf.cast(tf.reshape(logs[k], []), tf.float32) for k in log_names]
        row = tf.concat([tf.reshape(stats, [-1]), tf.stack(values + running)], 0)
        self._write(row, log_names)
        return logs

    def _write(self, row, log_names) -> None:
        # Names are known once Keras has built the metrics, i.e. in the trace.
        self._value_names = ["loss", *[m.name for m in self._mean_metrics()], "learning_rate"]
        self._log_names = log_names
        if self._width != row.shape[0]:
            with tf.init_scope():  # runs now, eagerly: the graph only writes rows
                self._buffer.assign(tf.zeros([self._rows, row.shape[0]]))
            self._width = row.shape[0]
        self._buffer.scatter_nd_update([[self._cursor % self._rows]], row[None])
        with tf.control_dependencies([row]):  # a step that fails (end of data) must not count
            self._cursor.assign_add(1)

    def _forward(self, x, tape):
        """Run the model's graph, watching and keeping every probed layer's output."""
        index = {id(layer): i for i, layer in enumerate(self.layers)}
        outputs = [None] * len(self.layers)

        def keep(op, out):
            i = index.get(id(op))
            if i is not None:
                first = tf.nest.flatten(out)[0]
                if first.dtype.is_floating:  # an integer output (token ids) has no gradient: the tape would say so
                    tape.watch(first)
                outputs[i] = first

        y_pred = keras_step.run_graph(self._graph, x, keep)
        y_pred = y_pred[0] if isinstance(y_pred, (list, tuple)) and len(y_pred) == 1 else y_pred
        missing = [self.layers[i].name for i, o in enumerate(outputs) if o is None]
        if missing:
            raise TypeError(f"the probe could not see the output of layers {missing}")
        return y_pred, outputs

    def _kernels(self):
        """Each probed layer's first trainable weight (Dense/Conv kernel, BatchNorm gamma)."""
        return [layer.trainable_weights[0] for layer in self.layers if layer.trainable_weights]

    def _stats(self, weights, weight_grads, outputs, output_grads, kernels_before) -> tf.Tensor:
        """[present stage, stat] for this step, rows in ``_row_order``; the host scatters them into the grid."""
        by_path = {w.path: (w, g) for w, g in zip(weights, weight_grads)}
        present, mask = [], []
        for layer, out, out_grad in zip(self.layers, outputs, output_grads):
            kernel = layer.trainable_weights[0] if layer.trainable_weights else None
            w, g = by_path.get(kernel.path, (None, None)) if kernel is not None else (None, None)
            after = tf.convert_to_tensor(w.value) if w is not None else None  # one read serves both stages
            update = (after, kernels_before[w.path]) if w is not None else None  # after - before
            cells = (out, after, g, out_grad, update)
            mask.append([c is not None for c in cells])
            present.extend(c for c in cells if c is not None)
        self._mask = np.array(mask, bool)
        if self._op is None:
            self._row_order = np.arange(len(present))
            return batched_stats([c[0] - c[1] if isinstance(c, tuple) else c for c in present])
        direct = [i for i, c in enumerate(present) if not isinstance(c, tuple)]
        pairs = [i for i, c in enumerate(present) if isinstance(c, tuple)]
        self._row_order = np.array(direct + pairs)
        as_float = functools.partial(tf.cast, dtype=tf.float32)
        return self._op.bugbench_tensor_stats(tensors=[as_float(present[i]) for i in direct],
                                              after=[as_float(present[i][0]) for i in pairs],
                                              before=[as_float(present[i][1]) for i in pairs])

    # -- per-batch metric values ----------------------------------------------

    def _mean_metrics(self):
        compiled = keras_step.compiled_metrics(self._model_ref)
        if compiled is None:
            return []
        return [m for m in compiled.metrics if hasattr(m, "total") and hasattr(m, "count")]

    def metric_directions(self) -> dict[str, str]:
        """Which way each compiled metric improves ("up"/"down"), as EarlyStopping reads it."""
        compiled = keras_step.compiled_metrics(self._model_ref)
        metrics = compiled.metrics if compiled is not None else []
        return {m.name: keras_step.metric_direction(m) for m in metrics if keras_step.metric_direction(m)}

    def _metric_totals(self):
        return [(tf.convert_to_tensor(m.total), tf.convert_to_tensor(m.count)) for m in self._mean_metrics()]

    def _batch_metrics(self, before):
        """This batch's own metric values, from the change in each running mean's state.

        Keras logs running means over the epoch; Keras 2.2, which the benchmark
        was written for, logged the batch's own value.
        """
        out = []
        for m, (total, count) in zip(self._mean_metrics(), before):
            out.append(tf.math.divide_no_nan(m.total - total, tf.cast(m.count - count, tf.float32)))
        return out

    # -- callback hooks ---------------------------------------------------------

    def set_model(self, model):
        super().set_model(model)
        self._model_ref = model

    def set_params(self, params):
        """Size the buffer for this fit's epoch (Keras sets params before it builds the step)."""
        super().set_params(params)
        self._per_call = steps_per_call(self._model_ref)
        if self.chunk is not None:
            return
        steps = (params or {}).get("steps")
        if not steps:
            raise ValueError("Probe needs the epoch's length (fit on arrays, or pass steps_per_epoch); "
                             "use StreamingProbe(model, chunk=N) for data of unknown length")
        width = len(self.layers) * len(STAGES) * len(STATS) + 16
        if steps * width * 4 > BUFFER_LIMIT:
            raise ValueError(f"an epoch of {steps} batches would need {steps * width * 4 / 2**20:.0f} MB of probe "
                             "buffer; use StreamingProbe(model, chunk=N)")
        if self._buffer is None or steps > self._rows:
            if self._buffer is not None:
                self._install(self._model_ref)  # a longer epoch than the step was built for: rebuild it
            self._make_buffer(steps)

    def on_train_begin(self, logs=None):
        self.recorder = None
        self._pending = []
        self._cursor.assign(0)
        self._t0 = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._pending.append((self._epoch, batch, time.perf_counter() - self._t0))

    def on_epoch_end(self, epoch, logs=None):
        self.flush()  # Keras has waited for the batch hooks of this epoch
        if self.recorder is not None:
            self.recorder.add_epoch(epoch=epoch, seconds=time.perf_counter() - self._t0, logs=logs or {})

    def flush(self) -> None:
        """Move the buffered rows to the recorder (one read of the in-graph buffer).

        Keras calls the batch hook once per execution, with the execution's last
        batch (``steps_per_execution`` > 1 runs several steps per call), so rows
        are numbered on from the first hook's execution and timed by the hook that ended them.
        """
        if not self._pending or not self._width:
            return
        count = int(self._cursor.numpy())
        if count > self._rows:
            raise RuntimeError(f"the probe buffer holds {self._rows} batches, {count} ran")
        if self.recorder is None:
            self.recorder = TraceRecorder([layer.name for layer in self.layers], self._value_names)
        hooks = sorted(self._pending)  # Keras's worker threads may have run two batch hooks out of order
        epoch, first = hooks[0][0], max(0, hooks[0][1] - self._per_call + 1)
        ends = np.array([h[1] for h in hooks])
        rows = self._buffer.numpy()[:count]
        self._cursor.assign(0)
        slots = np.flatnonzero(self._mask.ravel())[self._row_order]
        n_stats, n_values = slots.size * len(STATS), len(self._value_names)
        stats = np.zeros((count, self._mask.size, len(STATS)), np.float32)
        stats[:, slots] = rows[:, :n_stats].reshape(count, slots.size, len(STATS))
        stats = stats.reshape(count, len(self.layers), len(STAGES), len(STATS))
        for batch, row, grid in zip(range(first, first + count), rows, stats):
            seconds = hooks[min(int(np.searchsorted(ends, batch)), len(hooks) - 1)][2]
            values = row[n_stats:n_stats + n_values]
            logs = dict(zip(self._log_names, map(float, row[n_stats + n_values:])))
            self.recorder.add_batch(epoch=epoch, batch=batch, seconds=seconds, stats=grid, mask=self._mask,
                                    values=values, logs=logs)
        self._pending = []


class StreamingProbe(Probe):
    """A probe whose host reads the buffer every ``chunk`` batches, through a per-batch hook.

    For live detectors (``chunk=1``: each batch is seen as it ends) and for data
    whose epoch length is unknown or too long to buffer. The per-batch hook
    makes Keras wait for every step, which costs more than the whole-epoch
    buffer of ``Probe``.
    """

    async_safe = False  # it reads the buffer: Keras must call it between steps

    def __init__(self, model: keras.Model, chunk: int = DEFAULT_CHUNK, stats: str = "auto"):
        self.chunk = max(1, int(chunk))
        super().__init__(model, stats)

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        if (len(self._pending) + 1) * self._per_call > self.chunk:  # the next call could overrun the buffer
            self.flush()

    def set_params(self, params):
        super().set_params(params)
        if self._per_call > self.chunk:
            raise ValueError(f"StreamingProbe(chunk={self.chunk}) cannot hold the {self._per_call} steps Keras runs "
                             "per call (steps_per_execution); use a chunk at least that large")
