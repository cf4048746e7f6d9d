"""TensorFlow's native start-up notices are dropped from a worker's stderr; every other line passes."""

import subprocess
import sys

from harness.training.quiet import is_noise

NOISY = [
    b"E0000 00:00:1796125088.491286   10436 node_def_util.cc:682] NodeDef mentions attribute "
    b"use_unbounded_threadpool which is not in the op definition: Op<name=MapDataset; ...",
    b"I0000 00:00:1796124988.670066    8848 port.cc:153] oneDNN custom operations are on. You may see ...",
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
]


def test_the_known_notices_are_noise_and_real_errors_are_not():
    assert all(is_noise(line) for line in NOISY)
    assert not is_noise(b"E0000 00:00:1 op_kernel.cc:1] OOM when allocating tensor with shape[1000000]")
    assert not is_noise(b"Traceback (most recent call last):")


def test_a_process_with_the_filter_keeps_its_own_lines_and_loses_the_notices():
    code = ("import os, time\n"
            "from harness.training.quiet import quiet_native_stderr\n"
            "quiet_native_stderr()\n"
            f"os.write(2, {NOISY[0]!r} + b'\\n' + b'a real error\\n' + {NOISY[1]!r} + b'\\n' + b'partial')\n"
            "os.close(2)\n"
            "time.sleep(0.3)\n")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60).stderr
    assert err == b"a real error\npartial"
