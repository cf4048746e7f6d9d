"""A third-party detector, installed through the entry-point group, shows up everywhere;
stored findings are reused until a detector changes."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from detectors import registry
from detectors.toy_traces import toy_traces
from harness.cases.load import discover, load_cases
from harness.reporting import tables
from harness.running import runner
from harness.running.findings import FindingsStore
from harness.running.records import UnitId
from harness.running.results import ResultsDir

PLUGIN = '''
from detectors.base import Detector


class LossAboveOne(Detector):
    """Reports the first batch whose loss is above 1."""

    name = "loss-above-one"
    version = "1"

    def observe(self, step):
        if step.kind == "batch" and step.values.get("loss", 0) > 1 and not self.findings:
            return [self.report(step, "BIG", "loss above 1", severity="error")]
        return []
'''

SETUP = '''
[project]
name = "tiny-bugbench-plugin"
version = "0.1"

[project.entry-points."bugbench.detectors"]
loss-above-one = "tiny_plugin:LossAboveOne"

[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[tool.setuptools]
py-modules = ["tiny_plugin"]
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """pip-install the plug-in into a private folder (offline: no build isolation, no deps)."""
    src, target = tmp_path_factory.mktemp("plugin-src"), tmp_path_factory.mktemp("site")
    (src / "tiny_plugin.py").write_text(PLUGIN)
    (src / "pyproject.toml").write_text(SETUP)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(src)], check=True, capture_output=True)
    sys.path.insert(0, str(target))
    registry._entry_points.cache_clear()
    yield str(target)
    sys.path.remove(str(target))
    registry._entry_points.cache_clear()


def test_cli_lists_the_installed_detector(installed):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([installed, os.getcwd()]))
    out = subprocess.run([sys.executable, "-m", "harness", "list", "--detectors"], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert "loss-above-one" in out and "tiny_plugin:LossAboveOne" in out


def fake_unit(tmp_path, trace, name="buggy-seed0"):
    path = str(tmp_path / "cache" / f"{name}-0123.npz")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    trace.save(path)
    return {"status": "ok", "trace": path, "facts": {}, "variant": name.split("-")[0], "seed": 0}


def test_the_plugin_is_scored_and_appears_in_the_tables(installed, tmp_path):
    case = load_cases(discover("cases/stackoverflow/48385830.yaml"))[0][0]
    results = str(tmp_path / "results")
    for variant, trace in (("buggy", toy_traces()["healthy"]), ("patched", toy_traces()["flat"])):
        result = fake_unit(tmp_path, trace, f"{variant}-seed0")
        record = runner.attach_findings(case, result, ["loss-above-one", "keras-ton"])
        ResultsDir(results).write(record)
    tables.report(results)
    summary = pd.read_csv(os.path.join(results, "comparison.csv"))
    row = summary[(summary.detector == "loss-above-one") & (summary.subset == "all")].iloc[0]
    # The patched trace's loss is flat: it does not learn, so it is no healthy control to false-alarm on.
    assert (row["detected"], row["detected_of"]) == (1, 1) and (row["false_alarms"], row["false_alarms_of"]) == (0, 0)


def test_stored_findings_are_reused_until_the_detector_changes(tmp_path, monkeypatch):
    case = load_cases(discover("cases/stackoverflow/48385830.yaml"))[0][0]
    result = fake_unit(tmp_path, toy_traces()["nan"])
    first = runner.attach_findings(case, result, ["layer-trend", "symptoms"])
    assert os.path.exists(FindingsStore(result["trace"]).path)

    def no_replay(*args, **kwargs):
        raise AssertionError("replayed although the stored findings are current")

    monkeypatch.setattr(runner, "replay_entry", no_replay)
    assert runner.attach_findings(case, result, ["layer-trend", "symptoms"])["findings"] == first["findings"]
    with pytest.raises(AssertionError, match="replayed"):
        runner.attach_findings(case, result, ["layer-trend-faithful"])  # never stored: must replay
    with pytest.raises(AssertionError, match="replayed"):
        runner.attach_findings(case, result, ["layer-trend"], replay_all=True)


def test_a_changed_parameter_is_a_new_fingerprint():
    from detectors.keras_baseline import KerasCallbackDetector
    from detectors.layer_trend import LayerTrend
    from harness.running.findings import fingerprint

    assert fingerprint(LayerTrend()) == fingerprint(LayerTrend())
    assert fingerprint(KerasCallbackDetector()) != fingerprint(KerasCallbackDetector(callbacks=("ton",)))


def test_retraining_a_unit_forgets_its_stored_findings(tmp_path):
    from harness.running.store import UnitStore

    store = UnitStore(str(tmp_path))
    unit = UnitId("c", "buggy", 0, "k")
    store.put(unit, {"status": "ok", "trace_npz": toy_traces()["nan"].to_bytes()})
    findings = FindingsStore(store.trace_path(unit))
    findings.put("x", {"fingerprint": "f"})
    findings.save()
    store.put(unit, {"status": "ok", "trace_npz": toy_traces()["healthy"].to_bytes()})
    assert not os.path.exists(findings.path)
    assert json.loads(open(store._stem(unit) + ".json").read())["status"] == "ok"


def test_a_severity_is_error_or_warning_and_every_reader_agrees_which():
    """A plug-in that misspells a severity is refused where it reports, not counted as neither in the tables."""
    from detectors.base import Finding
    from harness.running.records import StoredFinding

    made = {kind: Finding("d", "C", "m", 0, 0, None, 0.0, severity=kind) for kind in ("error", "warning")}
    assert made["error"].is_error and not made["warning"].is_error
    assert [StoredFinding.model_validate(f.to_dict()).is_error for f in made.values()] == [True, False]
    old = StoredFinding(detector="d", code="C", message="m", step=0, epoch=0, seconds=0.0)
    assert old.is_error  # stored before severities existed: an error, as StoredFinding's default
    with pytest.raises(ValueError, match="severity 'Error' is not one of"):
        Finding("d", "C", "m", 0, 0, None, 0.0, severity="Error")
