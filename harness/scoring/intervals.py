"""Rates with 95 % Wilson score intervals: sound for small counts (26 cases) and for rates near 0 or 1."""

from __future__ import annotations

import dataclasses
import math


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a rate k/n (sound for small n and rates near 0 or 1)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    scale = 1 + z * z / n
    centre, half = (p + z * z / (2 * n)) / scale, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / scale
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclasses.dataclass(frozen=True)
class Count:
    """k of n, kept as numbers until a table is written: ``21/26`` in Markdown, ``k`` and ``k_of`` in CSV."""

    k: int
    n: int

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"

    def __sub__(self, other: Count) -> Count:
        return Count(self.k - other.k, self.n - other.n)


@dataclasses.dataclass(frozen=True)
class Rate:
    """k/n with its 95 % Wilson interval: ``0.81 [0.62, 0.92]`` in Markdown, value and bounds in CSV (as shown)."""

    k: int
    n: int

    def shown(self) -> tuple[float, float, float]:
        lo, hi = wilson(self.k, self.n)
        return round(self.k / self.n, 2), round(lo, 2), round(hi, 2)

    def __str__(self) -> str:
        value, lo, hi = (f"{x:.2f}" for x in self.shown())
        return f"{value} [{lo}, {hi}]"


def count_true(values, n: int | None = None) -> Count | str:
    """How many of the measured ``values`` (a Series; NaN: not measured) are true, of ``n`` (default: of those
    measured); ``–`` when none is measured."""
    measured = values.dropna()
    if not len(measured):
        return "–"
    return Count(int(measured.astype(bool).sum()), len(measured) if n is None else n)


def rate(k: int, n: int) -> Rate | str:
    return Rate(int(k), int(n)) if n else "–"
