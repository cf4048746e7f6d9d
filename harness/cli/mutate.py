"""``mutate`` writes mutants of the zoo's healthy programs as case files; ``kill`` decides which are real bugs.

    bugbench mutate zoo-digits-mlp-adam --operator learning-rate [--param x1000]
    bugbench mutate --all                   # every operator on every healthy program
    bugbench kill --seeds 3 --jobs 2        # train, then mark each mutant killed (valid) or equivalent
"""

from __future__ import annotations

import os
import shutil
import sys

from harness.cli import options

ZOO, MUTANTS = os.path.join("zoo", "programs"), os.path.join("zoo", "mutants")
# Mutants per program in the suite: with 3 kill seeds, ~100 programs x 8 mutants train in under an hour on 2 cores.
PER_PROGRAM = 8


def add(sub) -> None:
    from harness.cases.mutants import OPERATORS

    mu = sub.add_parser("mutate", help="write mutants of healthy programs as case files (the patch undoes them)")
    mu.add_argument("program", nargs="?", metavar="ZOO_CASE", help="a healthy program's id (or --all)")
    mu.add_argument("--all", action="store_true", help="every operator on every healthy program")
    mu.add_argument("--operator", choices=sorted(OPERATORS), help="one operator (default: every one)")
    mu.add_argument("--param", help="one instance of the operator, as its mutants' ids name it (e.g. x1000)")
    mu.add_argument("--every-instance", action="store_true",
                    help="every instance of each operator (default: one per operator and program, rotating over "
                         "the programs, so that the suite stays trainable)")
    mu.add_argument("--per-program", type=options.count(1, 10_000), default=PER_PROGRAM, metavar="N",
                    help=f"with --all: at most N mutants per program (default: {PER_PROGRAM}; operators that apply "
                         "to few programs first, the others rotating over the programs)")
    mu.add_argument("--zoo", default=ZOO, help=f"the folder of healthy programs (default: {ZOO})")
    mu.add_argument("--out", default=MUTANTS, help=f"where the mutants' case files go (default: {MUTANTS})")
    mu.set_defaults(func=cmd_mutate)

    ki = sub.add_parser("kill", parents=[options.cache(".bugbench"), options.jobs()],
                        help="train mutants and their programs over seeds; mark each killed (a real bug) or "
                             "equivalent, with the test's numbers, in its case file")
    ki.add_argument("--zoo", default=ZOO, help=f"the folder of healthy programs (default: {ZOO})")
    ki.add_argument("--mutants", default=MUTANTS, help=f"the folder of mutants (default: {MUTANTS})")
    ki.add_argument("--seeds", type=options.count(1, options.MAX_SEEDS), default=3,
                    help="trainings per program and mutant (default: 3)")
    ki.add_argument("--timeout", type=options.seconds, default=120.0,
                    help="seconds one fit may take: a number (default: 120), 'auto' (as run) or 'none'")
    ki.add_argument("--backend", choices=["loky", "dask"], default="loky",
                    help="loky: local worker processes (default); dask: an existing dask.distributed cluster")
    ki.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="the dask scheduler (with --backend dask)")
    ki.add_argument("--trust-case-code", action="store_true",
                    help="run the programs' own Python data generators (file.py), as `run --trust-case-code`")
    ki.set_defaults(func=cmd_kill)


def cmd_mutate(args) -> int:
    from collections import Counter

    from harness.cases.mutants import applicable, at_most, mutant_case, one_per_operator
    from harness.cases.writer import CaseWriteError

    if not args.all and not args.program:
        return options.fail("name a healthy program, or pass --all")
    programs, errors = options.load([args.zoo], keras_checks=False)
    options.print_errors(errors)
    programs = [p for p in programs if p.case.status == "healthy" and (args.all or p.id == args.program)]
    if not programs:
        return options.fail(f"no healthy program {args.program or ''} in {args.zoo}".replace("  ", " "))
    if args.all:
        _remove_generated(args.out)  # the suite is what today's programs and operators make, nothing stale
    written = refused = 0
    programs = sorted(programs, key=lambda p: p.id)
    found_of = {p.id: applicable(p.spec("patched").model_dump(mode="json"), [args.operator] if args.operator else None)
                for p in programs}
    applies_to = Counter(op for found in found_of.values() for op in {m.operator for m in found})
    for turn, program in enumerate(programs):
        found = found_of[program.id]
        if args.param is not None:
            found = [m for m in found if m.param == args.param]
        chosen = found if args.every_instance or args.param or not args.all else one_per_operator(found, turn)
        if args.all and not args.every_instance:
            chosen = at_most(chosen, args.per_program, turn, applies_to, len(programs))
        for mutation in chosen:
            try:
                print(write_case(mutant_case(program, mutation), program, args.out))
            except (FileExistsError, CaseWriteError) as exc:
                print(f"bugbench: {exc}", file=sys.stderr)
                refused += 1
                continue
            written += 1
    print(f"{written} mutant(s) of {len(programs)} program(s) in {args.out}"
          + (f"; {refused} not written (a file of another origin has their name)" if refused else ""),
          file=sys.stderr)
    if refused:
        return 1
    return 0 if written else options.fail("no operator applies", code=1)


def _remove_generated(out_dir: str) -> None:
    from harness.cases.writer import generated

    if not os.path.isdir(out_dir):
        return
    for name in os.listdir(out_dir):
        path = os.path.join(out_dir, name)
        if name.endswith(".yaml") and generated(path):
            os.remove(path)


def _copy_data(source: str, target: str) -> None:
    """Copy a program's data file beside its mutants, never over a different file of the same name."""
    import filecmp

    if os.path.lexists(target) and not (os.path.isfile(target) and filecmp.cmp(source, target, shallow=False)):
        raise FileExistsError(f"{target}: another file of that name is there; not overwritten")
    shutil.copyfile(source, target)


def write_case(case: dict, program, out_dir: str) -> str:
    """Write a mutant's case file (and a copy of its program's data file, which must lie beside it)."""
    from harness.cases.writer import GENERATED, dump, write_case_file
    from harness.data import files as data_files

    path = os.path.join(out_dir, f"{case['id']}.yaml")
    data = case["data"]
    if data["source"] in data_files.FILE_SOURCES:
        os.makedirs(out_dir, exist_ok=True)
        source = data_files.resolve(program.path, data["params"]["path"])
        _copy_data(source, os.path.join(out_dir, os.path.basename(source)))
        data["params"]["path"] = os.path.basename(source)
    header = (f"{GENERATED} from {program.path} ({case['generated']['operator']}); "
              "`bugbench kill` fills in status and generated.kill.\n")
    return write_case_file(path, header + dump(case), replaces="generated")


def cmd_kill(args) -> int:
    from harness.cli.kill import judge_mutants

    cases, errors = options.load([args.zoo, args.mutants], keras_checks=False)
    options.print_errors(errors)
    mutants = [c for c in cases if (c.case.generated or {}).get("base")]
    if not mutants:
        return options.fail(f"no mutants in {args.mutants} (bugbench mutate --all writes them)")
    from harness.errors import WriteFailed
    from harness.running.engine import SchedulerUnreachable
    from harness.scoring.killing import MetricMissing

    try:
        decisions = judge_mutants(cases, seeds=args.seeds, jobs=args.jobs, cache=args.cache, timeout=args.timeout,
                                  backend=args.backend, scheduler=args.scheduler, trust_case_code=args.trust_case_code)
    except MetricMissing as exc:
        return options.fail(f"cannot decide: {exc.args[0]}")
    except (SchedulerUnreachable, WriteFailed) as exc:
        return options.fail(f"{exc}; no mutant file was changed", code=1)
    killed = sum(d["killed"] for d in decisions.values())
    print(f"{killed} of {len(decisions)} mutant(s) killed, {len(decisions) - killed} equivalent", file=sys.stderr)
    return 1 if errors else 0
