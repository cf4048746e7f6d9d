"""Cache, resume after a kill, isolation of broken units, hostile input, determinism, dask."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from harness import cli
from harness.cases.load import load_case
from harness.errors import CaseFileError
from tests.test_validation import GOOD

pytestmark = pytest.mark.fit


def make_cases(folder, **variants):
    """Write one case per keyword: name -> text transform of GOOD."""
    folder.mkdir(exist_ok=True)
    for name, text in variants.items():
        (folder / f"{name}.yaml").write_text(text.replace("id: t-good", f"id: {name}"))
    return folder


def run(tmp_path, cases_dir, *extra):
    return cli.main(["run", "--cases-dir", str(cases_dir), "--results", str(tmp_path / "results"),
                     "--cache", str(tmp_path / "cache"), "--detector", "keras-ton", *extra])


def records(tmp_path):
    out = {}
    for case in os.listdir(tmp_path / "results" / "runs"):
        for name in os.listdir(tmp_path / "results" / "runs" / case):
            out[(case, name)] = json.loads((tmp_path / "results" / "runs" / case / name).read_text())
    return out


# Two cases that train different units (identical specs would share one training: tests/test_mutants.py).
OTHER = GOOD.replace("params: {repeat: 2}", "params: {repeat: 3}")


def test_rerun_uses_the_cache_and_an_edit_retrains_only_that_case(tmp_path, capsys):
    cases = make_cases(tmp_path / "cases", a=GOOD, b=OTHER)
    assert run(tmp_path, cases) == 0
    assert "4 trained, 0 from the cache" in capsys.readouterr().err
    assert run(tmp_path, cases) == 0
    assert "0 trained, 4 from the cache" in capsys.readouterr().err
    (cases / "b.yaml").write_text(OTHER.replace("id: t-good", "id: b").replace("epochs: 2", "epochs: 3"))
    assert run(tmp_path, cases) == 0
    assert "2 trained, 2 from the cache" in capsys.readouterr().err
    assert records(tmp_path)[("a", "buggy-seed0.json")]["cached"] is not False
    assert run(tmp_path, cases, "--force") == 0
    assert "4 trained, 0 from the cache" in capsys.readouterr().err


def test_results_of_deleted_cases_stay_until_a_full_run_is_told_to_prune(tmp_path, capsys):
    cases = make_cases(tmp_path / "cases", a=GOOD, b=GOOD)
    assert run(tmp_path, cases) == 0
    (cases / "b.yaml").unlink()
    assert run(tmp_path, cases) == 0
    assert {case for case, _ in records(tmp_path)} == {"a", "b"}
    assert "`--prune` removes them" in capsys.readouterr().err
    assert run(tmp_path, cases, "--prune") == 0
    assert {case for case, _ in records(tmp_path)} == {"a"}
    assert capsys.readouterr().err.count("removed ") == 2


FAULT = GOOD.replace("source: synthetic.xor\n  params: {repeat: 2}", "source: debug.fault\n  params: {kind: KIND}")


def test_broken_units_become_error_rows_and_the_suite_finishes(tmp_path, capsys):
    cases = make_cases(tmp_path / "cases", good=GOOD, exits=FAULT.replace("KIND", "exit"),
                       raises=FAULT.replace("KIND", "raise"), nans=FAULT.replace("KIND", "nan"))
    assert run(tmp_path, cases, "--jobs", "2") == 0
    runs = pd.read_csv(tmp_path / "results" / "runs.csv").set_index(["case", "variant"])
    assert runs.loc[("good", "buggy"), "status"] == "ok"
    assert runs.loc[("nans", "buggy"), "status"] == "ok"
    assert runs.loc[("exits", "buggy"), "status"] == "error"
    assert "worker process died" in runs.loc[("exits", "buggy"), "error"]
    assert "raised on purpose" in runs.loc[("raises", "patched"), "error"]
    assert run(tmp_path, cases, "--strict") == 1  # errors are not cached: retried, and still failing


def test_soft_timeout_stops_a_long_fit(tmp_path):
    slow = GOOD.replace("epochs: 2", "epochs: 4000").replace("repeat: 2", "repeat: 50")
    cases = make_cases(tmp_path / "cases", slow=slow)
    assert run(tmp_path, cases, "--timeout", "2") == 0
    rec = records(tmp_path)[("slow", "buggy-seed0.json")]
    assert rec["status"] == "error" and "exceeded the 2 s limit" in rec["error"]


@pytest.mark.slow
def test_hard_timeout_kills_a_hanging_worker(tmp_path):
    cases = make_cases(tmp_path / "cases", hangs=FAULT.replace("KIND", "hang"), good=GOOD)
    start = time.monotonic()
    assert run(tmp_path, cases, "--timeout", "5", "--jobs", "2") == 0
    assert time.monotonic() - start < 120
    recs = records(tmp_path)
    assert "hard limit" in recs[("hangs", "buggy-seed0.json")]["error"]
    assert recs[("good", "buggy-seed0.json")]["status"] == "ok"


def test_killed_run_resumes_without_losing_or_corrupting_anything(tmp_path):
    cases = make_cases(tmp_path / "cases", **{f"c{i}": GOOD.replace("epochs: 2", "epochs: 30") for i in range(4)})
    cmd = [sys.executable, "-m", "harness", "run", "--cases-dir", str(cases), "--results", str(tmp_path / "results"),
           "--cache", str(tmp_path / "cache"), "--detector", "keras-ton"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    runs_dir = tmp_path / "results" / "runs"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        done = list(runs_dir.glob("*/*.json")) if runs_dir.exists() else []
        if len(done) >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its worker processes
    proc.wait()
    finished_before = {p.relative_to(runs_dir) for p in runs_dir.glob("*/*.json")}
    assert 2 <= len(finished_before) < 8
    for path in runs_dir.glob("*/*.json"):
        json.loads(path.read_text())  # every file that exists is whole
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    trained = int(out.stderr.split(" trained")[0].rsplit(" ", 1)[-1])
    assert trained <= 8 - len(finished_before)  # nothing finished was trained again
    assert len(list(runs_dir.glob("*/*.json"))) == 8
    assert not list(tmp_path.rglob("*.tmp*"))


def test_same_seed_gives_identical_traces(case_path):
    from harness.trace import Trace
    from harness.training.train import train_unit

    spec = load_case(case_path("48385830")).spec_dict("patched")
    spec["fit"]["epochs"] = 1
    unit = {"case": "x", "variant": "patched", "seed": 5, "spec": spec}
    a, b = Trace.from_bytes(train_unit(unit)["trace_npz"]), Trace.from_bytes(train_unit(unit)["trace_npz"])
    for key in ("stats", "values", "logs", "epoch_logs"):
        np.testing.assert_array_equal(a.arrays[key], b.arrays[key])
    c = Trace.from_bytes(train_unit(dict(unit, seed=6))["trace_npz"])
    assert not np.array_equal(a.arrays["stats"], c.arrays["stats"])


CSV_CASE = GOOD.replace("source: synthetic.xor\n  params: {repeat: 2}",
                        "source: file.csv\n  params: {path: PATH, y: label}")


@pytest.mark.parametrize("path, words", [("../outside.csv", "escapes the case's folder"),
                                         ("/etc/passwd", "must be relative"),
                                         ("missing.csv", "does not exist"),
                                         ("big.csv", "larger than")])
def test_hostile_data_paths_are_refused_with_a_line(tmp_path, path, words):
    folder = tmp_path / "cases"
    folder.mkdir()
    (tmp_path / "outside.csv").write_text("a,label\n1,0\n")
    with open(folder / "big.csv", "wb") as fh:
        fh.truncate(10_000_001)
    case = folder / "case.yaml"
    case.write_text(CSV_CASE.replace("PATH", path))
    with pytest.raises(CaseFileError) as info:
        load_case(str(case))
    (err,) = info.value.errors
    assert words in err.message and err.line == 7


def test_csv_inside_the_case_folder_trains(tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    (folder / "xor.csv").write_text("a,b,label\n" + "0,0,0\n0,1,1\n1,0,1\n1,1,0\n" * 4)
    (folder / "case.yaml").write_text(CSV_CASE.replace("PATH", "xor.csv"))
    assert run(tmp_path, folder) == 0
    assert records(tmp_path)[("t-good", "buggy-seed0.json")]["data"]["n_train"] == 16


def test_dask_cluster_on_loopback_runs_two_cases(tmp_path):
    distributed = pytest.importorskip("distributed")
    cases = make_cases(tmp_path / "cases", a=GOOD, b=GOOD)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        code = run(tmp_path, cases, "--backend", "dask", "--scheduler", cluster.scheduler_address)
    assert code == 0
    recs = records(tmp_path)
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs.values())


def test_the_cache_works_from_another_folder(tmp_path, monkeypatch, capsys):
    cases = make_cases(tmp_path / "cases", a=GOOD)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "--cases-dir", str(cases), "--results", "r1", "--cache", "cache",
                     "--detector", "keras-ton"]) == 0
    capsys.readouterr()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli.main(["run", "--cases-dir", str(cases), "--results", "r2", "--cache", str(tmp_path / "cache"),
                     "--detector", "keras-ton"]) == 0
    assert "0 trained, 2 from the cache" in capsys.readouterr().err
