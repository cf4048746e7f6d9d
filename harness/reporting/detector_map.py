"""The figure a reader looks at first: each detector's detection rate against its false-alarm rate.

One point per detector, from the summary table's valid subset: x = false-alarm
rate on healthy runs, y = detection rate on the buggy variants, both with 95 %
Wilson intervals. Up and to the left is better. Drawn from the table's numbers
(``Count`` cells), not from the CSV written beside it.
"""

from __future__ import annotations

import os

import pandas as pd

from harness.scoring.intervals import Count, wilson


def counts(row, column: str) -> tuple[int, int] | None:
    """(count, denominator) of a count cell of the summary; None where it was not measured or the denominator
    is 0."""
    cell = row.get(column)
    return (cell.k, cell.n) if isinstance(cell, Count) and cell.n else None


def points(summary: pd.DataFrame, subset: str | None = "valid") -> list[dict]:
    """(detector, detection rate and interval, false-alarm rate and interval) for every detector of ``subset``
    (None: every row, for a summary without subsets)."""
    out = []
    rows = summary if subset is None else summary[summary["subset"] == subset]
    for _, row in rows.iterrows():
        det, fa = counts(row, "detected"), counts(row, "false_alarms")
        if det is None or fa is None:
            continue
        out.append({"detector": row["detector"], "detected": det[0] / det[1], "detected_ci": wilson(*det),
                    "false_alarms": fa[0] / fa[1], "false_alarms_ci": wilson(*fa), "n": det[1], "healthy": fa[1]})
    return out


def draw_detector_map(summary: pd.DataFrame, results_dir: str, subset: str | None = "valid",
                      out: str = "detectors.png", title: str | None = None) -> str | None:
    """Write ``<results>/plots/<out>`` from a summary table; return its path (None: no rows)."""
    if summary.empty or (subset is not None and "subset" not in summary):
        return None
    pts = points(summary, subset)
    if not pts:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 6), dpi=110)
    ax = fig.subplots()
    colors = _colors(len(pts))
    labels: list[tuple[float, float]] = []  # lower-left corners of the labels drawn, in data units
    for p, color in zip(pts, colors):
        dy = _free_offset(p["false_alarms"], p["detected"], labels)
        xerr = _spans(p["false_alarms"], p["false_alarms_ci"])
        yerr = _spans(p["detected"], p["detected_ci"])
        ax.errorbar(p["false_alarms"], p["detected"], xerr=xerr, yerr=yerr, fmt="o", color=color, capsize=3,
                    alpha=0.85, label=p["detector"])
        ax.annotate(p["detector"], (p["false_alarms"], p["detected"]), textcoords="offset points",
                    xytext=(6, dy), fontsize=8, color=color)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(f"false-alarm rate: an error on a healthy run (of {pts[0]['healthy']})")
    ax.set_ylabel(f"detection rate: an error on the buggy run (of {pts[0]['n']} {subset or 'killed'} cases)")
    ax.set_title((title + ": " if title else "Detectors: ") + "detection against false alarms (95 % Wilson "
                 "intervals; up and left is better)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    out = os.path.join(results_dir, "plots", out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    fig.savefig(out)
    return out


# A label is about this wide and tall in data units (8-pt text on a 6-inch, 110-dpi axis over [0, 1]).
LABEL_W, LABEL_H, POINTS_PER_UNIT = 0.2, 0.03, 400


def _free_offset(x: float, y: float, labels: list) -> int:
    """A vertical offset (points) at which the label beside (x, y) overlaps none drawn so far; recorded."""
    for dy in (4, -12, 16, -24, 28, -36):
        ly = y + dy / POINTS_PER_UNIT
        if not any(abs(lx - x) < LABEL_W and abs(ly2 - ly) < LABEL_H for lx, ly2 in labels):
            labels.append((x, ly))
            return dy
    labels.append((x, y))
    return 4


def _spans(rate: float, interval: tuple[float, float]) -> list[list[float]]:
    """Error-bar lengths below and above ``rate`` (never negative: the interval's ends are rounded)."""
    return [[max(0.0, rate - interval[0])], [max(0.0, interval[1] - rate)]]


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i) for i in range(n)]
