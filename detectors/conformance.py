"""``check_detector``: the conformance suite every registered detector passes.

Like scikit-learn's estimator checks: small seeded toy traces go through the
detector and each property is asserted. Run it on a new detector before
registering it::

    from detectors.conformance import check_detector
    check_detector(MyDetector())
"""

from __future__ import annotations

import copy
import pickle

import numpy as np

from detectors.base import Detector, replay
from detectors.toy_traces import toy_traces


class ConformanceError(AssertionError):
    pass


def check_detector(detector: Detector) -> list[str]:
    """Run every check; raise ConformanceError on the first failure, else list what passed."""
    traces = toy_traces()
    passed = []
    for check in CHECKS:
        for name, trace in traces.items():
            try:
                check(detector, trace)
            except ConformanceError:
                raise
            except Exception as exc:  # a crash is a failure too
                raise ConformanceError(f"{check.__name__} on the {name} trace raised "
                                       f"{type(exc).__name__}: {exc}") from exc
        passed.append(check.__name__)
    return passed


def _fail(check: str, message: str):
    raise ConformanceError(f"{check}: {message}")


def check_deterministic(detector, trace) -> None:
    if replay(detector, trace) != replay(detector, trace):
        _fail("check_deterministic", "two replays of the same trace differ")


def check_reset(detector, trace) -> None:
    fresh = copy.deepcopy(detector)
    replay(detector, toy_traces(seed=1)["healthy"])
    if replay(detector, trace) != replay(fresh, trace):
        _fail("check_reset", "findings depend on what the detector saw before reset()")


def check_pickle(detector, trace) -> None:
    clone = pickle.loads(pickle.dumps(detector))
    if replay(clone, trace) != replay(detector, trace):
        _fail("check_pickle", "an unpickled copy finds something else")


def check_no_mutation(detector, trace) -> None:
    before = {k: v.copy() for k, v in trace.arrays.items()}
    meta = copy.deepcopy(trace.meta)
    replay(detector, trace)
    if meta != trace.meta or any(not np.array_equal(before[k], v, equal_nan=True) for k, v in trace.arrays.items()):
        _fail("check_no_mutation", "replay changed the trace")


def check_no_lookahead(detector, trace) -> None:
    """Each finding is about a step already shown, and is returned by that step's observe()."""
    detector.reset()
    detector.start(trace.meta)
    for step in trace.steps():
        for finding in detector.observe(step):
            if finding.step != step.index:
                _fail("check_no_lookahead", f"observe(step {step.index}) returned a finding for step {finding.step}")
    last = max((s.index for s in trace.steps()), default=-1)
    for finding in detector.finish():  # the end of training may judge, but only what was shown
        if finding.step != last:
            _fail("check_no_lookahead", f"finish() returned a finding for step {finding.step}, not the last ({last})")
    if any(f.step > last for f in detector.findings):
        _fail("check_no_lookahead", "a finding refers to a step that does not exist")


def check_findings_are_wellformed(detector, trace) -> None:
    n_layers = len(trace.meta.get("layers", []))
    for f in replay(detector, trace):
        if not f.code or not f.message:
            _fail("check_findings_are_wellformed", "a finding without code or message")
        if f.layer is not None and not 0 <= f.layer < max(n_layers, 1):
            _fail("check_findings_are_wellformed", f"layer {f.layer} is not a layer of the trace")


CHECKS = (check_deterministic, check_reset, check_pickle, check_no_mutation, check_no_lookahead,
          check_findings_are_wellformed)
