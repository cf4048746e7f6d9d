"""Stand-ins for ``train_unit`` that the engine's tests run in its workers: each misbehaves in one way, fast,
without TensorFlow. Module-level, so that a worker can import them by name."""

import os
import subprocess
import sys
import time


def ok(unit, timeout):
    return {"case": unit["case"], "variant": "buggy", "seed": 0, "status": "ok", "pid": os.getpid()}


def exits_quietly(unit, timeout):
    """A unit whose code calls sys.exit(0): SystemExit travels back to the run."""
    sys.exit(0)


def spawns(unit, timeout):
    """A unit that starts a process and returns, leaving it running; its pid is in the record."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    return dict(ok(unit, timeout), child=child.pid)


def spawns_and_hangs(unit, timeout):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(unit["pidfile"], "w") as fh:
        fh.write(f"{os.getpid()} {child.pid}")
    time.sleep(600)


_kept = []


def grows(unit, timeout):
    """A unit that leaves 400 MB behind in its worker, as a TensorFlow unit leaves graphs and caches."""
    _kept.append(bytearray(400 * 2**20))
    return ok(unit, timeout)


def warns_known_faults(unit, timeout):
    """Keras' warnings about a case's own fault (softmax on one unit; categorical cross-entropy on one unit)."""
    import warnings

    with warnings.catch_warnings(record=True) as shown:
        warnings.warn("You are using a softmax over axis -1 of a tensor of shape (4, 1).", UserWarning, stacklevel=2)
        warnings.warn("In loss categorical_crossentropy, expected y_pred.shape to be (batch_size, num_classes) "
                      "with num_classes > 1. Received: y_pred.shape=(None, 1).", SyntaxWarning, stacklevel=2)
        warnings.warn("an unrelated warning", UserWarning, stacklevel=2)
    return dict(ok(unit, timeout), shown=[str(w.message) for w in shown])
