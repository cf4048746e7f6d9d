"""The native statistics op against numpy in float64, and how it is chosen, built and refused."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from harness.training import stats_op  # noqa: E402


def reference(a) -> list[float]:
    """mean, std, min, max (of the finite values), zero fraction, NaN count, Inf count, in float64."""
    a = np.asarray(a, np.float64).ravel()
    ok = np.isfinite(a)
    with np.errstate(invalid="ignore", divide="ignore"):
        return [a.mean() if a.size else np.nan, a.std() if a.size else np.nan,
                a[ok].min() if ok.any() else np.inf, a[ok].max() if ok.any() else -np.inf,
                np.mean(a == 0) if a.size else np.nan, np.isnan(a).sum(), np.isinf(a).sum()]


def arrays():
    rng = np.random.default_rng(0)
    big = rng.normal(size=(1200, 1000)) * 3 + 7  # many chunks, shared among threads
    big[5, 5], big[900, 1] = np.inf, np.nan
    return [rng.normal(size=(4, 3)), rng.normal(size=(5,)) * 1e3, np.zeros((2, 2)), np.zeros((0, 3)),
            np.array([[0.0, 1.0, np.nan, np.inf, -np.inf]]), np.array([np.nan, np.nan]),
            rng.normal(size=(70001,)) + 1e4, big]


def test_statistics_equal_float64_numpy_for_tensors_and_differences():
    op = stats_op.load()
    rng = np.random.default_rng(1)
    tensors = [np.float32(a) for a in arrays()]
    after, before = np.float32(rng.normal(size=(300, 70))), np.float32(rng.normal(size=(300, 70)))
    got = op.bugbench_tensor_stats(tensors=[tf.constant(t) for t in tensors],
                                   after=[tf.constant(after)], before=[tf.constant(before)]).numpy()
    want = np.array([reference(t) for t in tensors] + [reference(after - before)])
    assert got.shape == (len(tensors) + 1, 7)
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-6, atol=1e-7)
    assert got[-2, 5:].tolist() == [1, 1]  # the NaN and the Inf of the large tensor are counted...
    assert got[-2, 2] == pytest.approx(tensors[-1][np.isfinite(tensors[-1])].min())  # ...and kept out of min


def test_spread_is_exact_beside_a_large_offset_and_an_outlier_first():
    """Sums of squares are taken about a shift near the mean, not about zero or the first value."""
    rng = np.random.default_rng(3)
    a = np.float32(rng.normal(size=50000) * 0.01 + 1000.0)
    a[0] = 5000.0
    got = stats_op.load().bugbench_tensor_stats(tensors=[tf.constant(a)], after=[], before=[]).numpy()[0]
    want = reference(a)
    np.testing.assert_allclose(got[:2], want[:2], rtol=1e-5)


def test_extremes_and_zeros_are_found_in_every_lane_and_in_the_tail():
    """The block loop keeps eight lanes in two SIMD quads; values past the last block go one by one."""
    base = np.float32(np.random.default_rng(4).uniform(1.0, 2.0, size=256 * 4 + 13))
    op = stats_op.load()
    for pos in [0, 1, 3, 4, 5, 7, 260, 1023, 1024, 1036]:
        a = base.copy()
        a[pos], a[pos - 1], a[(pos + 2) % a.size] = -50.0, 50.0, 0.0
        got = op.bugbench_tensor_stats(tensors=[tf.constant(a)], after=[tf.constant(a)],
                                       before=[tf.constant(np.zeros_like(a))]).numpy()
        for row in got:
            assert (row[2], row[3], row[4]) == (-50.0, 50.0, np.float32(1 / a.size)), pos


def test_large_inputs_give_the_same_bits_every_time():
    """Partial sums are combined in a fixed order, whatever the thread pool does."""
    op = stats_op.load()
    big = tf.constant(np.random.default_rng(2).normal(size=(3000, 1000)).astype(np.float32))
    runs = [op.bugbench_tensor_stats(tensors=[big], after=[big], before=[big * 0.5]).numpy() for _ in range(4)]
    for run in runs[1:]:
        assert np.array_equal(run, runs[0])


def test_mismatched_pairs_are_refused():
    op = stats_op.load()
    with pytest.raises(tf.errors.InvalidArgumentError, match="differ in shape"):
        op.bugbench_tensor_stats(tensors=[], after=[tf.zeros([2, 3])], before=[tf.zeros([3, 2])])


def test_backend_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("BUGBENCH_STATS", raising=False)
    assert stats_op.backend() == "native"
    monkeypatch.setenv("BUGBENCH_STATS", "TF")
    assert stats_op.backend() == "tf"
    monkeypatch.setenv("BUGBENCH_STATS", "fast")
    with pytest.raises(ValueError, match="BUGBENCH_STATS='fast'.*native, tf"):
        stats_op.backend()


@pytest.fixture
def broken_compiler(monkeypatch, tmp_path):
    """No cached library and a compiler that fails."""
    monkeypatch.setenv("BUGBENCH_OPS_DIR", str(tmp_path / "ops"))
    monkeypatch.setenv("CXX", "false")
    monkeypatch.delenv("BUGBENCH_STATS", raising=False)
    stats_op.load.cache_clear()
    yield tmp_path / "ops"
    stats_op.load.cache_clear()


def test_a_failed_build_says_what_to_do_leaves_no_file_and_is_not_retried(broken_compiler, monkeypatch, capsys):
    with pytest.raises(stats_op.StatsOpError, match="BUGBENCH_STATS=tf"):
        stats_op.load()
    assert "compiling the probe's statistics op" in capsys.readouterr().err  # the wait is announced, once
    assert list(broken_compiler.iterdir()) == []
    monkeypatch.setattr(stats_op, "_build", lambda *a: pytest.fail("built twice"))
    with pytest.raises(stats_op.StatsOpError, match="BUGBENCH_STATS=tf"):
        stats_op.load()  # the first outcome, without a second 15 s attempt


def test_a_compiler_that_cannot_run_or_an_unwritable_cache_is_a_stats_op_error(broken_compiler, monkeypatch):
    monkeypatch.setenv("CXX", str(broken_compiler.parent / "no-such-compiler"))
    with pytest.raises(stats_op.StatsOpError, match="no-such-compiler.*BUGBENCH_STATS=tf"):
        stats_op.load()
    stats_op.load.cache_clear()
    (broken_compiler.parent / "file").write_text("")
    monkeypatch.setenv("BUGBENCH_OPS_DIR", str(broken_compiler.parent / "file" / "ops"))  # under a file
    with pytest.raises(stats_op.StatsOpError, match="cannot write the op library.*BUGBENCH_OPS_DIR"):
        stats_op.load()


def test_a_build_that_hangs_is_a_stats_op_error(broken_compiler, monkeypatch):
    def hang(cmd, **kwargs):
        raise stats_op.subprocess.TimeoutExpired(cmd, kwargs["timeout"])

    monkeypatch.setattr(stats_op.subprocess, "run", hang)
    with pytest.raises(stats_op.StatsOpError, match="took over 600 s"):
        stats_op.load()
    assert list(broken_compiler.iterdir()) == []  # no half-built file left


@pytest.mark.fit
def test_probe_falls_back_to_tensorflow_ops_with_a_warning(broken_compiler):
    keras = pytest.importorskip("keras")
    from harness.training.probe import Probe

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(loss="mse", optimizer="sgd")
    with pytest.warns(UserWarning, match="TensorFlow ops"):
        probe = Probe(model)
    assert probe.stats == "tf"
    with pytest.raises(stats_op.StatsOpError):
        Probe(model, stats="native")  # asked for by name: no fallback


def test_unit_keys_name_the_statistics_implementation():
    from harness.running.store import unit_key

    unit = {"spec": {"model": {}}, "seed": 0, "semantics": None}
    assert unit_key({**unit, "stats": "native"}) != unit_key({**unit, "stats": "tf"})
