"""The case-format additions: binarize, case-local generators, multi-column CSV targets, fit callbacks, RRG."""

import os

import numpy as np
import pytest

from harness.cases import schema
from harness.cases.load import CaseFileError, load_case
from harness.data import files as data_files
from harness.data import sandbox
from harness.data import sources as data
from harness.running.store import unit_key
from tests.test_validation import GOOD


def test_binarize_marks_values_above_the_threshold():
    x, y = data.PREPROCESS["binarize"](np.array([[0.0, 2.0], [0.5, -1.0]]), np.array([3.0, -3.0]))
    assert x.tolist() == [[0, 1], [1, 0]] and y.tolist() == [3.0, -3.0]
    _, y = data.PREPROCESS["binarize"](x, np.array([3.0, -3.0]), threshold=1.0, on="y")
    assert y.tolist() == [1, 0]


def test_a_csv_target_may_be_several_columns(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,c\n1,0,1\n2,1,0\n")
    x, y = data_files.csv_file(None, str(path), y=["b", "c"])
    assert x.tolist() == [[1], [2]] and y.tolist() == [[0, 1], [1, 0]]
    x, y = data_files.csv_file(None, str(path), y="c")
    assert x.shape == (2, 2) and y.tolist() == [1, 0]


RULE = "def make(rng, n):\n    x = rng.integers(0, 100, size=(n, 1)).astype(float)\n    return x, x[:, 0] % 7\n"
PY_CASE = GOOD.replace("source: synthetic.xor\n  params: {repeat: 2}",
                       "source: file.py\n  params: {path: rule.py, args: {n: 50}}")


def test_a_case_local_generator_feeds_the_case_and_its_source_is_in_the_key(tmp_path):
    (tmp_path / "rule.py").write_text(RULE)
    (tmp_path / "case.yaml").write_text(PY_CASE)
    case = load_case(str(tmp_path / "case.yaml"))
    spec = case.spec_dict("buggy")
    with sandbox.allowed(True):  # as in a training worker, with the user's consent
        got = data.load_data(spec["data"])
    assert got.x.shape == (50, 1) and set(np.unique(got.y)) <= set(range(7))
    assert np.all(got.y == got.x[:, 0] % 7)
    key = unit_key({"spec": spec, "seed": 0})
    (tmp_path / "rule.py").write_text(RULE.replace("% 7", "% 5"))
    assert unit_key({"spec": load_case(str(tmp_path / "case.yaml")).spec_dict("buggy"), "seed": 0}) != key


def test_the_key_of_a_file_case_does_not_depend_on_where_the_clone_lies(tmp_path):
    for where in ("a", "b"):
        (tmp_path / where).mkdir()
        (tmp_path / where / "rule.py").write_text(RULE)
        (tmp_path / where / "case.yaml").write_text(PY_CASE)
    keys = {unit_key({"spec": load_case(str(tmp_path / w / "case.yaml")).spec_dict("buggy"), "seed": 0})
            for w in ("a", "b")}
    assert len(keys) == 1


def test_a_generator_outside_the_case_folder_is_refused(tmp_path):
    (tmp_path / "rule.py").write_text(RULE)
    (tmp_path / "cases").mkdir()
    (tmp_path / "cases" / "case.yaml").write_text(PY_CASE.replace("path: rule.py", "path: ../rule.py"))
    with pytest.raises(CaseFileError, match="escapes the case's folder"):
        load_case(str(tmp_path / "cases" / "case.yaml"))


def test_fit_callbacks_come_from_a_safe_list_and_schedules_by_name():
    fit = schema.Fit.model_validate({"epochs": 3, "batch_size": 4, "callbacks": [
        {"ReduceLROnPlateau": {"monitor": "loss", "factor": 0.5}},
        {"LearningRateScheduler": {"schedule": "step", "factor": 0.1, "every": 2}}]})
    assert [next(iter(c)) for c in fit.callbacks] == ["ReduceLROnPlateau", "LearningRateScheduler"]
    with pytest.raises(ValueError, match="not one a case may use"):
        schema.Fit.model_validate({"epochs": 3, "batch_size": 4, "callbacks": [{"ModelCheckpoint": {}}]})
    with pytest.raises(ValueError, match="schedule"):
        schema.Fit.model_validate({"epochs": 3, "batch_size": 4,
                                   "callbacks": [{"LearningRateScheduler": {"schedule": "lambda e: 1"}}]})
    assert "callbacks" not in schema.Fit.model_validate({"epochs": 3, "batch_size": 4}).model_dump()


def test_class_weight_and_last_row_validation_are_spelled_and_left_out_by_default():
    fit = schema.Fit.model_validate({"epochs": 3, "batch_size": 4, "class_weight": {"0": 1, 1: 9.5}})
    assert fit.class_weight == {0: 1.0, 1: 9.5} and fit.model_dump()["class_weight"] == {0: 1.0, 1: 9.5}
    with pytest.raises(ValueError):
        schema.Fit.model_validate({"epochs": 3, "batch_size": 4, "class_weight": {0: -1}})
    assert "class_weight" not in schema.Fit.model_validate({"epochs": 3, "batch_size": 4}).model_dump()
    assert schema.Validation.model_validate({"split": 0.2, "rows": "last"}).model_dump()["rows"] == "last"
    assert schema.Validation.model_validate({"split": 0.2}).model_dump() == {"split": 0.2, "n": None}
    with pytest.raises(ValueError):
        schema.Validation.model_validate({"split": 0.2, "rows": "first"})
    with pytest.raises(ValueError):  # the test rows are always drawn by their own seed
        schema.Test.model_validate({"split": 0.2, "rows": "last"})


def test_named_schedules():
    pytest.importorskip("keras")
    from harness.training.build import fit_callbacks, schedule

    assert schedule("exponential", rate=0.5)(0, 1.0) == 1.0 and schedule("exponential", rate=0.5)(1, 1.0) == 0.5
    step = schedule("step", factor=0.1, every=2)
    assert [step(e, 1.0) for e in range(4)] == [1.0, 1.0, 0.1, 1.0]
    (cb,) = fit_callbacks([{"ReduceLROnPlateau": {"monitor": "loss", "factor": 0.5}}])
    assert type(cb).__name__ == "ReduceLROnPlateau" and cb.factor == 0.5


def test_a_misplaced_regulariser_has_its_own_layer_code():
    assert schema.Fault.model_validate({"code": "RRG", "layer": 2}).layer == 2
    with pytest.raises(ValueError, match="needs the 'layer'"):
        schema.Fault.model_validate({"code": "RRG"})


def test_diabetes_in_raw_units():
    scaled, _ = data.SOURCES["sklearn.diabetes"](np.random.default_rng(0))
    raw, _ = data.SOURCES["sklearn.diabetes"](np.random.default_rng(0), scaled=False)
    assert abs(scaled[:, 0]).max() < 1 and raw[:, 0].max() > 50  # age in years


def test_the_data_source_table_in_the_docs_is_current():
    from harness.data import doc as sources_doc

    with open(sources_doc.DOC) as fh:
        text = fh.read()
    assert sources_doc.render(text) == text, "run: python -m harness.data.doc"
    assert "`file.py`" in text and "`binarize`" in text and os.path.exists(sources_doc.DOC)


@pytest.mark.fit
def test_a_learning_rate_schedule_of_the_case_changes_the_recorded_learning_rate(tmp_path):
    pytest.importorskip("keras")
    from harness.trace import Trace
    from harness.training.train import train_unit

    text = GOOD.replace("fit: {epochs: 2, batch_size: 4}", "fit: {epochs: 3, batch_size: 4, callbacks: "
                        "[{LearningRateScheduler: {schedule: exponential, rate: 0.5}}]}")
    (tmp_path / "case.yaml").write_text(text)
    spec = load_case(str(tmp_path / "case.yaml")).spec_dict("patched")
    record = train_unit({"case": "t-good", "variant": "patched", "seed": 0, "spec": spec, "key": "k"})
    assert record["status"] == "ok", record.get("error")
    lr = Trace.from_bytes(record["trace_npz"]).value("learning_rate")
    assert lr[0] == pytest.approx(0.1) and lr[-1] == pytest.approx(0.025)  # 0.1, then x0.5 per epoch


HEALTHY = (GOOD.replace("id: t-good", "id: zoo-xor").replace("task: binary", "task: binary\nstatus: healthy")
           .replace("activation: softmax", "activation: sigmoid")
           .replace("patch:\n  - {set: model.layers.1.Dense.activation, to: sigmoid}\n", "")
           .replace("faults: [{code: ACH, layer: 1}]", "faults: [{code: NONE}]")
           .replace("symptom: {kind: accuracy_at_most, value: 0.6}", "symptom: {kind: none}"))


def test_a_healthy_program_has_no_patch_and_is_trained_once_as_its_patched_variant(tmp_path):
    from harness.running.runner import RunConfig, units_for

    (tmp_path / "zoo.yaml").write_text(HEALTHY)
    case = load_case(str(tmp_path / "zoo.yaml"))
    assert case.variants == ("patched",) and case.spec("patched") == case.spec("buggy")
    units = units_for([case], RunConfig(seeds=(0, 1)))
    assert [(u.variant, u.seed) for u in units] == [("patched", 0), ("patched", 1)]


def test_a_healthy_program_with_a_patch_or_a_fault_is_refused(tmp_path):
    for bad in (HEALTHY + "patch:\n  - {set: fit.epochs, to: 3}\n",
                HEALTHY.replace("faults: [{code: NONE}]", "faults: [{code: HLR}]")):
        (tmp_path / "zoo.yaml").write_text(bad)
        with pytest.raises(CaseFileError, match="a healthy program has no patch"):
            load_case(str(tmp_path / "zoo.yaml"))
    no_patch = GOOD.replace("patch:\n  - {set: model.layers.1.Dense.activation, to: sigmoid}\n", "")
    (tmp_path / "pair.yaml").write_text(no_patch)
    with pytest.raises(CaseFileError, match="at least one edit"):
        load_case(str(tmp_path / "pair.yaml"))
