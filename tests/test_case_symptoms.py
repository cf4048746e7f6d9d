"""A case's symptom, judged from run summaries (harness.scoring.reproduced), one kind at a time."""

import math

import pytest

from harness.cases import schema
from harness.running.records import Summary, SymptomSnapshot
from harness.scoring.reproduced import final_accuracy, shows


def run(**final):
    return Summary(final=final, loss_nonfinite=False)


HEALTHY = run(loss=0.2, accuracy=0.95, val_loss=0.25)

CASES = [
    ({"kind": "nan_loss"}, run(loss="nan"), None, True),
    ({"kind": "nan_loss"}, Summary(final={"loss": 0.3}, loss_nonfinite=True), None, True),  # NaN mid-run
    ({"kind": "nan_loss"}, HEALTHY, None, False),
    ({"kind": "accuracy_at_most", "value": 0.6}, run(loss=1.0, accuracy=0.5), None, True),
    ({"kind": "accuracy_at_most", "value": 0.6}, HEALTHY, None, False),
    ({"kind": "loss_at_least", "value": 1.0}, run(loss="inf"), None, True),
    ({"kind": "loss_at_least", "value": 1.0}, HEALTHY, None, False),
    ({"kind": "loss_ratio_at_least", "value": 3.0}, run(loss=0.7), HEALTHY, True),
    ({"kind": "loss_ratio_at_least", "value": 3.0}, run(loss=0.5), HEALTHY, False),
    ({"kind": "accuracy_gap_at_least", "value": 0.1}, run(loss=1.0, accuracy=0.8), HEALTHY, True),
    ({"kind": "accuracy_gap_at_least", "value": 0.1}, run(loss=1.0, accuracy=0.9), HEALTHY, False),
    ({"kind": "overfit_gap_at_least", "value": 0.08}, run(loss=0.38, val_loss=0.52), None, True),
    ({"kind": "overfit_gap_at_least", "value": 0.08}, run(loss=0.48, val_loss=0.52), None, False),
    ({"kind": "overfit_gap_at_least", "value": 0.08}, run(loss=0.38), None, None),  # no validation split
    ({"kind": "none"}, HEALTHY, None, None),
]


@pytest.mark.parametrize("symptom, summary, patched, expected", CASES)
def test_each_symptom_kind(symptom, summary, patched, expected):
    assert shows(SymptomSnapshot(**symptom), summary, patched) is expected


def test_every_schema_symptom_is_judged():
    judged = {c[0]["kind"] for c in CASES}
    assert judged == set(schema.SYMPTOMS)


def test_comparing_symptoms_cannot_be_told_without_the_patched_run():
    assert shows(SymptomSnapshot(kind="accuracy_gap_at_least", value=0.1), HEALTHY, None) is None


def test_accuracy_under_its_metric_name():
    assert final_accuracy(run(binary_accuracy=0.7)) == 0.7
    assert final_accuracy(run(accuracy=0.6, categorical_accuracy=0.9)) == 0.6  # Keras's own name first
    assert math.isnan(final_accuracy(run(loss=0.1)))
    assert shows(SymptomSnapshot(kind="accuracy_at_most", value=0.75), run(binary_accuracy=0.7), None) is True
