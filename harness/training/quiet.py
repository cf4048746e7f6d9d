"""Keep TensorFlow's native start-up notices out of a worker's stderr; let everything else through.

TensorFlow 2.21 writes from C++ (absl), straight to file descriptor 2, on every
process start and fit: "oneDNN custom operations are on", "All log messages
before absl::InitializeLog()", the CPU-feature notice, and, for every tf.data
map Keras builds, "NodeDef mentions attribute use_unbounded_threadpool which is
not in the op definition" (the Python side of TensorFlow 2.21 sets an attribute
its own op registry does not declare; TensorFlow ignores it, as the message
says). ``TF_CPP_MIN_LOG_LEVEL`` does not reach these before absl is
initialised, and at 3 it would hide real errors too. So a worker's fd 2 goes
through a pipe whose reader drops exactly these lines and passes every other
line on, unchanged, to the real stderr.

Installed only in training workers: their tracebacks travel in the unit's
record, so a line the reader has not passed on when a worker is killed is no
loss. ``BUGBENCH_TF_LOGS=1`` keeps everything.
"""

from __future__ import annotations

import os
import threading

NOISE = (
    "use_unbounded_threadpool",
    "oneDNN custom operations are on",
    "All log messages before absl::InitializeLog()",
    "cpu_feature_guard.cc",
    "To enable the following instructions:",
)

_installed: list = []


def is_noise(line: bytes) -> bool:
    return any(pattern.encode() in line for pattern in NOISE)


def quiet_native_stderr() -> None:
    """Once per process: route fd 2 through the noise filter (no-op with ``BUGBENCH_TF_LOGS=1``)."""
    if _installed or os.environ.get("BUGBENCH_TF_LOGS") == "1":
        return
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    _installed.append(real)
    threading.Thread(target=_pump, args=(read_end, real), name="bugbench-stderr-filter", daemon=True).start()


def _pump(read_end: int, real: int) -> None:
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not is_noise(line))
            if kept:
                os.write(real, kept)
        if pending and not is_noise(pending):
            os.write(real, pending)
