"""Mutation operators: every mutant is undone by its patch, is a valid case, and shares its program's unit."""

import json

import pytest
import yaml

from harness.cases import mutants, schema
from harness.cases.load import load_case
from harness.cases.patch import apply_patch
from tests.test_case_format import HEALTHY

RICH = {  # a program every operator has something to mutate in
    "data": {"source": "sklearn.digits", "params": {"flatten": True}, "seed": 0,
             "preprocess": [{"scale": {"by": 0.0625}}], "validation": {"split": 0.2, "n": None}},
    "model": {"input_shape": [64], "layers": [
        {"Dense": {"units": 32, "activation": "relu"}}, {"Dropout": {"rate": 0.2}},
        {"Dense": {"units": 16, "activation": "tanh", "kernel_regularizer": {"L2": {"l2": 0.001}}}},
        {"Dense": {"units": 10, "activation": "softmax"}}]},
    "compile": {"loss": "categorical_crossentropy", "optimizer": {"Adam": {"learning_rate": 0.001}},
                "metrics": ["accuracy"]},
    "fit": {"epochs": 5, "batch_size": 32, "shuffle": True}, "semantics": "keras2"}


def test_every_operator_applies_to_a_rich_program_and_its_inverse_restores_it():
    found = mutants.mutations(RICH)
    assert {m.operator for m in found} == set(mutants.OPERATORS)
    for m in found:
        mutant = apply_patch(RICH, list(m.edits))
        assert mutant != RICH, m
        assert apply_patch(mutant, mutants.inverse(RICH, m.edits)) == RICH, m
        schema.Spec.model_validate(mutant)  # a mutant is a spec the schema accepts
        assert m.fault["code"] in schema.FAULT_CODES


def test_no_mutant_that_would_not_run():
    """Found by the first generated suite: such mutants crashed, and a crash is no training bug."""
    sparse = dict(RICH, compile=dict(RICH["compile"], loss="sparse_categorical_crossentropy"))
    assert "loss" not in {m.operator for m in mutants.mutations(sparse)}  # every other loss needs one-hot targets
    tokens = dict(RICH, model={"input_shape": [20], "layers": [{"Embedding": {"input_dim": 100, "output_dim": 8}},
                                                                 {"GlobalAveragePooling1D": {}},
                                                                 {"Dense": {"units": 1, "activation": "sigmoid"}}]})
    assert "unscale-inputs" not in {m.operator for m in mutants.mutations(tokens)}  # ids x1000 leave the vocabulary


def test_a_changed_loss_is_not_judged_by_the_loss():
    regression = dict(RICH, compile={"loss": "mse", "optimizer": "adam", "metrics": []})
    assert "loss" not in {m.operator for m in mutants.applicable(regression)}
    with_mae = dict(RICH, compile={"loss": "mse", "optimizer": "adam", "metrics": ["mae"]})
    assert "loss" in {m.operator for m in mutants.applicable(with_mae)}


def test_one_instance_per_operator_rotates_over_programs():
    found = mutants.mutations(RICH, ["learning-rate"])
    picks = {mutants.one_per_operator(found, turn)[0].param for turn in range(3)}
    assert picks == {"x100", "x1000", "div1000"}


def test_a_mutant_case_file_loads_and_its_patched_variant_is_the_program(tmp_path):
    from harness.cli.mutate import write_case

    (tmp_path / "zoo.yaml").write_text(HEALTHY)
    program = load_case(str(tmp_path / "zoo.yaml"))
    mutation = mutants.mutations(program.spec("patched").model_dump(mode="json"), ["learning-rate"])[0]
    path = write_case(mutants.mutant_case(program, mutation), program, str(tmp_path / "mutants"))
    mutant = load_case(path)
    assert mutant.case.truth.faults[0].code == "HLR" and mutant.case.generated["base"] == "zoo-xor"
    assert mutant.spec("patched") == program.spec("patched") and mutant.spec("buggy") != program.spec("buggy")
    assert mutant.variants == ("buggy", "patched")
    assert yaml.safe_load(open(path))["status"] == "questionable"  # not judged until `bugbench kill`


def test_the_store_finds_a_unit_trained_under_another_case(tmp_path):
    from harness.running.records import UnitId
    from harness.running.store import UnitStore

    store = UnitStore(str(tmp_path))
    program = UnitId("zoo-x", "patched", 0, "abcdef0123456789")
    store.put(program, {"status": "error", "error": "x"})  # errors are not stored: nothing to find
    assert store.get(program._replace(case="mut-x--lr")) is None
    (tmp_path / "units" / "zoo-x").mkdir(parents=True, exist_ok=True)
    stem = tmp_path / "units" / "zoo-x" / "patched-seed0-abcdef0123456789"
    import zipfile

    with zipfile.ZipFile(f"{stem}.npz", "w") as z:
        z.writestr("x", "y")
    (tmp_path / "units" / "zoo-x" / "patched-seed0-abcdef0123456789.json").write_text(json.dumps({"status": "ok"}))
    hit = UnitStore(str(tmp_path)).get(program._replace(case="mut-x--lr"))  # a later run: files written meanwhile
    assert hit and hit["trace"] == f"{stem}.npz"


@pytest.mark.parametrize("op", sorted(mutants.OPERATORS))
def test_each_operator_documents_itself(op):
    assert (mutants.OPERATORS[op].__doc__ or "").strip()


@pytest.mark.fit
def test_units_with_one_key_train_once(tmp_path, capsys):
    from harness import cli

    cases = tmp_path / "zoo"
    cases.mkdir()
    (cases / "a.yaml").write_text(HEALTHY)
    (cases / "b.yaml").write_text(HEALTHY.replace("id: zoo-xor", "id: zoo-xor-again"))
    assert cli.main(["run", "--cases-dir", str(cases), "--results", str(tmp_path / "r"), "--cache",
                     str(tmp_path / "c"), "--detector", "keras-ton"]) == 0
    assert "2 unit(s): 1 trained, 1 from the cache" in capsys.readouterr().err
    assert (tmp_path / "r" / "runs" / "zoo-xor-again" / "patched-seed0.json").exists()


def test_every_operator_is_in_the_docs():
    import os

    doc = open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "docs", "generated_suite.md")).read()
    assert all(f"| `{op}` |" in doc for op in mutants.OPERATORS)


def test_at_most_keeps_rare_operators_and_rotates_the_common_ones_over_programs():
    found = mutants.one_per_operator(mutants.mutations(RICH), 0)
    applies_to = {m.operator: 10 for m in found} | {"remove-dropout": 2, "remove-regulariser": 1}
    seen = set()
    for turn in range(len(found)):
        chosen = mutants.at_most(found, 6, turn, applies_to, programs=10)
        assert len(chosen) == 6 and {"remove-dropout", "remove-regulariser"} <= {m.operator for m in chosen}
        seen |= {m.operator for m in chosen}
    assert seen == {m.operator for m in found}
    assert mutants.at_most(found, 100, 0, applies_to, 10) == found
