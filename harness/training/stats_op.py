"""The probe's statistics as one native TensorFlow op, compiled on first use.

``native/tensor_stats.cc`` computes every statistic of every probed tensor in
one kernel call, where TensorFlow's own ops need about ten per tensor group:
on small models the probe's cost is its op count (results/perf.md). The
library is built with the C++ compiler and TensorFlow's own compile and link
flags, once per source, TensorFlow version and flags, into a cache directory
(``BUGBENCH_OPS_DIR``, else ``~/.cache/bugbench/ops``); later processes load it.

Which implementation computes the statistics is chosen by ``BUGBENCH_STATS``:
``native`` (the default: this op) or ``tf`` (TensorFlow ops, no compiler
needed). The two agree to float32 rounding but not bit for bit, so the choice
is part of every stored unit's key.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("native") / "tensor_stats.cc"
BACKENDS = ("native", "tf")


class StatsOpError(RuntimeError):
    """The native statistics op could not be built or loaded."""


def backend() -> str:
    """The statistics implementation this process uses (``BUGBENCH_STATS``), without importing TensorFlow."""
    return chosen() or "native"


def chosen() -> str | None:
    """The implementation ``BUGBENCH_STATS`` names, or None where it is unset or empty."""
    value = os.environ.get("BUGBENCH_STATS", "").strip().lower()
    if value and value not in BACKENDS:
        raise ValueError(f"BUGBENCH_STATS={value!r}: expected one of {', '.join(BACKENDS)}")
    return value or None


def ops_dir() -> Path:
    return Path(os.environ.get("BUGBENCH_OPS_DIR") or Path.home() / ".cache" / "bugbench" / "ops")


def load():
    """The loaded op module (``.bugbench_tensor_stats``); builds the library if no cached one fits.

    Raises StatsOpError with the compiler's message when it cannot be built.
    A process tries once: every later call gives the same module or error.
    """
    module, error = _outcome()
    if error is not None:
        raise error
    return module


@functools.lru_cache(maxsize=1)
def _outcome():
    try:
        return _load(), None
    except StatsOpError as exc:
        return None, exc


load.cache_clear = _outcome.cache_clear  # tests: forget the outcome


def _load():
    import tensorflow as tf

    flags = [*tf.sysconfig.get_compile_flags(), *tf.sysconfig.get_link_flags()]
    key = hashlib.sha256("\n".join([SOURCE.read_text(), tf.__version__, *flags]).encode()).hexdigest()[:16]
    target = ops_dir() / f"tensor_stats-{key}.so"
    if not target.exists():
        _build(target, flags)
    try:
        return tf.load_op_library(str(target))
    except Exception as exc:  # a stale or foreign file: say where it is
        raise StatsOpError(f"could not load {target}: {exc}") from exc


BUILD_TIMEOUT = 600  # seconds; the build takes about 15 s


def _build(target: Path, flags: list[str]) -> None:
    """Compile the library to ``target``; every way this can fail is a StatsOpError (so "auto" falls back)."""
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not compiler:
        raise StatsOpError("no C++ compiler found (set CXX, install g++, or set BUGBENCH_STATS=tf)")
    advice = "set BUGBENCH_STATS=tf to compute the statistics with TensorFlow ops instead"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Built under a temporary name and renamed: parallel workers may build at once, none loads a half file.
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise StatsOpError(f"cannot write the op library to {target.parent} ({exc}); set BUGBENCH_OPS_DIR to a "
                           f"writable directory, or {advice}") from exc
    cmd = [compiler, "-O3", "-shared", "-fPIC", "-w", str(SOURCE), "-o", tmp, *flags]
    # The first fit on a machine waits for this: say so, once, rather than stall unannounced.
    print(f"bugbench: compiling the probe's statistics op into {target.parent} (once per machine and TensorFlow "
          "version, ~10 s)", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        if done.returncode != 0:
            raise StatsOpError(f"building {SOURCE.name} failed ({' '.join(cmd[:5])} ...):\n{done.stderr[-2000:]}\n"
                               f"{advice}")
        os.replace(tmp, target)
    except subprocess.TimeoutExpired as exc:
        raise StatsOpError(f"building {SOURCE.name} took over {BUILD_TIMEOUT} s ({compiler}); {advice}") from exc
    except OSError as exc:  # the compiler cannot be run, or the rename failed
        raise StatsOpError(f"building {SOURCE.name} with {compiler} failed: {exc}; {advice}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
