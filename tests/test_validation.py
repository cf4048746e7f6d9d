"""Case files: schema errors name the file and line, all errors are collected."""

import pytest

from harness.cases.load import discover, load_case, load_cases
from harness.errors import CaseFileError

GOOD = """\
id: t-good
title: tiny
source: {kind: synthetic, ref: test}
task: binary
data:
  source: synthetic.xor
  params: {repeat: 2}
model:
  input_shape: [2]
  layers:
    - Dense: {units: 4, activation: tanh}
    - Dense: {units: 1, activation: softmax}
compile: {loss: binary_crossentropy, optimizer: {SGD: {learning_rate: 0.1}}, metrics: [accuracy]}
fit: {epochs: 2, batch_size: 4}
patch:
  - {set: model.layers.1.Dense.activation, to: sigmoid}
truth:
  faults: [{code: ACH, layer: 1}]
symptom: {kind: accuracy_at_most, value: 0.6}
"""


def errors_of(path):
    with pytest.raises(CaseFileError) as info:
        load_case(path)
    return [str(e) for e in info.value.errors]


def test_good_case_loads_and_patches(write_case):
    case = load_case(write_case(GOOD))
    assert case.id == "t-good"
    assert case.spec_dict("buggy")["model"]["layers"][1]["Dense"]["activation"] == "softmax"
    assert case.spec_dict("patched")["model"]["layers"][1]["Dense"]["activation"] == "sigmoid"
    assert case.spec_dict("buggy")["semantics"] == "keras2"


def test_steps_per_execution_is_in_the_spec_only_when_set(write_case):
    """A default left out of the spec keeps the cache keys of cases written before the key existed."""
    plain = load_case(write_case(GOOD))
    assert "steps_per_execution" not in plain.spec_dict("buggy")["compile"]
    spec = GOOD.replace("metrics: [accuracy]}", "metrics: [accuracy], steps_per_execution: 8}")
    batched = load_case(write_case(spec))
    assert batched.spec_dict("patched")["compile"]["steps_per_execution"] == 8
    bad = write_case(GOOD.replace("metrics: [accuracy]}", "metrics: [accuracy], steps_per_execution: 0}"))
    assert any("steps_per_execution" in e for e in errors_of(bad))


def test_unknown_key_has_line_and_suggestion(write_case):
    path = write_case(GOOD.replace("fit: {epochs: 2, batch_size: 4}", "fit: {epochs: 2, batch_size: 4, epochz: 3}"))
    assert errors_of(path) == [f"{path}:14: unknown key 'epochz' (did you mean 'epochs'?)"]


def test_wrong_type_names_line(write_case):
    path = write_case(GOOD.replace("batch_size: 4", "batch_size: four"))
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:14: fit.batch_size:")


def test_all_errors_collected(write_case):
    text = GOOD.replace("task: binary", "task: binry").replace("repeat: 2}", "repeat: 2}\n  colour: red")
    errs = errors_of(write_case(text))
    assert len(errs) == 2
    assert any(":4: task:" in e for e in errs)
    assert any(":8: unknown key 'colour'" in e for e in errs)


def test_python_tag_refused_with_line(write_case):
    path = write_case(GOOD.replace("title: tiny", "title: !!python/object/apply:os.system ['echo hi']"))
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:2: invalid YAML")


def test_yaml_syntax_error_has_line(write_case):
    path = write_case(GOOD.replace("task: binary", "task: [binary"))
    (err,) = errors_of(path)
    assert f"{path}:" in err and "invalid YAML" in err


def test_bad_patch_path_points_at_edit(write_case):
    path = write_case(GOOD.replace("model.layers.1.Dense.activation", "model.layers.5.Dense.activation"))
    (err,) = errors_of(path)
    assert err.startswith(f"{path}:16: patch edit 0:")


def test_patch_that_changes_nothing_is_an_error(write_case):
    path = write_case(GOOD.replace("to: sigmoid", "to: softmax"))
    (err,) = errors_of(path)
    assert "the patch changes nothing" in err


def test_truth_layer_out_of_range(write_case):
    path = write_case(GOOD.replace("{code: ACH, layer: 1}", "{code: ACH, layer: 9}"))
    (err,) = errors_of(path)
    assert "buggy model has 2 layers" in err


def test_absurd_budget_needs_opt_in(write_case):
    errs = errors_of(write_case(GOOD.replace("epochs: 2", "epochs: 1000000000")))
    assert "allow_large_budget" in errs[0]
    ok = GOOD.replace("epochs: 2", "epochs: 1000000000") + "allow_large_budget: true\n"
    assert load_case(write_case(ok, "ok.yaml")).case.fit.epochs == 10**9


def test_duplicate_ids_reported_other_cases_kept(write_case):
    a, b = write_case(GOOD, "a.yaml"), write_case(GOOD, "b.yaml")
    bad = write_case(GOOD.replace("task: binary", "task: 3"), "c.yaml")
    cases, errors = load_cases([a, b, bad])
    assert [c.path for c in cases] == [a]
    assert any("duplicate case id 't-good'" in str(e) and str(e).startswith(f"{b}:1:") for e in errors)
    assert any(str(e).startswith(f"{bad}:4:") for e in errors)


def test_repository_cases_are_schema_valid():
    cases, errors = load_cases(discover("cases"))
    assert not errors, [str(e) for e in errors]
    assert len(cases) >= 3


def test_bare_on_key_in_preprocessing_means_on(write_case):
    text = GOOD.replace("params: {repeat: 2}", "params: {repeat: 2}\n  preprocess: [{minmax: {on: y}}]")
    case = load_case(write_case(text))
    assert case.spec_dict("buggy")["data"]["preprocess"] == [{"minmax": {"on": "y"}}]
