"""The ``bugbench`` command: list | validate | run | fidelity | report | show | new | prune.

Thin by design: each subcommand parses arguments and calls a plain function.
TensorFlow is imported only by subcommands that need Keras (validate, run).
"""

from __future__ import annotations

import argparse
import os
import sys

from detectors.registry import DEFAULT as DEFAULT_DETECTORS


def program() -> None:
    """The ``bugbench`` command: ``main``, then exit; at once when a unit's worker had to be killed.

    loky may hand a hung unit to a fresh worker after its own was killed, and
    its manager thread then holds the interpreter's exit forever (measured: a
    run whose summary printed never exited). Such a run ends with os._exit;
    its workers see their parent go and exit too.
    """
    code = main()
    engine = sys.modules.get("harness.running.engine")
    if engine is not None and engine.killed_workers:
        engine.exit_now(code)
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return args.func(args)


def _parser() -> argparse.ArgumentParser:
    from harness import __version__

    p = argparse.ArgumentParser(prog="bugbench", description="Benchmark detectors of faults in DNN training.")
    p.add_argument("--version", action="version", version=f"bugbench {__version__}")
    sub = p.add_subparsers(dest="command")

    ls = sub.add_parser("list", help="list cases (and detectors)")
    ls.add_argument("--cases-dir", default="cases", help="the folder of case files (default: cases)")
    ls.add_argument("--detectors", action="store_true", help="list detectors instead")
    ls.set_defaults(func=cmd_list)

    va = sub.add_parser("validate", help="check case files; exit 1 on any problem")
    va.add_argument("paths", nargs="*", default=["cases"], help="case files or folders (default: cases)")
    va.add_argument("--schema-only", action="store_true", help="skip the Keras name checks (fast)")
    va.set_defaults(func=cmd_validate)

    ru = sub.add_parser("run", help="train cases, replay detectors, write results/")
    ru.add_argument("--cases-dir", default="cases", help="the folder of case files (default: cases)")
    ru.add_argument("--case", action="append", dest="cases", metavar="ID", help="run only this case (repeatable)")
    ru.add_argument("--detector", action="append", dest="detectors", metavar="NAME",
                    help="detector or group (repeatable; default: " + ", ".join(DEFAULT_DETECTORS) + ")")
    ru.add_argument("--jobs", type=int, default=1, help="parallel training processes (default: 1; make uses 2)")
    ru.add_argument("--seeds", type=int, default=1, help="seeds per variant, 0..N-1 (default: 1; make uses 3)")
    ru.add_argument("--more-seeds", type=int, default=0, metavar="N",
                    help="N more seeds for each case whose seeds disagree on diagnose's verdict "
                         "(default: 0; make uses 2)")
    ru.add_argument("--variant", choices=["buggy", "patched"], action="append", dest="variants",
                    help="train only this variant (repeatable; default: both)")
    ru.add_argument("--semantics", choices=["keras2", "keras3"], help="override every case's loss semantics")
    ru.add_argument("--results", default="results", help="where result files and tables go (default: results)")
    ru.add_argument("--cache", default=os.environ.get("BUGBENCH_CACHE", ".bugbench"),
                    help="where trained units are stored (default .bugbench, or $BUGBENCH_CACHE)")
    ru.add_argument("--force", action="store_true", help="retrain units even if the cache has them")
    ru.add_argument("--replay", action="store_true",
                    help="replay every detector on the stored traces, even where its stored findings are current")
    ru.add_argument("--timeout", type=float, help="seconds one unit's fit may take (then: an error row)")
    ru.add_argument("--backend", choices=["loky", "dask"], default="loky",
                    help="loky: local worker processes (default); dask: an existing dask.distributed cluster")
    ru.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="the dask scheduler (with --backend dask)")
    ru.add_argument("--strict", action="store_true", help="exit 1 if any unit failed")
    ru.set_defaults(func=cmd_run)

    fi = sub.add_parser("fidelity", help="train every case over 3 seeds; results/fidelity.md says which reproduce "
                                         "(same as: run --seeds 3; other run options pass through)")
    fi.add_argument("--seeds", type=int, default=3)
    fi.add_argument("rest", nargs=argparse.REMAINDER, help="options for run, e.g. --jobs 2")
    fi.set_defaults(func=cmd_fidelity)

    rp = sub.add_parser("report", help="rebuild results/ tables from stored results (no training)")
    rp.add_argument("--results", default="results", help="the results folder to rebuild (default: results)")
    rp.add_argument("--plots", action="store_true", help="also draw one PNG per case into <results>/plots/")
    rp.add_argument("--cache", default=os.environ.get("BUGBENCH_CACHE"),
                    help="where the traces are, for --plots (default: as recorded, or $BUGBENCH_CACHE)")
    rp.set_defaults(func=cmd_report)

    from harness.trace import STAGES, STATS  # numpy only: --help stays cheap

    sh = sub.add_parser("show", help="plot a case's per-layer trends, buggy beside patched, into one PNG")
    sh.add_argument("case", metavar="CASE", help="case id, e.g. so-48385830")
    sh.add_argument("--results", default="results", help="the results folder (default: results)")
    sh.add_argument("--out", metavar="PATH", help="where to write the PNG (default <results>/plots/CASE.png)")
    sh.add_argument("--seed", type=int, default=0, help="which seed's runs to draw (default: 0)")
    sh.add_argument("--cache", default=os.environ.get("BUGBENCH_CACHE"),
                    help="where the traces are (default: as recorded, or $BUGBENCH_CACHE)")
    sh.add_argument("--stage", choices=STAGES, default="output", help="stage of the second row's statistic")
    sh.add_argument("--stat", choices=STATS, default="mean", help="statistic of the second row")
    sh.set_defaults(func=cmd_show)

    nw = sub.add_parser("new", help="write a new case file from a template that explains every key")
    nw.add_argument("id", metavar="ID", help="so-<post>, gh-<repo>, or any other lower-case id")
    nw.add_argument("--cases-dir", default="cases", help="the folder of case files (default: cases)")
    nw.add_argument("--kind", choices=["stackoverflow", "github", "other"],
                    help="where the program comes from (default: from the id's prefix)")
    nw.add_argument("--force", action="store_true", help="overwrite an existing file")
    nw.set_defaults(func=cmd_new)

    pr = sub.add_parser("prune", help="delete stored units no current case file would use (edited or removed "
                                      "cases, older probe or library versions)")
    pr.add_argument("--cases-dir", default="cases", help="the folder of case files (default: cases)")
    pr.add_argument("--cache", default=os.environ.get("BUGBENCH_CACHE", ".bugbench"),
                    help="the unit store (default .bugbench, or $BUGBENCH_CACHE)")
    pr.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    pr.set_defaults(func=cmd_prune)
    return p


def cmd_list(args) -> int:
    if args.detectors:
        from detectors import registry

        for name, target in registry.available().items():
            print(f"{name:16} {target}")
        for group, members in registry.GROUPS.items():
            print(f"{group:16} group: {', '.join(members)}")
        return 0
    from harness.cases.load import discover, load_cases

    if _no_cases(args.cases_dir):
        return 2
    cases, errors = load_cases(discover(args.cases_dir))
    for c in cases:
        print(f"{c.id:32} {c.case.status:12} {c.case.title}")
    _print_errors(errors)
    return 1 if errors else 0


def cmd_validate(args) -> int:
    cases, errors = _load(args.paths, keras_checks=not args.schema_only)
    _print_errors(errors)
    print(f"{len(cases)} case(s) valid, {len(errors)} problem(s)", file=sys.stderr)
    return 1 if errors else 0


def cmd_run(args) -> int:
    from detectors import registry
    from harness.cases import load as cases_mod
    from harness.reporting.tables import report
    from harness.running.results import ResultsDir
    from harness.running.runner import RunConfig, needs_training, run

    if _no_cases(args.cases_dir):
        return 2
    unwritable = ResultsDir(args.results).unwritable()
    if unwritable:
        print(f"bugbench: cannot write results to {args.results}: {unwritable}", file=sys.stderr)
        return 2
    loaded, errors = _load([args.cases_dir], keras_checks=False)
    try:
        selected = cases_mod.select(loaded, args.cases)
    except KeyError as exc:
        _print_errors(errors)
        print(f"bugbench: {exc.args[0]}", file=sys.stderr)
        return 2
    config = RunConfig(results_dir=args.results, cache_dir=args.cache, jobs=args.jobs,
                       seeds=tuple(range(args.seeds)), variants=tuple(args.variants or cases_mod.VARIANTS),
                       detectors=tuple(args.detectors or registry.DEFAULT), semantics=args.semantics,
                       backend=args.backend, scheduler=args.scheduler, timeout=args.timeout, force=args.force,
                       replay=args.replay, more_seeds=args.more_seeds,
                       # A case file that does not load has no id: its results cannot be told from a deleted
                       # case's, so a run with load errors keeps every result file.
                       prune=not args.cases and not args.variants and not errors)
    # Cases whose every unit is in the cache trained fine before: only the others need the Keras checks.
    to_check = needs_training(selected, config)
    if to_check:
        from harness.training.preflight import check_case

        bad = {c.id for c in selected if c.id in to_check and _extend(errors, check_case(c))}
        selected = [c for c in selected if c.id not in bad]
    _print_errors(errors)
    try:
        records = run(selected, config)
    except (KeyError, ValueError) as exc:
        print(f"bugbench: {exc.args[0]}", file=sys.stderr)
        return 2
    failed = [r for r in records if r.get("status") != "ok"]
    for r in failed:
        print(f"error: {r['case']['id']} {r['variant']} seed {r['seed']}: {r.get('error')}", file=sys.stderr)
    trained = sum(1 for r in records if not r.get("cached"))
    print(f"{len(records)} unit(s): {trained} trained, {len(records) - trained} from the cache, "
          f"{len(failed)} failed", file=sys.stderr)
    for path in report(args.results):
        print(path)
    return 1 if errors or (args.strict and failed) else 0


def cmd_fidelity(args) -> int:
    argv = ["run", "--seeds", str(args.seeds), *args.rest]
    return main(argv)


def cmd_report(args) -> int:
    from harness.reporting.tables import report
    from harness.running.results import RecordFormatError, ResultsDir

    if not ResultsDir(args.results).exists():
        print(f"bugbench: no stored results in {args.results} (expected {args.results}/runs/; "
              "`bugbench run` writes them)", file=sys.stderr)
        return 2
    try:
        written = report(args.results)
    except RecordFormatError as exc:
        print(f"bugbench: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    if args.plots:
        from harness.reporting.plots import plot_all

        lacking: list = []
        for path in plot_all(args.results, cache=args.cache, lacking=lacking):
            print(path)
        if lacking:
            print(f"bugbench: {len(lacking)} case(s) not plotted, their traces are missing or unreadable: "
                  f"{', '.join(lacking[:5])}{' ...' if len(lacking) > 5 else ''} (pass the cache they were "
                  "trained into with --cache DIR, or retrain them)", file=sys.stderr)
            return 1
    return 0


def cmd_show(args) -> int:
    from harness.reporting.plots import MissingRun, plot_case

    try:
        path = plot_case(args.results, args.case, args.out, seed=args.seed, stage=args.stage, stat=args.stat,
                         cache=args.cache)
    except MissingRun as exc:
        print(f"bugbench: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def cmd_new(args) -> int:
    from harness.cases.scaffold import ScaffoldError, new_case, next_steps

    try:
        path = new_case(args.id, args.cases_dir, kind=args.kind, force=args.force)
    except ScaffoldError as exc:
        print(f"bugbench: {exc}", file=sys.stderr)
        return 2
    print(path)
    # Suggest commands spelt the way this one was run (.venv/bin/bugbench when not on PATH).
    prog = sys.argv[0] if os.path.basename(sys.argv[0]) == "bugbench" else "bugbench"
    print("next:", *(f"  {step}" for step in next_steps(args.id, path, args.cases_dir, prog)), sep="\n")
    return 0


def cmd_prune(args) -> int:
    from harness.running.runner import current_keys
    from harness.running.store import UnitStore

    cases, errors = _load([args.cases_dir], keras_checks=False)
    if errors:  # a case that does not load would lose its units: refuse rather than guess
        _print_errors(errors)
        print("bugbench: not pruning while case files have errors", file=sys.stderr)
        return 1
    store = UnitStore(args.cache)
    seeds = {seed for *_, seed, _key in store.files()}
    count, size = store.prune(current_keys(cases, sorted(seeds)), dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {count} file(s), {size / 2**20:.1f} MB, from {args.cache}")
    return 0


def _load(paths: list[str], keras_checks: bool):
    from harness.cases.load import discover, load_cases
    from harness.errors import CaseError

    files = [f for p in paths for f in discover(p)]
    cases, errors = load_cases(files)
    errors = [CaseError(p, None, "no such file or folder") for p in paths if not os.path.lexists(p)] + errors
    if keras_checks and cases:
        from harness.training.preflight import check_case

        good = []
        for case in cases:
            problems = check_case(case)
            errors.extend(problems)
            if not problems:
                good.append(case)
        cases = good
    return cases, errors


def _no_cases(cases_dir: str) -> bool:
    if os.path.exists(cases_dir):
        return False
    print(f"bugbench: no cases at {cases_dir}", file=sys.stderr)
    return True


def _extend(errors: list, more: list) -> bool:
    errors.extend(more)
    return bool(more)


def _print_errors(errors) -> None:
    for err in errors:
        print(err, file=sys.stderr)


if __name__ == "__main__":
    program()
