"""Faults in a user's fit: a detector never breaks a fit that works without it (real tiny fits)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from detectors.base import Detector  # noqa: E402
from detectors.diagnose import Diagnose  # noqa: E402
from detectors.structure import Structure  # noqa: E402

pytestmark = pytest.mark.fit


def data(n=64):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype("float32"), rng.normal(size=(n, 4)).astype("float32")


def fit_quietly(model, x, y, detectors, epochs=2):
    with pytest.warns(RuntimeWarning) as caught:
        history = model.fit(x, y, epochs=epochs, batch_size=16, verbose=0, callbacks=detectors)
    return history, [str(w.message) for w in caught if "switched itself off" in str(w.message)]


def test_a_model_with_no_trainable_weights_trains_with_a_detector():
    """Was: ValueError 'not enough values to unpack' from the probe's step."""
    x, y = data()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Activation("relu")])
    model.compile(loss="mse", optimizer="adam")
    y = np.abs(y)  # targets a ReLU output can reach: else the static OUT_RANGE error comes first
    # With sample=, the reference is the constant predictor's loss: without it, the first (shuffled, so random)
    # batch's loss is the bar, and whether a model that cannot learn "beats" it was a matter of luck.
    detector = Diagnose(sample=(x, y), verbose=0)
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[detector])
    assert len(history.epoch) == 2 and [f.code for f in detector.findings if f.severity == "error"] == ["NOT_LEARNING"]


def test_a_dict_output_model_trains_with_the_static_and_live_detectors():
    """Was: IndexError/TypeError from the facts of a dict of labels."""
    x, _ = data()
    inp = keras.Input((4,))
    model = keras.Model(inp, {"a": keras.layers.Dense(1, name="a")(inp),
                              "b": keras.layers.Dense(2, activation="softmax", name="b")(inp)})
    model.compile(loss={"a": "mse", "b": "categorical_crossentropy"}, optimizer="adam")
    ys = {"a": np.zeros((64, 1), "float32"), "b": np.eye(2, dtype="float32")[np.arange(64) % 2]}
    detectors = [Structure(sample=(x, ys), verbose=0), Diagnose(sample=(x, ys), verbose=0)]
    history = model.fit(x, ys, epochs=2, batch_size=16, verbose=0, callbacks=detectors)
    assert len(history.epoch) == 2
    assert not any(f.code == "LINEAR" for f in detectors[0].findings)  # parallel heads are not a stack


class Exploding(Detector):
    name = "exploding"

    def observe(self, step):
        raise ZeroDivisionError("a plug-in bug")


def test_a_detector_that_raises_switches_itself_off_with_one_warning():
    x, y = data()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
    model.compile(loss="mse", optimizer="adam")
    history, warned = fit_quietly(model, x, y, [Exploding()], epochs=3)
    assert len(history.epoch) == 3
    assert len(warned) == 1 and "exploding" in warned[0] and "ZeroDivisionError" in warned[0]


def test_a_subclassed_model_trains_with_its_own_step_watched_by_every_detector(capsys):
    """Was: every detector switched itself off with a RuntimeWarning ("the probe needs a Sequential or functional
    model"). Now the model keeps its own step, one line says the layers are not watched, the rest goes on."""
    import warnings

    from detectors import registry

    class Custom(keras.Model):  # subclassed: no layer graph for the probe to run
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(4)

        def call(self, inputs):
            return self.dense(inputs)

    x, y = data()
    model = Custom()
    model.compile(loss="mse", optimizer="adam")
    detectors = [registry.create(name) for name in registry.expand([*registry.DEFAULT, "peers"])]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=detectors)
    assert len(history.epoch) == 2 and "train_step" not in vars(model)
    assert capsys.readouterr().out.count("not watched in this fit") == 1  # said once, by the probe's owner
    diagnose = next(d for d in detectors if d.name == "diagnose")
    assert diagnose._started and not diagnose._disabled


def test_after_a_fit_the_model_has_its_own_step_again():
    x, y = data()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
    model.compile(loss="mse", optimizer="adam")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[Diagnose(verbose=0)])
    assert "train_step" not in vars(model) and "_bugbench_live_probe" not in vars(model)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)  # a plain fit afterwards is a plain fit


# -- the run's own processes -------------------------------------------------------------------

import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from tests.test_reliability import FAULT, OTHER, make_cases  # noqa: E402
from tests.test_validation import GOOD  # noqa: E402


def run_cmd(tmp_path, cases, *extra):
    return [sys.executable, "-m", "harness", "run", "--cases-dir", str(cases), "--results", str(tmp_path / "results"),
            "--cache", str(tmp_path / "cache"), "--detector", "keras-ton", *extra]


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_run_with_hanging_raising_and_dying_units_exits(tmp_path):
    """Was: the summary printed, and the process never exited (a hung worker survived loky's kill)."""
    cases = make_cases(tmp_path / "cases", hangs=FAULT.replace("KIND", "hang"), raises=FAULT.replace("KIND", "raise"),
                       exits=FAULT.replace("KIND", "exit"), nans=FAULT.replace("KIND", "nan"))
    start = time.monotonic()
    out = subprocess.run(run_cmd(tmp_path, cases, "--jobs", "2", "--timeout", "5"), capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert time.monotonic() - start < 200
    assert "hard limit" in out.stderr and "8 unit(s)" in out.stderr


def test_workers_die_with_a_killed_run(tmp_path):
    """Was: SIGKILL of the run left its loky workers (~860 MB each) alive."""
    cases = make_cases(tmp_path / "cases", **{f"c{i}": GOOD.replace("epochs: 2", "epochs: 400") for i in range(2)})
    proc = subprocess.Popen(run_cmd(tmp_path, cases, "--jobs", "2"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline, workers = time.monotonic() + 120, []
    while time.monotonic() < deadline and not workers:
        workers = [p for p in children(proc.pid) if "LokyProcess" in open(f"/proc/{p}/cmdline").read()]
        time.sleep(0.2)
    assert workers, "no worker started"
    time.sleep(3)  # let them pick up units
    os.kill(proc.pid, signal.SIGKILL)  # the run only, not its process group
    proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(alive(p) for p in workers):
        time.sleep(0.2)
    assert not any(alive(p) for p in workers)


def test_two_runs_on_one_cache_train_each_unit_once(tmp_path):
    """Was: 36 trainings for 18 units. The second run waits for the first, then reads its units."""
    cases = make_cases(tmp_path / "cases", a=GOOD, b=OTHER)
    first = subprocess.Popen(run_cmd(tmp_path, cases), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    second = subprocess.run(run_cmd(tmp_path, cases), capture_output=True, text=True, timeout=300)
    first_err = first.communicate(timeout=300)[1]
    trained = [int(err.split(" trained")[0].rsplit(" ", 1)[-1]) for err in (first_err, second.stderr)]
    assert sorted(trained) == [0, 4], (first_err[-500:], second.stderr[-500:])


# -- round two: the engine ends what it started, and loses no unit ---------------------------------

from harness.running.engine import run_units  # noqa: E402
from tests import unit_work  # noqa: E402

UNITS = [{"case": f"c{i}", "variant": "buggy", "seed": 0, "key": str(i)} for i in range(3)]


def test_a_unit_that_calls_sys_exit_is_an_error_row_not_a_silent_end():
    """Was: SystemExit travelled from the worker through future.result() and ended the run with exit 0,
    printing nothing, with no result for it or the units beside it."""
    works = [unit_work.exits_quietly, unit_work.ok, unit_work.ok]
    out = {}
    for i, work in enumerate(works):
        out.update({u["case"]: r for u, r in run_units([UNITS[i]], jobs=1, work=work)})
    assert out["c0"]["status"] == "error" and "SystemExit" in out["c0"]["error"]
    assert out["c1"]["status"] == out["c2"]["status"] == "ok"


def test_a_process_a_unit_starts_does_not_outlive_the_run():
    """Was: a process a unit spawned outlived the run (the worker's children were never ended)."""
    records = [r for _, r in run_units(UNITS, jobs=2, work=unit_work.spawns)]
    assert all(r["status"] == "ok" for r in records)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(r["child"]) for r in records):
        time.sleep(0.1)
    assert not any(alive(r["child"]) for r in records)


def _like_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])


def test_an_interrupted_run_ends_its_workers_and_their_children(tmp_path):
    """Ctrl-C mid-unit (SIGTERM unwinds the command the same way): the worker and what it started end too.

    The script leaves as the command does (harness.cli.program): a process whose pool had a busy worker killed
    ends with exit_now, since loky may have handed the hung unit to a fresh worker whose manager thread would
    hold the interpreter's exit (it did, once in a few full-suite runs, when the script simply re-raised)."""
    pidfile = tmp_path / "pids"
    code = (f"import sys; sys.path.insert(0, {os.getcwd()!r})\n"
            "from harness.running import engine\nfrom tests import unit_work\n"
            "try:\n"
            f"    list(engine.run_units([dict(case='c', variant='buggy', seed=0, key='0', pidfile={str(pidfile)!r})], "
            "work=unit_work.spawns_and_hangs))\n"
            "except KeyboardInterrupt:\n"
            "    engine.exit_now(130 if engine.killed_workers else 1)\n")
    # As a terminal's Ctrl-C finds it: SIGINT handled and unblocked, whatever this test process inherited or
    # had set by the tests before it (the script hung on SIGINT in full-suite runs only, never alone).
    here = (signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, []))
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL, preexec_fn=_like_a_terminal)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (pidfile.exists() and pidfile.read_text()):
        time.sleep(0.1)
    worker, child = map(int, pidfile.read_text().split())
    proc.send_signal(signal.SIGINT)
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"no exit 30 s after SIGINT (this process: SIGINT handler {here[0]}, "
                             f"blocked {here[1]})") from None
    assert rc == 130  # the busy worker was killed, and the process left at once
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (alive(worker) or alive(child)):
        time.sleep(0.1)
    assert not alive(worker) and not alive(child)


def in_session(argv, signal_after=None, timeout=240):
    """Run a command as the leader of its own session; return (exit code, stderr, processes of the session
    still alive 2 s after it ended)."""
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    if signal_after:
        time.sleep(signal_after)
        os.kill(proc.pid, signal.SIGTERM)
    err = proc.communicate(timeout=timeout)[1]
    time.sleep(2)
    left = subprocess.run(["ps", "-s", str(proc.pid), "-o", "pid=,args="], capture_output=True, text=True).stdout
    return proc.returncode, err, left.strip()


def test_no_process_of_a_run_outlives_it_after_a_worker_died(tmp_path):
    """Was: after a worker died mid-unit, loky's resource trackers and a fresh worker stayed alive (parent 1)."""
    cases = make_cases(tmp_path / "cases", a=GOOD, exits=FAULT.replace("KIND", "exit"))
    code, err, left = in_session(run_cmd(tmp_path, cases, "--jobs", "2"))
    assert code == 0, err[-2000:]
    assert "worker process died" in err and left == ""


def test_sigterm_ends_the_run_and_every_process_it_started(tmp_path):
    cases = make_cases(tmp_path / "cases", **{f"c{i}": GOOD.replace("epochs: 2", "epochs: 400") for i in range(2)})
    code, err, left = in_session(run_cmd(tmp_path, cases, "--jobs", "2"), signal_after=12)
    assert code == 130 and "interrupted" in err, err[-2000:]
    assert left == ""


def test_a_full_disk_is_one_line_and_keeps_every_finished_result(tmp_path, capsys, monkeypatch):
    """Was: an OSError traceback from runner._score_entries -> store.save, exit 1."""
    from harness.running import findings, results
    from tests.test_reliability import records, run

    cases = make_cases(tmp_path / "cases", a=GOOD)
    assert run(tmp_path, cases) == 0
    before = records(tmp_path)

    def full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(findings, "write_atomic", full)
    monkeypatch.setattr(results, "write_atomic", full)
    capsys.readouterr()
    assert run(tmp_path, cases, "--replay") == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "No space left on device" in err
    assert f"cannot write to {tmp_path / 'results' / 'runs' / 'a'}" in err and "are kept" in err
    assert "cannot remember findings" in err  # the findings cache only warns: replaying later is its cost
    assert records(tmp_path) == before


def test_an_unreachable_dask_scheduler_is_one_line_naming_it(tmp_path):
    """Was: a 30-second wait and a traceback from distributed."""
    cases = make_cases(tmp_path / "cases", a=GOOD)
    start = time.monotonic()
    out = subprocess.run(run_cmd(tmp_path, cases, "--backend", "dask", "--scheduler", "tcp://127.0.0.1:9"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "no dask scheduler answered at tcp://127.0.0.1:9" in out.stderr
    assert time.monotonic() - start < 60


def test_a_unit_that_never_comes_back_is_an_error_row_and_counted(tmp_path, capsys, monkeypatch):
    """Was: units with no record were left out of the tables, and the count line said '0 failed'."""
    from harness.running import engine
    from tests.test_reliability import records, run

    monkeypatch.setattr(engine, "run_units", lambda *a, **k: iter(()))
    cases = make_cases(tmp_path / "cases", a=GOOD)
    assert run(tmp_path, cases, "--strict") == 1
    assert "2 unit(s): 0 trained, 0 from the cache, 2 failed" in capsys.readouterr().err
    assert {r["error"] for r in records(tmp_path).values()} == {"no result came back from its worker"}


def test_a_worker_that_grows_like_a_tensorflow_worker_is_not_recycled():
    """Was: loky's leak guard (300 MB) restarted TensorFlow workers, warning 'A worker stopped while some
    jobs were given to the executor' 4 to 10 times a suite."""
    import warnings

    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        pids = [r["pid"] for _, r in run_units(UNITS, jobs=1, work=unit_work.grows)]
    assert len(set(pids)) == 1
    assert not [w for w in shown if "A worker stopped" in str(w.message)]


def test_keras_warnings_about_a_cases_own_fault_are_left_to_the_detectors():
    (_, record), = run_units(UNITS[:1], jobs=1, work=unit_work.warns_known_faults)
    assert record["shown"] == ["an unrelated warning"]  # the others are the fault, which a finding reports once
