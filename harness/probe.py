"""Record per-layer statistics of every training batch, inside the training step.

The probe replaces a model's ``train_step`` with one that runs the layers itself
under the same gradient tape, so a single forward and backward pass yields the
weight update *and* every statistic: forward outputs, weights, weight gradients
and the gradients of the loss with respect to each layer's output. Reductions
run in-graph; one small tensor per batch leaves the graph. A second
forward/backward pass per batch would cost about 2x a plain fit (measured).

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


def tensor_stats(t) -> tf.Tensor:
    """The STATS of one tensor as a float32 vector (NaN propagates into mean/std)."""
    t = tf.reshape(tf.cast(t, tf.float32), [-1])
    finite = tf.math.is_finite(t)
    big = tf.constant(np.inf, tf.float32)
    return tf.stack([
        tf.reduce_mean(t),
        tf.math.reduce_std(t),
        tf.reduce_min(tf.where(finite, t, big)),
        tf.reduce_max(tf.where(finite, t, -big)),
        tf.reduce_mean(tf.cast(tf.equal(t, 0.0), tf.float32)),
        tf.reduce_sum(tf.cast(tf.math.is_nan(t), tf.float32)),
        tf.reduce_sum(tf.cast(tf.math.is_inf(t), tf.float32)),
    ])


class Probe(keras.callbacks.Callback):
    """Attach to a compiled model; collects a trace of every training batch.

    Usage::

        probe = Probe(model)
        model.fit(x, y, epochs=3, callbacks=[probe])
        trace = probe.recorder.finish(meta)
    """

    def __init__(self, model: keras.Model):
        super().__init__()
        self.layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        self._graph = model._functional if isinstance(model, keras.Sequential) else model
        if not hasattr(self._graph, "_run_through_graph"):
            raise TypeError("the probe needs a Sequential or functional model")
        n = len(self.layers)
        self._stats = tf.Variable(tf.zeros([n, len(STAGES), len(STATS)]), trainable=False)
        self._mask = tf.Variable(tf.zeros([n, len(STAGES)], tf.bool), trainable=False)
        self._values = None
        self.recorder = None
        self._values = None
        self._value_names: list[str] = []
        self._epoch = 0
        self._install(model)

    # -- the training step ----------------------------------------------------

    def _install(self, model: keras.Model) -> None:
        model.train_step = self._train_step
        model.train_function = None  # make Keras rebuild it around our step

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
        self._record(weights, grads[: len(weights)], outputs, grads[len(weights):], kernels_before)
        values = tf.stack([tf.cast(loss, tf.float32), *self._batch_metrics(before),
                           tf.cast(model.optimizer.learning_rate, tf.float32)])
        if self._values is None:
            # Keras builds the compiled metrics during the first trace of this
            # step, so the value vector's length is only known here; tf.function
            # allows a variable created once, on the first trace.
            self._value_names = ["loss", *[m.name for m in self._mean_metrics()], "learning_rate"]
            self._values = tf.Variable(tf.zeros_like(values), trainable=False)
        self._values.assign(values)
        return logs

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

    def _record(self, weights, weight_grads, outputs, output_grads, kernels_before) -> None:
        by_path = {w.path: (w, g) for w, g in zip(weights, weight_grads)}
        rows, mask = [], []
        for layer, out, out_grad in zip(self.layers, outputs, output_grads):
            kernel = layer.trainable_weights[0] if layer.trainable_weights else None
            w, g = by_path.get(kernel.path, (None, None)) if kernel is not None else (None, None)
            update = w.value - kernels_before[w.path] if w is not None else None
            tensors = (out, w, g, out_grad, update)
            rows.append(tf.stack([tensor_stats(t) if t is not None else tf.zeros([len(STATS)]) for t in tensors]))
            mask.append([t is not None for t in tensors])
        self._stats.assign(tf.stack(rows))
        self._mask.assign(tf.constant(mask, tf.bool))

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
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.recorder is None:
            self.recorder = TraceRecorder([layer.name for layer in self.layers], self._value_names)
        self.recorder.add_batch(
            epoch=self._epoch, batch=batch, seconds=time.perf_counter() - self._t0,
            stats=self._stats.numpy(), mask=self._mask.numpy(), values=self._values.numpy(), logs=logs or {},
        )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self.recorder.add_epoch(epoch=epoch, seconds=time.perf_counter() - self._t0, logs=logs or {})
