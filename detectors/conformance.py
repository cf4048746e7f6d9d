"""The conformance suite every registered detector passes, one check at a time or all at once.

Like scikit-learn's estimator checks: small seeded toy traces go through the
detector and each property is asserted. Run it on a new detector before
registering it::

    from detectors.conformance import check_detector
    check_detector(MyDetector())

or, in a test suite, one test per detector and check (ids such as
``my-detector-check_pickle``)::

    from detectors.conformance import parametrize_with_checks

    @parametrize_with_checks([MyDetector()])
    def test_conforms(detector, check):
        check(detector)
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from detectors.base import Detector, replay
from detectors.toy_traces import toy_traces


class ConformanceError(AssertionError):
    pass


@dataclasses.dataclass(frozen=True)
class Check:
    """One property, asserted on every toy trace: ``check(detector)`` raises ConformanceError if it fails.

    A crash inside the detector fails the check too, naming the trace it crashed on.
    """

    prop: Callable

    @property
    def name(self) -> str:
        return self.prop.__name__

    def __call__(self, detector: Detector) -> None:
        for trace_name, trace in toy_traces().items():
            try:
                self.prop(detector, trace)
            except ConformanceError:
                raise
            except Exception as exc:  # a crash is a failure too
                raise ConformanceError(f"{self.name} on the {trace_name} trace raised "
                                       f"{type(exc).__name__}: {exc}") from exc

    def __repr__(self) -> str:
        return self.name


def detector_checks(detectors: Iterable[Detector]) -> Iterator[tuple[Detector, Check]]:
    """Every (detector, check) pair, detector by detector, checks in CHECKS' order."""
    for detector in detectors:
        for check in CHECKS:
            yield detector, check


def parametrize_with_checks(detectors: Iterable[Detector]):
    """A ``pytest.mark.parametrize`` over ``detector, check``: one test per detector and check."""
    import pytest  # a test-suite helper: pytest is not needed to run a check

    pairs = list(detector_checks(detectors))
    return pytest.mark.parametrize("detector, check", pairs, ids=[f"{d.name}-{c.name}" for d, c in pairs])


def check_detector(detector: Detector) -> list[str]:
    """Run every check; raise ConformanceError on the first failure, else list what passed."""
    passed = []
    for _, check in detector_checks([detector]):
        check(detector)
        passed.append(check.name)
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


CHECKS = tuple(Check(prop) for prop in (check_deterministic, check_reset, check_pickle, check_no_mutation,
                                          check_no_lookahead, check_findings_are_wellformed))
