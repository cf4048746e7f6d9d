"""End to end: cases -> training -> replay -> result files -> tables."""

import json
import os

import pandas as pd
import pytest

from harness import cli
from tests.test_validation import GOOD

pytestmark = pytest.mark.fit

BAD = "tests/fixtures/bad_cases"


def run_cli(*args):
    return cli.main(["run", *args])


def test_broken_files_are_reported_and_the_good_case_still_runs(tmp_path, capsys):
    results, cache = tmp_path / "results", tmp_path / "cache"
    code = run_cli("--cases-dir", BAD, "--results", str(results), "--cache", str(cache))
    err = capsys.readouterr().err
    assert code == 1
    assert "unknown_key.yaml:13: unknown key 'optimiser'" in err and "Traceback" not in err
    record = json.loads((results / "runs" / "fixture-good" / "buggy-seed0.json").read_text())
    assert record["status"] == "ok" and record["semantics"] == "keras2"
    assert set(record["findings"]) == {"keras-ton", "keras-es-loss", "keras-es-acc", "keras-union",
                                       "layer-trend-faithful", "layer-trend", "symptoms", "training-problems",
                                       "structure", "diagnose", "autotrainer", "deepdiagnosis", "umlaut"}
    assert record["facts"]["loss"] and record["facts"]["x"]["max"] is not None
    assert record["versions"]["keras"].startswith("3.")
    assert os.path.exists(record["trace"])
    runs = pd.read_csv(results / "runs.csv")
    assert set(runs["case"]) == {"fixture-good"} and len(runs) == 2


def test_data_that_cannot_load_is_caught_before_training(tmp_path, capsys):
    bad = GOOD.replace("id: t-good", "id: t-bad-data").replace(
        "params: {repeat: 2}", "params: {repeat: 2}\n  preprocess: [{one_hot: {classes: 1}}]")
    cases_dir = tmp_path / "cases"
    cases_dir.mkdir()
    (cases_dir / "bad.yaml").write_text(bad)
    (cases_dir / "good.yaml").write_text(GOOD)
    assert run_cli("--cases-dir", str(cases_dir), "--results", str(tmp_path / "r"), "--cache", str(tmp_path / "c"),
                   "--detector", "keras-ton") == 1
    err = capsys.readouterr().err
    assert f"{cases_dir}/bad.yaml:5: the data does not load: one_hot: labels span 0..1" in err
    assert (tmp_path / "r" / "runs" / "t-good" / "buggy-seed0.json").exists()


def test_a_crashing_case_becomes_an_error_row(tmp_path, write_case):
    crash = GOOD.replace("id: t-good", "id: t-crash").replace(
        "source: synthetic.xor\n  params: {repeat: 2}", "source: debug.fault\n  params: {kind: raise}")
    cases_dir = tmp_path / "cases"
    cases_dir.mkdir()
    (cases_dir / "crash.yaml").write_text(crash)
    (cases_dir / "good.yaml").write_text(GOOD)
    results = tmp_path / "results"
    assert run_cli("--cases-dir", str(cases_dir), "--results", str(results), "--cache", str(tmp_path / "c"),
                   "--detector", "keras-ton") == 0
    runs = pd.read_csv(results / "runs.csv").set_index(["case", "variant"])
    assert runs.loc[("t-crash", "buggy"), "status"] == "error"
    assert "raised on purpose" in runs.loc[("t-crash", "buggy"), "error"]
    assert runs.loc[("t-good", "buggy"), "status"] == "ok"
    cases = pd.read_csv(results / "cases.csv").set_index("case")
    assert cases.loc["t-crash", "keras-ton"] == "ERR / ERR"


@pytest.mark.slow
def test_three_paper_cases_in_parallel(tmp_path):
    results = tmp_path / "results"
    three = ["--case", "so-48385830", "--case", "so-31880720", "--case", "so-45337371"]
    assert run_cli("--jobs", "2", "--results", str(results), "--cache", str(tmp_path / "c"), *three) == 0
    runs = pd.read_csv(results / "runs.csv")
    ok = runs[runs.status == "ok"]
    assert len(ok) == len(runs) == 6
    assert ok[ok.variant == "buggy"]["symptom_shown"].all()
    assert not ok[ok.variant == "patched"]["symptom_shown"].any()


def test_a_unit_shared_by_two_cases_keeps_each_ones_variant(tmp_path):
    """Case B's buggy program is case A's fixed one: they train once (one content key), and B's record still
    says buggy (it said patched, so B's buggy rows vanished from the tables and its fidelity read 'error')."""
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "a.yaml").write_text(GOOD.replace("id: t-good", "id: t-a"))
    flipped = GOOD.replace("id: t-good", "id: t-b").replace("activation: softmax}", "activation: sigmoid}") \
        .replace("to: sigmoid}", "to: softmax}")
    (cases / "b.yaml").write_text(flipped)
    results = tmp_path / "results"
    assert run_cli("--cases-dir", str(cases), "--results", str(results), "--cache", str(tmp_path / "c")) == 0
    for case, variant in (("t-a", "buggy"), ("t-a", "patched"), ("t-b", "buggy"), ("t-b", "patched")):
        record = json.loads((results / "runs" / case / f"{variant}-seed0.json").read_text())
        assert (record["case"]["id"], record["variant"]) == (case, variant)
    runs = pd.read_csv(results / "runs.csv")
    assert sorted(zip(runs["case"], runs["variant"])) == [("t-a", "buggy"), ("t-a", "patched"),
                                                          ("t-b", "buggy"), ("t-b", "patched")]
