"""Draws the per-layer trend figure of a case's buggy and patched runs (only draws: ``plot_inputs`` loads the
stored runs, ``figures`` decides which figures to write).

One figure per case: two columns (buggy, patched) sharing each row's y scale,
so a fault reads as the difference between the columns; every detector's first
finding is a vertical line at the batch where it was reported.
"""

from __future__ import annotations

import dataclasses
import difflib
import textwrap
from collections.abc import Callable

import numpy as np

from harness.reporting.glossary import METHODS, code_words, detector_order, fault_words
from harness.reporting.plot_inputs import VARIANTS
from harness.running.records import CaseSnapshot, StoredFinding, UnitRecord
from harness.trace import STAGES, STATS, Trace

DPI = 80
WIDTH, TOP, BOTTOM = 14.0, 1.3, 0.6  # inches: figure width, room for titles, room for the x label
PLOT_RIGHT = 0.66  # the legends take the figure's right third
LEGEND_WIDTH = 62  # characters per legend line: the legends fit the figure's right third
MAX_POINTS = 400  # per line: enough to see a trend, few enough to draw 41 cases fast
NONFINITE_COLOR, NONFINITE_ALPHA = "#d62728", 0.12


@dataclasses.dataclass(frozen=True)
class Mark:
    """A detector's first finding, placed on the epoch axis."""

    detector: str
    x: float
    label: str


@dataclasses.dataclass(frozen=True)
class Panel:
    """One row of the figure: a per-batch quantity, for the loss or every layer."""

    title: str
    values: Callable[[Trace], np.ndarray]  # [batch] or [batch, layer]
    positive: bool = False  # a magnitude: drawn on a log scale, zero at the bottom


# -- where things happen ---------------------------------------------------------


def batch_x(batch_epochs) -> np.ndarray:
    """Each batch's place on the epoch axis: epoch e's batches spread evenly over (e, e + 1], so x = 1 is the
    end of the first epoch and a finding at "epoch 2 batch 4" of 8 sits at 1.5."""
    batch_epochs = np.asarray(batch_epochs)
    x = np.zeros(len(batch_epochs))
    for epoch in np.unique(batch_epochs):
        idx = np.flatnonzero(batch_epochs == epoch)
        x[idx] = epoch + (np.arange(len(idx)) + 1) / len(idx)
    return x


def step_positions(batch_epochs, epoch_index) -> np.ndarray:
    """x position (in epochs) of every replay step: a batch step at its batch, an epoch end at the epoch's end.

    Mirrors ``Trace.steps``: each epoch's batches, then that epoch's end. A
    finding's ``step`` indexes this array.
    """
    batch_epochs = np.asarray(batch_epochs)
    xs = batch_x(batch_epochs)
    positions, i = [], 0
    for epoch in epoch_index:
        while i < len(batch_epochs) and batch_epochs[i] == epoch:
            positions.append(float(xs[i]))
            i += 1
        positions.append(float(epoch) + 1.0)
    return np.array(positions)


def step_to_x(trace: Trace, step: int) -> float:
    """Where a finding reported at replay step ``step`` goes on the epoch axis."""
    return _at(step_positions(trace.arrays["epoch"], trace.arrays["epoch_index"]), step)


def _at(positions: np.ndarray, step: int) -> float:
    return float(positions[min(step, len(positions) - 1)]) if len(positions) else 0.0


def first_marks(record: UnitRecord, trace: Trace) -> list[Mark]:
    """Each detector's first error (scoring judges the first one), or its first warning when it raised no
    error, in detector order."""
    positions = step_positions(trace.arrays["epoch"], trace.arrays["epoch_index"])
    marks = []
    for detector, found in sorted(record.findings.items()):
        errors = [f for f in found if f.is_error]
        if not found:
            continue
        first = min(errors or found, key=lambda f: f.step)
        label = finding_label(first) + ("" if errors else " (warning)")
        marks.append(Mark(detector, _at(positions, first.step), label))
    return marks


def finding_label(finding: StoredFinding) -> str:
    text = code_words(finding.code)
    if finding.layer is not None:
        text += f" layer {finding.layer}"
        if finding.layer_name:
            text += f" ({finding.layer_name})"
    if finding.diagnosis:
        text += f" -> {fault_words(finding.diagnosis)}"
    if finding.batch is None and finding.seconds == 0 and finding.step == 0:
        return f"{text}, before training"  # a static finding (structure)
    if finding.batch is None:
        return f"{text}, end of epoch {finding.epoch + 1}"
    return f"{text}, epoch {finding.epoch + 1} batch {finding.batch + 1}"


def first_nonfinite(trace: Trace) -> int | None:
    """The first batch whose loss, or any recorded layer value, is NaN or Inf."""
    if trace.n_batches == 0:
        return None
    bad = ~np.isfinite(trace.value("loss"))
    mask = trace.arrays["mask"]
    for stat in ("nan", "inf"):
        counts = trace.arrays["stats"][:, :, :, STATS.index(stat)]
        bad |= (np.nan_to_num(counts) * mask[None]).reshape(trace.n_batches, -1).sum(axis=1) > 0
    hits = np.flatnonzero(bad)
    return int(hits[0]) if len(hits) else None


# -- what is drawn ------------------------------------------------------------------


def panels(stage: str = "output", stat: str = "mean") -> list[Panel]:
    """The rows: loss, the chosen per-layer statistic, then the ones that show most faults."""
    if stage not in STAGES or stat not in STATS:
        raise ValueError(f"stage must be one of {', '.join(STAGES)} and stat one of {', '.join(STATS)}")
    rows = [
        Panel("loss per batch", lambda t: t.value("loss"), positive=True),
        Panel(f"{stage} {stat} per layer", lambda t: t.series(stage, stat),
              positive=stat in ("std", "zero_frac", "nan", "inf")),
    ]
    if (stage, stat) != ("output", "std"):
        # Zero spread within a batch is how a dead or saturated layer shows.
        rows.append(Panel("output std per layer", lambda t: t.series("output", "std"), positive=True))
    rows += [
        Panel("weight-gradient magnitude per layer", lambda t: magnitude(t, "weight_grad"), positive=True),
        Panel("update / weights per layer", update_ratio, positive=True),
    ]
    return rows


def magnitude(trace: Trace, stage: str) -> np.ndarray:
    """Root mean square of a stage's elements, from their mean and std."""
    return np.hypot(trace.series(stage, "mean"), trace.series(stage, "std"))


def update_ratio(trace: Trace) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return magnitude(trace, "update") / magnitude(trace, "weights")


def thin(n: int) -> np.ndarray:
    """Indices of at most MAX_POINTS batches, evenly spaced, the last one kept."""
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.unique(np.append(np.linspace(0, n - 1, MAX_POINTS).astype(int), n - 1))


def row_scale(arrays: list[np.ndarray], positive: bool) -> dict:
    """One y scale for a row, from both columns, so that the columns compare."""
    finite = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays] or [np.zeros(0)])
    if positive:
        pos = finite[finite > 0]
        if pos.size and pos.max() > 100 * pos.min():
            return {"scale": "log", "floor": pos.min() / 2}  # zero is drawn at the floor
        return {"scale": "linear"}
    size = np.abs(finite[finite != 0])
    if size.size and size.max() > 1e3 * np.median(size):
        linthresh = float(np.median(size))
        return {"scale": "symlog", "linthresh": linthresh, "ticks": symlog_ticks(finite.min(), finite.max(), linthresh)}
    return {"scale": "linear"}


def symlog_ticks(low: float, high: float, linthresh: float, most: int = 3) -> list[float]:
    """0 and at most ``most`` powers of ten on each side that has data.

    Ticks closer to 0 than an eighth of the axis are left out: on an axis
    spanning many decades, +-1 and +-10 would print on top of 0.
    """
    def position(v: float) -> float:  # where symlog puts v, in decades (the linear part counts as one)
        return float(np.sign(v) * (np.log10(abs(v) / linthresh) + 1)) if abs(v) > linthresh else v / linthresh

    span = position(high) - position(low)
    first = int(np.floor(np.log10(linthresh))) + 1
    ticks = [0.0]
    for sign, end in ((1, high), (-1, -low)):
        if end <= linthresh:
            continue
        last = int(np.floor(np.log10(end)))
        step = max(1, -(-(last - first + 1) // most))
        ticks += [sign * 10.0 ** k for k in range(last, first - 1, -step) if abs(position(10.0 ** k)) >= span / 8]
    return sorted(ticks)


# -- drawing ---------------------------------------------------------------------


def draw(units: dict, rows: list[Panel], seed: int):
    # A bare Figure draws with Agg and keeps no global pyplot state: headless, and
    # nothing accumulates when a report draws every case.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH, 1.9 * len(rows) + TOP + BOTTOM), dpi=DPI)
    # Fixed margins, not a layout engine: measuring every tick label costs seconds per figure.
    height = fig.get_figheight()
    fig.subplots_adjust(left=0.07, right=PLOT_RIGHT, top=1 - TOP / height, bottom=BOTTOM / height,
                        wspace=0.08, hspace=0.42)
    axes = fig.subplots(len(rows), 2, sharex="col", sharey="row", squeeze=False)
    values = {v: [row.values(trace) for row in rows] for v, (_, trace) in units.items()}
    xs = {v: batch_x(trace.arrays["epoch"]) for v, (_, trace) in units.items()}
    bad = {v: first_nonfinite(trace) for v, (_, trace) in units.items()}
    colors, names = layer_colors(units)
    for r, row in enumerate(rows):
        scale = row_scale([values[v][r] for v in values] + ([validation_loss(t)[1] for _, t in units.values()]
                                                             if r == 0 else []), row.positive)
        for c, variant in enumerate(VARIANTS):
            ax = axes[r, c]
            if variant in units:
                _draw_cell(ax, xs[variant], values[variant][r], scale, colors[variant], bad[variant])
                if r == 0:
                    _draw_validation(ax, units[variant][1], scale)
            ax.set_title(row.title, fontsize=9, loc="left", y=1.0)  # a fixed y skips a slow layout pass
            ax.tick_params(labelsize=7)
            if r == len(rows) - 1:
                ax.set_xlabel("epoch (1 = the end of the first epoch)", fontsize=8)
        axes[r, 0].set_ylabel(_scale_note(scale), fontsize=7)
    _decorate(fig, axes, units, seed, names, bad, xs)
    return fig


def validation_loss(trace: Trace) -> tuple[np.ndarray, np.ndarray]:
    """(epoch-end x, validation loss) where the run had validation data; empty arrays otherwise."""
    names = list(trace.meta.get("epoch_log_names") or [])
    logs = trace.arrays.get("epoch_logs")
    if "val_loss" not in names or logs is None or not len(logs):
        return np.zeros(0), np.zeros(0)
    return np.asarray(trace.arrays["epoch_index"], float) + 1.0, np.asarray(logs[:, names.index("val_loss")], float)


def _draw_validation(ax, trace: Trace, scale: dict) -> None:
    x, y = validation_loss(trace)
    if not len(x):
        return
    if scale["scale"] == "log":
        y = np.where(np.isfinite(y), np.maximum(y, scale["floor"]), np.nan)
    ax.plot(x, y, **VALIDATION_STYLE)


def _draw_cell(ax, x: np.ndarray, values: np.ndarray, scale: dict, colors: list, bad: int | None) -> None:
    idx = thin(len(values))
    shown = values[idx]
    _set_scale(ax, scale)
    if scale["scale"] == "log":
        shown = np.where(np.isfinite(shown), np.maximum(shown, scale["floor"]), np.nan)
    if shown.ndim == 1:
        ax.plot(x[idx], shown, color="black", lw=0.8)
    else:
        for layer in range(shown.shape[1]):
            if np.isfinite(shown[:, layer]).any():
                ax.plot(x[idx], shown[:, layer], color=colors[layer], lw=0.8)
    if bad is not None and len(x):
        start = x[bad] - (x[bad] - (x[bad - 1] if bad else 0.0)) / 2
        ax.axvspan(start, x[-1], color=NONFINITE_COLOR, alpha=NONFINITE_ALPHA, lw=0)


def layer_colors(units: dict) -> tuple[dict, list[str]]:
    """A colour per layer that means the same layer in both columns, and the legend's label per colour.

    The variants' layer lists are aligned on layer class (difflib): a layer the
    patch kept, or only changed (another activation, more units), has one colour
    in both columns; a layer only one variant has gets a colour of its own.
    """

    layers = {v: list(trace.layers) for v, (_, trace) in units.items()}
    first = "buggy" if "buggy" in layers else next(iter(layers))
    base = layers[first]
    slots = {first: list(range(len(base)))}
    labels = [f"{i} {_layer_name(layer)}" for i, layer in enumerate(base)]
    for variant, own in layers.items():
        if variant == first:
            continue
        slot = [None] * len(own)
        classes = ([layer.get("class") for layer in base], [layer.get("class") for layer in own])
        for a, b, n in difflib.SequenceMatcher(a=classes[0], b=classes[1], autojunk=False).get_matching_blocks():
            for k in range(n):
                slot[b + k] = a + k
                labels[a + k] = _aligned_label(a + k, base[a + k], b + k, own[b + k])
        for i, s_ in enumerate(slot):
            if s_ is None:
                slot[i] = len(labels)
                labels.append(f"{variant} {i} {_layer_name(own[i])}")
        slots[variant] = slot
    palette = _palette("tab20" if len(labels) > 10 else "tab10", len(labels))
    return {v: [palette[k] for k in slot] for v, slot in slots.items()}, labels


def _set_scale(ax, scale: dict) -> None:
    # Few ticks: each costs a millisecond to draw, and 30 decades of minor ticks are unreadable anyway.
    from matplotlib.ticker import FixedLocator, LogLocator, MaxNLocator, NullLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    if scale["scale"] == "log":
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(numticks=5))
    elif scale["scale"] == "symlog":
        ax.set_yscale("symlog", linthresh=scale["linthresh"])
        ax.yaxis.set_major_locator(FixedLocator(scale["ticks"]))
    else:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.yaxis.set_minor_locator(NullLocator())


def _scale_note(scale: dict) -> str:
    return {"log": "log scale\n(0 at the bottom)", "symlog": "symmetric log"}.get(scale["scale"], "")


def _palette(name: str, n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps[name]
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


LINESTYLES = ("-", "--", ":", "-.")
# tab10's ten colours apart enough to tell at a glance, then three dark ones of tab20b (the peers), one per built-in
# detector (in METHODS order).
DETECTOR_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                   "#bcbd22", "#17becf", "#393b79", "#637939", "#843c39")
# Black like the batch loss it is read against, but dashed, with open diamonds at the epoch ends it was taken at.
VALIDATION_STYLE = dict(color="black", lw=1.0, ls="--", marker="D", ms=4, mfc="white", mew=1.0)


def detector_styles(detectors) -> dict:
    """A colour and line style per detector, fixed by its place in the methods table: a detector looks the
    same in every figure, and no two built-ins share a colour (plug-ins come after them, dashed)."""
    plugins = sorted(d for d in detectors if detector_order(d)[0] == len(METHODS))
    styles = {}
    for name in detectors:
        k = detector_order(name)[0] if name not in plugins else len(METHODS) + plugins.index(name)
        styles[name] = dict(color=DETECTOR_COLORS[k % len(DETECTOR_COLORS)],
                            ls=LINESTYLES[(k // len(DETECTOR_COLORS)) % len(LINESTYLES)], lw=1.3)
    return styles


def _decorate(fig, axes, units: dict, seed: int, layer_labels: list, bad: dict, xs: dict) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    record = next(iter(units.values()))[0]
    fig.suptitle(_headline(record.case), fontsize=10)
    marks = {v: first_marks(rec, trace) for v, (rec, trace) in units.items()}
    detectors = sorted({d for rec, _ in units.values() for d in rec.findings}, key=detector_order)
    styles = detector_styles(detectors)
    for c, variant in enumerate(VARIANTS):
        axes[0, c].annotate(_column_head(variant, units.get(variant), seed), (0.5, 1.22), xycoords="axes fraction",
                            ha="center", fontsize=10, fontweight="bold")
        if variant not in units:
            axes[0, c].text(0.5, 0.5, "no stored run of this variant", ha="center", transform=axes[0, c].transAxes)
            continue
        for mark in marks[variant]:
            for ax in axes[:, c]:
                ax.axvline(mark.x, **styles[mark.detector])
        _mark_nonfinite(axes[0, c], bad[variant], xs[variant])
    handles = [Line2D([], [], **styles[d]) for d in detectors]
    labels = [_marks_label(d, marks) for d in detectors]
    if any(len(validation_loss(t)[0]) for _, t in units.values()):
        handles.append(Line2D([], [], **VALIDATION_STYLE))
        labels.append("validation loss (epoch ends)")
    if any(b is not None for b in bad.values()):
        handles.append(Patch(color=NONFINITE_COLOR, alpha=NONFINITE_ALPHA))
        labels.append("NaN/Inf from this batch on")
    right = PLOT_RIGHT + 0.01
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(right, axes[0, 1].get_position().y1),
               fontsize=7, title="first finding", title_fontsize=8, alignment="left")
    palette = _palette("tab20" if len(layer_labels) > 10 else "tab10", len(layer_labels))
    layer_handles = [Line2D([], [], color=palette[i], lw=1.5) for i in range(len(layer_labels))]
    fig.legend(layer_handles, layer_labels, loc="lower left",
               bbox_to_anchor=(right, axes[-1, 1].get_position().y0), fontsize=7, title="layers", title_fontsize=8,
               alignment="left", ncols=1 if len(layer_labels) <= 12 else 2)


def _headline(case: CaseSnapshot) -> str:
    title = "\n".join(textwrap.wrap(f"{case.id}: {case.title or ''}", 110)[:2])
    faults = [f.code + (f" layer {f.layer}" if f.layer is not None else "") for f in case.truth.faults]
    return f"{title}\ntruth: {', '.join(faults) or '?'}; symptom: {case.symptom.kind}"


def _column_head(variant: str, unit, seed: int) -> str:
    if unit is None:
        return f"{variant} (seed {seed})"
    final = unit[0].summary.final if unit[0].summary else {}
    parts = [f"{name} {_number(final[name])}" for name in ("loss", "accuracy") if name in final]
    return f"{variant} (seed {seed})" + (f": final {', '.join(parts)}" if parts else "")


def _number(value) -> str:
    try:
        return f"{float(value):.4g}"  # results store NaN as the string 'nan'
    except (TypeError, ValueError):
        return str(value)


def _mark_nonfinite(ax, bad: int | None, x: np.ndarray) -> None:
    if bad is None or not len(x):
        return
    at = float(x[bad])
    ax.plot([at], [0.92], marker="X", color=NONFINITE_COLOR, transform=ax.get_xaxis_transform(), clip_on=False)
    late = at > 0.6 * float(x[-1])  # then the text reads leftwards, inside the axes
    ax.annotate(f"  NaN/Inf from batch {bad + 1}  ", (at, 0.92), xycoords=ax.get_xaxis_transform(), fontsize=7,
                color=NONFINITE_COLOR, va="center", ha="right" if late else "left")


def _marks_label(detector: str, marks: dict) -> str:
    lines = [detector]
    for variant in VARIANTS:
        if variant in marks:
            found = next((m.label for m in marks[variant] if m.detector == detector), "nothing")
            lines += textwrap.wrap(f"{variant}: {found}", LEGEND_WIDTH, initial_indent="  ", subsequent_indent="      ")
    return "\n".join(lines)


def _aligned_label(i: int, layer: dict, j: int, other: dict) -> str:
    """``0 Dense(linear)`` for a layer both variants share; ``0 Dense(linear → sigmoid)`` where the patch changed
    it; ``1/2`` where the patch moved it (buggy index / patched index)."""
    where = str(i) if i == j else f"{i}/{j}"
    a, b = _layer_name(layer), _layer_name(other)
    if a == b:
        return f"{where} {a}"
    act = (layer.get("activation"), other.get("activation"))
    return f"{where} {layer.get('class')}({act[0]} → {act[1]})" if act[0] != act[1] else f"{where} {a} / {b}"


def _layer_name(layer: dict) -> str:
    name = layer.get("class") or layer.get("name", "?")
    activation = layer.get("activation")
    return f"{name}({activation})" if activation and name != "Activation" else name
