"""The ``bugbench`` command: list | validate | new | spec | run | fidelity | report | show | prune | mutate | kill.

One module per group of commands; each adds its parsers (sharing the parent
parsers of ``options``) and calls plain functions. TensorFlow is imported only
by commands that need Keras (validate, run), never by ``--help``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from harness.cli import cases, mutate, prune, report, run


def program() -> None:
    """The ``bugbench`` command: ``main``, then exit; at once when a unit's worker had to be killed.

    loky may hand a hung unit to a fresh worker after its own was killed, and
    its manager thread then holds the interpreter's exit forever (measured: a
    run whose summary printed never exited). Such a run ends with os._exit;
    its workers see their parent go and exit too.
    """
    signal.signal(signal.SIGTERM, _terminated)
    try:
        code = main()
    except KeyboardInterrupt:
        print("bugbench: interrupted", file=sys.stderr)
        code = 130
    engine = sys.modules.get("harness.running.engine")
    if engine is not None and engine.killed_workers:
        engine.exit_now(code)
    sys.exit(code)


def _terminated(signum, _frame) -> None:
    """SIGTERM unwinds like Ctrl-C: the engine's cleanup ends every worker's process group on the way out."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = parser_()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return args.func(args)


def parser_() -> argparse.ArgumentParser:
    from harness import __version__

    p = argparse.ArgumentParser(prog="bugbench", description="Benchmark detectors of faults in DNN training.")
    p.add_argument("--version", action="version", version=f"bugbench {__version__}")
    sub = p.add_subparsers(dest="command")
    for group in (cases, run, report, prune, mutate):
        group.add(sub)
    return p
