"""One rule for every cache: a stored artefact is reused only while the source that shapes it is unchanged.

A trained unit is keyed by its spec, seed and library versions plus the hash of
``TRACE_SOURCES``; a detector's stored findings by the hash of ``DETECTOR_SOURCES``
and the detector's own folder; a plot by the hash of the module that draws it.
No version number is bumped by hand: editing a file is what invalidates.
"""

from __future__ import annotations

import functools
import hashlib
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What shapes a trace besides the spec: the data sources, and how a unit is built, fed, trained and probed.
TRACE_SOURCES = ("harness/data", "harness/training", "harness/trace.py")
# Files under those that only a live detector imports (no training worker does: tests/test_layout.py checks),
# so they shape no stored trace and no hash covers them.
LIVE_ONLY = ("harness/training/live_probe.py",)
# What every detector reads its steps through, and the detectors' shared code.
DETECTOR_SOURCES = ("detectors", "harness/trace.py", "harness/facts.py")

_BUILT = (".so", ".o", ".pyc")


@functools.cache
def source_hash(*paths: str) -> str:
    """sha256 over the files under ``paths`` (relative to the package root, or absolute), names included,
    so a moved or renamed file counts as a change; build products and caches are skipped."""
    digest = hashlib.sha256()
    for name in sorted(f for p in paths for f in _files(os.path.join(ROOT, p))):
        with open(name, "rb") as fh:
            digest.update(os.path.relpath(name, ROOT).encode() + b"\0" + fh.read())
    return digest.hexdigest()[:16]


def _files(path: str) -> list[str]:
    if os.path.isfile(path):
        return [path]
    skipped = {os.path.join(ROOT, p) for p in LIVE_ONLY}
    found = []
    for folder, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        found += [os.path.join(folder, n) for n in names if not n.endswith(_BUILT)
                  and os.path.join(folder, n) not in skipped]
    return found
