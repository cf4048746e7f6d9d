"""Every private Keras name bugbench relies on, in one place.

The probe runs a model's own training step itself (forward pass through the
layer graph, the compiled loss, the loss tracker, the compiled metrics), which
Keras exposes only through private attributes. Checked against Keras 3.15.1,
what pyproject's range (keras>=3.8,<4) installs today: if one of these moves,
this file is the only one to change, and ``tests/test_probe.py`` fails first.

Public API is used where it exists: ``keras.utils.unpack_x_y_sample_weight``.
"""

from __future__ import annotations

import keras
from keras.src.models import functional as _functional

unpack = keras.utils.unpack_x_y_sample_weight


def layer_graph(model: keras.Model):
    """The functional graph a model's call runs through (a Sequential model keeps one inside)."""
    graph = model._functional if isinstance(model, keras.Sequential) else model
    if not hasattr(graph, "_run_through_graph"):
        raise TypeError("the probe needs a Sequential or functional model")
    return graph


def run_graph(graph, x, on_output):
    """Call the graph on ``x`` in training mode; ``on_output(op, out)`` sees each operation's output."""

    def operation_fn(op):
        call = _functional.operation_fn(op, training=True)

        def watched(*args, **kwargs):
            out = call(*args, **kwargs)
            on_output(op, out)
            return out

        return watched

    return graph._run_through_graph(x, operation_fn=operation_fn)


def compiled_loss(model, x, y, y_pred, sample_weight):
    """The loss ``fit`` would minimise for this batch (compiled loss plus regularisation losses)."""
    return model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)


def track_loss(model, loss, batch_size) -> None:
    """Update the running mean ``fit`` logs as ``loss``."""
    model._loss_tracker.update_state(loss, sample_weight=batch_size)


def compiled_metrics(model):
    """The model's compiled metrics container, or None when it has none."""
    return model._compile_metrics


def metric_direction(metric) -> str | None:
    """Which way a metric improves ("up"/"down"), as EarlyStopping reads it; None when Keras does not say."""
    return getattr(metric, "_direction", None)


def steps_per_call(model) -> int:
    """Training steps Keras runs per call of the train function, i.e. per batch hook (``steps_per_execution``)."""
    return int(getattr(model, "steps_per_execution", 1) or 1)


def rebuild_train_function(model) -> None:
    """Make Keras rebuild its train function around the model's (possibly replaced) ``train_step``."""
    model.train_function = None
