import pytest

from harness.cases.patch import PatchError, apply_patch

SPEC = {"model": {"layers": [{"Dense": {"units": 4}}, {"Dense": {"units": 1, "activation": "softmax"}}]},
        "compile": {"loss": "mse"}}


def test_set_replaces_and_adds_without_touching_input():
    out = apply_patch(SPEC, [{"set": "model.layers.1.Dense.activation", "to": "sigmoid"},
                             {"set": "model.layers.0.Dense.kernel_initializer", "to": "zeros"}])
    assert out["model"]["layers"][1]["Dense"]["activation"] == "sigmoid"
    assert out["model"]["layers"][0]["Dense"]["kernel_initializer"] == "zeros"
    assert SPEC["model"]["layers"][1]["Dense"]["activation"] == "softmax"


def test_insert_and_delete():
    out = apply_patch(SPEC, [{"insert": "model.layers.1", "value": {"Activation": {"activation": "relu"}}},
                             {"delete": "compile.loss"}])
    assert [next(iter(layer)) for layer in out["model"]["layers"]] == ["Dense", "Activation", "Dense"]
    assert "loss" not in out["compile"]


@pytest.mark.parametrize("edit, words", [
    ({"set": "model.layers.7.Dense.units", "to": 3}, "not an index"),
    ({"delete": "compile.optimizer"}, "does not exist"),
    ({"insert": "model.layers.9", "value": {}}, "not a list position"),
    ({"set": "compile.loss.x", "to": 1}, "a value, not a mapping"),
])
def test_bad_paths_name_the_edit(edit, words):
    with pytest.raises(PatchError) as info:
        apply_patch(SPEC, [{"set": "compile.loss", "to": "mae"}, edit])
    assert info.value.index == 1
    assert words in str(info.value)
