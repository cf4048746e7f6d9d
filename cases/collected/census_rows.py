"""Census-income-like rows (gh-cloudml-samples-4e28fab, -241): what cloudml-samples' census/keras
to_numeric_features gives for the UCI adult table: five raw continuous columns (age, education_num,
capital_gain, capital_loss, hours_per_week, unscaled) followed by pandas get_dummies(drop_first=True)
0/1 columns of education (15), marital_status (6), relationship (5), workclass (6), occupation (13),
gender (1) and race (4): 55 inputs. The target is get_dummies of the income bracket, two one-hot
columns (<=50K, >50K), about 24% of rows >50K as in the adult table. The rule deciding the bracket is
invented (a logistic score of education, age, marriage, hours and capital gain), with noise.
"""

import numpy as np

_CATS = ((16, 'education'), (7, 'marital'), (6, 'relationship'), (7, 'workclass'),
         (14, 'occupation'), (2, 'gender'), (5, 'race'))


def make(rng, n=4000):
    age = np.clip(rng.normal(38.6, 13.6, n), 17, 90).round()
    edu_num = np.clip(rng.normal(10.1, 2.6, n), 1, 16).round()
    has_gain = rng.random(n) < 0.083
    gain = np.where(has_gain, np.round(rng.lognormal(8.5, 1.0, n)), 0.0).clip(0, 99999)
    has_loss = rng.random(n) < 0.047
    loss = np.where(has_loss, np.round(rng.normal(1870, 360, n)), 0.0).clip(0, 4356)
    hours = np.clip(rng.normal(40.9, 12.3, n), 1, 99).round()
    codes = [rng.integers(0, k, n) for k, _ in _CATS]
    codes[0] = np.clip(np.round(edu_num - 1 + rng.normal(0, 0.5, n)), 0, 15).astype(int)
    dummies = []
    for (k, _), c in zip(_CATS, codes):
        d = np.zeros((n, k - 1))
        rows = np.flatnonzero(c > 0)
        d[rows, c[rows] - 1] = 1.0
        dummies.append(d)
    married = codes[1] == 1
    score = (-8.3 + 0.35 * edu_num + 0.04 * age + 2.0 * married + 0.03 * hours
             + 0.0004 * gain + 0.6 * (codes[5] == 1) + rng.normal(0, 0.8, n))
    rich = (rng.random(n) < 1.0 / (1.0 + np.exp(-3.0 * score))).astype(int)
    x = np.column_stack([age, edu_num, gain, loss, hours] + dummies)
    y = np.eye(2)[rich]
    return x, y
