"""``prune`` deletes stored units that no current case file would use."""

from __future__ import annotations

from harness.cli import options


def add(sub) -> None:
    pr = sub.add_parser("prune", parents=[options.cases_dir(), options.cache(".bugbench")],
                        help="delete stored units no current case file would use (edited or removed cases, "
                             "other code or library versions)")
    pr.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    pr.set_defaults(func=cmd_prune)


def cmd_prune(args) -> int:
    from harness.running.runner import current_keys
    from harness.running.store import UnitStore

    cases, errors = options.load([args.cases_dir], keras_checks=False)
    if errors:  # a case that does not load would lose its units: refuse rather than guess
        options.print_errors(errors)
        return options.fail("not pruning while case files have errors", code=1)
    store = UnitStore(args.cache)
    seeds = {seed for *_, seed, _key in store.files()}
    count, size = store.prune(current_keys(cases, sorted(seeds)), dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {count} file(s), {size / 2**20:.1f} MB, from {args.cache}")
    return 0
