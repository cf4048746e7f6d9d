"""Run a case's data generator (``file.py``) in a confined child process, never in the caller.

The caller (a training worker) starts a fresh interpreter in its own session,
with the case's folder as working directory. That interpreter enters new PID
and network namespaces and forks the generator's process, which confines
itself (``harness.data.confine``: no writes outside a scratch folder, no TCP,
no signals out) before it imports the file. Arrays come back as ``.npy`` bytes
read with ``allow_pickle=False``: nothing the generator returns is executed
here. A generator that hangs past the time limit has its whole session killed;
one that exits, crashes or kills its parent leaves an error, never a process.

Consent is the caller's to give (``allowed``): without it this module refuses
before starting anything, so no command that only reads or validates a case
can run its code.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile

import numpy as np

DEFAULT_TIMEOUT = 300.0  # seconds, when the run sets no unit timeout: a generator makes data, it does not train
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from harness.data.sandbox import child_main; child_main()"


class CaseCodeRefused(RuntimeError):
    """A case's code was asked to run without the user's consent."""


class GeneratorFailed(RuntimeError):
    pass


_consent = {"given": False, "timeout": None}


@contextlib.contextmanager
def allowed(consent: bool, timeout: float | None = None):
    """Within this block (a worker's unit), case code may run if ``consent``, for at most ``timeout`` s."""
    before = dict(_consent)
    _consent.update(given=bool(consent), timeout=timeout)
    try:
        yield
    finally:
        _consent.update(before)


def run_generator(path: str, function: str, args: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``function(rng, **args)`` of the file at ``path``, run confined; ``rng`` advances as if run here."""
    if not _consent["given"]:
        raise CaseCodeRefused(f"{path}: case code runs only with consent (bugbench run --trust-case-code, or "
                              "bugbench trust FOLDER)")
    timeout = _consent["timeout"] or DEFAULT_TIMEOUT
    with tempfile.TemporaryDirectory(prefix="bugbench-gen-", ignore_cleanup_errors=True) as scratch:
        request = json.dumps({"path": path, "function": function, "args": args or {}, "scratch": scratch,
                              "rng": rng.bit_generator.state, "parent": os.getpid()}, default=_plain)
        out = _run_child(request, path, function, timeout)
    x, y, state = _read_result(out)
    rng.bit_generator.state = state
    return x, y


def _run_child(request: str, path: str, function: str, timeout: float) -> bytes:
    proc = subprocess.Popen([sys.executable, "-I", "-c", _BOOT, _ROOT], cwd=os.path.dirname(path),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(request.encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_session(proc)
        raise GeneratorFailed(f"{os.path.basename(path)}: {function}() ran past {timeout:g} s; it was killed") from None
    finally:
        _kill_session(proc)  # whatever it left in its session goes with it
    if proc.returncode != 0 or not out:
        raise GeneratorFailed(f"{os.path.basename(path)}: {function}() {_how_it_ended(proc.returncode)}"
                              f"{_last_line(err)}")
    return out


def _kill_session(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


def _how_it_ended(code: int | None) -> str:
    if code is not None and code < 0:
        return f"was killed by signal {-code} ({signal.Signals(-code).name})"
    return f"ended with exit code {code} and no data" if code else "returned no data"


def _last_line(err: bytes) -> str:
    lines = [line for line in err.decode(errors="replace").splitlines() if line.strip()]
    return f": {lines[-1][:300]}" if lines else ""


def _read_result(out: bytes):
    buf = io.BytesIO(out)
    header = json.loads(buf.readline())
    x = np.load(buf, allow_pickle=False)
    y = np.load(buf, allow_pickle=False)
    return x, y, header["rng"]


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot pass {type(value).__name__} to a generator")


# --- the child ----------------------------------------------------------------


def child_main() -> None:
    """The interpreter started by ``run_generator``: namespaces, then the confined generator as their init."""
    from harness.data import confine

    request = json.loads(sys.stdin.buffer.read())
    confine.die_with_parent(request["parent"])
    confine.no_core_dumps()
    notes = [confine.new_namespaces()]
    pid = os.fork()
    if pid == 0:
        _generate(request, request["scratch"], notes)
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def _generate(request: dict, scratch: str, notes: list) -> None:
    """The generator's own process: confine, import the file, call the function, write the arrays to stdout."""
    from harness.data import confine

    code = 1
    try:
        confine.die_with_parent()
        notes.append(confine.landlock(scratch))
        os.environ.update(TMPDIR=scratch, HOME=scratch)
        out = os.fdopen(os.dup(1), "wb")
        os.dup2(2, 1)  # the generator's prints go to stderr, not into the data
        x, y, rng = _call(request)
        header = {"rng": rng.bit_generator.state, "confinement": [n for n in notes if n]}
        blob = io.BytesIO()  # np.save asks a real file for its position; a pipe has none
        blob.write(json.dumps(header, default=_plain).encode() + b"\n")
        np.save(blob, x, allow_pickle=False)
        np.save(blob, y, allow_pickle=False)
        out.write(blob.getvalue())
        out.flush()
        code = 0
    except BaseException as exc:  # noqa: BLE001  (everything the generator raises is its error)
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        sys.stderr.flush()
        os._exit(code)


def _call(request: dict):
    import importlib.util

    rng = np.random.default_rng()
    rng.bit_generator.state = request["rng"]
    spec = importlib.util.spec_from_file_location("bugbench_case_data", request["path"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, request["function"], None)
    if not callable(fn):
        raise ValueError(f"{os.path.basename(request['path'])} defines no function '{request['function']}'")
    x, y = fn(rng, **request["args"])
    return np.asarray(x), np.asarray(y), rng
