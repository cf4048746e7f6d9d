"""DeepCrime's kill criterion on final metrics over seeds."""

import math

from harness.cases.mutants import metric_for
from harness.scoring.killing import decide


def test_a_clearly_worse_mutant_is_killed_and_a_noisy_equal_one_is_not():
    killed = decide([0.95, 0.94, 0.96], [0.50, 0.52, 0.49], higher_is_better=True)
    assert killed["killed"] and killed["p_value"] < 0.05 and killed["effect_size"] > 5
    equal = decide([0.95, 0.94, 0.96], [0.95, 0.93, 0.96], higher_is_better=True)
    assert not equal["killed"]
    better = decide([0.5, 0.5, 0.5], [0.9, 0.9, 0.9], higher_is_better=True)
    assert not better["killed"]  # a mutant that trains better is no bug


def test_a_small_but_significant_difference_needs_an_effect_size():
    small = decide([1.00, 1.01, 1.02], [1.011, 1.021, 1.031], higher_is_better=False)
    assert not small["killed"]  # d below 0.5 however many seeds


def test_a_diverged_mutant_is_worse_than_any_finite_run():
    nan = decide([0.2, 0.21, 0.19], [math.nan, math.inf, math.nan], higher_is_better=False)
    assert nan["killed"] and nan["mutant"] == ["nan", "inf", "nan"]


def test_identical_runs_without_spread():
    assert decide([0.5, 0.5], [0.5, 0.5], True)["killed"] is False
    assert decide([0.9, 0.9], [0.5, 0.5], True)["killed"] is True


def test_the_metric_follows_the_task():
    spec = {"compile": {"loss": "categorical_crossentropy", "metrics": ["accuracy"]}}
    assert metric_for(spec) == ("accuracy", True)
    assert metric_for({"compile": {"loss": "mse", "metrics": ["mae"]}}) == ("mae", False)
    assert metric_for({"compile": {"loss": "mse"}}) == ("loss", False)


def test_a_mutant_that_does_not_run_is_no_killed_bug(tmp_path):
    import yaml

    from harness.scoring.judge import record_decision

    path = tmp_path / "m.yaml"
    path.write_text("# generated\n" + yaml.safe_dump({"id": "m", "status": "questionable", "status_reason": "x",
                                                      "symptom": {"kind": "none"}, "generated": {"kill": None}}))
    record_decision(str(path), dict(decide([0.9, 0.9], [float("nan")] * 2, True), killed=False,
                                    crashed="ValueError: shapes", metric="accuracy"), True)
    case = yaml.safe_load(path.read_text())
    assert case["status"] == "questionable" and "does not train" in case["status_reason"]
    assert path.read_text().startswith("# generated\n")
    record_decision(str(path), dict(decide([0.9, 0.9], [0.5, 0.5], True), metric="accuracy"), True)
    case = yaml.safe_load(path.read_text())
    assert case["status"] == "valid" and case["symptom"] == {"kind": "accuracy_gap_at_least", "value": 0.2}
