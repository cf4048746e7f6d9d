"""Hand-made traces for detector tests: no TensorFlow, exact values."""

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
