"""Cases whose seeds disagree on the headline verdict get more seeds, and keep them."""

import pytest

from harness.running import runner
from harness.running.records import UnitRecord
from tests.test_validation import GOOD


def record(case, variant, seed, severities, status="ok"):
    findings = [{"detector": "diagnose", "code": "X", "message": "", "step": 0, "epoch": 0, "seconds": 0.0,
                 "severity": s} for s in severities]
    snapshot = {"id": case, "status": "valid", "truth": {"faults": [{"code": "HLR"}]}, "symptom": {"kind": "none"}}
    return UnitRecord.model_validate({"case": snapshot, "variant": variant, "seed": seed, "status": status,
                                      "trace": "t.npz", "findings": {"diagnose": findings}})


def test_a_split_on_errors_is_found_warnings_and_failed_runs_are_not():
    records = [record("a", "buggy", 0, ["error"]), record("a", "buggy", 1, []),  # split
               record("b", "buggy", 0, ["warning"]), record("b", "buggy", 1, []),  # warnings are no verdict
               record("c", "patched", 0, ["error"]), record("c", "patched", 1, [], status="error"),
               record("d", "buggy", 0, ["error"]), record("d", "patched", 0, [])]  # variants differ: fine
    assert runner.split_cases(records, "diagnose") == {"a"}
    assert runner.split_cases(records, "symptoms") == set()


@pytest.mark.fit
def test_a_split_case_trains_more_seeds_and_a_full_run_keeps_them(tmp_path, monkeypatch):
    from harness import cli

    cases_dir = tmp_path / "cases"
    cases_dir.mkdir()
    (cases_dir / "good.yaml").write_text(GOOD)
    seen = []
    monkeypatch.setattr(runner, "split_cases", lambda records, det: seen.append(det) or {"t-good"})
    results = tmp_path / "results"
    args = ["run", "--cases-dir", str(cases_dir), "--results", str(results), "--cache", str(tmp_path / "c"),
            "--detector", "keras-ton"]
    assert cli.main([*args, "--more-seeds", "2"]) == 0
    assert seen == ["diagnose"]
    names = sorted(p.name for p in (results / "runs" / "t-good").iterdir())
    assert names == [f"{v}-seed{s}.json" for v in ("buggy", "patched") for s in range(3)]
    monkeypatch.setattr(runner, "split_cases", lambda records, det: set())
    assert cli.main(args) == 0  # no longer split: the extra seeds' results stay until asked...
    assert len(list((results / "runs" / "t-good").iterdir())) == 6
    assert cli.main([*args, "--prune"]) == 0  # ...and a full run with --prune removes them
    assert sorted(p.name for p in (results / "runs" / "t-good").iterdir()) == ["buggy-seed0.json", "patched-seed0.json"]
