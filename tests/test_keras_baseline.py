"""keras-baseline on hand-made traces, and replay == a live fit with the real callbacks."""

import math

import numpy as np
import pytest

from detectors import registry, replay
from detectors.toy_traces import make_trace


def stops(name, trace):
    return [(f.epoch, f.batch) for f in replay(registry.create(name), trace)]


def test_terminate_on_nan_stops_at_the_nan_batch():
    trace = make_trace([1.0, 0.9, math.nan, math.nan, math.nan, math.nan], steps_per_epoch=3)
    assert stops("keras-ton", trace) == [(0, 2)]


def test_terminate_on_nan_at_the_very_last_batch_is_not_early():
    trace = make_trace([1.0, 0.9, 0.8, 0.7, 0.6, math.nan], steps_per_epoch=3)
    assert stops("keras-ton", trace) == []


def test_early_stopping_loss_with_patience_one():
    epochs = [{"loss": v, "accuracy": 0.5} for v in (1.0, 0.8, 0.85, 0.7)]
    trace = make_trace([0.0] * 4, steps_per_epoch=1, epoch_logs=epochs)
    assert stops("keras-es-loss", trace) == [(2, None)]


def test_early_stopping_at_last_epoch_is_not_a_detection():
    epochs = [{"loss": v, "accuracy": 0.5} for v in (1.0, 0.8, 0.6, 0.65)]
    trace = make_trace([0.0] * 4, steps_per_epoch=1, epoch_logs=epochs)
    assert stops("keras-es-loss", trace) == []


def test_early_stopping_accuracy_and_union():
    epochs = [{"loss": v, "accuracy": a} for v, a in ((1.0, 0.5), (0.9, 0.5), (0.8, 0.6), (0.7, 0.7))]
    trace = make_trace([0.0] * 4, steps_per_epoch=1, epoch_logs=epochs)
    assert stops("keras-es-acc", trace) == [(1, None)]
    assert stops("keras-es-loss", trace) == []
    (finding,) = replay(registry.create("keras-union"), trace)
    assert (finding.epoch, finding.code) == (1, "STOP")
    assert "EarlyStopping(accuracy)" in finding.message and finding.layer is None


def test_accuracy_monitor_without_accuracy_metric_never_stops():
    epochs = [{"loss": v} for v in (1.0, 2.0, 3.0)]
    trace = make_trace([0.0] * 3, steps_per_epoch=1, epoch_logs=epochs, directions={})
    assert stops("keras-es-acc", trace) == []
    assert stops("keras-es-loss", trace) == [(1, None)]


def test_group_expands_and_unknown_names_get_hints():
    assert registry.expand(["keras-baseline"]) == ["keras-ton", "keras-es-loss", "keras-es-acc", "keras-union"]
    with pytest.raises(KeyError, match="did you mean"):
        registry.expand(["keras-es-los"])


# --- replay equals live --------------------------------------------------------

CALLBACKS = {"keras-ton": ("ton",), "keras-es-loss": ("es-loss",), "keras-es-acc": ("es-acc",),
             "keras-union": ("ton", "es-loss", "es-acc")}


def live_stop(spec, seed, kinds):
    """Fit with the real callbacks attached; where did training stop early (epoch, batch)?"""
    import keras

    from harness.training.build import build

    built = build(spec, seed=seed)
    callbacks = {"ton": keras.callbacks.TerminateOnNaN(),
                 "es-loss": keras.callbacks.EarlyStopping(monitor="loss", patience=1),
                 "es-acc": keras.callbacks.EarlyStopping(monitor="accuracy", patience=1)}
    seen = BatchCounter()
    hist = built.model.fit(built.data.x, built.data.y, callbacks=[seen, *(callbacks[k] for k in kinds)],
                           **built.fit_kwargs)
    epochs_run = len(hist.epoch)
    stopped_mid_epoch = seen.last_batch + 1 < seen.steps
    if stopped_mid_epoch:
        return (epochs_run - 1, seen.last_batch)
    if epochs_run < built.fit_kwargs["epochs"]:
        return (epochs_run - 1, None)
    return None


class BatchCounter:
    def __new__(cls):
        import keras

        class Counter(keras.callbacks.Callback):
            last_batch, steps = -1, 0

            def on_train_batch_end(self, batch, logs=None):
                self.last_batch = batch

            def on_epoch_begin(self, epoch, logs=None):
                self.steps = self.params["steps"]

        return Counter()


@pytest.mark.fit
@pytest.mark.parametrize("case_id, epochs", [("48385830", 3), ("48934338", 25)])
def test_replay_matches_live_fit(case_path, tmp_path, case_id, epochs):
    from harness.cases.load import load_case
    from harness.trace import Trace
    from harness.training.train import train_unit

    spec = load_case(case_path(case_id)).spec_dict("buggy")
    spec["fit"]["epochs"] = epochs
    record = train_unit({"case": case_id, "variant": "buggy", "seed": 0, "spec": spec})
    assert record["status"] == "ok", record.get("error")
    trace = Trace.from_bytes(record["trace_npz"])
    outcomes = set()
    for name, kinds in CALLBACKS.items():
        replayed = stops(name, trace)
        live = live_stop(spec, 0, kinds)
        assert replayed == ([live] if live else []), name
        outcomes.add(bool(live))
    assert outcomes == {True, False} or case_id == "48934338"  # both outcomes exercised somewhere


def test_detectors_pickle_and_reset():
    import pickle

    trace = make_trace([1.0, 0.9, math.nan, 0.5], steps_per_epoch=2)
    det = registry.create("keras-union")
    first = replay(det, trace)
    again = replay(pickle.loads(pickle.dumps(det)), trace)
    assert first == again == replay(det, trace)
    loss_column = trace.meta["log_names"].index("loss")
    assert np.isnan(trace.arrays["logs"][2, loss_column])  # replay left the trace alone
