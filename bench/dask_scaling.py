"""Wall time of a slice of the generated suite on a local dask cluster of 1 and of 2 workers.

Each size gets a fresh cache and trains the same units (the zoo's healthy
programs, and as many mutants as ``--mutants``, one seed) with
``bugbench run --backend dask``; the ratio says how the suite scales with workers
(on 2 cores, 2 workers is the most this machine can show).

    .venv/bin/python bench/dask_scaling.py [--mutants 40] [--out results/perf.md]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import machine, write_section  # noqa: E402


def slice_of_zoo(work: str, n_mutants: int) -> tuple[str, int]:
    """A cases folder with every zoo program and the first ``n_mutants`` killed mutants."""
    import yaml

    root = os.path.join(work, "zoo")
    for sub in ("programs", "mutants"):
        shutil.copytree(os.path.join("zoo", sub), os.path.join(root, sub),
                        ignore=shutil.ignore_patterns("*.yaml") if sub == "mutants" else None)
    kept = 0
    for name in sorted(os.listdir(os.path.join("zoo", "mutants"))):
        path = os.path.join("zoo", "mutants", name)
        if name.endswith(".yaml") and kept < n_mutants and yaml.safe_load(open(path)).get("status") == "valid":
            shutil.copy(path, os.path.join(root, "mutants", name))
            kept += 1
    programs = len([n for n in os.listdir(os.path.join(root, "programs")) if n.endswith(".yaml")])
    return root, programs + kept  # a mutant's patched variant is its program: trained once


def timed(cases: str, workers: int, work: str) -> float:
    from distributed import LocalCluster

    cache, results = os.path.join(work, f"cache{workers}"), os.path.join(work, f"results{workers}")
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        cmd = [sys.executable, "-m", "harness", "run", "--cases-dir", cases, "--results", results, "--cache", cache,
               "--backend", "dask", "--scheduler", cluster.scheduler_address, "--detector", "diagnose"]
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, text=True, check=True, env=dict(os.environ, CI="1"))
        return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mutants", type=int, default=40)
    ap.add_argument("--out", default="results/perf.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        cases, units = slice_of_zoo(work, args.mutants)
        one, two = timed(cases, 1, work), timed(cases, 2, work)
    body = "\n\n".join([
        "## The generated suite on a dask cluster (bench/dask_scaling.py)",
        f"Machine: {machine()}. A slice of the generated suite ({units} trainings: every zoo program and up to "
        f"{args.mutants} killed mutants, one seed, detector `diagnose`), trained "
        "cold on a local dask cluster (processes, one thread each) with `bugbench run --backend dask`, in a "
        "fresh process (TensorFlow start-up included).",
        "| workers | wall s | speed-up |\n|---|---|---|\n"
        f"| 1 | {one:.1f} | 1.00 |\n| 2 | {two:.1f} | {one / two:.2f} |",
        "More workers than the machine has cores would not help here; on a cluster each worker is one core.",
    ])
    write_section(args.out, "dask-scaling", body)
    print(body)


if __name__ == "__main__":
    main()
