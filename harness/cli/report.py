"""``report`` rebuilds results/ tables (and plots) from stored results; ``show`` draws one case. No training."""

from __future__ import annotations

import sys

from harness.cli import options


def add(sub) -> None:
    shared = [options.results(), options.cache(None), options.cases_dir()]
    rp = sub.add_parser("report", parents=shared, help="rebuild results/ tables from stored results (no training)")
    rp.add_argument("--plots", action="store_true", help="also draw one PNG per case into <results>/plots/")
    rp.set_defaults(func=cmd_report)

    from harness.trace import STAGES, STATS  # numpy only: --help stays cheap

    sh = sub.add_parser("show", parents=shared,
                        help="plot a case's per-layer trends, buggy beside patched, into one PNG")
    sh.add_argument("case", metavar="CASE", help="case id, e.g. so-48385830")
    sh.add_argument("--out", metavar="PATH", help="where to write the PNG (default <results>/plots/CASE.png)")
    sh.add_argument("--seed", type=int, default=0, help="which seed's runs to draw (default: 0)")
    sh.add_argument("--stage", choices=STAGES, default="output",
                    help="stage of the second row's statistic (default: output)")
    sh.add_argument("--stat", choices=STATS, default="mean", help="statistic of the second row (default: mean)")
    sh.set_defaults(func=cmd_show)


def cmd_report(args) -> int:
    from harness.reporting.tables import report
    from harness.running.results import RecordFormatError, ResultsDir

    if not ResultsDir(args.results).exists():
        return options.fail(f"no stored results in {args.results} (expected {args.results}/runs/; "
                            f"`{_run_hint(args)}` writes them)")
    try:
        written = report(args.results)
    except RecordFormatError as exc:
        return options.fail(str(exc))
    for path in written:
        print(path)
    return _plots(args) if args.plots else 0


def _plots(args) -> int:
    from harness.reporting.figures import plot_all

    lacking: list = []
    for path in plot_all(args.results, cache=args.cache, lacking=lacking):
        print(path)
    if not lacking:
        return 0
    print(f"bugbench: {len(lacking)} case(s) not plotted, their traces are missing or unreadable: "
          f"{', '.join(lacking[:5])}{' ...' if len(lacking) > 5 else ''} (pass the cache they were "
          "trained into with --cache DIR, or retrain them)", file=sys.stderr)
    return 1


def cmd_show(args) -> int:
    from harness.reporting.figures import MissingRun, plot_case

    try:
        path = plot_case(args.results, args.case, args.out, seed=args.seed, stage=args.stage, stat=args.stat,
                         cache=args.cache, run_hint=_run_hint(args, args.case))
    except MissingRun as exc:
        return options.fail(str(exc))
    print(path)
    return 0


def _run_hint(args, case: str | None = None) -> str:
    """The run command that would write what is missing, with this command's folders."""
    parts = ["bugbench run"] + ([f"--case {case}"] if case else [])
    if args.cases_dir != "cases":
        parts.append(f"--cases-dir {args.cases_dir}")
    if args.results != "results":
        parts.append(f"--results {args.results}")
    return " ".join(parts)
