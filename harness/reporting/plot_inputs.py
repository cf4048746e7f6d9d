"""What a case's figure is drawn from: its stored records and their traces, and whether a PNG is current.

Reads only ``results/runs/<case>/<variant>-seed<k>.json`` and the traces they
name (never trains, never imports TensorFlow); ``harness.reporting.plots``
draws what this finds.
"""

from __future__ import annotations

import difflib
import hashlib
import os

from harness.provenance import source_hash
from harness.running.records import UnitRecord
from harness.running.results import RecordFormatError, ResultsDir, ResultUnreadable
from harness.trace import Trace

VARIANTS = ("buggy", "patched")
KEY_FIELD = "bugbench-inputs"  # the PNG text field that holds inputs_key
# The code a figure depends on: this reader and the drawing module beside it.
_DRAWN_BY = (os.path.abspath(__file__), os.path.join(os.path.dirname(os.path.abspath(__file__)), "plots.py"))


class MissingRun(Exception):
    """No stored run (or no trace) to plot; the message says what to run."""


class MissingTrace(MissingRun):
    """The run succeeded but its trace is not where the record says, or is unreadable."""


def load_unit(results_dir: str, case: str, variant: str, seed: int,
              cache: str | None = None) -> tuple[UnitRecord, Trace]:
    """The stored record of one unit and its trace; MissingRun when either is absent or unreadable."""
    path = ResultsDir(results_dir).path(case, variant, seed)
    if not os.path.exists(path):
        raise MissingRun(f"no stored run {path}")
    try:
        record = ResultsDir(results_dir).read(path)
    except (ResultUnreadable, RecordFormatError) as exc:
        raise MissingRun(str(exc)) from None
    if record.status != "ok" or not record.trace:
        raise MissingRun(f"{path}: the run failed ({record.error or record.status}), no trace")
    trace_file = resolve_trace(record.trace, results_dir, cache, case)
    if trace_file is None:
        raise MissingTrace(f"{path}: its trace {record.trace} is not in the cache"
                           + ("" if cache else " (pass --cache DIR if the cache is elsewhere)"))
    try:
        return record, Trace.load(trace_file)
    except Exception as exc:  # a truncated or corrupt file: name it and the cure
        raise MissingTrace(f"{trace_file}: unreadable trace ({type(exc).__name__}: {exc}); retrain it with "
                           f"`bugbench run --case {case} --force`") from None


def resolve_trace(path: str, results_dir: str, cache: str | None = None, case: str | None = None) -> str | None:
    """Find a trace named relative to the folder the run started in, or in ``cache``.

    Runs store the path as given (``.bugbench/units/...``); the results folder
    normally sits in that same folder, so try beside it too; a copied results
    folder finds its traces in the cache it is pointed at (same file name).
    """
    candidates = [path]
    if not os.path.isabs(path):
        candidates.append(os.path.join(os.path.dirname(os.path.abspath(results_dir)), path))
    if cache and case:
        candidates.insert(0, os.path.join(cache, "units", case, os.path.basename(path)))
    return next((p for p in candidates if os.path.exists(p)), None)


def suggest_case(results_dir: str, case: str) -> str:
    close = difflib.get_close_matches(case, ResultsDir(results_dir).cases(), n=1, cutoff=0.7)
    return f" (did you mean '{close[0]}'?)" if close else ""


def inputs_key(results_dir: str, case: str, seed: int, stage: str, stat: str) -> str:
    """Hash of what a plot is drawn from: the stored records (which name their traces by content) and the code."""
    digest = hashlib.sha256(f"{case} {seed} {stage} {stat}".encode())
    digest.update(source_hash(*_DRAWN_BY).encode())
    for variant in VARIANTS:
        path = ResultsDir(results_dir).path(case, variant, seed)
        if os.path.exists(path):
            with open(path, "rb") as fh:
                digest.update(fh.read())
    return digest.hexdigest()[:16]


def stored_key(png: str) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(png) as image:
            return image.text.get(KEY_FIELD)
    except (OSError, UnidentifiedImageError):
        return None
