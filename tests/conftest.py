import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = os.path.join(ROOT, "cases")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


@pytest.fixture
def case_path():
    return lambda name: os.path.join(CASES, "stackoverflow", f"{name}.yaml")


@pytest.fixture
def write_case(tmp_path):
    """Write a case file from text; returns its path."""

    def write(text: str, name: str = "case.yaml") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write
