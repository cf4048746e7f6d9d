"""``run`` trains what the cache lacks, replays the detectors and writes results/; ``fidelity`` is ``run`` with 3
seeds by default (the same options)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from harness.cli import options

if TYPE_CHECKING:  # the command line imports the pipeline only when a command runs: --help stays cheap
    from harness.running.records import UnitRecord


def run_options(default_seeds: int) -> argparse.ArgumentParser:
    from detectors.registry import DEFAULT

    p = argparse.ArgumentParser(add_help=False, parents=[options.cases_dir(), options.results(),
                                                         options.cache(".bugbench"), options.jobs()])
    p.add_argument("--case", action="append", dest="cases", metavar="ID", help="run only this case (repeatable)")
    p.add_argument("--detector", action="append", dest="detectors", metavar="NAME",
                   help="detector or group (repeatable; default: " + ", ".join(DEFAULT) + ")")
    p.add_argument("--seeds", type=options.count(1, options.MAX_SEEDS), default=default_seeds,
                   help=f"seeds per variant, 0..N-1 (default: {default_seeds}; make uses 3)")
    p.add_argument("--more-seeds", type=options.count(0, options.MAX_SEEDS), default=0, metavar="N",
                   help="N more seeds for each case whose seeds disagree on diagnose's verdict (default: 0; "
                        "make uses 2)")
    p.add_argument("--variant", choices=["buggy", "patched"], action="append", dest="variants",
                   help="train only this variant (repeatable; default: both)")
    p.add_argument("--semantics", choices=["keras2", "keras3"], help="override every case's loss semantics")
    p.add_argument("--force", action="store_true", help="retrain units even if the cache has them")
    p.add_argument("--replay", action="store_true",
                   help="replay every detector on the stored traces, even where its stored findings are current")
    p.add_argument("--timeout", type=options.seconds, default="auto",
                   help="seconds one unit may take, then it is an error row: a number, 'auto' (default: "
                        "600 s + 30 s per epoch, at most 2 h) or 'none'")
    p.add_argument("--prune", action="store_true",
                   help="delete the result files no unit of this run wrote (removed cases, fewer seeds), listing "
                        "each; only with a full run (no --case, --variant)")
    p.add_argument("--backend", choices=["loky", "dask"], default="loky",
                   help="loky: local worker processes (default); dask: an existing dask.distributed cluster")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="the dask scheduler (with --backend dask)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a progress bar (default: only on a terminal, never in CI)")
    p.add_argument("--strict", action="store_true", help="exit 1 if any unit failed")
    p.add_argument("--trust-case-code", action="store_true",
                   help="run the cases' own Python data generators (file.py) in this run; without it only the "
                        "project's own and those recorded by `bugbench trust` run, and the others are error rows")
    return p


def add(sub) -> None:
    ru = sub.add_parser("run", parents=[run_options(1)], help="train cases, replay detectors, write results/")
    ru.set_defaults(func=cmd_run)
    fi = sub.add_parser("fidelity", parents=[run_options(3)],
                        help="run with 3 seeds by default: results/fidelity.md says which cases reproduce")
    fi.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    from harness.running.results import ResultsDir

    if args.prune and (args.cases or args.variants):
        return options.fail("--prune needs a full run: it would delete the results of every case not named")
    if options.no_cases(args.cases_dir):
        return 2
    unwritable = ResultsDir(args.results).unwritable()
    if unwritable:
        return options.fail(f"cannot write results to {args.results}: {unwritable}")
    from harness.cases.load import select

    loaded, errors = options.load([args.cases_dir], keras_checks=False)
    try:
        selected = select(loaded, args.cases)
    except KeyError as exc:
        options.print_errors(errors)
        return options.fail(exc.args[0])
    if args.prune and errors:  # a case file that does not load has no id: its results look orphaned
        print(f"bugbench: not pruning: {len(errors)} case file problem(s) below", file=sys.stderr)
    config = _config(args, prune=args.prune and not errors)
    from harness.running.engine import quiet_known_warnings

    quiet_known_warnings()  # the preflight builds the models too
    selected = _preflight(selected, config, errors)
    options.print_errors(errors)
    records = _run(selected, config)
    if isinstance(records, int):
        return records
    failed = _summarise(records)
    return _tables(args.results) or (1 if errors or (args.strict and failed) else 0)


def _run(selected, config):
    """The run's records, or an exit code after one line saying why the run stopped."""
    from harness.errors import WriteFailed
    from harness.running.engine import SchedulerUnreachable
    from harness.running.runner import run

    try:
        return run(selected, config)
    except (KeyError, ValueError) as exc:
        return options.fail(exc.args[0])
    except SchedulerUnreachable as exc:
        return options.fail(str(exc), code=1)
    except WriteFailed as exc:
        return options.fail(f"{exc}; stopped. The {exc.kept or 0} unit(s) recorded before are kept in "
                            f"{config.results_dir}, and every trained unit in {config.cache_dir}: free space and "
                            "rerun to go on", code=1)
    except KeyboardInterrupt:
        return options.fail(f"interrupted; finished units are kept in {config.cache_dir} and "
                            f"{config.results_dir}: rerun to go on", code=130)


def _tables(results: str) -> int:
    from harness.reporting.tables import report

    try:
        for path in report(results):
            print(path)
    except OSError as exc:
        return options.fail(f"cannot write the tables in {results}: {exc.strerror or exc}", code=1)
    return 0


def _config(args, prune: bool):
    from detectors import registry
    from harness.cases.load import VARIANTS
    from harness.running.runner import RunConfig

    return RunConfig(results_dir=args.results, cache_dir=args.cache, jobs=args.jobs,
                     seeds=tuple(range(args.seeds)), variants=tuple(args.variants or VARIANTS),
                     detectors=tuple(args.detectors or registry.DEFAULT), semantics=args.semantics,
                     backend=args.backend, scheduler=args.scheduler, timeout=args.timeout, force=args.force,
                     replay=args.replay, more_seeds=args.more_seeds, progress=args.progress,
                     trust_case_code=args.trust_case_code,
                     prune=prune)


def _preflight(selected, config, errors: list) -> list:
    """Keras checks for the cases with a unit to train (a fully cached case trained fine before)."""
    from harness.running.runner import needs_training

    to_check = needs_training(selected, config)
    return options.keras_checked(selected, errors, only=to_check) if to_check else selected


def _summarise(records: list[UnitRecord]) -> list[UnitRecord]:
    """Print every failed unit and the count line (the runner gives every unit a record, an error row at worst)."""
    failed = [r for r in records if r.status != "ok"]
    for r in failed:
        print(f"error: {r.case.id} {r.variant} seed {r.seed}: {r.error}", file=sys.stderr)
    trained = sum(1 for r in records if not r.cached and r.status == "ok")
    cached = sum(1 for r in records if r.cached and r.status == "ok")
    print(f"{len(records)} unit(s): {trained} trained, {cached} from the cache, {len(failed)} failed",
          file=sys.stderr)
    return failed
