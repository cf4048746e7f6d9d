"""Ames-housing-like rows (gh-dl-keras-tf-9): what the rstudio::conf 2020 workshop's recipe gives for
AmesHousing::make_ames() training rows: 188 inputs, of which 45 numeric columns (Yeo-Johnson
normalised, then centred and scaled: mean 0, sd 1, quality scores ordinal-encoded among them) and 143
one-hot columns of 23 categorical features (levels under 1% lumped into 'other'). The target is the raw
Sale_Price in dollars (Ames: mean about 181,000, sd about 80,000, range 12,789..755,000), left
unscaled as in the workshop. The rule behind the price is invented: log price linear in a latent
'quality' that drives most numeric columns, plus a few category effects and noise.
"""

import numpy as np

# Levels of the 23 categorical features after step_other (sum of levels = 143 one-hot columns).
_LEVELS = (7, 5, 4, 9, 6, 8, 5, 4, 6, 7, 5, 9, 6, 5, 4, 6, 8, 7, 5, 6, 7, 5, 9)


def make(rng, n=2051):
    quality = rng.normal(0.0, 1.0, n)
    loadings = rng.uniform(-0.3, 0.9, 45)
    numeric = quality[:, None] * loadings + rng.normal(0.0, 1.0, (n, 45)) * np.sqrt(1 - loadings ** 2)
    numeric = (numeric - numeric.mean(0)) / numeric.std(0)
    blocks, effect = [], np.zeros(n)
    for k in _LEVELS:
        p = rng.dirichlet(np.full(k, 2.0))
        codes = rng.choice(k, size=n, p=p)
        blocks.append(np.eye(k)[codes])
        effect += rng.normal(0.0, 0.04, k)[codes]
    log_price = 12.02 + 0.33 * quality + effect + rng.normal(0.0, 0.12, n)
    price = np.clip(np.exp(log_price), 12789.0, 755000.0)
    x = np.column_stack([numeric] + blocks)
    return x, price
