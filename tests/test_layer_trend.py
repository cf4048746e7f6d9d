"""The layer-trend localizer on hand-made traces (exact, no TensorFlow)."""

import math

import numpy as np
import pytest

from detectors import registry, replay
from detectors.layer_trend import LayerTrend
from detectors.layer_trend_faithful import LayerTrendFaithful
from detectors.toy_traces import make_trace
from harness.trace import STAGES, STATS

LAYERS = [{"name": "dense", "class": "Dense"}, {"name": "act", "class": "Activation"},
          {"name": "out", "class": "Dense"}]


def trace_with(fill=None, n_batches=40, steps_per_epoch=4, losses=None):
    """A 3-layer trace whose stats are random except where ``fill`` pins them.

    fill: {(stage, stat, layer): value or callable(batch) -> value}
    """
    fill = fill or {}
    losses = losses if losses is not None else list(np.linspace(2, 1, n_batches))
    t = make_trace(losses, steps_per_epoch, n_layers=3)
    rng = np.random.default_rng(0)
    stats = rng.uniform(0.1, 1.0, size=t.arrays["stats"].shape).astype(np.float32)
    stats[..., STATS.index("zero_frac")] = 0.2
    stats[..., STATS.index("nan")] = 0
    stats[..., STATS.index("inf")] = 0
    for (stage, stat, layer), value in fill.items():
        for b in range(len(losses)):
            v = value(b) if callable(value) else value
            stats[b, layer, STAGES.index(stage), STATS.index(stat)] = v
    t.arrays["stats"] = stats
    t.arrays["mask"][1, [1, 2, 4]] = False  # the Activation layer has no weights
    t.meta["layers"] = LAYERS
    return t


def first(name, trace):
    found = replay(registry.create(name), trace)
    return found[0] if found else None


def test_healthy_trace_has_no_findings():
    assert replay(LayerTrend(), trace_with()) == []


def test_nan_output_is_blamed_on_the_first_layer_with_it():
    t = trace_with({("output", "nan", 1): lambda b: 3 if b >= 7 else 0})
    f = first("layer-trend", t)
    assert (f.code, f.layer, f.stage, f.batch) == ("EAA", 1, "output", 3)  # batch 7 = epoch 1, batch 3
    assert f.epoch == 1


def test_nan_loss_without_a_layer_is_an_error_in_the_loss():
    losses = [1.0] * 5 + [math.nan] * 3
    f = first("layer-trend", trace_with(n_batches=8, losses=losses))
    assert (f.code, f.layer, f.diagnosis) == ("ELF", None, "LCH")


def test_overflowing_mean_counts_as_numerical_error():
    t = trace_with({("weights", "mean", 2): lambda b: -np.inf if b == 5 else 0.3})
    f = first("layer-trend", t)
    assert (f.code, f.layer, f.batch) == ("EBW", 2, 1)


def test_constant_output_blames_the_first_constant_layer_only():
    # layer 1 (relu) dies at batch 4: zero spread, zero mean; layer 2 is then constant too
    dead = {("output", "std", 1): lambda b: 0.0 if b >= 4 else 0.5,
            ("output", "mean", 1): lambda b: 0.0 if b >= 4 else 0.3 + 0.01 * b,
            ("output", "std", 2): lambda b: 0.0 if b >= 4 else 0.5,
            ("output", "mean", 2): lambda b: 0.7 if b >= 4 else 0.3 + 0.01 * b}
    found = replay(LayerTrend(), trace_with(dead, n_batches=80))  # long enough for the full window
    f = found[0]
    assert (f.code, f.layer, f.stage) == ("EAA", 1, "output")
    # "unchanged" compares with the previous batch, so the run starts at batch 5: 20 batches end at 24
    assert f.step == trace_index(4 + 20, 4)
    assert "only zeros" in f.message
    assert not any(x.layer == 2 and x.stage == "output" for x in found)


def trace_index(batch: int, steps_per_epoch: int) -> int:
    """Replay index of a batch: batches plus the epoch-end steps before it."""
    return batch + batch // steps_per_epoch


def test_softmax_mean_fixed_at_one_over_k_is_not_a_finding():
    # a softmax layer: the batch mean is always 0.1, but the spread moves
    t = trace_with({("output", "mean", 2): 0.1, ("output", "std", 2): lambda b: 0.2 + 0.001 * b})
    assert replay(LayerTrend(), t) == []
    assert first("layer-trend-faithful", t).layer == 2  # the released callback's false alarm


def test_zero_output_gradient_blames_the_layer_nearest_the_output():
    t = trace_with({("output_grad", "zero_frac", 0): 1.0, ("output_grad", "zero_frac", 1): 1.0,
                      ("output_grad", "zero_frac", 2): 1.0})
    f = first("layer-trend", t)
    assert (f.code, f.layer, f.stage) == ("EOG", 2, "output_grad")


def test_frozen_weights_suggest_the_learning_rate():
    t = trace_with({("update", "zero_frac", 0): 1.0})
    f = first("layer-trend", t)
    assert (f.code, f.layer, f.diagnosis) == ("EBW", 0, "HLR")


def test_exploding_first_epoch_gives_a_learning_rate_diagnosis():
    losses = [1.0, 50.0, 80.0, 60.0] + [60.0] * 36
    huge = {("update", "mean", 0): 5.0, ("update", "std", 0): 5.0,
            ("weights", "mean", 0): 1.0, ("weights", "std", 0): 1.0}
    f = first("layer-trend", trace_with(huge, losses=losses))
    assert (f.code, f.layer, f.diagnosis, f.epoch) == ("ELR", None, "HLR", 0)


def test_model_that_never_learns():
    t = trace_with(n_batches=24, steps_per_epoch=4)
    for e in range(6):
        t.arrays["epoch_logs"][e, t.meta["epoch_log_names"].index("loss")] = 0.69
    f = first("layer-trend", t)
    assert (f.code, f.epoch) == ("MDL", 4)


def test_plateau_after_progress_is_not_a_finding():
    t = trace_with(n_batches=40, steps_per_epoch=4)
    losses = [2.0, 1.0] + [0.9] * 8
    for e, v in enumerate(losses):
        t.arrays["epoch_logs"][e, t.meta["epoch_log_names"].index("loss")] = v
    assert replay(LayerTrend(), t) == []


def test_faithful_zero_mean_fires_on_the_first_batch():
    t = trace_with({("weight_grad", "mean", 2): 0.0})
    f = first("layer-trend-faithful", t)
    assert (f.code, f.layer, f.batch, f.epoch) == ("EBDW", 2, 0, 0)


def test_faithful_reports_only_its_first_finding():
    t = trace_with({("weight_grad", "mean", 2): 0.0, ("output", "mean", 0): np.nan})
    found = replay(registry.create("layer-trend-faithful"), t)
    assert len(found) == 1 and found[0].code == "EBA" and found[0].layer == 0


def test_faithful_unchanged_loss_is_mdl():
    t = trace_with(n_batches=10, losses=[0.5] * 10)
    f = first("layer-trend-faithful", t)
    assert (f.code, f.batch) == ("MDL", 0) and f.epoch == 1  # counter 5 = epoch 1, batch 0


def test_faithful_is_its_own_detector_and_names_itself():
    t = trace_with({("weight_grad", "mean", 2): 0.0})
    assert isinstance(registry.create("layer-trend-faithful"), LayerTrendFaithful)
    assert [f.detector for f in replay(LayerTrendFaithful(), t)] == ["layer-trend-faithful"]  # as printed live
    assert replay(LayerTrendFaithful(), t) == replay(registry.create("layer-trend-faithful"), t)


@pytest.mark.parametrize("mode", ["faithful", "fast"])
def test_a_mode_other_than_default_is_refused(mode):
    assert LayerTrend(mode="default", verbose=0).verbose == 0  # the old keyword still works
    with pytest.raises(ValueError, match="LayerTrendFaithful"):
        LayerTrend(mode=mode)
