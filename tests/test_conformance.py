"""Every registered detector passes check_detector; the suite itself catches bad detectors."""

import pytest

from detectors import registry
from detectors.base import Detector
from detectors.conformance import ConformanceError, check_detector


@pytest.mark.parametrize("name", sorted(registry.available()))
def test_registered_detector_conforms(name):
    passed = check_detector(registry.create(name))
    assert "check_no_lookahead" in passed and "check_pickle" in passed


class Peeking(Detector):
    """Reports, at each step, a finding about the step before: a look-back disguised as look-ahead."""

    name = "peeking"

    def observe(self, step):
        if step.index == 0:
            return []
        f = self._finding(step, "X", "late")
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
        return [self._finding(step, "X", "again")] if type(self).seen > 40 else []


@pytest.mark.parametrize("bad, check", [(Peeking, "check_no_lookahead"), (Mutating, "check_no_mutation"),
                                        (Forgetful, "check_deterministic")])
def test_suite_catches_bad_detectors(bad, check):
    with pytest.raises(ConformanceError, match=check):
        d = bad()
        d.reset()
        check_detector(d)
