"""Every registered detector passes every conformance check; the suite itself catches bad detectors."""

import pytest

from detectors import registry
from detectors.base import Detector, NullDetector
from detectors.conformance import CHECKS, ConformanceError, check_detector, detector_checks, parametrize_with_checks

REGISTERED = [registry.create(name) for name in sorted(registry.available())]


@parametrize_with_checks(REGISTERED)
def test_registered_detector_conforms(detector, check):
    check(detector)


def test_every_registered_detector_meets_every_check():
    pairs = list(detector_checks(REGISTERED))
    assert len(pairs) == len(REGISTERED) * len(CHECKS)
    assert {c.name for _, c in pairs} >= {"check_no_lookahead", "check_pickle"}


def test_check_detector_runs_them_all():
    assert check_detector(NullDetector()) == [c.name for c in CHECKS]


class Peeking(Detector):
    """Reports, at each step, a finding about the step before: a look-back disguised as look-ahead."""

    name = "peeking"

    def observe(self, step):
        if step.index == 0:
            return []
        f = self.report(step, "X", "late", severity="error", key=step.index)
        f = f.__class__(**{**f.to_dict(), "step": step.index + 1})
        self.findings[-1] = f
        return [f]


class Mutating(Detector):
    name = "mutating"

    def start(self, meta):
        meta.setdefault("layers", []).append({"name": "ghost"})

    def observe(self, step):
        return []


class Forgetful(Detector):
    """Keeps state across runs: reset() does not clear it."""

    name = "forgetful"
    seen = 0

    def observe(self, step):
        type(self).seen += 1
        return [self.report(step, "X", "again", severity="error", key=step.index)] if type(self).seen > 40 else []


@pytest.mark.parametrize("bad, check", [(Peeking, "check_no_lookahead"), (Mutating, "check_no_mutation"),
                                        (Forgetful, "check_deterministic")])
def test_suite_catches_bad_detectors(bad, check):
    with pytest.raises(ConformanceError, match=check):
        check_detector(bad())
