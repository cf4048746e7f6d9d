import numpy as np
import pytest

from harness import data


def test_digits_upsampled_like_mnist():
    d = data.load_data({"source": "sklearn.digits", "params": {"image_size": 28, "flatten": True},
                        "preprocess": [{"scale": {"by": 1 / 16}}, {"one_hot": {"classes": 10}}],
                        "validation": {"n": 297}})
    assert d.x.shape == (1500, 784) and d.x_val.shape == (297, 784)
    assert d.y.shape == (1500, 10) and d.y.sum(axis=1).tolist() == [1.0] * 1500
    assert d.x.min() == 0.0 and d.x.max() == 1.0
    assert d.description["n_train"] == 1500 and d.x.dtype == np.float32


def test_digits_as_color_images():
    x, y = data.SOURCES["sklearn.digits"](np.random.default_rng(0), image_size=32, channels=3, n=10)
    assert x.shape == (10, 32, 32, 3) and len(y) == 10


@pytest.mark.parametrize("name", ["sklearn.iris", "sklearn.breast_cancer", "sklearn.wine", "sklearn.diabetes"])
def test_sklearn_tables(name):
    d = data.load_data({"source": name, "preprocess": [{"standardize": {}}], "validation": {"split": 0.2}})
    assert abs(float(np.concatenate([d.x, d.x_val]).mean())) < 1e-4
    assert len(d.x_val) == round((len(d.x) + len(d.x_val)) * 0.2)


def test_generators_are_seeded():
    spec = {"source": "synthetic.polynomial", "seed": 7,
            "params": {"coef": [0, 0, 5], "start": 0, "stop": 5, "step": 0.1, "noise_std": 1, "noise_power": 3}}
    a, b = data.load_data(spec), data.load_data(spec)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.x.shape == (50, 1)
    assert not np.array_equal(a.y, data.load_data(dict(spec, seed=8)).y)
    np.testing.assert_allclose(a.y, 5 * a.x[:, 0] ** 2, atol=30)


def test_constant_rows_and_xor():
    x, y = data.SOURCES["synthetic.constant_rows"](np.random.default_rng(0), n_per_class=5, dim=3)
    assert set(map(tuple, x)) == {(0.0,) * 3, (1.0,) * 3}
    assert all(row[0] == label for row, label in zip(x, y))
    x, y = data.SOURCES["synthetic.xor"](None, repeat=3)
    assert x.shape == (12, 2) and y.tolist()[:4] == [0, 1, 1, 0]


def test_minmax_on_targets_and_bad_one_hot():
    d = data.load_data({"source": "synthetic.linear", "params": {"n": 50},
                        "preprocess": [{"minmax": {"on": "y"}}]})
    assert d.y.min() == 0 and d.y.max() == pytest.approx(1)
    with pytest.raises(ValueError, match="labels span"):
        data.load_data({"source": "sklearn.iris", "preprocess": [{"one_hot": {"classes": 2}}]})


def test_check_params():
    assert data.check_params("synthetic.xor", {"repeat": 2}) is None
    assert "unexpected keyword" in data.check_params("synthetic.xor", {"repeats": 2})
    assert "unknown data source" in data.check_params("sklearn.mnist", {})
