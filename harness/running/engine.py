"""Where training units run: local worker processes (loky) or a dask cluster.

``run_units`` yields ``(unit, record)`` as units finish, in any order, so the
caller can store each result at once (a killed run keeps what had finished).

Local ("loky"): joblib's reusable loky process pool, ``jobs`` units in flight.
A unit that kills its worker (segfault, os._exit, out of memory) or runs past
the hard time limit costs that worker: the pool is replaced, the unit becomes
an error record, and the other in-flight units are submitted again.

Cluster ("dask"): joblib's dask backend on an existing dask.distributed
scheduler; dask does the scheduling and retries lost workers itself.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

from harness.training.quiet import quiet_native_stderr
from harness.training.train import train_unit, unit_identity

CONNECT_SECONDS = 10  # a scheduler on a reachable host answers in well under a second
HARD_GRACE = 1.5  # the hard limit is the soft one x this + 30 s (TensorFlow start-up, data)

Limit = float | None | Callable[[dict], float | None]  # seconds, none, or per unit


def run_units(units: list[dict], jobs: int = 1, backend: str = "loky", scheduler: str | None = None,
              timeout: Limit = None, work: Callable = train_unit) -> Iterator[tuple[dict, dict]]:
    """``work(unit, seconds)`` for every unit; ``timeout`` is each unit's soft limit (``work`` enforces it),
    the hard one (a worker killed from here) is derived from it."""
    if not units:
        return iter(())
    limit = timeout if callable(timeout) else (lambda _unit: timeout)
    if backend == "dask":
        return _run_dask(units, scheduler, limit, work)
    if backend == "loky":
        return _run_loky(units, max(1, jobs), limit, work)
    raise ValueError(f"unknown backend {backend!r} (loky or dask)")


def hard_limit(soft: float | None) -> float | None:
    return soft * HARD_GRACE + 30 if soft else None


def _run_loky(units, jobs, limit, work):
    """Keep ``jobs`` units in flight; isolate and blame a unit that kills its worker.

    When the pool breaks, the units that were in flight become suspects and
    each runs alone next: a suspect that breaks the pool while alone is the
    culprit and becomes an error record; an innocent one just finishes.
    Whichever way this ends (done, an error, Ctrl-C, a closed generator), every
    worker's process group is ended: nothing a unit started outlives the run.
    """
    queue = [(u, False) for u in units]  # (unit, suspect)
    running: dict = {}  # future -> (unit, suspect, started)
    pool = [_executor(jobs)]
    try:
        yield from _schedule(queue, running, pool, jobs, limit, work)
    finally:
        _kill(pool[0], hung=bool(running))


def _schedule(queue, running, pool, jobs, limit, work):
    while queue or running:
        _submit(queue, running, pool[0], jobs, limit, work)
        done, _ = cf.wait(list(running), timeout=1.0, return_when=cf.FIRST_COMPLETED)
        broken = False
        for future in done:
            unit, suspect, _ = running.pop(future)
            record, died = _outcome(future, unit, suspect)
            if died and not suspect:
                queue.insert(0, (unit, True))
            broken |= died
            if record is not None:
                yield unit, record
        for future, (unit, _, started) in list(running.items()):
            hard = hard_limit(limit(unit))
            if hard and time.monotonic() - started > hard:
                running.pop(future)
                broken = True
                yield unit, _failed(unit, f"exceeded the hard limit of {hard:.0f} s; its worker was killed")
        if broken:
            queue[:0] = [(u, True) for u, _, _ in running.values()]
            running.clear()
            _kill(pool[0], hung=True)
            pool[0] = _executor(jobs)


def _submit(queue, running, executor, jobs, limit, work) -> None:
    while queue and len(running) < jobs and not (queue[0][1] and running):
        unit, suspect = queue.pop(0)
        future = executor.submit(_work, work, unit, limit(unit), os.getpid())
        running[future] = (unit, suspect, time.monotonic())
        if suspect:
            break  # a suspect runs alone


def _outcome(future, unit, suspect) -> tuple[dict | None, bool]:
    """(the unit's record or None to retry it, whether its worker died)."""
    from joblib.externals.loky.process_executor import BrokenProcessPool

    try:
        return future.result(), False
    except BrokenProcessPool as exc:  # a worker died under some unit
        if suspect:
            return _failed(unit, f"its worker process died ({type(exc).__name__})"), True
        return None, True
    except BaseException as exc:  # noqa: BLE001 -- SystemExit from a unit must not end the run silently
        return _failed(unit, f"its worker raised {type(exc).__name__}: {exc}"), False


# Set once this process has killed pool workers: loky may then hand a hung unit to a fresh
# worker behind our back, and its manager thread waits for it at interpreter exit. A command
# that ran such a pool leaves with ``exit_now`` instead (its workers see their parent go and exit).
killed_workers = False


def exit_now(code: int) -> None:
    """End the process at once after flushing, without waiting for pool threads that may never finish."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if _pools:
        with contextlib.suppress(Exception):
            _kill(_pools[-1])
    os._exit(code)


def _kill(executor, hung: bool = True) -> None:
    """SIGKILL every worker of ``executor`` with its process group (what its units started), then let it go.

    loky's own ``shutdown(kill_workers=True)`` left workers sleeping in a hung
    unit alive (measured: two of two, in time.sleep), and the run then never
    exited, waiting for them; and it never reaches a worker's children.
    ``hung``: some worker was busy (the run ends with ``exit_now``).
    """
    global killed_workers
    processes = list(getattr(executor, "_processes", {}).values())
    killed_workers = killed_workers or hung
    for process in processes:
        _kill_group(process)
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(timeout=5)
    executor.shutdown(wait=False, kill_workers=True)


def _kill_group(process) -> None:
    """A worker leads its own process group once it ran a unit (``_work``); before that, it is alone."""
    with contextlib.suppress(Exception):
        if process.pid and os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        process.kill()


# loky recycles a worker whose memory grew by 300 MB since its first task, as a leak guard, and warns
# "A worker stopped while some jobs were given to the executor" (4 to 10 times a suite). A TensorFlow
# worker grows that much by design (each unit's graph, Keras' caches), so the guard cost a fresh
# TensorFlow start every few units; it now allows 1 GiB per worker (2 workers: well under 24 GiB), and a
# worker still passes that a few times a suite (TensorFlow keeps each unit's graph): see _executor.
WORKER_GROWTH = 2**30

# Warnings about a case's own fault, printed by Keras on every call: the detectors report that fault
# once, as a finding. "softmax over axis -1 ... has size 1" is softmax on one unit (ACH); "expected
# y_pred.shape ... num_classes > 1" is categorical cross-entropy on one output unit (LCH).
KNOWN_WARNINGS = (r"You are using a softmax over axis", r"In loss categorical_crossentropy, expected y_pred.shape")


def quiet_known_warnings() -> None:
    import warnings

    for message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


def _work(work: Callable, unit: dict, timeout: float | None, parent: int) -> dict:
    """A worker's unit: train it, and die with the run (a SIGKILLed run must not leave ~1 GB workers behind)."""
    _own_group()
    _watch_parent(parent)
    _allow_growth()
    quiet_native_stderr()
    quiet_known_warnings()
    return work(unit, timeout)


def _allow_growth() -> None:
    from joblib.externals.loky import process_executor

    process_executor._MAX_MEMORY_LEAK_SIZE = max(process_executor._MAX_MEMORY_LEAK_SIZE, WORKER_GROWTH)


def _own_group() -> None:
    """Lead a process group, so that the run can end this worker and whatever its units start in one call
    (and a terminal's Ctrl-C reaches the run, which then ends the groups, not each worker half-way)."""
    with contextlib.suppress(OSError):
        if os.getpgrp() != os.getpid():
            os.setpgid(0, 0)


_watching: list = []


def _watch_parent(parent: int) -> None:
    """Once per worker: a daemon thread that ends the worker's group when the run that started it is gone."""
    if _watching:
        return
    _watching.append(parent)

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        with contextlib.suppress(OSError):  # re-parented: the run died without shutting us down
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os._exit(1)

    threading.Thread(target=watch, name="bugbench-parent-watch", daemon=True).start()


_pools: list = []  # the pool this process made last (exit_now ends its workers)


def _executor(jobs: int):
    import warnings

    from joblib.externals.loky import get_reusable_executor

    # loky warns "A worker stopped while some jobs were given to the executor" when it replaces a worker
    # that grew past WORKER_GROWTH (or sat idle past its timeout) while units were queued. The queued
    # units go to the fresh worker (the cold paper suite: 3 replacements in 370 units, none lost), so the
    # warning only says a TensorFlow start was repeated; a worker that dies is a BrokenProcessPool instead.
    warnings.filterwarnings("ignore", message="A worker stopped while some jobs were given to the executor")
    _pools[:] = [get_reusable_executor(max_workers=jobs, timeout=60)]
    return _pools[0]


def _failed(unit: dict, reason: str) -> dict:
    return dict(unit_identity(unit), status="error", error=reason)


class SchedulerUnreachable(Exception):
    """The dask scheduler did not answer: the run trains nothing."""


def _run_dask(units, scheduler, limit, work):
    from distributed import Client
    from joblib import Parallel, delayed, parallel_config

    if not scheduler:
        raise ValueError("the dask backend needs --scheduler tcp://HOST:PORT")
    try:
        client = Client(scheduler, timeout=CONNECT_SECONDS)
    except (OSError, TimeoutError) as exc:
        raise SchedulerUnreachable(f"no dask scheduler answered at {scheduler} within {CONNECT_SECONDS} s "
                                   f"({type(exc).__name__})") from None
    try:
        n = max(1, sum(client.nthreads().values()))
        tasks = (delayed(_indexed)(i, work, u, limit(u)) for i, u in enumerate(units))
        finished = set()
        with parallel_config(backend="dask", wait_for_workers_timeout=60):
            try:
                for i, record in Parallel(n_jobs=n, return_as="generator_unordered")(tasks):
                    finished.add(i)
                    yield units[i], record
            except Exception as exc:  # e.g. KilledWorker after dask's own retries
                for i, unit in enumerate(units):
                    if i not in finished:
                        yield unit, _failed(unit, f"the cluster could not run it ({type(exc).__name__}: {exc})")
    finally:
        client.close()


def _indexed(i, fn, *args):
    return i, fn(*args)
