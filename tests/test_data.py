import numpy as np
import pytest

from harness.data import sources as data


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


# --- generator sources added for the benchmark's cases ---------------------------


def test_inline_rows_are_tiled():
    x, y = data.SOURCES["synthetic.inline"](None, x=[[1, 2], [3, 4]], y=[0, 1], repeat=3)
    assert x.shape == (6, 2) and y.tolist() == [0, 1] * 3
    with pytest.raises(ValueError, match="rows"):
        data.SOURCES["synthetic.inline"](None, x=[[1, 2]], y=[0, 1])


def test_raw_table_has_per_column_units():
    rng = np.random.default_rng(0)
    x, y = data.SOURCES["synthetic.raw_table"](rng, n=400, features=4, informative=2, weights=[0.7],
                                               scales=[1.0, 1.0, 1e5, 0.0], shifts=[0, 0, 3e9, 7.0],
                                               integer=True, repeat=2)
    assert x.shape == (800, 4) and set(np.unique(y)) == {0, 1}
    assert 0.6 < (y == 0).mean() < 0.8
    assert x[:, 2].min() > 2.9e9 and np.all(x[:, 3] == 7.0) and np.all(x == np.round(x))
    with pytest.raises(ValueError, match="per-column"):
        data.SOURCES["synthetic.raw_table"](rng, n=10, features=3, informative=2, scales=[1.0, 2.0])


def test_raw_regression_target_units():
    x, y = data.SOURCES["synthetic.raw_regression"](np.random.default_rng(0), n=200, features=5,
                                                    scales=1000.0, target_scale=8e4, target_shift=1.8e5)
    assert x.shape == (200, 5) and np.abs(x).max() > 100
    assert abs(y.mean() - 1.8e5) < 1 and abs(y.std() - 8e4) < 1


def test_multilabel_and_single_label():
    x, y = data.SOURCES["synthetic.multilabel"](np.random.default_rng(0), n=100, features=6, classes=3)
    assert x.shape == (100, 6) and y.shape == (100, 3) and set(np.unique(y)) <= {0, 1}
    x, y = data.SOURCES["synthetic.multilabel"](np.random.default_rng(0), n=50, features=4, classes=1)
    assert y.shape == (50,)


def test_linear_formula():
    f = data.SOURCES["synthetic.linear_formula"]
    x, y = f(np.random.default_rng(0), n=100, features=3, low=0, high=1e4, coef=[2, 1, 0.5], intercept=2.2)
    np.testing.assert_allclose(y, x @ [2, 1, 0.5] + 2.2)
    assert x.min() >= 0 and x.max() <= 1e4
    x, y = f(np.random.default_rng(0), n=20, features=2, dist="normal", low=0.6, high=0.8, noise_std=0.5,
             clip=[-1, 2], repeat=3)
    assert x.shape == (60, 2) and y.min() >= -1 and y.max() <= 2
    x, _ = f(np.random.default_rng(0), n=50, features=2, high=101, integer=True)
    assert np.all(x == np.floor(x)) and x.max() <= 100


def test_uniform_clusters_and_threshold():
    x, y = data.SOURCES["synthetic.uniform_clusters"](np.random.default_rng(0), n_per_class=10)
    assert x.shape == (20, 2) and y.tolist()[:4] == [0, 1, 0, 1]
    assert np.all(x[y == 0] < 0.4) and np.all(x[y == 1] >= 0.5)
    x, y = data.SOURCES["synthetic.threshold"](np.random.default_rng(0), n=500, low=15000, high=25000,
                                               cut=20000, flip=0.02, integer=True)
    assert x.shape == (500, 1) and np.mean((x[:, 0] < 20000) == (y == 1)) == pytest.approx(0.98)


def test_bit_permutation():
    x, y = data.SOURCES["synthetic.bit_permutation"](np.random.default_rng(0), bits=4, permute=True)
    assert x.shape == (16, 4) and sorted(map(tuple, x)) == sorted(map(tuple, y))
    assert not np.array_equal(x, y)
    x, y = data.SOURCES["synthetic.bit_permutation"](np.random.default_rng(0), bits=3, permute=False, repeat=2)
    assert x.shape == (16, 3) and np.array_equal(x, y)


def test_sine_direction_and_uniform_noise():
    x, y = data.SOURCES["synthetic.sine_direction"](np.random.default_rng(0), n=50, label=1)
    assert x.shape == (50, 2) and np.all(y == 1)
    x, y = data.SOURCES["synthetic.uniform_noise"](np.random.default_rng(0), n=7, x_shape=[5, 1], y_shape=[5, 1])
    assert x.shape == y.shape == (7, 5, 1) and 0 <= x.min() and y.max() <= 1


def test_digit_groups_keypoints_superres():
    rng = np.random.default_rng(0)
    x, y = data.SOURCES["synthetic.digit_groups"](rng, groups=[[0], [1], [2]], image_size=16, channels=3)
    assert x.shape[1:] == (16, 16, 3) and set(np.unique(y)) == {0, 1, 2}
    x, y = data.SOURCES["synthetic.digit_groups"](rng, groups=[[0, 1], [2, 3]], n=30)
    assert len(x) == 30 and set(np.unique(y)) <= {0, 1}
    x, y = data.SOURCES["synthetic.digit_keypoints"](rng, image_size=16, targets=5, n=20)
    assert x.shape == (20, 256) and y.shape == (20, 5) and np.abs(y).max() <= 1 and x.max() <= 1
    x, y = data.SOURCES["synthetic.superres"](rng, image_size=16, factor=2, channels=3, n=4)
    assert x.shape == y.shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(x[:, 0::2, 0::2], x[:, 1::2, 1::2])  # 2x2 blocks are constant


def test_digit_pattern_and_game_of_life():
    x, y = data.SOURCES["synthetic.digit_pattern"](np.random.default_rng(0), n=300, classes=69)
    digits_, lead = np.floor(np.log10(x[:, 0])).astype(int) + 1, (x[:, 0] // 10 ** np.floor(np.log10(x[:, 0])))
    assert np.array_equal(y, (digits_ - 1) * 9 + lead.astype(int) - 1) and y.max() <= 68
    x, y = data.SOURCES["synthetic.game_of_life"](np.random.default_rng(0), n=20, size=3)
    assert x.shape == (20, 5, 5, 1) and y.shape == (20, 3, 3, 1)
    np.testing.assert_array_equal(x[:, 0, 1:4], x[:, 3, 1:4])  # wrap padding
    board = x[0, 1:4, 1:4, 0]
    for i in range(3):
        for j in range(3):
            alive = sum(board[(i + di) % 3, (j + dj) % 3] for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj)
            assert y[0, i, j, 0] == float(alive == 3 or (board[i, j] == 1 and alive == 2))


def test_bag_of_words():
    x, y = data.SOURCES["synthetic.bag_of_words"](np.random.default_rng(0), n=400, vocab=300, markers=50,
                                                  label_noise=0.0)
    assert x.shape == (400, 300) and set(np.unique(x)) <= {0.0, 1.0}
    score = x[:, :50].sum(axis=1) - x[:, 50:100].sum(axis=1)
    assert np.mean((score > 0) == (y == 1)) > 0.8


def test_reviews_have_zipfian_words_and_a_learnable_but_noisy_label():
    x, y = data.SOURCES["synthetic.reviews"](np.random.default_rng(0), n=2000, vocab=3000, length=100,
                                             sentiment_words=300, label_noise=0.2)
    assert x.shape == (2000, 3000) and set(np.unique(x)) <= {0.0, 1.0} and set(np.unique(y)) == {0, 1}
    df = x.mean(axis=0)
    assert df[:10].mean() > 20 * df[-1000:].mean()  # frequent head, long tail of rare words
    assert 60 < x.sum(axis=1).mean() < 100  # ~100 draws per review, repeats collapse
    # Naive Bayes on half the reviews beats chance on the other half but not the 20% label noise.
    pos, neg = x[:1000][y[:1000] == 1].mean(0) + 1e-3, x[:1000][y[:1000] == 0].mean(0) + 1e-3
    pred = x[1000:] @ (np.log(pos) - np.log(neg)) > 0
    assert 0.65 < np.mean(pred == (y[1000:] == 1)) < 0.85
    again, _ = data.SOURCES["synthetic.reviews"](np.random.default_rng(0), n=2000, vocab=3000, length=100,
                                                 sentiment_words=300, label_noise=0.2)
    np.testing.assert_array_equal(x, again)


def test_titanic_like_columns_keep_their_label_codes():
    x, y = data.SOURCES["synthetic.titanic_like"](np.random.default_rng(0), n=891)
    assert x.shape == (891, 10) and set(np.unique(y)) == {0, 1}
    assert 0.33 < y.mean() < 0.43  # about 38% survive
    pclass, name, sex, age, ticket, fare, cabin = x[:, 0], x[:, 1], x[:, 2], x[:, 3], x[:, 6], x[:, 7], x[:, 8]
    assert set(np.unique(pclass)) == {0, 1, 2} and set(np.unique(sex)) == {0, 1}
    assert len(np.unique(name)) == 891 and name.max() <= 1308 and name.max() > 1000  # unique, unscaled codes
    assert ticket.max() <= 928 and 0 <= fare.min() and fare.max() <= 512.33 and 0.42 <= age.min() <= age.max() <= 80
    assert (cabin == 186).mean() > 0.6 and cabin.max() == 186  # 'missing' is the largest cabin code
    assert y[sex == 0].mean() > y[sex == 1].mean() + 0.3  # women survive far more often
    again, _ = data.SOURCES["synthetic.titanic_like"](np.random.default_rng(0), n=891)
    np.testing.assert_array_equal(x, again)


def test_validation_of_the_last_rows_is_keras_validation_split():
    """rows: last holds out the arrays' tail as they stand, so data sorted by class validates on one class."""
    spec = {"source": "synthetic.constant_rows", "params": {"n_per_class": 20, "dim": 4}, "seed": 0,
            "validation": {"split": 0.25, "rows": "last"}}
    x, y = data.SOURCES["synthetic.constant_rows"](np.random.default_rng(0), n_per_class=20, dim=4)
    d = data.load_data(spec)
    assert np.array_equal(d.x_val, np.asarray(x, np.float32)[-10:]) and np.array_equal(d.x, np.asarray(x)[:-10])
    assert np.array_equal(d.y_val, np.asarray(y, np.float32)[-10:])
    shuffled = data.load_data(dict(spec, validation={"split": 0.25}))
    assert not np.array_equal(shuffled.x_val, d.x_val)
