"""Record per-layer statistics of every training batch, inside the training step.

The probe replaces a model's ``train_step`` with one that runs the layers itself
under the same gradient tape, so a single forward and backward pass yields the
weight update *and* every statistic: forward outputs, kernels, kernel
gradients, the update the optimizer made, and the gradient of the loss with
respect to each layer's output.

Cost is what decides whether a probe is left on, so:

* small tensors of the same shape (a kernel, its gradient and its update; an
  output and its gradient) are stacked, so five reductions serve a whole stack
  (large ones are reduced alone, which parallelises better), and
  NaN/Inf counting runs only in a step whose sums say there is something to
  count (per-tensor reductions cost 2-4x more; one concatenated vector with
  segment reductions was measured slower still on CPU);
* each step writes one row into an in-graph buffer of ``chunk`` rows; the
  host reads the buffer once per ``chunk`` batches (and at every epoch end),
  not once per batch. Live detectors use ``chunk=1``.

Works for Sequential and functional models whose layers are called once.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf
from keras.src.models import functional as _functional
from keras.src.trainers.data_adapters import data_adapter_utils

from harness.trace import STAGES, STATS, TraceRecorder

DEFAULT_CHUNK = 64


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


def batched_stats(tensors) -> tf.Tensor:
    """[tensor, STATS] float32: the statistics of every tensor (NaN propagates into mean/std).

    Finite sums everywhere mean no NaN/Inf element anywhere, so the usual path
    takes plain min/max; only a step with a non-finite value somewhere pays
    for masked min/max and NaN/Inf counts (one branch per step, not per tensor).
    A group is a [k, n] stack reduced along axis 1, or one flat tensor reduced
    whole (shape [1] results either way).
    """
    groups = stack_groups(tensors)
    flat = [tf.reshape(tf.cast(tensors[idx[0]], tf.float32), [-1]) if len(idx) == 1 else
            tf.stack([tf.reshape(tf.cast(tensors[i], tf.float32), [-1]) for i in idx]) for idx in groups]

    def red(op, g, values=None):
        v = g if values is None else values
        return op(v, axis=1) if len(g.shape) == 2 else op(v)[None]

    sizes = [tf.cast(tf.shape(g)[-1], tf.float32) for g in flat]
    totals = [red(tf.reduce_sum, g) for g in flat]
    means = [total / n for total, n in zip(totals, sizes)]
    stds = [tf.sqrt(red(tf.reduce_sum, g, tf.math.squared_difference(g, m[:, None] if len(g.shape) == 2 else m)) / n)
            for g, m, n in zip(flat, means, sizes)]
    zeros = [red(tf.reduce_sum, g, tf.cast(tf.equal(g, 0.0), tf.float32)) / n for g, n in zip(flat, sizes)]
    finite = tf.reduce_all(tf.math.is_finite(tf.concat(totals, 0)))

    def clean():
        return [tf.stack([red(tf.reduce_min, g), red(tf.reduce_max, g), tf.zeros_like(t), tf.zeros_like(t)], 1)
                for g, t in zip(flat, totals)]

    def dirty():
        big = tf.constant(np.inf, tf.float32)
        return [tf.stack([red(tf.reduce_min, g, tf.where(tf.math.is_finite(g), g, big)),
                          red(tf.reduce_max, g, tf.where(tf.math.is_finite(g), g, -big)),
                          red(tf.reduce_sum, g, tf.cast(tf.math.is_nan(g), tf.float32)),
                          red(tf.reduce_sum, g, tf.cast(tf.math.is_inf(g), tf.float32))], 1) for g in flat]

    extra = tf.cond(finite, clean, dirty)
    rows = [tf.concat([tf.stack([m, s], 1), e[:, :2], z[:, None], e[:, 2:]], 1)  # STATS order
            for m, s, z, e in zip(means, stds, zeros, extra)]
    order = [i for idx in groups for i in idx]
    return tf.gather(tf.concat(rows, 0), np.argsort(order))


class Probe(keras.callbacks.Callback):
    """Attach to a compiled model; collects a trace of every training batch.

    Usage::

        probe = Probe(model)
        model.fit(x, y, epochs=3, callbacks=[probe])
        trace = probe.recorder.finish(meta)

    Args:
        model: a compiled Sequential or functional model.
        chunk: batches buffered in-graph between two reads by the host.
    """

    def __init__(self, model: keras.Model, chunk: int = DEFAULT_CHUNK):
        super().__init__()
        self.layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        self._graph = model._functional if isinstance(model, keras.Sequential) else model
        if not hasattr(self._graph, "_run_through_graph"):
            raise TypeError("the probe needs a Sequential or functional model")
        self.chunk = max(1, int(chunk))
        self.recorder = None
        self._buffer = None  # [chunk, row] written by the step; made on its first trace
        self._cursor = tf.Variable(0, trainable=False, dtype=tf.int32)
        self._mask = None  # [layer, stage], known once the step is traced
        self._value_names: list[str] = []
        self._log_names: list[str] = []
        self._pending: list[tuple] = []  # (epoch, batch, seconds) of rows not yet read
        self._epoch = 0
        model.train_step = self._train_step
        model.train_function = None  # make Keras rebuild it around our step

    # -- the training step ----------------------------------------------------

    def _train_step(self, data):
        model = self._model_ref
        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred, outputs = self._forward(x, tape)
            loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            model._loss_tracker.update_state(
                loss, sample_weight=tf.shape(next(i for i in tf.nest.flatten(x) if i is not None))[0])
            scaled = model.optimizer.scale_loss(loss)
        weights = list(model.trainable_weights)
        grads = tape.gradient(scaled, weights + outputs)
        kernels_before = {k.path: tf.identity(k.value) for k in self._kernels()}
        model.optimizer.apply_gradients(zip(grads[: len(weights)], weights))
        compiled = model._compile_metrics
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
        if self._buffer is None:
            # The value names are only known once Keras has built the metrics,
            # during the first trace of this step; tf.function allows variables
            # created on the first trace only.
            self._value_names = ["loss", *[m.name for m in self._mean_metrics()], "learning_rate"]
            self._log_names = log_names
            self._buffer = tf.Variable(tf.zeros([self.chunk, row.shape[0]]), trainable=False)
        self._buffer.scatter_nd_update([[self._cursor % self.chunk]], row[None])
        self._cursor.assign_add(1)

    def _forward(self, x, tape):
        """Run the model's graph, watching and keeping every probed layer's output."""
        index = {id(layer): i for i, layer in enumerate(self.layers)}
        outputs = [None] * len(self.layers)

        def operation_fn(op):
            call = _functional.operation_fn(op, training=True)

            def probed(*args, **kwargs):
                out = call(*args, **kwargs)
                i = index.get(id(op))
                if i is not None:
                    first = tf.nest.flatten(out)[0]
                    tape.watch(first)
                    outputs[i] = first
                return out

            return probed

        y_pred = self._graph._run_through_graph(x, operation_fn=operation_fn)
        y_pred = y_pred[0] if isinstance(y_pred, (list, tuple)) and len(y_pred) == 1 else y_pred
        missing = [self.layers[i].name for i, o in enumerate(outputs) if o is None]
        if missing:
            raise TypeError(f"the probe could not see the output of layers {missing}")
        return y_pred, outputs

    def _kernels(self):
        """Each probed layer's first trainable weight (Dense/Conv kernel, BatchNorm gamma)."""
        return [layer.trainable_weights[0] for layer in self.layers if layer.trainable_weights]

    def _stats(self, weights, weight_grads, outputs, output_grads, kernels_before) -> tf.Tensor:
        """[layer, stage, stat] for this step; stages a layer lacks are zeros (and masked)."""
        by_path = {w.path: (w, g) for w, g in zip(weights, weight_grads)}
        present, mask = [], []
        for layer, out, out_grad in zip(self.layers, outputs, output_grads):
            kernel = layer.trainable_weights[0] if layer.trainable_weights else None
            w, g = by_path.get(kernel.path, (None, None)) if kernel is not None else (None, None)
            update = w.value - kernels_before[w.path] if w is not None else None
            tensors = (out, w.value if w is not None else None, g, out_grad, update)
            mask.append([t is not None for t in tensors])
            present.extend(t for t in tensors if t is not None)
        self._mask = np.array(mask, bool)
        computed = batched_stats(present)
        # scatter the computed rows into the full [layer * stage] grid
        slots = np.flatnonzero(self._mask.ravel())
        full = tf.scatter_nd(slots[:, None], computed, [self._mask.size, len(STATS)])
        return tf.reshape(full, [len(self.layers), len(STAGES), len(STATS)])

    # -- per-batch metric values ----------------------------------------------

    def _mean_metrics(self):
        compiled = self._model_ref._compile_metrics
        if compiled is None:
            return []
        return [m for m in compiled.metrics if hasattr(m, "total") and hasattr(m, "count")]

    def metric_directions(self) -> dict[str, str]:
        """Which way each compiled metric improves ("up"/"down"), as EarlyStopping reads it."""
        compiled = self._model_ref._compile_metrics
        metrics = compiled.metrics if compiled is not None else []
        return {m.name: m._direction for m in metrics if getattr(m, "_direction", None)}

    def _metric_totals(self):
        return [(tf.identity(m.total), tf.identity(m.count)) for m in self._mean_metrics()]

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

    def on_train_begin(self, logs=None):
        self.recorder = None
        self._pending = []
        self._cursor.assign(0)
        self._t0 = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._pending.append((self._epoch, batch, time.perf_counter() - self._t0))
        if len(self._pending) >= self.chunk:
            self.flush()

    def on_epoch_end(self, epoch, logs=None):
        self.flush()
        if self.recorder is not None:
            self.recorder.add_epoch(epoch=epoch, seconds=time.perf_counter() - self._t0, logs=logs or {})

    def flush(self) -> None:
        """Move the buffered rows to the recorder (one read of the in-graph buffer)."""
        if not self._pending or self._buffer is None:
            return
        if self.recorder is None:
            self.recorder = TraceRecorder([layer.name for layer in self.layers], self._value_names)
        rows = self._buffer.numpy()[: len(self._pending)]
        self._cursor.assign(0)
        n_stats = self._mask.size * len(STATS)
        n_values = len(self._value_names)
        for (epoch, batch, seconds), row in zip(self._pending, rows):
            stats = row[:n_stats].reshape(len(self.layers), len(STAGES), len(STATS))
            values = row[n_stats:n_stats + n_values]
            logs = dict(zip(self._log_names, map(float, row[n_stats + n_values:])))
            self.recorder.add_batch(epoch=epoch, batch=batch, seconds=seconds, stats=stats, mask=self._mask,
                                    values=values, logs=logs)
        self._pending = []
