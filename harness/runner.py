"""Run the selected cases: train every variant in parallel, replay detectors, store results.

Training units go to joblib workers (loky processes, reused, so each pays the
TensorFlow import once). Detectors are replayed afterwards in this process
from the stored traces: every detector sees the same run of every variant.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from harness.cases import VARIANTS, LoadedCase


@dataclasses.dataclass
class RunConfig:
    results_dir: str = "results"
    cache_dir: str = ".bugbench"
    jobs: int = 1
    seeds: tuple[int, ...] = (0,)
    variants: tuple[str, ...] = VARIANTS
    detectors: tuple[str, ...] = ("keras-baseline", "layer-trend-faithful", "layer-trend")
    semantics: str | None = None  # override every case's loss semantics
    progress: bool | None = None  # None: only on a terminal


def units_for(cases: list[LoadedCase], config: RunConfig) -> list[dict]:
    return [
        {"case": c.id, "variant": v, "seed": s, "spec": c.spec_dict(v), "semantics": config.semantics}
        for c in cases for v in config.variants for s in config.seeds
    ]


def unit_name(unit: dict) -> str:
    return f"{unit['variant']}-seed{unit['seed']}"


def run(cases: list[LoadedCase], config: RunConfig) -> list[dict]:
    """Train, replay and store every unit; return the stored records."""
    from detectors import registry

    names = registry.expand(config.detectors)
    units = units_for(cases, config)
    trained = train_all(units, config)
    by_id = {c.id: c for c in cases}
    records = []
    for unit, result in zip(units, trained):
        record = score_unit(by_id[unit["case"]], result, names)
        write_record(config.results_dir, unit, record)
        records.append(record)
    return records


def train_all(units: list[dict], config: RunConfig) -> list[dict]:
    """Train units with joblib; results come back in the order of ``units``."""
    from joblib import Parallel, delayed
    from tqdm import tqdm

    from harness.train import train_unit

    jobs = max(1, config.jobs)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    paths = [trace_path(config.cache_dir, u) for u in units]
    tasks = (delayed(_indexed)(i, train_unit, u, p, threads) for i, (u, p) in enumerate(zip(units, paths)))
    show = sys.stderr.isatty() and not os.environ.get("CI") if config.progress is None else config.progress
    results: list[dict | None] = [None] * len(units)
    stream = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")(tasks)
    for i, result in tqdm(stream, total=len(units), disable=not show, unit="run", desc="training"):
        results[i] = result
    return results


def _indexed(i, fn, *args):
    return i, fn(*args)


def trace_path(cache_dir: str, unit: dict) -> str:
    return os.path.join(cache_dir, "traces", unit["case"], f"{unit_name(unit)}.npz")


def score_unit(case: LoadedCase, result: dict, detector_names: list[str]) -> dict:
    """Attach the case snapshot and every detector's findings to a training result."""
    from detectors import registry
    from detectors.base import replay
    from harness.trace import Trace

    record = dict(result, case=case_snapshot(case), detectors=detector_names)
    if result.get("status") != "ok":
        return record
    trace = Trace.load(result["trace"])
    findings, versions, localizes = {}, {}, {}
    for name in detector_names:
        detector = registry.create(name)
        findings[name] = [f.to_dict() for f in replay(detector, trace)]
        versions[name] = detector.version
        localizes[name] = bool(getattr(detector, "localizes", False))
    record.update(findings=findings, detector_versions=versions, localizes=localizes,
                  layers=[layer.get("class") for layer in trace.layers])
    return record


def case_snapshot(case: LoadedCase) -> dict:
    """What tables need about a case, frozen into each result file."""
    c = case.case
    return {"id": c.id, "version": c.version, "path": case.path, "title": c.title, "task": c.task,
            "status": c.status, "status_reason": c.status_reason, "source": c.source.model_dump(),
            "truth": c.truth.model_dump(), "symptom": c.symptom.model_dump(),
            "original": c.original.model_dump(), "paper": c.paper}


def write_record(results_dir: str, unit: dict, record: dict) -> str:
    """Write one unit's record atomically (temp file, then rename)."""
    folder = os.path.join(results_dir, "runs", unit["case"])
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{unit_name(unit)}.json")
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(record, fh, indent=1, sort_keys=True, default=str)
        fh.write("\n")
    os.replace(tmp, path)
    return path
