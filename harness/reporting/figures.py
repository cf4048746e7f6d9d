"""Every case's figure: which stored runs it draws, whether its PNG is current, drawn in parallel.

``plot_inputs`` finds the records and traces, ``plots`` draws them; this
module decides which figures to (re)draw and writes them.
"""

from __future__ import annotations

import os
import sys

from harness.reporting import plots
from harness.reporting.plot_inputs import (
    KEY_FIELD,
    VARIANTS,
    MissingRun,
    MissingTrace,
    inputs_key,
    load_unit,
    stored_key,
    suggest_case,
)
from harness.running.results import ResultsDir


def plot_case(results_dir: str, case: str, out: str | None = None, seed: int = 0, stage: str = "output",
              stat: str = "mean", reuse: bool = False, cache: str | None = None, run_hint: str | None = None) -> str:
    """Write the case's PNG; return its path. MissingRun when neither variant has a trace.

    ``reuse``: keep an existing PNG drawn from the same stored runs by the same code. ``run_hint``: the
    command that would write the missing runs (default: ``bugbench run --case CASE``).
    """
    rows = plots.panels(stage, stat)
    hint = f"run `{run_hint or f'bugbench run --case {case}'}` first"
    if case not in ResultsDir(results_dir).cases():
        raise MissingRun(f"no stored runs of {case} in {ResultsDir(results_dir).runs}"
                         f"{suggest_case(results_dir, case)}\n{hint}")
    units, missing = {}, {}
    for variant in VARIANTS:
        try:
            units[variant] = load_unit(results_dir, case, variant, seed, cache)
        except MissingRun as exc:
            missing[variant] = exc
    if not units:
        kind = MissingTrace if any(isinstance(e, MissingTrace) for e in missing.values()) else MissingRun
        raise kind("\n".join([*map(str, missing.values()), hint]))
    for why in missing.values():
        print(f"bugbench: {why}; its column is left empty", file=sys.stderr)
    out = out or os.path.join(results_dir, "plots", f"{case}.png")
    key = inputs_key(results_dir, case, seed, stage, stat)
    if reuse and stored_key(out) == key:
        return out
    figure = plots.draw(units, rows, seed)
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    figure.savefig(out, dpi=plots.DPI, metadata={KEY_FIELD: key})
    return out


def plot_all(results_dir: str, seed: int = 0, jobs: int | None = None, cache: str | None = None,
             lacking: list | None = None) -> list[str]:
    """One PNG per stored case in ``results_dir/plots``; cases without traces are skipped, on stderr.

    A PNG whose stored runs have not changed is kept (a rerun of the benchmark from the cache
    redraws nothing). The others are drawn in ``jobs`` processes (default: one per core):
    figures are independent and drawing is CPU-bound. ``lacking`` collects the cases whose runs
    succeeded but whose traces are missing or unreadable (a copied results folder, a broken cache).
    """
    from joblib import Parallel, delayed

    cases = ResultsDir(results_dir).cases()
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
