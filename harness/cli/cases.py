"""Commands about case files: list, validate, new, spec, trust. None of them trains or runs a case's code."""

from __future__ import annotations

import os
import sys

from harness.cli import options


def add(sub) -> None:
    ls = sub.add_parser("list", parents=[options.cases_dir()], help="list cases (or detectors)")
    ls.add_argument("--detectors", action="store_true", help="list detectors instead")
    ls.set_defaults(func=cmd_list)

    va = sub.add_parser("validate", help="check case files; exit 1 on any problem")
    va.add_argument("paths", nargs="*", default=["cases"], help="case files or folders (default: cases)")
    va.add_argument("--schema-only", action="store_true", help="skip the Keras name checks (fast)")
    va.set_defaults(func=cmd_validate)

    nw = sub.add_parser("new", parents=[options.cases_dir()],
                        help="write a new case file from a template that explains every key")
    nw.add_argument("id", metavar="ID", help="so-<post>, gh-<repo>, or any other lower-case id")
    nw.add_argument("--kind", choices=["stackoverflow", "github", "other"],
                    help="where the program comes from (default: from the id's prefix)")
    nw.add_argument("--force", action="store_true", help="overwrite an existing file")
    nw.set_defaults(func=cmd_new)

    sp = sub.add_parser("spec", parents=[options.cases_dir()],
                        help="print a case's resolved spec (the patch applied for --variant patched)")
    sp.add_argument("case", metavar="CASE", help="case id, e.g. so-48385830")
    sp.add_argument("--variant", choices=["buggy", "patched"], default="buggy", help="which variant (default: buggy)")
    sp.set_defaults(func=cmd_spec)

    tr = sub.add_parser("trust", help="record the data generators (.py files) under folders as trusted, by "
                                      "their content hash: run uses them without --trust-case-code")
    tr.add_argument("paths", nargs="+", help="case folders or .py files (read them first: they are code)")
    tr.set_defaults(func=cmd_trust)


def cmd_list(args) -> int:
    if args.detectors:
        from detectors import registry

        for name, target in registry.available().items():
            print(f"{name:20} {target}")
        for group, members in registry.GROUPS.items():
            print(f"{group:20} group: {', '.join(members)}")
        return 0
    if options.no_cases(args.cases_dir):
        return 2
    cases, errors = options.load([args.cases_dir], keras_checks=False)
    for c in cases:
        print(f"{c.id:32} {c.case.status:12} {c.case.title}")
    options.print_errors(errors)
    return 1 if errors else 0


def cmd_validate(args) -> int:
    cases, errors = options.load(args.paths, keras_checks=not args.schema_only)
    options.print_errors(errors)
    print(f"{len(cases)} case(s) valid, {len(errors)} problem(s)", file=sys.stderr)
    return 1 if errors else 0


def cmd_new(args) -> int:
    from harness.cases.scaffold import ScaffoldError, new_case, next_steps

    try:
        path = new_case(args.id, args.cases_dir, kind=args.kind, force=args.force)
    except ScaffoldError as exc:
        return options.fail(str(exc))
    print(path)
    # Suggest commands spelt the way this one was run (.venv/bin/bugbench when not on PATH).
    prog = sys.argv[0] if os.path.basename(sys.argv[0]) == "bugbench" else "bugbench"
    print("next:", *(f"  {step}" for step in next_steps(args.id, path, args.cases_dir, prog)), sep="\n")
    return 0


def cmd_spec(args) -> int:
    import yaml

    from harness.cases.load import select

    if options.no_cases(args.cases_dir):
        return 2
    cases, errors = options.load([args.cases_dir], keras_checks=False)
    try:
        (case,) = select(cases, [args.case])
    except KeyError as exc:
        options.print_errors(e for e in errors if args.case in str(e))
        return options.fail(exc.args[0])
    print(f"# {case.path}: {args.variant} variant, as it is trained")
    print(yaml.safe_dump(case.spec_dict(args.variant), sort_keys=False, default_flow_style=None, width=110), end="")
    return 0


def cmd_trust(args) -> int:
    from harness.cases.trust import trust, trust_file

    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        return options.fail(f"no such file or folder: {', '.join(missing)}")
    recorded = trust(args.paths)
    for path, digest in recorded:
        print(f"{digest[:16]}  {path}")
    print(f"{len(recorded)} file(s) trusted in {trust_file()} (an edited file is trusted again only by "
          "another `bugbench trust`)", file=sys.stderr)
    return 0 if recorded else options.fail("no .py file under " + ", ".join(args.paths), code=1)
