"""Wall time of the whole default suite: cold (training every unit) and from the cache (re-scoring only).

Runs ``bugbench run`` twice on all cases with a fresh cache, in fresh processes
(as a user would), then reports both wall times, their ratio, and the spread of
per-unit fit and unit times read from the stored results.

    .venv/bin/python bench/suite.py [--jobs 2] [--out results/perf.md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import machine, write_section  # noqa: E402


def timed_run(results: str, cache: str, jobs: int, extra: list[str] = ()) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "harness", "run", "--jobs", str(jobs), "--results", results, "--cache", cache, *extra]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, CI="1"))
    return time.perf_counter() - start, out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ""


def unit_times(results: str) -> pd.DataFrame:
    rows = []
    runs = os.path.join(results, "runs")
    for case in sorted(os.listdir(runs)):
        for name in sorted(os.listdir(os.path.join(runs, case))):
            with open(os.path.join(runs, case, name)) as fh:
                rec = json.load(fh)
            rows.append({"unit": f"{case}/{name[:-5]}", "fit_s": rec.get("fit_seconds"),
                         "unit_s": rec.get("wall_seconds"), "status": rec.get("status")})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="results/perf.md")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--results", help="where the cold run writes its results (default: a temporary folder); "
                                      "the re-scoring runs always write elsewhere")
    ap.add_argument("--cache", help="an empty or new cache folder for the cold run (default: temporary)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        cache = args.cache or os.path.join(work, "cache")
        if os.path.isdir(cache) and os.listdir(cache):
            sys.exit(f"{cache} is not empty: a cold run needs an empty cache")
        results = args.results or os.path.join(work, "results")
        seeds = ["--seeds", str(args.seeds)]
        cold, cold_line = timed_run(results, cache, args.jobs, seeds)
        warm, warm_line = timed_run(os.path.join(work, "warm"), cache, args.jobs, seeds)
        replay, _ = timed_run(os.path.join(work, "replay"), cache, args.jobs, [*seeds, "--replay"])
        one, _ = timed_run(os.path.join(work, "one"), cache, args.jobs,
                           [*seeds, "--detector", "layer-trend", "--replay"])
        units = unit_times(results)
    q = units[["fit_s", "unit_s"]].describe(percentiles=[0.5, 0.9]).T[["min", "50%", "90%", "max"]].round(2)
    slowest = units.sort_values("unit_s", ascending=False).head(5)
    body = "\n\n".join([
        "## Whole suite (bench/suite.py)",
        f"Machine: {machine()}. `bugbench run --jobs {args.jobs} --seeds {args.seeds}` on every case, "
        "default detectors, in fresh processes (TensorFlow start-up included).",
        pd.DataFrame([
            {"run": "cold (empty cache: train every unit)", "wall s": round(cold, 1), "runner says": cold_line},
            {"run": "from the cache (re-score every detector; stored findings reused)", "wall s": round(warm, 1),
             "runner says": warm_line},
            {"run": "from the cache, replaying every detector (--replay)", "wall s": round(replay, 1),
             "runner says": ""},
            {"run": "from the cache, one detector replayed on every trace (= adding a new detector)",
             "wall s": round(one, 1), "runner says": ""},
        ]).to_markdown(index=False),
        f"**cold / cached = {cold / warm:.1f}x**; units trained: {len(units)} "
        f"({int((units.status != 'ok').sum())} failed).",
        "Per-unit seconds (fit = model.fit only; unit = the worker's whole unit: build, data, fit, trace):",
        q.to_markdown(),
        "Slowest units:",
        slowest.to_markdown(index=False),
    ])
    write_section(args.out, "suite", body)
    print(body)


if __name__ == "__main__":
    main()
