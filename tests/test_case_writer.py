"""One case writer for `new`, `mutate` and `kill`: a draft the loader accepts, renamed over its path, under a
stated replacement policy."""

import os

import pytest

from harness.cases.writer import GENERATED, CaseWriteError, write_case_file
from tests.test_validation import GOOD


def test_a_valid_case_is_written_and_no_draft_is_left(tmp_path):
    path = write_case_file(str(tmp_path / "a.yaml"), GOOD, replaces="nothing")
    assert open(path).read() == GOOD and os.listdir(tmp_path) == ["a.yaml"]


def test_an_invalid_draft_replaces_nothing(tmp_path):
    target = tmp_path / "a.yaml"
    target.write_text(GOOD)
    with pytest.raises(CaseWriteError, match="no valid case"):
        write_case_file(str(target), GOOD.replace("epochs: 2", "epochs: two"), replaces="anything")
    assert target.read_text() == GOOD and os.listdir(tmp_path) == ["a.yaml"]


@pytest.mark.parametrize("existing, replaces, allowed", [
    (GOOD, "nothing", False), (GOOD, "generated", False), (GOOD, "anything", True),
    (f"{GENERATED} from x\n" + GOOD, "generated", True), (f"{GENERATED} from x\n" + GOOD, "nothing", False),
])
def test_what_a_write_may_replace(tmp_path, existing, replaces, allowed):
    target = tmp_path / "a.yaml"
    target.write_text(existing)
    new = GOOD.replace("title: tiny", "title: new")
    if allowed:
        write_case_file(str(target), new, replaces=replaces)
        assert target.read_text() == new
    else:
        with pytest.raises(CaseWriteError, match="not overwritten"):
            write_case_file(str(target), new, replaces=replaces)
        assert target.read_text() == existing
