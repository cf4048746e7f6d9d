"""`bugbench new`: where the file goes, what it refuses, and that the file is a valid case at once."""

import json
import os
import subprocess
import sys

import pytest

from harness import cli
from harness.cases import scaffold, schema
from harness.cases.load import discover, load_case, load_cases

REPO_CASES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cases")


@pytest.mark.parametrize("case_id, kind, expected", [
    ("so-12345", "stackoverflow", os.path.join("cases", "stackoverflow", "12345.yaml")),
    ("gh-my-repo", "github", os.path.join("cases", "github", "my-repo.yaml")),
    ("lr-sweep", "other", os.path.join("cases", "other", "lr-sweep.yaml")),
])
def test_ids_map_to_paths_like_the_existing_cases(case_id, kind, expected):
    assert scaffold.kind_of(case_id) == kind
    assert scaffold.case_path(case_id, kind) == expected


def test_existing_cases_follow_the_same_mapping():
    for path in discover(REPO_CASES):
        case = load_case(path).case
        if os.path.basename(os.path.dirname(path)) == "collected":  # pairs from outside the paper: <id>.yaml
            assert os.path.basename(path) == f"{case.id}.yaml"
            continue
        kind = scaffold.kind_of(case.id)
        # GitHub files keep the repository's capitals; ids are lower case.
        assert scaffold.case_path(case.id, kind, REPO_CASES).lower() == path.lower()


def test_new_writes_a_valid_case_and_says_what_next(tmp_path, capsys):
    cases_dir = tmp_path / "cases"
    assert cli.main(["new", "so-12345", "--cases-dir", str(cases_dir)]) == 0
    path = cases_dir / "stackoverflow" / "12345.yaml"
    out = capsys.readouterr().out
    assert out.splitlines()[0] == str(path)
    for step in (f"validate {path}", "run --case so-12345 --seeds 3", "show so-12345"):
        assert step in out
    cases, errors = load_cases([str(path)])
    assert not errors and cases[0].id == "so-12345"
    source = cases[0].case.source
    assert (source.kind, source.ref) == ("stackoverflow", "12345")
    assert source.url == "https://stackoverflow.com/questions/12345"
    assert cases[0].spec("buggy") != cases[0].spec("patched")


@pytest.mark.parametrize("case_id, kind", [("gh-my-repo", None), ("lr-sweep", None), ("so-777", "other")])
def test_every_kind_gives_a_valid_case(tmp_path, case_id, kind):
    path = scaffold.new_case(case_id, str(tmp_path / "cases"), kind=kind)
    case = load_case(path).case
    assert case.id == case_id and case.source.kind == (kind or scaffold.kind_of(case_id))
    assert not [p for p in os.listdir(os.path.dirname(path)) if p.startswith("_")]  # no draft left behind


def test_refuses_to_overwrite_without_force(tmp_path, capsys):
    cases_dir = str(tmp_path / "cases")
    path = scaffold.new_case("so-1", cases_dir)
    with open(path, "a") as fh:
        fh.write("# edited\n")
    assert cli.main(["new", "so-1", "--cases-dir", cases_dir]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert open(path).read().endswith("# edited\n")
    assert cli.main(["new", "so-1", "--cases-dir", cases_dir, "--force"]) == 0
    assert not open(path).read().endswith("# edited\n")


def test_refuses_an_id_used_by_another_file(tmp_path, capsys):
    cases_dir = str(tmp_path / "cases")
    scaffold.new_case("so-1", cases_dir, kind="other")  # cases/other/so-1.yaml
    assert cli.main(["new", "so-1", "--cases-dir", cases_dir, "--force"]) == 2
    err = capsys.readouterr().err
    assert "case id 'so-1' is already used by" in err and "other" in err
    assert not os.path.exists(os.path.join(cases_dir, "stackoverflow", "1.yaml"))


def test_refuses_the_ids_of_the_repository_cases(capsys):
    assert cli.main(["new", "so-48385830", "--cases-dir", REPO_CASES, "--kind", "other"]) == 2
    assert "already used by" in capsys.readouterr().err


def test_refuses_a_malformed_id(tmp_path, capsys):
    assert cli.main(["new", "SO 1", "--cases-dir", str(tmp_path)]) == 2
    assert "is not a case id" in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_template_explains_every_fault_code_and_symptom():
    text = scaffold.render("so-1", "stackoverflow")
    for code in schema.FAULT_CODES:
        assert f" {code} " in text, code
    for kind in schema.SYMPTOMS:
        assert f"#   {kind}" in text, kind


def test_template_comments_every_key():
    """Each key of the template has a comment on the line before it, or its own (keys inside flow maps aside)."""
    lines = scaffold.render("so-1", "stackoverflow").splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
            continue
        assert lines[i - 1].strip().startswith("#") or "#" in line, f"line {i + 1} has no comment: {line}"


def test_new_does_not_import_tensorflow(tmp_path):
    code = ("import sys; from harness import cli\n"
            f"assert cli.main(['new', 'so-5', '--cases-dir', {str(tmp_path)!r}]) == 0\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.slow
def test_template_passes_the_keras_checks(tmp_path, capsys):
    path = scaffold.new_case("so-12345", str(tmp_path / "cases"))
    assert cli.main(["validate", path]) == 0


@pytest.mark.slow
def test_template_reproduces_its_symptom(tmp_path):
    cases_dir, results = str(tmp_path / "cases"), tmp_path / "results"
    scaffold.new_case("so-12345", cases_dir)
    argv = ["run", "--cases-dir", cases_dir, "--case", "so-12345", "--results", str(results),
            "--cache", str(tmp_path / "cache")]
    assert cli.main(argv) == 0
    final = {v: json.loads((results / "runs" / "so-12345" / f"{v}-seed0.json").read_text())["summary"]["final"]
             for v in ("buggy", "patched")}
    assert final["buggy"]["accuracy"] <= 0.7 < final["patched"]["accuracy"]
