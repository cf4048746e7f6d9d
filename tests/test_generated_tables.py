"""The generated suite's tables: killed mutants count, equivalent ones are listed, the zoo gives false alarms."""

import os

import pandas as pd

from harness.reporting import tables
from harness.running.results import ResultsDir

TRUTH_NONE = {"faults": [{"code": "NONE"}]}


def record(case, variant, status, findings, generated=None, truth=TRUTH_NONE, learns=True):
    snapshot = {"id": case, "status": status, "truth": truth, "symptom": {"kind": "none"}, "generated": generated}
    loss = 0.1 if learns else 0.7
    return {"case": snapshot, "variant": variant, "seed": 0, "status": "ok", "trace": "t.npz",
            "summary": {"final": {"loss": loss, "accuracy": 0.9 if learns else 0.5}},
            "facts": {"reference": {"loss": 0.69, "binary_accuracy": 0.5}, "layers": [{"units": 1}]},
            "findings": {"diagnose": findings}, "detectors": ["diagnose"], "localizes": {"diagnose": True},
            "suggests": {"diagnose": True}, "layers": ["Dense"]}


def error(code="NUMERICAL", layer=None, diagnosis="HLR", fix="HLR"):
    return {"detector": "diagnose", "code": code, "message": "", "step": 0, "epoch": 0, "batch": 0, "seconds": 0.0,
            "layer": layer, "layer_name": None, "diagnosis": diagnosis, "fix": "x", "fix_code": fix,
            "severity": "error", "alternatives": []}


def test_generated_summary_counts_killed_mutants_and_zoo_false_alarms(tmp_path):
    results = ResultsDir(str(tmp_path))
    lr = {"operator": "learning-rate", "base": "zoo-a", "kill": {"killed": True}}
    units = [
        ("zoo-a", "patched", record("zoo-a", "patched", "healthy", [])),
        ("zoo-b", "patched", record("zoo-b", "patched", "healthy", [error()])),  # a false alarm
        ("mut-a--lr", "buggy", record("mut-a--lr", "buggy", "valid", [error()], lr,
                                      {"faults": [{"code": "HLR"}]}, learns=False)),
        ("mut-a--lr", "patched", record("mut-a--lr", "patched", "valid", [], lr, {"faults": [{"code": "HLR"}]})),
        ("mut-a--ep", "buggy", record("mut-a--ep", "buggy", "valid", [], dict(lr, operator="epochs"),
                                      {"faults": [{"code": "HNE"}]})),
        ("mut-a--eq", "buggy", record("mut-a--eq", "buggy", "equivalent", [error()],
                                      dict(lr, operator="loss", kill={"killed": False, "p_value": 0.4}),
                                      {"faults": [{"code": "LCH"}]})),
    ]
    for *_, rec in units:
        results.write(rec)  # where its own case, variant and seed put it
    tables.report(str(tmp_path))
    s = pd.read_csv(tmp_path / "generated_summary.csv").set_index("detector")
    assert (s.loc["diagnose", "detected"], s.loc["diagnose", "detected_of"]) == (1, 2)  # the equivalent is out
    assert (s.loc["diagnose", "false_alarms"], s.loc["diagnose", "false_alarms_of"]) == (1, 2)  # zoo programs only
    assert s.loc["diagnose", "localized"] == 1  # HLR named by the diagnosis
    ops = pd.read_csv(tmp_path / "generated_operators.csv").set_index("operator")
    assert ops.loc["learning-rate", "diagnose"] == 1 and ops.loc["epochs", "diagnose"] == 0
    assert (ops.loc["loss", "killed"], ops.loc["loss", "killed_of"]) == (0, 1)
    eq = pd.read_csv(tmp_path / "generated_equivalent.csv")
    assert eq["mutant"].tolist() == ["mut-a--eq"]
    loc = pd.read_csv(tmp_path / "generated_operators_localized.csv").set_index("operator")
    assert loc.loc["learning-rate", "diagnose"] == 1  # the first error's diagnosis is HLR, the mutation's kind
    assert os.path.exists(tmp_path / "generated_operators_fix.csv")
    assert os.path.exists(tmp_path / "generated_summary.tex")
    assert os.path.exists(tmp_path / "plots" / "detectors_generated.png")
    kills = pd.read_csv(tmp_path / "generated_kill.csv").set_index("operator")
    assert kills.loc["all", "mutants"] == 3 and kills.loc["loss", "killed_on_test"] == 0


def test_the_kill_table_tells_test_kills_from_training_kills_and_programs_show_their_test_score(tmp_path):
    results = ResultsDir(str(tmp_path))
    over = {"operator": "remove-dropout", "base": "zoo-a",
            "kill": {"killed": True, "on": "test", "train": {"killed": False}}}
    under = {"operator": "epochs", "base": "zoo-a", "kill": {"killed": True, "on": "test", "train": {"killed": True}}}
    program = record("zoo-a", "patched", "healthy", [])
    program["summary"]["test"] = {"n": 40, "loss": 0.2, "accuracy": 0.9, "reference": {"majority_accuracy": 0.6}}
    units = [("zoo-a", "patched", program),
             ("mut-a--rd", "buggy", record("mut-a--rd", "buggy", "valid", [], over, {"faults": [{"code": "REG"}]})),
             ("mut-a--ep", "buggy", record("mut-a--ep", "buggy", "valid", [], under, {"faults": [{"code": "HNE"}]}))]
    for *_, rec in units:
        results.write(rec)  # where its own case, variant and seed put it
    tables.report(str(tmp_path))
    kills = pd.read_csv(tmp_path / "generated_kill.csv").set_index("operator")
    assert kills.loc["remove-dropout", "test_only"] == 1 and kills.loc["epochs", "test_only"] == 0
    assert kills.loc["all", "killed_on_test"] == 2 and kills.loc["all", "killed_on_train"] == 1
    programs = pd.read_csv(tmp_path / "generated_programs.csv").set_index("program")
    assert (programs.loc["zoo-a", "learns"], programs.loc["zoo-a", "learns_of"]) == (1, 1)
    assert programs.loc["zoo-a", "constant_guess"] == 0.6
