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
import threading
import time
from collections.abc import Iterator

from harness.training.quiet import quiet_native_stderr
from harness.training.train import train_unit, unit_identity

HARD_GRACE = 1.5  # the hard limit is the soft one x this + 30 s (TensorFlow start-up, data)


def run_units(units: list[dict], jobs: int = 1, backend: str = "loky", scheduler: str | None = None,
              timeout: float | None = None) -> Iterator[tuple[dict, dict]]:
    if not units:
        return iter(())
    if backend == "dask":
        return _run_dask(units, scheduler, timeout)
    if backend == "loky":
        return _run_loky(units, max(1, jobs), timeout)
    raise ValueError(f"unknown backend {backend!r} (loky or dask)")


def _run_loky(units, jobs, timeout):
    """Keep ``jobs`` units in flight; isolate and blame a unit that kills its worker.

    When the pool breaks, the units that were in flight become suspects and
    each runs alone next: a suspect that breaks the pool while alone is the
    culprit and becomes an error record; an innocent one just finishes.
    """
    hard = timeout * HARD_GRACE + 30 if timeout else None
    queue = [(u, False) for u in units]  # (unit, suspect)
    running: dict = {}  # future -> (unit, suspect, started)
    executor = _executor(jobs)
    yield from _schedule(queue, running, executor, jobs, timeout, hard)


def _schedule(queue, running, executor, jobs, timeout, hard):
    while queue or running:
        while queue and len(running) < jobs and not (queue[0][1] and running):
            unit, suspect = queue.pop(0)
            future = executor.submit(_work, unit, timeout, os.getpid())
            running[future] = (unit, suspect, time.monotonic())
            if suspect:
                break  # a suspect runs alone
        done, _ = cf.wait(list(running), timeout=1.0, return_when=cf.FIRST_COMPLETED)
        broken = False
        for future in done:
            unit, suspect, _ = running.pop(future)
            try:
                record = future.result()
            except Exception as exc:  # the pool broke: a worker died under some unit
                broken = True
                if suspect:
                    yield unit, _failed(unit, f"its worker process died ({type(exc).__name__})")
                else:
                    queue.insert(0, (unit, True))
                continue
            yield unit, record
        for future, (unit, _, started) in list(running.items()):
            if hard and time.monotonic() - started > hard:
                running.pop(future)
                broken = True
                yield unit, _failed(unit, f"exceeded the hard limit of {hard:.0f} s; its worker was killed")
        if broken:
            queue[:0] = [(u, True) for u, _, _ in running.values()]
            running.clear()
            _kill(executor)
            executor = _executor(jobs)


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


def _kill(executor) -> None:
    """SIGKILL every worker of ``executor``, then let it go.

    loky's own ``shutdown(kill_workers=True)`` left workers sleeping in a hung
    unit alive (measured: two of two, in time.sleep), and the run then never
    exited, waiting for them.
    """
    global killed_workers
    killed_workers = True
    for process in list(getattr(executor, "_processes", {}).values()):
        with contextlib.suppress(Exception):
            process.kill()
    for process in list(getattr(executor, "_processes", {}).values()):
        with contextlib.suppress(Exception):
            process.join(timeout=5)
    executor.shutdown(wait=False, kill_workers=True)


def _work(unit: dict, timeout: float | None, parent: int) -> dict:
    """A worker's unit: train it, and die with the run (a SIGKILLed run must not leave ~1 GB workers behind)."""
    _watch_parent(parent)
    quiet_native_stderr()
    return train_unit(unit, timeout)


_watching: list = []


def _watch_parent(parent: int) -> None:
    """Once per worker: a daemon thread that ends the process when the run that started it is gone."""
    if _watching:
        return
    _watching.append(parent)

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)  # re-parented: the run died without shutting us down

    threading.Thread(target=watch, name="bugbench-parent-watch", daemon=True).start()


_pools: list = []  # the pool this process made last (exit_now ends its workers)


def _executor(jobs: int):
    from joblib.externals.loky import get_reusable_executor

    _pools[:] = [get_reusable_executor(max_workers=jobs, timeout=60)]
    return _pools[0]


def _failed(unit: dict, reason: str) -> dict:
    return dict(unit_identity(unit), status="error", error=reason)


def _run_dask(units, scheduler, timeout):
    from distributed import Client
    from joblib import Parallel, delayed, parallel_config

    if not scheduler:
        raise ValueError("the dask backend needs --scheduler tcp://HOST:PORT")
    client = Client(scheduler, timeout="30s")
    try:
        n = max(1, sum(client.nthreads().values()))
        tasks = (delayed(_indexed)(i, train_unit, u, timeout) for i, u in enumerate(units))
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
