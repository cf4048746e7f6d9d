"""Per-layer trend plots of a case's buggy and patched runs, from stored results.

Reads only ``results/runs/<case>/<variant>-seed<k>.json`` and the traces they
name, so plotting never trains and never imports TensorFlow. One PNG per case:
two columns (buggy, patched) sharing each row's y scale, so a fault reads as
the difference between the columns; every detector's first finding is a
vertical line at the batch where it was reported.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import os
import sys
import textwrap
from collections.abc import Callable

import numpy as np

from harness.provenance import source_hash
from harness.running.results import RecordFormatError, ResultsDir, ResultUnreadable
from harness.trace import STAGES, STATS, Trace

VARIANTS = ("buggy", "patched")
DPI = 80
WIDTH, TOP, BOTTOM = 14.0, 1.3, 0.6  # inches: figure width, room for titles, room for the x label
PLOT_RIGHT = 0.66  # the legends take the figure's right third
MAX_POINTS = 400  # per line: enough to see a trend, few enough to draw 41 cases fast
NONFINITE_COLOR, NONFINITE_ALPHA = "#d62728", 0.12


class MissingRun(Exception):
    """No stored run (or no trace) to plot; the message says what to run."""


class MissingTrace(MissingRun):
    """The run succeeded but its trace is not where the record says, or is unreadable."""


@dataclasses.dataclass(frozen=True)
class Mark:
    """A detector's first finding, placed on the batch axis."""

    detector: str
    x: float
    label: str


@dataclasses.dataclass(frozen=True)
class Panel:
    """One row of the figure: a per-batch quantity, for the loss or every layer."""

    title: str
    values: Callable[[Trace], np.ndarray]  # [batch] or [batch, layer]
    positive: bool = False  # a magnitude: drawn on a log scale, zero at the bottom


# -- loading -------------------------------------------------------------------


def record_path(results_dir: str, case: str, variant: str, seed: int) -> str:
    return ResultsDir(results_dir).path(case, variant, seed)


def load_unit(results_dir: str, case: str, variant: str, seed: int, cache: str | None = None) -> tuple[dict, Trace]:
    """The stored record of one unit and its trace; MissingRun when either is absent or unreadable."""
    path = record_path(results_dir, case, variant, seed)
    if not os.path.exists(path):
        raise MissingRun(f"no stored run {path}")
    try:
        record = ResultsDir(results_dir).read(path)
    except (ResultUnreadable, RecordFormatError) as exc:
        raise MissingRun(str(exc)) from None
    if record.get("status") != "ok" or not record.get("trace"):
        raise MissingRun(f"{path}: the run failed ({record.get('error') or record.get('status')}), no trace")
    trace_file = resolve_trace(record["trace"], results_dir, cache, case)
    if trace_file is None:
        raise MissingTrace(f"{path}: its trace {record['trace']} is not in the cache"
                           + ("" if cache else " (pass --cache DIR if the cache is elsewhere)"))
    try:
        return record, Trace.load(trace_file)
    except Exception as exc:  # a truncated or corrupt file: name it and the cure
        raise MissingTrace(f"{trace_file}: unreadable trace ({type(exc).__name__}: {exc}); retrain it with "
                           f"`bugbench run --case {case} --force`") from None


def resolve_trace(path: str, results_dir: str, cache: str | None = None, case: str | None = None) -> str | None:
    """Find a trace named relative to the folder the run started in, or in ``cache``.

    Runs store the path as given (``.bugbench/units/...``); the results folder
    normally sits in that same folder, so try beside it too; a copied results
    folder finds its traces in the cache it is pointed at (same file name).
    """
    candidates = [path]
    if not os.path.isabs(path):
        candidates.append(os.path.join(os.path.dirname(os.path.abspath(results_dir)), path))
    if cache and case:
        candidates.insert(0, os.path.join(cache, "units", case, os.path.basename(path)))
    return next((p for p in candidates if os.path.exists(p)), None)


def stored_cases(results_dir: str) -> list[str]:
    return ResultsDir(results_dir).cases()


def _hint(case: str) -> str:
    return f"run `bugbench run --case {case}` first"


def _suggest_case(results_dir: str, case: str) -> str:
    close = difflib.get_close_matches(case, stored_cases(results_dir), n=1, cutoff=0.7)
    return f" (did you mean '{close[0]}'?)" if close else ""


# -- where things happen ---------------------------------------------------------


def step_positions(batch_epochs, epoch_index) -> np.ndarray:
    """x position of every replay step: batch steps at their batch, epoch ends after the epoch's last batch.

    Mirrors ``Trace.steps``: each epoch's batches, then that epoch's end. A
    finding's ``step`` indexes this array.
    """
    batch_epochs = np.asarray(batch_epochs)
    positions, i = [], 0
    for epoch in epoch_index:
        while i < len(batch_epochs) and batch_epochs[i] == epoch:
            positions.append(float(i))
            i += 1
        positions.append(i - 0.5)  # between this epoch's last batch and the next epoch's first
    return np.array(positions)


def step_to_batch(trace: Trace, step: int) -> float:
    """Where a finding reported at replay step ``step`` goes on the batch axis."""
    return _at(step_positions(trace.arrays["epoch"], trace.arrays["epoch_index"]), step)


def _at(positions: np.ndarray, step: int) -> float:
    return float(positions[min(step, len(positions) - 1)]) if len(positions) else 0.0


def first_marks(record: dict, trace: Trace) -> list[Mark]:
    """Each detector's first error (scoring judges the first one), or its first warning when it raised no
    error, in detector order."""
    positions = step_positions(trace.arrays["epoch"], trace.arrays["epoch_index"])
    marks = []
    for detector, found in sorted((record.get("findings") or {}).items()):
        errors = [f for f in found if f.get("severity", "error") != "warning"]
        if not found:
            continue
        first = min(errors or found, key=lambda f: f["step"])
        label = finding_label(first) + ("" if errors else " (warning)")
        marks.append(Mark(detector, _at(positions, first["step"]), label))
    return marks


def finding_label(finding: dict) -> str:
    text = finding["code"]
    if finding.get("layer") is not None:
        text += f" layer {finding['layer']}"
        if finding.get("layer_name"):
            text += f" ({finding['layer_name']})"
    if finding.get("diagnosis"):
        text += f" -> {finding['diagnosis']}"
    if finding.get("batch") is None and finding.get("seconds") == 0 and finding.get("step") == 0:
        return f"{text}, before training"  # a static finding (structure)
    if finding.get("batch") is None:
        return f"{text}, end of epoch {finding['epoch'] + 1}"
    return f"{text}, epoch {finding['epoch'] + 1} batch {finding['batch'] + 1}"


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


def plot_case(results_dir: str, case: str, out: str | None = None, seed: int = 0, stage: str = "output",
              stat: str = "mean", reuse: bool = False, cache: str | None = None) -> str:
    """Write the case's PNG; return its path. MissingRun when neither variant has a trace.

    ``reuse``: keep an existing PNG drawn from the same stored runs by the same code.
    """
    rows = panels(stage, stat)
    if not os.path.isdir(os.path.join(results_dir, "runs", case)):
        raise MissingRun(f"no stored runs of {case} in {os.path.join(results_dir, 'runs')}"
                         f"{_suggest_case(results_dir, case)}\n{_hint(case)}")
    units, missing = {}, {}
    for variant in VARIANTS:
        try:
            units[variant] = load_unit(results_dir, case, variant, seed, cache)
        except MissingRun as exc:
            missing[variant] = exc
    if not units:
        kind = MissingTrace if any(isinstance(e, MissingTrace) for e in missing.values()) else MissingRun
        raise kind("\n".join([*map(str, missing.values()), _hint(case)]))
    for why in missing.values():
        print(f"bugbench: {why}; its column is left empty", file=sys.stderr)
    out = out or os.path.join(results_dir, "plots", f"{case}.png")
    key = inputs_key(results_dir, case, seed, stage, stat)
    if reuse and stored_key(out) == key:
        return out
    figure = draw(units, rows, seed)
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    figure.savefig(out, dpi=DPI, metadata={KEY_FIELD: key})
    return out


KEY_FIELD = "bugbench-inputs"


def inputs_key(results_dir: str, case: str, seed: int, stage: str, stat: str) -> str:
    """Hash of what a plot is drawn from: the stored records (which name their traces by content) and this code."""
    digest = hashlib.sha256(f"{case} {seed} {stage} {stat}".encode())
    digest.update(source_hash(os.path.abspath(__file__)).encode())
    for variant in VARIANTS:
        path = record_path(results_dir, case, variant, seed)
        if os.path.exists(path):
            with open(path, "rb") as fh:
                digest.update(fh.read())
    return digest.hexdigest()[:16]


def stored_key(png: str) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(png) as image:
            return image.text.get(KEY_FIELD)
    except (OSError, UnidentifiedImageError):
        return None


def plot_all(results_dir: str, seed: int = 0, jobs: int | None = None, cache: str | None = None,
             lacking: list | None = None) -> list[str]:
    """One PNG per stored case in ``results_dir/plots``; cases without traces are skipped, on stderr.

    A PNG whose stored runs have not changed is kept (a rerun of the benchmark from the cache
    redraws nothing). The others are drawn in ``jobs`` processes (default: one per core):
    figures are independent and drawing is CPU-bound. ``lacking`` collects the cases whose runs
    succeeded but whose traces are missing or unreadable (a copied results folder, a broken cache).
    """
    from joblib import Parallel, delayed

    cases = stored_cases(results_dir)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(cases) or 1))
    outcomes = Parallel(n_jobs=jobs)(delayed(_plot_or_skip)(results_dir, case, seed, cache) for case in cases)
    for case, (_path, skipped, no_trace) in zip(cases, outcomes):
        if skipped:
            print(f"bugbench: no plot for {case}: {skipped}", file=sys.stderr)
        if no_trace and lacking is not None:
            lacking.append(case)
    return [path for path, _, _ in outcomes if path]


def _plot_or_skip(results_dir: str, case: str, seed: int, cache: str | None):
    try:
        return plot_case(results_dir, case, seed=seed, reuse=True, cache=cache), None, False
    except MissingRun as exc:
        return None, str(exc).splitlines()[0], isinstance(exc, MissingTrace)


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
    bad = {v: first_nonfinite(trace) for v, (_, trace) in units.items()}
    n_layers = max(len(trace.layers) for _, trace in units.values())
    colors = _palette("tab20" if n_layers > 10 else "tab10", n_layers)
    for r, row in enumerate(rows):
        scale = row_scale([values[v][r] for v in values], row.positive)
        for c, variant in enumerate(VARIANTS):
            ax = axes[r, c]
            if variant in units:
                _draw_cell(ax, values[variant][r], scale, colors, bad[variant])
            ax.set_title(row.title, fontsize=9, loc="left", y=1.0)  # a fixed y skips a slow layout pass
            ax.tick_params(labelsize=7)
            if r == len(rows) - 1:
                ax.set_xlabel("batch (over all epochs, from 0)", fontsize=8)
        axes[r, 0].set_ylabel(_scale_note(scale), fontsize=7)
    _decorate(fig, axes, units, seed, colors, bad)
    return fig


def _draw_cell(ax, values: np.ndarray, scale: dict, colors: list, bad: int | None) -> None:
    idx = thin(len(values))
    shown = values[idx]
    _set_scale(ax, scale)
    if scale["scale"] == "log":
        shown = np.where(np.isfinite(shown), np.maximum(shown, scale["floor"]), np.nan)
    if shown.ndim == 1:
        ax.plot(idx, shown, color="black", lw=0.8)
    else:
        for layer in range(shown.shape[1]):
            if np.isfinite(shown[:, layer]).any():
                ax.plot(idx, shown[:, layer], color=colors[layer], lw=0.8)
    if bad is not None:
        ax.axvspan(bad - 0.5, len(values) - 0.5, color=NONFINITE_COLOR, alpha=NONFINITE_ALPHA, lw=0)


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


def _decorate(fig, axes, units: dict, seed: int, colors: list, bad: dict) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    record = next(iter(units.values()))[0]
    fig.suptitle(_headline(record.get("case") or {}), fontsize=10)
    marks = {v: first_marks(rec, trace) for v, (rec, trace) in units.items()}
    detectors = sorted({d for rec, _ in units.values() for d in rec.get("findings") or {}})
    palette = _palette("Dark2", len(detectors))
    # Colour and dash both vary, so that detectors stopping at the same batch stay distinguishable.
    styles = {d: dict(color=palette[i], ls=LINESTYLES[i % len(LINESTYLES)], lw=1.2) for i, d in enumerate(detectors)}
    for c, variant in enumerate(VARIANTS):
        axes[0, c].annotate(_column_head(variant, units.get(variant), seed), (0.5, 1.22), xycoords="axes fraction",
                            ha="center", fontsize=10, fontweight="bold")
        if variant not in units:
            axes[0, c].text(0.5, 0.5, "no stored run of this variant", ha="center", transform=axes[0, c].transAxes)
            continue
        for mark in marks[variant]:
            for ax in axes[:, c]:
                ax.axvline(mark.x, **styles[mark.detector])
        _mark_nonfinite(axes[0, c], bad[variant], units[variant][1].n_batches)
    handles = [Line2D([], [], **styles[d]) for d in detectors]
    labels = [_marks_label(d, marks) for d in detectors]
    if any(b is not None for b in bad.values()):
        handles.append(Patch(color=NONFINITE_COLOR, alpha=NONFINITE_ALPHA))
        labels.append("NaN/Inf from this batch on")
    right = PLOT_RIGHT + 0.01
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(right, axes[0, 1].get_position().y1),
               fontsize=7, title="first finding", title_fontsize=8, alignment="left")
    layer_handles = [Line2D([], [], color=colors[i], lw=1.5) for i in range(len(colors))]
    fig.legend(layer_handles, _layer_labels(units), loc="lower left",
               bbox_to_anchor=(right, axes[-1, 1].get_position().y0), fontsize=7, title="layers", title_fontsize=8,
               alignment="left", ncols=1 if len(colors) <= 12 else 2)


def _headline(case: dict) -> str:
    title = "\n".join(textwrap.wrap(f"{case.get('id', '?')}: {case.get('title', '')}", 110)[:2])
    faults = [f["code"] + (f" layer {f['layer']}" if f.get("layer") is not None else "")
              for f in (case.get("truth") or {}).get("faults", [])]
    symptom = (case.get("symptom") or {}).get("kind", "?")
    return f"{title}\ntruth: {', '.join(faults) or '?'}; symptom: {symptom}"


def _column_head(variant: str, unit, seed: int) -> str:
    if unit is None:
        return f"{variant} (seed {seed})"
    final = (unit[0].get("summary") or {}).get("final", {})
    parts = [f"{name} {_number(final[name])}" for name in ("loss", "accuracy") if name in final]
    return f"{variant} (seed {seed})" + (f": final {', '.join(parts)}" if parts else "")


def _number(value) -> str:
    try:
        return f"{float(value):.4g}"  # results store NaN as the string 'nan'
    except (TypeError, ValueError):
        return str(value)


def _mark_nonfinite(ax, bad: int | None, n_batches: int) -> None:
    if bad is None:
        return
    ax.plot([bad], [0.92], marker="X", color=NONFINITE_COLOR, transform=ax.get_xaxis_transform(), clip_on=False)
    late = bad > 0.6 * n_batches  # then the text reads leftwards, inside the axes
    ax.annotate(f"  NaN/Inf from batch {bad}  ", (bad, 0.92), xycoords=ax.get_xaxis_transform(), fontsize=7,
                color=NONFINITE_COLOR, va="center", ha="right" if late else "left")


def _marks_label(detector: str, marks: dict) -> str:
    lines = [detector]
    for variant in VARIANTS:
        if variant in marks:
            found = next((m.label for m in marks[variant] if m.detector == detector), "nothing")
            lines.append(f"  {variant}: {found}")
    return "\n".join(lines)


def _layer_labels(units: dict) -> list[str]:
    """``index class`` per layer; where the variants' layers differ, both are named."""
    names = {v: [_layer_name(layer) for layer in trace.layers] for v, (_, trace) in units.items()}
    n = max(len(ns) for ns in names.values())
    labels = []
    for i in range(n):
        seen = [names[v][i] if i < len(names[v]) else "-" for v in VARIANTS if v in names]
        labels.append(f"{i} " + (seen[0] if len(set(seen)) == 1 else " / ".join(seen)))
    return labels


def _layer_name(layer: dict) -> str:
    name = layer.get("class") or layer.get("name", "?")
    activation = layer.get("activation")
    return f"{name}({activation})" if activation and name != "Activation" else name
