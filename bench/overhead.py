"""How much does the probe cost? Plain fit vs probed fit vs a naive per-layer probe.

For a representative set of models, each configuration is fitted several times,
interleaved (plain, probed, naive, plain, ...) so that machine noise hits all
alike; the table gives medians and the ratios probed/plain and naive/plain,
measured in this one run. Peak memory is measured in fresh processes.

    .venv/bin/python bench/overhead.py [--reps 5] [--out results/perf.md]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import machine, write_section  # noqa: E402

DIGITS = {"source": "sklearn.digits", "params": {"image_size": 28, "flatten": True},
          "preprocess": [{"scale": {"by": 0.0625}}, {"one_hot": {"classes": 10}}]}
DIGITS_IMG = {"source": "sklearn.digits", "params": {"image_size": 28, "channels": 1},
              "preprocess": [{"scale": {"by": 0.0625}}, {"one_hot": {"classes": 10}}]}
COMPILE = {"loss": "categorical_crossentropy", "optimizer": {"SGD": {"learning_rate": 0.05}}, "metrics": ["accuracy"]}


def dense(units, act="relu"):
    return {"Dense": {"units": units, "activation": act}}


MODELS = {
    "small MLP (784-30-10)": {"data": DIGITS, "model": {"input_shape": [784], "layers": [
        dense(30, "sigmoid"), dense(10, "softmax")]}, "fit": {"epochs": 2, "batch_size": 10}},
    "deep MLP (8 x 64)": {"data": DIGITS, "model": {"input_shape": [784], "layers": [
        *[dense(64) for _ in range(8)], dense(10, "softmax")]}, "fit": {"epochs": 2, "batch_size": 16}},
    "CNN on digits": {"data": DIGITS_IMG, "model": {"input_shape": [28, 28, 1], "layers": [
        {"Conv2D": {"filters": 16, "kernel_size": 3, "activation": "relu"}}, {"MaxPooling2D": {}},
        {"Conv2D": {"filters": 32, "kernel_size": 3, "activation": "relu"}}, {"MaxPooling2D": {}},
        {"Flatten": {}}, {"Dropout": {"rate": 0.2}}, dense(64), dense(10, "softmax")]},
        "fit": {"epochs": 2, "batch_size": 32}},
}


def largest_case() -> tuple[str, dict] | None:
    """The case variant with the most parameters x batches, from cases/."""
    from harness.cases.load import discover, load_cases

    cases, _ = load_cases(discover("cases"))
    best, best_cost = None, 0
    for case in cases:
        spec = case.spec_dict("patched")
        layers = spec["model"]["layers"]
        width = sum(int(next(iter(layer.values())).get("units") or next(iter(layer.values())).get("filters") or 0)
                    for layer in layers)
        cost = width * spec["fit"]["epochs"]
        if cost > best_cost:
            best, best_cost = (f"largest case ({case.id})", spec), cost
    return best


def spec_of(cfg: dict) -> dict:
    return {"data": cfg["data"], "model": cfg["model"], "compile": cfg.get("compile", COMPILE),
            "fit": dict(cfg["fit"], shuffle=False), "semantics": "keras2"}


def fit_once(spec: dict, mode: str, warmup_only: bool = False) -> tuple[float, float, float]:
    """Wall seconds of the whole fit and of its last epoch (no tracing in it: the steady per-batch cost),
    and the CPU seconds of the whole fit (all threads of this process)."""
    import keras

    from harness.training.build import build

    class LastEpoch(keras.callbacks.Callback):  # epoch hooks only: Keras keeps batch hooks asynchronous
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.t0

    built = build(spec, seed=0)
    if warmup_only:
        from harness.training import stats_op

        stats_op.load()  # built or loaded once, outside any measurement
        return 0.0, 0.0, 0.0
    timer = LastEpoch()
    callbacks = [timer]
    if mode in ("probed", "probed-tf"):
        from harness.training.probe import Probe

        callbacks.append(Probe(built.model, stats="native" if mode == "probed" else "tf"))
    elif mode == "naive":
        callbacks.append(NaiveProbe(built.model, built.data.x, built.data.y, built.fit_kwargs["batch_size"]))
    t0, c0 = time.perf_counter(), time.process_time()
    built.model.fit(built.data.x, built.data.y, callbacks=callbacks, **built.fit_kwargs)
    return time.perf_counter() - t0, timer.seconds, time.process_time() - c0


def NaiveProbe(model, x, y, batch_size):
    """The straightforward probe: per batch, one Keras function per layer plus a second backward pass."""
    import keras
    import numpy as np
    import tensorflow as tf

    class Naive(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            inp = model.inputs[0] if getattr(model, "inputs", None) else None
            self.fns = [keras.Model(inp, layer.output) for layer in model.layers]
            self.rows = []

        def on_train_batch_end(self, batch, logs=None):
            xb, yb = x[batch * batch_size:(batch + 1) * batch_size], y[batch * batch_size:(batch + 1) * batch_size]
            outs = [fn(xb, training=False) for fn in self.fns]
            with tf.GradientTape() as tape:
                pred = model(xb, training=True)
                loss = model.loss(yb, pred)
            grads = tape.gradient(loss, model.trainable_weights)
            self.rows.append([float(np.mean(o)) for o in outs] + [float(np.mean(g)) for g in grads if g is not None])

    return Naive()


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(name: str, mode: str) -> None:
    """Run one fit in this (fresh) process; print its peak RSS and how far the fit raised it.

    The process peak is mostly TensorFlow and the data; what a probe costs shows
    in the growth during the fit, sampled every 5 ms from /proc (Linux).
    """
    import threading

    spec = _specs()[name]
    fit_once(spec, "plain" if mode == "plain" else mode, warmup_only=True)  # build the data once
    start, peak, done = _rss_mb(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            done.wait(0.005)

    thread = threading.Thread(target=sample)
    thread.start()
    fit_once(spec, mode)
    done.set()
    thread.join()
    print(json.dumps({"maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "fit_growth_mb": max(0.0, peak[0] - start)}))


def _specs() -> dict:
    specs = {name: spec_of(cfg) for name, cfg in MODELS.items()}
    big = largest_case()
    if big:
        specs[big[0]] = big[1]
    return specs


def peak_memory(name: str, mode: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", name, mode], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default="results/perf.md")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    import pandas as pd

    specs = _specs()
    rows = []
    for name, spec in specs.items():
        times = {m: [] for m in ("plain", "probed", "probed-tf", "naive")}
        last = {m: [] for m in times}
        cpu = {m: [] for m in times}
        fit_once(spec, "plain", warmup_only=True)  # the data and the probe's op, once
        fit_once(spec, "plain")  # warm-up: caches
        for _ in range(args.reps):
            for mode in times:
                total, last_epoch, cpu_seconds = fit_once(spec, mode)
                times[mode].append(total)
                last[mode].append(last_epoch)
                cpu[mode].append(cpu_seconds)
        med = {m: statistics.median(v) for m, v in times.items()}
        steady = statistics.median(last["probed"]) / statistics.median(last["plain"])
        mem = {m: peak_memory(name, m) for m in ("plain", "probed")}
        rows.append({"model": name, "plain s": round(med["plain"], 2), "probed s": round(med["probed"], 2),
                     "naive s": round(med["naive"], 2), "probed/plain": round(med["probed"] / med["plain"], 2),
                     "naive/plain": round(med["naive"] / med["plain"], 2),
                     "TF-ops probed/plain": round(med["probed-tf"] / med["plain"], 2),
                     "last epoch probed/plain": round(steady, 2),
                     "CPU probed/plain": round(statistics.median(cpu["probed"]) / statistics.median(cpu["plain"]), 2),
                     "peak MB plain": round(mem["plain"]["maxrss_mb"]),
                     "peak MB probed": round(mem["probed"]["maxrss_mb"]),
                     "fit +MB plain": round(mem["plain"]["fit_growth_mb"], 1),
                     "fit +MB probed": round(mem["probed"]["fit_growth_mb"], 1)})
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    median_ratio = statistics.median(df["probed/plain"])
    body = "\n\n".join([
        "## Probe overhead (bench/overhead.py)",
        f"Machine: {machine()}. {args.reps} interleaved repetitions per configuration; medians of fit "
        "wall time (model build excluded; tracing the training step included, which a 2-epoch fit feels). "
        "`last epoch` = the same ratio over the last epoch alone, the per-batch cost of a longer fit. `CPU` = the "
        "ratio of the fits' CPU seconds (all threads), less sensitive to other load on the machine than wall time. "
        "`probed` computes the statistics with the probe's compiled op (the default); `TF-ops probed` with "
        "TensorFlow's own ops (`BUGBENCH_STATS=tf`, for machines without a C++ compiler). "
        "`naive` = one Keras function per layer plus a second forward/backward pass per batch. "
        "Peak MB = peak resident memory of a fresh process running one fit "
        "(TensorFlow's own footprint and the data included, so it hides the probe); fit +MB = how far the "
        "resident memory rose during the fit itself (sampled every 5 ms), which is where a probe's cost shows.",
        df.to_markdown(index=False),
        f"**Median probed/plain over these models: {median_ratio:.2f}** (target ≤ 1.3), at every-batch fidelity; "
        f"last epoch only (the per-batch cost without tracing the step): "
        f"{statistics.median(df['last epoch probed/plain']):.2f}; in CPU seconds: "
        f"{statistics.median(df['CPU probed/plain']):.2f}; with TensorFlow ops instead of the compiled one: "
        f"{statistics.median(df['TF-ops probed/plain']):.2f}.",
    ])
    write_section(args.out, "overhead", body)
    print(body)


if __name__ == "__main__":
    main()
