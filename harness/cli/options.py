"""Options shared by several commands, declared once as argparse parent parsers, and the helpers they share."""

from __future__ import annotations

import argparse
import math
import os
import sys

# Bounds of counts a user types. Seeds: the paper's protocol uses 3; 1,000 seeds of every case is
# weeks of training on 2 cores, and more only exhausts memory before anything starts. Jobs: more
# training processes than this on one machine only thrash.
MAX_SEEDS = 1_000
MAX_JOBS = 256


def count(low: int, high: int):
    """An argparse type: a whole number in [low, high], refused with the bounds otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: give {low} to {high}")
        return value

    parse.__name__ = "count"
    return parse


def seconds(text: str) -> float | str | None:
    """An argparse type for a time limit: positive finite seconds, ``auto`` (from each unit's budget) or
    ``none`` (no limit)."""
    if text.lower() in ("none", "off"):
        return None
    if text.lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds, 'auto' or 'none'") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is no time limit: give positive seconds, 'auto' or 'none'")
    return value


def jobs() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--jobs", type=count(1, MAX_JOBS), default=1,
                   help="parallel training processes (default: 1; make uses 2)")
    return p


def cases_dir() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--cases-dir", default="cases", help="the folder of case files (default: cases)")
    return p


def results() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--results", default="results", help="the results folder (default: results)")
    return p


def cache(default: str | None) -> argparse.ArgumentParser:
    """``--cache``: the unit store; reading commands default to the trace paths the records name."""
    p = argparse.ArgumentParser(add_help=False)
    if default:
        p.add_argument("--cache", default=os.environ.get("BUGBENCH_CACHE", default),
                       help=f"where trained units are stored (default {default}, or $BUGBENCH_CACHE)")
    else:
        p.add_argument("--cache", default=os.environ.get("BUGBENCH_CACHE"),
                       help="where the traces are (default: as the result files name them, or $BUGBENCH_CACHE)")
    return p


def load(paths: list[str], keras_checks: bool):
    """Cases under ``paths`` and every problem found (a path that does not exist is one)."""
    from harness.cases.load import discover, load_cases
    from harness.errors import CaseError

    files = [f for p in paths for f in discover(p)]
    cases, errors = load_cases(files)
    errors = [CaseError(p, None, "no such file or folder") for p in paths if not os.path.lexists(p)] + errors
    if keras_checks and errors:  # a file with schema errors still gets its Keras checks, in the same run
        from harness.training.preflight import check_spec_of_file

        for path in dict.fromkeys(e.path for e in errors if e.path in files):
            errors.extend(check_spec_of_file(path))
    if keras_checks and cases:
        cases = keras_checked(cases, errors)
    return cases, errors


def keras_checked(cases: list, errors: list, only: set[str] | None = None) -> list:
    """The cases whose Keras names resolve and models build (only those in ``only`` are checked); the
    problems of the others are added to ``errors``."""
    from harness.training.preflight import check_case

    good = []
    for case in cases:
        problems = check_case(case) if only is None or case.id in only else []
        errors.extend(problems)
        if not problems:
            good.append(case)
    return good


def no_cases(path: str) -> bool:
    """True (after saying so) when the cases folder does not exist."""
    if os.path.exists(path):
        return False
    print(f"bugbench: no cases at {path}", file=sys.stderr)
    return True


def print_errors(errors) -> None:
    for err in errors:
        print(err, file=sys.stderr)


def fail(message: str, code: int = 2) -> int:
    print(f"bugbench: {message}", file=sys.stderr)
    return code
