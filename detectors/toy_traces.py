"""Small hand-made traces: exact values, no TensorFlow.

Used by the tests and by ``check_detector``; also handy for trying a new
detector in a notebook.
"""

from __future__ import annotations

import numpy as np

from harness.trace import STAGES, STATS, TraceRecorder


def make_trace(batch_losses, steps_per_epoch: int, epoch_logs=None, n_layers: int = 2, accuracy=None,
               epochs: int | None = None, directions=None):
    """A trace whose batch 'loss' logs are ``batch_losses`` (running means, as Keras logs them).

    ``epoch_logs``: list of dicts, one per epoch (default: the last batch logs of each epoch).
    """
    rec = TraceRecorder([f"layer{i}" for i in range(n_layers)], ["loss", "accuracy", "learning_rate"])
    mask = np.ones((n_layers, len(STAGES)), bool)
    n_epochs = len(batch_losses) // steps_per_epoch
    for e in range(n_epochs):
        logs = {}
        for b in range(steps_per_epoch):
            i = e * steps_per_epoch + b
            acc = accuracy[i] if accuracy is not None else 0.5
            logs = {"loss": batch_losses[i], "accuracy": acc}
            stats = np.zeros((n_layers, len(STAGES), len(STATS)), np.float32)
            rec.add_batch(e, b, 0.01 * (i + 1), stats, mask, [batch_losses[i], acc, 0.01], logs)
        rec.add_epoch(e, 0.01 * (e + 1) * steps_per_epoch, epoch_logs[e] if epoch_logs else logs)
    meta = {"budget": {"epochs": epochs or n_epochs, "steps_per_epoch": steps_per_epoch, "batch_size": 1},
            "metric_directions": directions if directions is not None else {"accuracy": "up"}}
    return rec.finish(meta)


def toy_traces(seed: int = 0) -> dict:
    """Named seeded traces covering the situations every detector must survive."""
    rng = np.random.default_rng(seed)
    healthy = make_trace(list(np.linspace(2.0, 0.5, 12)), steps_per_epoch=3,
                         accuracy=list(np.linspace(0.3, 0.9, 12)))
    healthy.arrays["stats"] = rng.normal(size=healthy.arrays["stats"].shape).astype(np.float32)
    nan = make_trace([1.0, 0.8, float("nan"), float("nan"), float("nan"), float("nan")], steps_per_epoch=2)
    nan.arrays["stats"][2:] = np.nan
    flat = make_trace([0.7] * 12, steps_per_epoch=2)
    empty = TraceRecorder(["layer0"], ["loss"]).finish({"budget": {"epochs": 3, "steps_per_epoch": 2}})
    return {"healthy": healthy, "nan": nan, "flat": flat, "empty": empty, "unprobed": unprobed(),
            "weights_only": weights_only(rng)}


def unprobed() -> object:
    """A run whose model trained with its own step (harness.training.log_probe): losses, no layer statistics."""
    rec = TraceRecorder([], ["loss", "learning_rate"])
    no_layers, mask = np.zeros((0, len(STAGES), len(STATS)), np.float32), np.zeros((0, len(STAGES)), bool)
    for i, loss in enumerate([1.0, 0.9, 0.8, float("nan")]):
        rec.add_batch(i // 2, i % 2, 0.01 * (i + 1), no_layers, mask, [loss, 0.01], {"loss": loss})
        if i % 2:
            rec.add_epoch(i // 2, 0.01 * (i + 1), {"loss": loss})
    return rec.finish({"budget": {"epochs": 2, "steps_per_epoch": 2}, "layers": []})


def weights_only(rng) -> object:
    """A run whose layers were watched by their weights and updates only (a subclassed model, live): the output
    and gradient stages do not apply to any layer."""
    trace = make_trace(list(np.linspace(1.0, 0.6, 8)), steps_per_epoch=2, n_layers=2)
    trace.arrays["stats"] = rng.normal(size=trace.arrays["stats"].shape).astype(np.float32)
    trace.arrays["mask"][:] = False
    trace.arrays["mask"][:, [STAGES.index("weights"), STAGES.index("update")]] = True
    return trace
