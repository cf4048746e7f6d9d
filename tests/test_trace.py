import numpy as np

from detectors.toy_traces import make_trace
from harness.trace import Trace


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
