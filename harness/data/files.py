"""Data sources that read small files shipped inside a case's folder, and a fault injector.

``file.csv`` reads a CSV that lies next to the case file; ``file.py`` runs a
data generator written in a Python file next to the case file. Their paths are
resolved and checked by the case loader (no absolute paths, nothing outside the
case's folder, at most MAX_FILE_BYTES), and the file's content hash is part of
the unit's cache key, so editing the file retrains what it feeds. A ``file.py``
generator is code: it runs only with the user's consent, only in a training
worker, confined (``harness.data.sandbox``); validation reads it without
running it (``harness.data.generator_check``). ``debug.fault`` makes a unit
fail on purpose (raise, kill its worker, hang, or produce NaN) to test the
harness's isolation.
"""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np

from harness.data.sources import source

MAX_FILE_BYTES = 10_000_000
FILE_SOURCES = ("file.csv", "file.py")


def runs_code(spec: dict) -> bool:
    """True when building this spec's data runs a case's own Python code."""
    return ((spec or {}).get("data") or {}).get("source") == "file.py"


def resolve(case_path: str, relative: str) -> str:
    """The absolute path of a data file named in a case; ValueError when it is not allowed."""
    if os.path.isabs(relative):
        raise ValueError(f"data path '{relative}' must be relative to the case file")
    # Symbolic links are followed before the check: a link inside the folder that points outside
    # it (or a linked folder) escapes as surely as '../'.
    folder = os.path.realpath(os.path.dirname(os.path.abspath(case_path)))
    path = os.path.realpath(os.path.join(folder, relative))
    if os.path.commonpath([folder, path]) != folder:
        raise ValueError(f"data path '{relative}' escapes the case's folder")
    if not os.path.isfile(path):
        raise ValueError(f"data file '{relative}' does not exist")
    if os.path.getsize(path) > MAX_FILE_BYTES:
        raise ValueError(f"data file '{relative}' is larger than {MAX_FILE_BYTES} bytes")
    return path


def digest(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@source("file.csv")
def csv_file(rng, path: str, y: str | int | list, x: list | None = None, sha256: str | None = None):
    """Columns ``x`` (default: all others) and target column(s) ``y`` (a name, an index, or a list of them: a
    multi-output or multi-label target) of a CSV with a header row."""
    import pandas as pd

    _unchanged(path, sha256)
    table = pd.read_csv(path)
    names = [table.columns[c] if isinstance(c, int) else c for c in (y if isinstance(y, list) else [y])]
    x_cols = x or [c for c in table.columns if c not in names]
    target = table[names].to_numpy(np.float64)
    return table[x_cols].to_numpy(np.float64), target if isinstance(y, list) else target[:, 0]


@source("file.py")
def python_file(rng, path: str, function: str = "make", args: dict | None = None, sha256: str | None = None):
    """``function(rng, **args) -> (x, y)`` from a Python file next to the case file: a data-generating rule
    (labels = value mod 7, say) stated as code rather than as thousands of inlined rows. ``rng`` is a
    seeded ``numpy.random.Generator`` (the data section's ``seed``)."""
    from harness.data.sandbox import run_generator

    _unchanged(path, sha256)
    return run_generator(path, function, args or {}, rng)


python_file.no_preload = True  # code runs only in a training worker, with consent: never to check shapes


def _unchanged(path: str, sha256: str | None) -> None:
    if sha256 and digest(path) != sha256:
        raise ValueError(f"{path} changed since the case was loaded")


@source("debug.fault")
def fault(rng, kind: str = "raise", n: int = 32, features: int = 2):
    """Fail on purpose. kind: raise | exit (kills the worker) | hang | nan (NaN inputs)."""
    if kind == "raise":
        raise RuntimeError("debug.fault raised on purpose")
    if kind == "exit":
        os._exit(13)
    if kind == "hang":
        time.sleep(3600)
    x = rng.normal(size=(n, features))
    if kind == "nan":
        x[:] = np.nan
    return x, (rng.random(n) > 0.5).astype(float)


fault.no_preload = True  # validation must not load it: it would crash or hang the main process
