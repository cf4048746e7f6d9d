"""Train one variant of one case with the probe and save its trace.

This is what a worker process runs. It imports TensorFlow lazily so that the
parent process (and the CLI's --help) never pays for it unless it trains.
"""

from __future__ import annotations

import os
import platform
import time
import traceback

from harness.data import sandbox

# Every unit trains on one TensorFlow thread, whatever --jobs and the core count: multi-threaded
# kernels split their sums by thread count, so a unit trained with 2 threads gave other loss bits
# than the same unit with 1 (so-47352366), under the same cache key.
UNIT_THREADS = 1


def configure_threads() -> None:
    """Pin TensorFlow to UNIT_THREADS, so that a unit's numbers do not depend on where it ran.

    Only possible before TensorFlow starts its runtime; a reused worker keeps
    the setting of its first unit (the same one).
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(UNIT_THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass


class UnitTimeout(Exception):
    pass


def unit_identity(unit: dict) -> dict:
    """The fields that name a unit in its record (case, variant, seed, cache key)."""
    return {k: unit[k] for k in ("case", "variant", "seed", "key") if k in unit}


def train_unit(unit: dict, timeout: float | None = None) -> dict:
    """Train ``unit`` (case id, variant, seed, spec); return its record with the trace as bytes.

    The trace travels back in the record (``trace_npz``) so that workers need
    no shared file system. Never raises: a failure, or a fit that runs past
    ``timeout`` seconds, comes back as a record with ``status: error``.
    """
    started = time.perf_counter()
    record = unit_identity(unit)
    try:
        configure_threads()
        with sandbox.allowed(unit.get("trust_code", False), timeout):  # consent is the run's, given per unit
            record.update(_train(unit, timeout))
        record["status"] = "ok"
    except Exception as exc:  # a broken case must become a row, not a crash
        record.update(status="error", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=6))
    record["wall_seconds"] = time.perf_counter() - started
    return record


def _deadline(seconds: float):
    """A callback that stops a fit running past ``seconds`` (checked at every batch)."""
    import keras

    class Deadline(keras.callbacks.Callback):
        async_safe = True  # reads a clock and sets a flag: Keras need not wait for each step to call it

        def on_train_begin(self, logs=None):
            self.t0, self.hit = time.perf_counter(), None

        def on_train_batch_end(self, batch, logs=None):
            if time.perf_counter() - self.t0 > seconds:
                self.model.stop_training = True
                self.hit = (self._epoch, batch)

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch

    return Deadline()


def _train(unit: dict, timeout: float | None) -> dict:
    import tensorflow as tf

    from harness.facts import describe
    from harness.training import stats_op
    from harness.training.build import build
    from harness.training.probe import Probe, describe_layers

    tf.config.experimental.enable_op_determinism()
    built = build(unit["spec"], seed=unit["seed"], semantics=unit.get("semantics"))
    # Before training: what a static check sees (with the validation labels, for SPLIT).
    facts = describe(built.model, built.data.x, built.data.y, built.data.y_val, fit_weights(built))
    probe = Probe(built.model, stats=unit.get("stats") or stats_op.backend())
    callbacks = [probe, *built.callbacks] + ([_deadline(timeout)] if timeout else [])
    t0 = time.perf_counter()
    built.model.fit(built.data.x, built.data.y, callbacks=callbacks, **built.fit_kwargs)
    fit_seconds = time.perf_counter() - t0
    if timeout and callbacks[-1].hit:
        epoch, batch = callbacks[-1].hit
        raise UnitTimeout(f"training exceeded the {timeout:g} s limit (stopped at epoch {epoch + 1}, "
                          f"batch {batch + 1})")
    meta = {
        "case": unit["case"], "variant": unit["variant"], "seed": unit["seed"],
        "semantics": built.semantics, "data": built.data.description,
        "budget": budget(built), "layers": describe_layers(built.model),
        "versions": versions(), "fit_seconds": fit_seconds,
        "metric_directions": probe.metric_directions(), "facts": facts, "stats": probe.stats,
    }
    trace = probe.recorder.finish(meta)
    summary = summarize(trace)
    held_out = evaluate_held_out(built)  # after the trace is closed: no detector ever sees these numbers
    if held_out:
        summary["test"] = held_out
    return {"trace_npz": trace.to_bytes(), "semantics": built.semantics, "data": built.data.description,
            "budget": meta["budget"], "fit_seconds": fit_seconds, "versions": meta["versions"],
            "summary": summary, "facts": facts}


def evaluate_held_out(built) -> dict | None:
    """The trained model's loss and compiled metrics on the spec's test rows, as Keras names them."""
    d = built.data
    if d.x_test is None:
        return None
    logs = built.model.evaluate(d.x_test, d.y_test, batch_size=built.fit_kwargs["batch_size"], verbose=0,
                                return_dict=True)
    return {"n": int(len(d.x_test)), **{name: _num(value) for name, value in logs.items()},
            "reference": held_out_reference(d.y_test)}


def held_out_reference(y) -> dict:
    """What a constant guess scores on the test rows: the majority class's share, the mean absolute and squared
    error of the median and mean (the bar a program must clear to be said to learn there)."""
    import numpy as np

    y = np.asarray(y, np.float64)
    labels = y.argmax(-1) if y.ndim > 1 and y.shape[-1] > 1 else np.round(y.reshape(len(y), -1)[:, 0])
    _, counts = np.unique(labels, return_counts=True)
    flat = y.reshape(len(y), -1)
    return {"majority_accuracy": float(counts.max() / len(y)),
            "constant_mae": float(np.mean(np.abs(flat - np.median(flat, axis=0)))),
            "constant_mse": float(np.mean((flat - flat.mean(axis=0)) ** 2))}


def static_facts(unit: dict) -> dict:
    """The static facts of a unit without training it (for stored units that predate them)."""
    from harness.facts import describe
    from harness.training.build import build

    built = build(unit["spec"], seed=unit["seed"], semantics=unit.get("semantics"))
    return describe(built.model, built.data.x, built.data.y, built.data.y_val, fit_weights(built))


def fit_weights(built) -> dict | None:
    """The fit's weights as ``harness.facts`` reads them (the shape ``detectors.live.fit_weights`` gives)."""
    weights = built.fit_kwargs.get("class_weight")
    return {"class_weight": weights} if weights else None


def budget(built) -> dict:
    """The fit's :class:`harness.trace.Budget`, as the trace and the record store it."""
    from harness.trace import Budget

    n, bs = built.data.description["n_train"], built.fit_kwargs["batch_size"]
    return Budget(epochs=built.fit_kwargs["epochs"], steps_per_epoch=-(-n // bs), batch_size=bs).to_dict()


def summarize(trace) -> dict:
    """First and final epoch logs plus whether the loss ever went non-finite."""
    import numpy as np

    names = trace.meta["epoch_log_names"]
    logs = trace.arrays["epoch_logs"]
    loss = trace.value("loss")
    return {
        "first": {n: _num(logs[0, j]) for j, n in enumerate(names)} if len(logs) else {},
        "final": {n: _num(logs[-1, j]) for j, n in enumerate(names)} if len(logs) else {},
        "loss_nonfinite": bool(len(loss) and not np.all(np.isfinite(loss))),
        "batches": trace.n_batches,
        "epochs": int(len(logs)),
    }


def _num(v):
    v = float(v)
    return v if v == v and abs(v) != float("inf") else str(v)


def versions() -> dict:
    import keras
    import numpy
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": numpy.__version__, "bugbench": _bugbench_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), **cpu()}


# Instruction sets by which oneDNN and Eigen choose their kernels (and so a result's last bits).
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve")


def cpu() -> dict:
    """The CPU model and the instruction sets TensorFlow's kernels are chosen by (Linux /proc/cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {"cpu": model, "cpu_isa": " ".join(f for f in ISA_FLAGS if f in flags),
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")}


def _bugbench_version() -> str:
    from harness import __version__

    return __version__
