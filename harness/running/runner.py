"""Run the selected cases: train what the store lacks, replay detectors, store results.

Each unit (case x variant x seed) is looked up in the content-addressed store
first; only missing units are trained (``harness.running.engine``). As each unit
arrives, every detector is replayed on its trace in this process and the
unit's result file is written atomically, so an interrupted run keeps every
finished unit and a rerun resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys

from detectors.registry import DEFAULT as DEFAULT_DETECTORS
from harness.cases.load import VARIANTS, LoadedCase
from harness.data import files as data_files
from harness.errors import WriteFailed
from harness.running.records import UnitId, UnitRecord
from harness.running.results import ResultsDir
from harness.running.store import Unit, UnitStore
from harness.training import stats_op


@dataclasses.dataclass
class RunConfig:
    results_dir: str = "results"
    cache_dir: str = ".bugbench"
    jobs: int = 1
    seeds: tuple[int, ...] = (0,)
    variants: tuple[str, ...] = VARIANTS
    detectors: tuple[str, ...] = DEFAULT_DETECTORS
    semantics: str | None = None  # override every case's loss semantics
    backend: str = "loky"
    scheduler: str | None = None
    timeout: float | str | None = "auto"  # seconds per unit's fit; "auto": from its budget; None: no limit
    force: bool = False  # retrain even what the store has
    replay: bool = False  # replay every detector even where its stored findings are current
    prune: bool = False  # delete result files of units this run did not produce (a full run)
    more_seeds: int = 0  # extra seeds for cases whose seeds split on `split_detector`'s verdict
    split_detector: str = "diagnose"
    progress: bool | None = None  # None: only on a terminal, never in CI
    trust_case_code: bool = False  # the user's consent to run every case's own code (file.py) in this run


# The default limit of one unit: generous, yet a hang ends. The largest unit measured (the paper's
# so-44164749, 5 epochs) took 61 s of wall time on 2 cores, and no unit of either suite used more
# than 8 % of this limit; start-up and data loading took at most 17 s, an epoch at most 15 s.
LIMIT_FIXED, LIMIT_PER_EPOCH, LIMIT_CAP = 600.0, 30.0, 7200.0


def unit_limit(timeout: float | str | None):
    """Each unit's soft limit in seconds (None: none) under a run's ``timeout`` setting."""
    if timeout != "auto":
        return lambda _unit: timeout
    return lambda unit: min(LIMIT_FIXED + LIMIT_PER_EPOCH * unit["spec"]["fit"]["epochs"], LIMIT_CAP)


def units_for(cases: list[LoadedCase], config: RunConfig, stats: str | None = None) -> list[Unit]:
    stats = stats or stats_op.backend()  # named in the unit: a dask worker's environment may differ
    return [Unit(case=c.id, variant=v, seed=s, spec=c.spec_dict(v), semantics=config.semantics, stats=stats)
            for c in cases for v in config.variants if v in c.variants for s in config.seeds]


def current_keys(cases: list[LoadedCase], seeds) -> set[str]:
    """Keys of every unit today's case files give, for these seeds, under any loss-semantics override
    and either statistics implementation."""
    keys = set()
    for semantics in (None, "keras2", "keras3"):
        config = RunConfig(seeds=tuple(seeds), semantics=semantics)
        for stats in stats_op.BACKENDS:
            keys |= {u.key for u in units_for(cases, config, stats)}
    return keys


def needs_training(cases: list[LoadedCase], config: RunConfig) -> set[str]:
    """Ids of the cases with at least one unit the store does not have."""
    store = UnitStore(config.cache_dir)
    return {u.case for u in units_for(cases, config) if config.force or not store.get(u.id)}


def run(cases: list[LoadedCase], config: RunConfig) -> list[UnitRecord]:
    """Train (what is missing), replay and store every unit; return the stored records."""
    from detectors import registry

    names = registry.expand(config.detectors)
    with cache_lock(config.cache_dir):
        ResultsDir(config.results_dir).remove_orphans()  # what a run killed mid-write left: never a record
        units, records = _run_locked(cases, config, names)
        split = split_cases(records, config.split_detector) if config.more_seeds else set()
        if split:
            first = len(config.seeds)
            extra = dataclasses.replace(config, seeds=tuple(range(first, first + config.more_seeds)))
            more_units, more = _run_locked([c for c in cases if c.id in split], extra, names)
            units, records = units + more_units, records + more
        _prune_or_note(ResultsDir(config.results_dir), [u.id for u in units], config.prune)
        return records


def _prune_or_note(results: ResultsDir, units: list[UnitId], prune: bool) -> None:
    """With ``prune``, delete and list the result files no unit of this run wrote; without, say they are there."""
    stale = results.stale(units)
    if not stale:
        return
    if prune:
        results.remove(stale)
        for path in stale:
            print(f"removed {path}", file=sys.stderr)
        return
    cases = len({os.path.dirname(p) for p in stale})
    print(f"bugbench: {len(stale)} result file(s) of {cases} case(s) in {results.runs} are not from this run "
          "(other cases or seeds) and stay in the tables; `--prune` removes them", file=sys.stderr)


def split_cases(records: list[UnitRecord], detector: str) -> set[str]:
    """Cases on which ``detector``'s verdict (an error finding or none) differs between the seeds of one
    variant: a chaotic run's last bits (another CPU's) could flip the majority there, so those cases
    get more seeds rather than a coin's verdict."""
    verdicts: dict[tuple, set] = {}
    for record in records:
        findings = record.findings.get(detector)  # None: the detector did not run on it
        if record.status != "ok" or findings is None:
            continue
        erred = any(f.is_error for f in findings)
        verdicts.setdefault((record.case.id, record.variant), set()).add(erred)
    return {case for (case, _), seen in verdicts.items() if len(seen) > 1}


@contextlib.contextmanager
def cache_lock(cache_dir: str):
    """One run at a time per cache: a second run waits, then finds the first one's units stored.

    An advisory lock (flock) on ``<cache>/.lock``: released by the kernel when
    the holder exits, however it exits, so a killed run never blocks the next.
    """
    import fcntl

    os.makedirs(cache_dir, exist_ok=True)
    with open(os.path.join(cache_dir, ".lock"), "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"bugbench: another run is using the cache {cache_dir}; waiting for it", file=sys.stderr)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_locked(cases: list[LoadedCase], config: RunConfig, names: list[str]) -> tuple[list[Unit], list[UnitRecord]]:
    store = UnitStore(config.cache_dir)
    by_id = {c.id: c for c in cases}
    units = units_for(cases, config)
    cached = [None if config.force else store.get(u.id) for u in units]
    waiting: dict[str, list[Unit]] = {}  # key -> the units that train as one (a mutant's patched is its program)
    for unit, hit in zip(units, cached):
        if not hit:
            waiting.setdefault(unit.key, []).append(unit)
    todo = [same[0] for same in waiting.values()]
    backfill_facts(store, units, cached)
    records = []
    for unit, hit in zip(units, cached):
        if hit:
            records.append(_finish(by_id[unit.case], unit, dict(hit, cached=True), names, config))
    todo, refused = _with_consent(todo, config)
    for unit, reason in refused:
        for same in waiting[unit.key]:
            records.append(_finish(by_id[same.case], same, dict(status="error", error=reason), names, config))
    try:
        _train(todo, waiting, by_id, store, names, config, records)
    except WriteFailed as exc:
        exc.kept = len(records)
        raise
    return units, records


def _train(todo, waiting, by_id, store, names, config, records) -> None:
    """Train ``todo``, storing and scoring each unit as it arrives (appended to ``records``)."""
    from harness.running.engine import run_units

    # The engine hands workers plain dicts (what train_unit reads); its answers are matched back by key.
    by_key = {unit.key: unit for unit in todo}
    stream = run_units([u.work() for u in todo], config.jobs, config.backend, config.scheduler,
                       unit_limit(config.timeout))
    returned = set()
    for work, record in _progress(stream, len(todo), config):
        unit = by_key[work["key"]]  # the consented copy of its unit: compared by id, not identity
        returned.add(unit.key)
        record = store.put(unit.id, record)
        for same in waiting[unit.key]:
            records.append(_finish(by_id[same.case], same, dict(record, cached=same.id != unit.id), names, config))
    for unit in (u for u in todo if u.key not in returned):  # never silently missing from the tables
        for same in waiting[unit.key]:
            records.append(_finish(by_id[same.case], same,
                                   dict(status="error", error="no result came back from its worker"), names, config))


def _with_consent(todo: list[Unit], config: RunConfig) -> tuple[list[Unit], list[tuple[Unit, str]]]:
    """The units that may train, each marked with the consent it carries, and the refused ones with why."""
    from harness.cases.trust import refusal

    allowed, refused = [], []
    for unit in todo:
        if not data_files.runs_code(unit.spec):
            allowed.append(unit)
            continue
        params = unit.spec["data"]["params"]
        why = refusal(params["path"], params.get("sha256"), config.trust_case_code)
        if why:
            refused.append((unit, why))
        else:
            allowed.append(unit.model_copy(update={"trust_code": True}))
    return allowed, refused


def backfill_facts(store: UnitStore, units: list[Unit], cached: list) -> None:
    """Give stored units whose static facts are missing or of an older facts version today's facts.

    Facts need the model and data built, never training: a trace stays valid
    when facts gain a field (the constant-predictor reference, say).
    """
    from harness.facts import FACTS_VERSION

    # A unit whose data comes from case code is not rebuilt here: that code runs only in a worker.
    missing = [(u, hit) for u, hit in zip(units, cached) if hit and hit.get("status") == "ok"
               and not data_files.runs_code(u.spec) and (hit.get("facts") or {}).get("version") != FACTS_VERSION
               and "error" not in (hit.get("facts") or {})]
    if not missing:
        return
    from harness.training.train import static_facts

    for unit, hit in missing:
        try:
            hit["facts"] = static_facts(unit.work())
        except Exception as exc:  # the unit trained once; a build problem now must not lose it
            hit["facts"] = {"error": f"{type(exc).__name__}: {exc}"}
        store.put(unit.id, hit)


def _finish(case: LoadedCase, unit: Unit, record: dict, names: list[str], config: RunConfig) -> UnitRecord:
    # One training result serves every unit of its content key (another case's variant, a mutant's program):
    # the record names the unit it is written for.
    record = attach_findings(case, dict(record, **unit.id._asdict()), names, replay_all=config.replay)
    return ResultsDir(config.results_dir).write(record)


def _progress(stream, total: int, config: RunConfig):
    from tqdm import tqdm

    show = config.progress
    if show is None:
        show = sys.stderr.isatty() and not os.environ.get("CI")
    return tqdm(stream, total=total, disable=not show or total == 0, unit="run", desc="training")


def attach_findings(case: LoadedCase, result: dict, detector_names: list[str], replay_all: bool = False) -> dict:
    """Attach the case snapshot and every detector's findings to a training result.

    A detector whose findings on this trace are stored and current (same
    fingerprint) is not replayed, unless ``replay_all``. A stored trace that
    cannot be read makes this unit an error row.
    """
    from harness.running.findings import FindingsStore

    record = {k: v for k, v in result.items() if k != "trace_npz"}
    record.update(case=case_snapshot(case), detectors=detector_names)
    if result.get("status") != "ok":
        return record
    store, loaded = FindingsStore(result["trace"]), []
    try:
        return _score_entries(record, result, store, loaded, detector_names, replay_all)
    except TraceUnreadable as exc:  # a corrupt stored trace is that unit's error row, not the suite's crash
        return dict(record, status="error", error=str(exc))


class TraceUnreadable(Exception):
    pass


def _score_entries(record, result, store, loaded, detector_names, replay_all) -> dict:
    from detectors import registry
    from harness.running.findings import LAYERS, fingerprint

    entries = {}
    for name in detector_names:
        detector = registry.create(name)
        stamp = fingerprint(detector)
        entry = None if replay_all else store.get(name, stamp)
        if entry is None:
            entry = replay_entry(detector, stamp, _trace(result, loaded))
            store.put(name, entry)
        entries[name] = entry
    layers = store.get(LAYERS, "trace")
    if layers is None:
        layers = {"fingerprint": "trace", "classes": [layer.get("class") for layer in _trace(result, loaded).layers]}
        store.put(LAYERS, layers)
    store.save()
    record.update(findings={n: e["findings"] for n, e in entries.items()},
                  detector_versions={n: e["version"] for n, e in entries.items()},
                  localizes={n: e["localizes"] for n, e in entries.items()},
                  suggests={n: e["suggests"] for n, e in entries.items()}, layers=layers["classes"])
    return record


def _trace(result: dict, loaded: list):
    """The unit's trace, loaded at most once (only when some detector must replay)."""
    from harness.trace import Trace

    if not loaded:
        try:
            trace = Trace.load(result["trace"])
        except Exception as exc:
            raise TraceUnreadable(f"stored trace {result['trace']} is unreadable ({type(exc).__name__}: {exc}); "
                                  "rerun with --force to retrain it") from None
        if result.get("facts"):  # the record's facts are the current ones (see backfill_facts)
            trace.meta["facts"] = result["facts"]
        loaded.append(trace)
    return loaded[0]


def replay_entry(detector, stamp: str, trace) -> dict:
    """``detector``'s findings entry on ``trace``, replayed from a fresh state (what a stored entry spares)."""
    from detectors.base import replay

    return {"fingerprint": stamp, "findings": [f.to_dict() for f in replay(detector, trace)],
            "version": detector.version, "localizes": bool(getattr(detector, "localizes", False)),
            "suggests": bool(getattr(detector, "suggests", False))}


def case_snapshot(case: LoadedCase) -> dict:
    """What tables need about a case, frozen into each result file."""
    c = case.case
    return {"id": c.id, "version": c.version, "path": case.path, "title": c.title, "task": c.task,
            "status": c.status, "status_reason": c.status_reason, "source": c.source.model_dump(),
            "truth": c.truth.model_dump(), "symptom": c.symptom.model_dump(),
            "original": c.original.model_dump(), "paper": c.paper, "generated": c.generated}
