import json

import numpy as np
import pytest

from detectors.toy_traces import make_trace
from harness.trace import Budget, Trace, TraceRecorder


def test_steps_interleave_batches_and_epoch_ends():
    trace = make_trace([1.0, 0.9, 0.8, 0.7, 0.6, 0.5], steps_per_epoch=3)
    kinds = [(s.kind, s.epoch, s.batch) for s in trace.steps()]
    assert kinds == [("batch", 0, 0), ("batch", 0, 1), ("batch", 0, 2), ("epoch", 0, None),
                     ("batch", 1, 0), ("batch", 1, 1), ("batch", 1, 2), ("epoch", 1, None)]
    finals = [s.final for s in trace.steps()]
    assert finals == [False] * 6 + [True, True]  # last batch and end of the last budget epoch
    assert [s.index for s in trace.steps()] == list(range(8))


def test_final_only_at_the_budget_end():
    trace = make_trace([1.0, 0.9], steps_per_epoch=1, epochs=5)
    assert not any(s.final for s in trace.steps())


def test_save_load_round_trip(tmp_path):
    trace = make_trace([1.0, np.nan, 0.8, 0.7], steps_per_epoch=2)
    path = tmp_path / "t.npz"
    trace.save(str(path))
    back = Trace.load(str(path))
    assert back.meta == trace.meta
    for key, arr in trace.arrays.items():
        np.testing.assert_array_equal(back.arrays[key], arr)
    steps = list(back.steps())
    assert np.isnan(steps[1].logs["loss"]) and steps[0].values["loss"] == 1.0
    assert not list(tmp_path.glob("*.tmp*"))


def test_series_masks_stages_that_do_not_apply():
    trace = make_trace([1.0, 0.5], steps_per_epoch=1)
    trace.arrays["mask"][1, 1] = False  # layer 1 has no weights
    assert np.isnan(trace.series("weights", "mean")[:, 1]).all()
    assert not np.isnan(trace.series("weights", "mean")[:, 0]).any()


def test_the_budget_says_which_moment_is_final():
    budget = Budget.of({"epochs": 3, "steps_per_epoch": 4, "batch_size": 32})
    assert budget == Budget(3, 4, 32) and budget.total_steps == 12 and budget.to_dict() == {
        "epochs": 3, "steps_per_epoch": 4, "batch_size": 32}
    assert budget.is_final(2) and budget.is_final(2, 3)
    assert not budget.is_final(2, 2) and not budget.is_final(1) and not budget.is_final(1, 3)
    unknown_steps = Budget(epochs=2)  # a generator without a length: no batch is known to be the last
    assert unknown_steps.is_final(1) and not unknown_steps.is_final(1, 0) and unknown_steps.total_steps == 0
    assert not Budget().is_final(0) and Budget.of(None) == Budget() and Budget.of(budget) is budget


def test_a_trace_without_a_budget_ends_at_its_last_recorded_epoch():
    rec = TraceRecorder(["layer0"], ["loss"])
    mask = np.ones((1, 5), bool)
    for epoch in range(2):
        rec.add_batch(epoch, 0, 0.1, np.zeros((1, 5, 7), np.float32), mask, [1.0], {"loss": 1.0})
        rec.add_epoch(epoch, 0.1, {"loss": 1.0})
    trace = rec.finish({})
    assert trace.budget == Budget(epochs=2)
    assert [s.final for s in trace.steps()] == [False, False, False, True]


def test_trace_metadata_is_checked_where_it_is_written_and_read(tmp_path):
    with pytest.raises(ValueError, match="trace being recorded: trace metadata field 'budgett'"):
        TraceRecorder(["layer0"], ["loss"]).finish({"budgett": {"epochs": 1}})  # a misspelt field is refused
    with pytest.raises(ValueError, match="field 'budget'.*unknown budget fields"):
        TraceRecorder(["layer0"], ["loss"]).finish({"budget": {"epochs": 1, "steps": 3}})
    trace = make_trace([1.0, 0.9], steps_per_epoch=1)
    trace.meta["seed"] = "zero"
    path = tmp_path / "bad.npz"
    with open(path, "wb") as fh:  # written around the check, as another tool or an old version might
        np.savez(fh, meta=np.array(json.dumps(trace.meta)), **trace.arrays)
    with pytest.raises(ValueError, match=f"{path}: trace metadata field 'seed'"):
        Trace.load(str(path))
