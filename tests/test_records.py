"""Stored unit records come back as typed models, and each default the tables rely on is the model's own.

Readers once took records as dicts and repeated defaults at every read
(``case.get("status", "valid")``, ``paper.get("counted", True)``,
``finding.get("severity", "error")``); a reader whose default disagreed with
the model's counted the same record differently from its neighbour.
"""

import json
import os

import pytest

from harness.cases import schema
from harness.running.records import (
    CaseSnapshot,
    KillDecision,
    Machine,
    PaperSnapshot,
    StoredFinding,
    Summary,
    SymptomSnapshot,
    UnitRecord,
)
from harness.running.results import ResultsDir
from harness.scoring import outcomes, reproduced

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def snapshot(**fields):
    return {"id": "c", "status": "valid", "truth": {"faults": [{"code": "HLR"}]},
            "symptom": {"kind": "accuracy_at_most", "value": 0.6}, **fields}


def finding(**fields):
    return {"detector": "diagnose", "code": "X", "message": "m", "step": 0, "epoch": 0, "seconds": 0.0, **fields}


def record(case=None, **fields):
    return {"case": case or snapshot(), "variant": "buggy", "seed": 0, "status": "ok", "trace": "t.npz",
            "summary": {"final": {"loss": 0.7, "accuracy": 0.5}}, "detectors": ["diagnose"],
            "findings": {"diagnose": [finding()]}, "localizes": {"diagnose": True}, **fields}


def stored(tmp_path, data: dict) -> str:
    path = ResultsDir(str(tmp_path)).path(data["case"]["id"], data["variant"], data["seed"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(dict(data, format=2), fh)
    return path


def test_a_record_read_from_disk_is_a_typed_model_down_to_its_nested_blocks(tmp_path):
    kill = {"killed": True, "on": "test", "metric": "mae", "train": {"killed": False}}
    data = record(snapshot(generated={"base": "zoo-p", "operator": "epochs", "kill": kill},
                           paper={"row": "1", "cells": {"A": {"IB": "Y"}}}),
                  versions={"cpu": "x86", "keras": "3"}, data={"source": "sklearn.iris"}, fit_seconds=2)
    rec = ResultsDir(str(tmp_path)).read(stored(tmp_path, data))
    assert not isinstance(rec, dict) and isinstance(rec, UnitRecord)
    assert isinstance(rec.case, CaseSnapshot) and isinstance(rec.case.symptom, SymptomSnapshot)
    assert isinstance(rec.case.paper, PaperSnapshot) and isinstance(rec.case.generated.kill, KillDecision)
    assert isinstance(rec.case.generated.kill.train, KillDecision) and rec.case.generated.kill.train.killed is False
    assert isinstance(rec.findings["diagnose"][0], StoredFinding) and isinstance(rec.summary, Summary)
    assert isinstance(rec.versions, Machine) and rec.versions.cpu == "x86" and rec.data.source == "sklearn.iris"
    assert rec.fit_seconds == 2 and isinstance(rec.fit_seconds, int)  # as stored: a table prints 2, not 2.0
    assert all(isinstance(r, UnitRecord) for r in ResultsDir(str(tmp_path)).records())


def test_the_write_returns_what_a_read_gives_and_keeps_the_file_as_given(tmp_path):
    results = ResultsDir(str(tmp_path))
    written = results.write(record())
    assert isinstance(written, UnitRecord) and written == results.read(results.path("c", "buggy", 0))
    on_disk = json.loads(open(results.path("c", "buggy", 0)).read())
    assert "versions" not in on_disk and "cached" not in on_disk  # the model's defaults are not written out


@pytest.mark.parametrize("suite", ["results", os.path.join("results", "zoo")])
def test_every_stored_record_of_both_suites_reads_as_a_model(suite, capsys):
    results = ResultsDir(os.path.join(ROOT, suite))
    if not results.exists():
        pytest.skip(f"no stored results in {suite}")
    records = results.records()
    assert records and all(isinstance(r, UnitRecord) for r in records)
    assert "skipping" not in capsys.readouterr().err  # the models refuse none of the records in the tree


def test_a_case_snapshot_without_its_status_is_refused_not_counted_as_valid(tmp_path, capsys):
    """Readers said ``case.get("status", "valid")`` where the model requires the status: a snapshot
    without one would have counted as a valid case in one table and failed validation in the next."""
    case = snapshot()
    del case["status"]
    stored(tmp_path, record(case))
    assert ResultsDir(str(tmp_path)).records() == []
    assert "case.status: Field required" in capsys.readouterr().err
    assert schema.Case.model_fields["status"].default == "valid"  # the one default: the case file's


def test_a_paper_row_counts_unless_it_says_otherwise_and_an_empty_one_is_no_row():
    def columns(paper):
        return outcomes._unit_columns(UnitRecord.model_validate(record(snapshot(paper=paper))))

    assert columns({"row": "3"})["in_paper"] is True and columns({"row": "3"})["from_paper"] is True
    assert columns({"row": "3", "counted": False})["in_paper"] is False
    assert columns({}) == columns(None) and columns({})["from_paper"] is False and columns({})["in_paper"] is False


def test_a_finding_stored_without_a_severity_detects_as_the_model_says():
    rows = outcomes.outcomes([UnitRecord.model_validate(record())])
    assert StoredFinding.model_fields["severity"].default == "error"
    assert rows.loc[0, "detected"] and rows.loc[0, "n_findings"] == 1 and rows.loc[0, "n_warnings"] == 0
    warned = record(findings={"diagnose": [finding(severity="warning")]})
    assert not outcomes.outcomes([UnitRecord.model_validate(warned)]).loc[0, "detected"]


def test_a_symptom_without_on_is_judged_on_training_logs_as_the_case_schema_says():
    assert SymptomSnapshot.model_fields["on"].default == schema.Symptom.model_fields["on"].default == "train"
    summary = Summary(final={"accuracy": 0.5}, test={"accuracy": 0.9})
    assert reproduced.shows(SymptomSnapshot(kind="accuracy_at_most", value=0.6), summary) is True
    assert reproduced.shows(SymptomSnapshot(kind="accuracy_at_most", value=0.6, on="test"), summary) is False


def test_a_null_block_reads_as_its_defaults_and_a_missing_kill_as_not_killed():
    rec = UnitRecord.model_validate(record(snapshot(original=None, generated={"base": "zoo-p"}), versions=None))
    assert rec.case.original.loss_before is None and rec.versions.cpu is None
    assert rec.case.generated.kill is None and KillDecision().killed is False and KillDecision().on == "train"
