"""A few units trained afresh against the committed results: no numerics change slips in unannounced.

Final training loss to a relative tolerance, and `diagnose`'s verdict exactly. The cases are
ones whose runs are not chaotic: on another CPU of this kind their float32 sums drift by less
than 1e-5 relative (measured between two machines: so-31880720 patched 1.19966e-4 vs
1.199661e-4, so-39525358 patched 0.1356800 vs 0.1356801), so RTOL = 1e-3 fails on a real
change of numerics (a different op, order or default), not on a different CPU. Chaotic runs
(SGD at learning rate 3) are left out: their last bits are the CPU's.
"""

import json
import os

import pytest

pytest.importorskip("keras")

from detectors.base import replay  # noqa: E402
from detectors.diagnose import Diagnose  # noqa: E402
from harness.cases.load import discover, load_cases  # noqa: E402
from harness.running.runner import RunConfig, units_for  # noqa: E402
from harness.trace import Trace  # noqa: E402
from harness.training.train import train_unit  # noqa: E402

pytestmark = pytest.mark.fit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RTOL = 1e-3
UNITS = [("so-31880720", "buggy"), ("so-31880720", "patched"), ("so-39525358", "buggy"), ("so-39525358", "patched")]


def committed(case: str, variant: str) -> dict:
    with open(os.path.join(ROOT, "results", "runs", case, f"{variant}-seed0.json")) as fh:
        return json.load(fh)


def first_error(findings) -> str | None:
    codes = [f["code"] if isinstance(f, dict) else f.code for f in findings
             if (f["severity"] if isinstance(f, dict) else f.severity) == "error"]
    return codes[0] if codes else None


@pytest.fixture(scope="module")
def cases():
    loaded, errors = load_cases(discover(os.path.join(ROOT, "cases")))
    assert not errors
    return {c.id: c for c in loaded}


@pytest.mark.parametrize("case_id, variant", UNITS)
def test_a_fresh_unit_matches_the_committed_one(cases, case_id, variant):
    (unit,) = [u for u in units_for([cases[case_id]], RunConfig(variants=(variant,))) if u.seed == 0]
    record = train_unit(unit.work())
    assert record["status"] == "ok", record.get("error")
    reference = committed(case_id, variant)
    got, want = record["summary"]["final"]["loss"], reference["summary"]["final"]["loss"]
    assert got == pytest.approx(want, rel=RTOL), f"final loss {got} vs committed {want}: numerics changed"
    trace = Trace.from_bytes(record["trace_npz"])
    trace.meta["facts"] = record["facts"]
    assert first_error(replay(Diagnose(), trace)) == first_error(reference["findings"]["diagnose"])
