"""Hostile and broken input: every attempt ends in a named error, and nothing else is lost.

Each test is one row of docs/reliability.md's attack table. None trains a model.
"""

import json
import os
import subprocess
import sys

import pytest

from harness import cli
from harness.cases.load import discover, load_case, load_cases
from harness.errors import CaseFileError
from harness.reporting import tables
from harness.running.records import UnitId
from harness.running.store import UnitStore
from tests.test_validation import GOOD

CSV_CASE = GOOD.replace("source: synthetic.xor\n  params: {repeat: 2}",
                        "source: file.csv\n  params: {path: PATH, y: label}")


def errors_of(path):
    with pytest.raises(CaseFileError) as info:
        load_case(str(path))
    return info.value.errors


# -- 1. an alias bomb --------------------------------------------------------------------------

def bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n" + GOOD


def test_an_alias_bomb_is_refused_in_bounded_memory(tmp_path):
    """342 bytes, 9 levels: 9^10 values once expanded. Refused from the node graph, never expanded."""
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb(9))
    code = (f"import resource, sys; sys.path.insert(0, {os.getcwd()!r})\n"
            "resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))\n"
            "from harness.cases.load import load_case\nfrom harness.errors import CaseFileError\n"
            f"try:\n    load_case({str(path)!r})\nexcept CaseFileError as e:\n    print(e.errors[0])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "expands to more than" in out.stdout and "bomb.yaml:" in out.stdout


def test_a_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("loop: &l [1, *l]\n" + GOOD)
    assert "recursive alias" in errors_of(path)[0].message


# -- 3. files that are not case files ------------------------------------------------------------

@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_bytes(GOOD.encode().replace(b"tiny", b"ti\x00ny")), "invalid YAML"),
    (lambda p: p.mkdir(), "a folder"),
    (lambda p: os.symlink(p.parent / "gone.yaml", p), "broken symbolic link"),
    (lambda p: os.mkfifo(p), "not a regular file"),
])
def test_odd_files_are_errors_and_the_good_case_still_loads(tmp_path, make, words):
    (tmp_path / "good.yaml").write_text(GOOD)
    make(tmp_path / "odd.yaml")
    cases, errors = load_cases(discover(str(tmp_path)))  # a FIFO would block a plain open(): it must not
    assert [c.id for c in cases] == ["t-good"]
    assert len(errors) == 1 and errors[0].path.endswith("odd.yaml") and words in errors[0].message


def test_a_case_file_that_fails_to_load_keeps_its_results(tmp_path, monkeypatch):
    """A full run with a broken case file prunes nothing (its id is unknown, so its results look orphaned)."""
    from harness.running import runner

    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "good.yaml").write_text(GOOD)
    (cases / "broken.yaml").write_text("id: broken\ntitle: [\n")
    kept = tmp_path / "results" / "runs" / "broken" / "buggy-seed0.json"
    kept.parent.mkdir(parents=True)
    kept.write_text("{}")
    seen = {}
    monkeypatch.setattr(runner, "run", lambda selected, config: seen.update(prune=config.prune) or [])
    assert cli.main(["run", "--cases-dir", str(cases), "--results", str(tmp_path / "results"),
                     "--cache", str(tmp_path / "cache"), "--prune"]) == 1
    assert seen["prune"] is False and kept.exists()


# -- 4. paths out of the case's folder ---------------------------------------------------------

def test_a_symlink_out_of_the_case_folder_is_refused(tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    (tmp_path / "secret.csv").write_text("a,label\n1,0\n")
    os.symlink(tmp_path / "secret.csv", folder / "data.csv")
    (folder / "case.yaml").write_text(CSV_CASE.replace("PATH", "data.csv"))
    assert "escapes the case's folder" in errors_of(folder / "case.yaml")[0].message
    os.symlink(tmp_path, folder / "linked")
    (folder / "case.yaml").write_text(CSV_CASE.replace("PATH", "linked/secret.csv"))
    assert "escapes the case's folder" in errors_of(folder / "case.yaml")[0].message


@pytest.mark.parametrize("layer, words", [
    ("IntegerLookup: {vocabulary: /etc/passwd}", "names a file"),
    ("StringLookup: {vocabulary: ~/words.txt}", "names a file"),
    ("IntegerLookup: {vocabulary: .env}", "names a file"),  # was: read from the current folder, and shown
    ("TFSMLayer: {filepath: model}", "loads a saved model"),
])
def test_layer_arguments_that_name_files_are_refused_without_reading_them(write_case, layer, words):
    text = GOOD.replace("    - Dense: {units: 4, activation: tanh}\n", f"    - {layer}\n    - Dense: {{units: 4}}\n")
    (err,) = errors_of(write_case(text))
    assert words in err.message and "root:" not in err.message  # /etc/passwd's first line is never shown


# -- 5. corrupt and partial stored files ------------------------------------------------------

def test_a_truncated_trace_is_not_served_from_the_cache(tmp_path):
    store = UnitStore(str(tmp_path))
    unit = UnitId("c", "buggy", 0, "0123456789abcdef")
    store.put(unit, {"status": "ok", "trace_npz": b"PK\x03\x04" + b"\x00" * 96})  # 100 bytes, no zip directory
    assert store.get(unit) is None  # so the run trains it again


def test_report_names_an_unreadable_result_file_and_goes_on(tmp_path, capsys):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(os.path.join(os.path.dirname(__file__), "fixtures", "results"), results)
    (results / "runs" / "case-a" / "buggy-seed0.json").write_text('{"case": {"id": ')  # truncated
    (results / "runs" / "case-a" / "buggy-seed1.json").write_text("")  # empty
    assert cli.main(["report", "--results", str(results)]) == 0
    err = capsys.readouterr().err
    assert "buggy-seed0.json" in err and "buggy-seed1.json" in err


def test_results_of_an_older_format_are_refused_with_what_to_run(tmp_path, capsys):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(os.path.join(os.path.dirname(__file__), "fixtures", "results"), results)
    old = results / "runs" / "case-a" / "buggy-seed0.json"
    record = json.loads(old.read_text())
    del record["format"]  # what every record before the format field looks like
    old.write_text(json.dumps(record))
    assert cli.main(["report", "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert f"{old}: result format 1, this bugbench reads format 2" in err and "bugbench run" in err


def test_a_record_that_is_no_unit_record_is_named_and_skipped(tmp_path, capsys):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(os.path.join(os.path.dirname(__file__), "fixtures", "results"), results)
    bad = results / "runs" / "case-a" / "buggy-seed0.json"
    record = json.loads(bad.read_text())
    record["seed"] = "zero"
    bad.write_text(json.dumps(record))
    assert cli.main(["report", "--results", str(results)]) == 0
    assert f"{bad}: not a valid unit record (seed:" in capsys.readouterr().err


def test_report_of_error_rows_only(tmp_path):
    runs = tmp_path / "results" / "runs" / "x"
    runs.mkdir(parents=True)
    snapshot = {"id": "x", "status": "valid", "truth": {"faults": [{"code": "ACH", "layer": 0}]},
                "symptom": {"kind": "accuracy_at_most", "value": 0.5}, "paper": None}
    for variant in ("buggy", "patched"):
        (runs / f"{variant}-seed0.json").write_text(json.dumps(
            {"format": 2, "case": snapshot, "variant": variant, "seed": 0, "status": "error", "error": "boom",
             "detectors": ["diagnose"]}))
    assert tables.report(str(tmp_path / "results"))


def test_an_unwritable_results_folder_fails_before_training(tmp_path, capsys):
    """(A read-only folder stops nobody running as root, as CI does; a file in the folder's place stops all.)"""
    (tmp_path / "results").write_text("not a folder")
    assert cli.main(["run", "--cases-dir", "cases", "--results", str(tmp_path / "results")]) == 2
    assert "cannot write results" in capsys.readouterr().err


def test_a_failed_write_leaves_no_temporary_file_and_prune_removes_old_ones(tmp_path, monkeypatch):
    from harness import trace

    target = tmp_path / "units" / "c" / "buggy-seed0-0123456789abcdef.npz"

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trace.os, "fsync", full)
    with pytest.raises(OSError):
        trace.write_atomic(str(target), b"x" * 1000)
    monkeypatch.undo()
    assert not list(tmp_path.rglob("*.tmp*"))
    (target.parent / (target.name + ".tmp999")).write_bytes(b"half")  # a kill -9 mid-write
    assert UnitStore(str(tmp_path)).prune(set()) == (1, 4)


# -- 6. values that validate but should not -------------------------------------------------

@pytest.mark.parametrize("edit, words", [
    (("fit: {epochs: 2, batch_size: 4}", "fit: {epochs: 20, epochs: 3, batch_size: 4}"), "duplicate key 'epochs'"),
    (("fit: {epochs: 2, batch_size: 4}", "fit: {epochs: true, batch_size: 4}"), "whole number, got a boolean"),
    (("fit: {epochs: 2, batch_size: 4}", "fit: {epochs: 2, batch_size: 1.0e+20}"), "fit.batch_size"),
    (("  - {set: model.layers.1.Dense.activation, to: sigmoid}",
      "  - {set: model.layers.1.Dense.activation, to: sigmoid}\n  - {set: fit.epochs, to: 1000000000000}"),
     "the patched spec: fit.epochs=1000000000000 exceeds"),
])
def test_values_that_would_run_wrong_are_refused_with_a_line(write_case, edit, words):
    (err,) = errors_of(write_case(GOOD.replace(*edit)))
    assert words in err.message and err.line


# -- 11. paths on the command line ------------------------------------------------------------

def test_missing_paths_are_errors_not_empty_successes(tmp_path, capsys):
    assert cli.main(["report", "--results", str(tmp_path / "nowhere")]) == 2
    assert not (tmp_path / "nowhere").exists()
    assert cli.main(["list", "--cases-dir", str(tmp_path / "nowhere")]) == 2
    assert cli.main(["validate", str(tmp_path / "nowhere.yaml")]) == 1
    assert cli.main(["run", "--cases-dir", str(tmp_path / "nowhere"), "--results", str(tmp_path / "r")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_a_copied_results_folder_plots_from_the_cache_it_is_given(tmp_path, capsys):
    """Traces are found in --cache; without it, report --plots says which cases lack them and exits 1."""
    from tests.test_plots import CASE, small_trace, write_unit

    results, old_cache = tmp_path / "results", tmp_path / "old-cache"
    old_cache.mkdir()
    for variant in ("buggy", "patched"):
        write_unit(results, old_cache, CASE, variant, small_trace(), {"keras-ton": []})
    moved = tmp_path / "cache" / "units" / CASE
    moved.mkdir(parents=True)
    for trace in old_cache.iterdir():
        trace.rename(moved / trace.name)  # the cache moved; the records still name the old place
    assert cli.main(["report", "--results", str(results), "--plots"]) == 1
    assert "traces are missing or unreadable" in capsys.readouterr().err
    assert cli.main(["report", "--results", str(results), "--plots", "--cache", str(tmp_path / "cache")]) == 0
    assert (results / "plots" / f"{CASE}.png").exists()


# -- 12. round two: arguments, stored files, case files ------------------------------------------

@pytest.mark.parametrize("argv", [
    ["run", "--seeds", "0"], ["run", "--seeds", "-1"], ["run", "--seeds", "100000000"],
    ["fidelity", "--more-seeds", "-1"], ["run", "--jobs", "0"],
    ["run", "--timeout", "0"], ["run", "--timeout", "nan"], ["run", "--timeout", "-1"], ["run", "--timeout", "inf"],
    ["kill", "--seeds", "0"], ["kill", "--timeout", "nan"], ["mutate", "--all", "--per-program", "0"],
])
def test_arguments_that_would_delete_or_hang_are_refused_by_the_parser(tmp_path, capsys, argv):
    """Was: `run --seeds 0` deleted every result file and rewrote the tables empty, exit 0; `kill --seeds 0`
    marked every mutant equivalent; `--timeout 0` and `nan` were accepted and hung."""
    results = tmp_path / "results" / "runs" / "x"
    results.mkdir(parents=True)
    (results / "buggy-seed0.json").write_text("{}")
    with pytest.raises(SystemExit) as info:
        cli.main([*argv, *(["--results", str(tmp_path / "results")] if argv[0] in ("run", "fidelity") else [])])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "out of range" in err or "no time limit" in err or "not a number" in err, err
    assert (results / "buggy-seed0.json").exists()


def test_time_limits_parse_as_seconds_auto_or_none():
    from harness.cli.options import seconds
    from harness.running.runner import LIMIT_CAP, unit_limit

    assert (seconds("5"), seconds("auto"), seconds("none"), seconds("off")) == (5.0, "auto", None, None)
    assert cli.parser_().parse_args(["run"]).timeout == "auto"  # a hang ends by default
    limit = unit_limit("auto")
    assert limit({"spec": {"fit": {"epochs": 3}}}) == 690 and limit({"spec": {"fit": {"epochs": 5000}}}) == LIMIT_CAP
    assert unit_limit(None)({"spec": {}}) is None and unit_limit(7.0)({"spec": {}}) == 7.0


def _result_files(results, cases):
    for case in cases:
        folder = results / "runs" / case
        folder.mkdir(parents=True)
        for variant in ("buggy", "patched"):
            (folder / f"{variant}-seed0.json").write_text("{}")


def test_results_of_cases_not_in_the_run_are_kept_and_named_unless_pruned(tmp_path, capsys):
    """Was: a full run on a smaller --cases-dir silently deleted the other cases' results (262 -> 4)."""
    from harness.running.results import ResultsDir
    from harness.running.runner import _prune_or_note

    results = tmp_path / "results"
    _result_files(results, ["a", "b", "c"])
    units = [UnitId("a", v, 0, "0" * 16) for v in ("buggy", "patched")]
    _prune_or_note(ResultsDir(str(results)), units, prune=False)
    assert len(list(results.rglob("*.json"))) == 6
    assert "4 result file(s) of 2 case(s)" in capsys.readouterr().err
    _prune_or_note(ResultsDir(str(results)), units, prune=True)
    err = capsys.readouterr().err
    assert sorted(p.parent.name for p in results.rglob("*.json")) == ["a", "a"]
    assert err.count("removed ") == 4 and "b/buggy-seed0.json" in err and not (results / "runs" / "b").exists()


def test_prune_with_a_case_selection_is_refused(tmp_path, capsys):
    _result_files(tmp_path / "results", ["a", "b"])
    assert cli.main(["run", "--prune", "--case", "a", "--results", str(tmp_path / "results")]) == 2
    assert "--prune needs a full run" in capsys.readouterr().err
    assert len(list((tmp_path / "results").rglob("*.json"))) == 4


def test_mutate_never_overwrites_a_case_file_it_did_not_write(tmp_path, capsys):
    zoo, out = tmp_path / "zoo", tmp_path / "mutants"
    zoo.mkdir()
    out.mkdir()
    healthy = GOOD.replace("id: t-good", "id: prog").split("patch:")[0] + (
        "status: healthy\ntruth: {faults: [{code: NONE}]}\nsymptom: {kind: none}\n")
    (zoo / "prog.yaml").write_text(healthy)
    assert cli.main(["mutate", "prog", "--zoo", str(zoo), "--out", str(out)]) == 0
    written = sorted(out.glob("*.yaml"))
    assert written
    mine = written[0]
    mine.write_text("# my own case, by hand\n" + mine.read_text().split("\n", 1)[1])
    before = mine.read_text()
    assert cli.main(["mutate", "prog", "--zoo", str(zoo), "--out", str(out)]) == 1
    assert mine.read_text() == before and "not overwritten" in capsys.readouterr().err
    assert cli.main(["mutate", "--all", "--zoo", str(zoo), "--out", str(out)]) == 1  # --all clears only its own
    assert mine.read_text() == before


@pytest.mark.parametrize("edit", [
    ("- Dense: {units: 4, activation: tanh}", "- Dense: {units: 4, activation: tanh, kernel_regularizer: "
                                              "{L1: {l1: .nan}}}"),
    ("SGD: {learning_rate: 0.1}", "SGD: {learning_rate: .inf}"),
    ("  - {set: model.layers.1.Dense.activation, to: sigmoid}",
     "  - {set: model.layers.1.Dense.activation, to: sigmoid}\n  - {set: compile.optimizer.SGD.learning_rate, "
     "to: -.inf}"),
])
def test_nan_and_infinite_settings_are_refused_at_their_line(write_case, edit):
    """Was: `l1: .nan` became null and trained with Keras' default 0.01."""
    text = GOOD.replace(*edit)
    (err,) = errors_of(write_case(text))
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "inf" in t or "nan" in t)
    assert "not a finite number" in err.message and err.line == line


def test_published_numbers_may_be_nan(write_case):
    assert load_case(write_case(GOOD + "original: {loss_before: .nan}\n")).case.original.loss_before != 0


def test_a_deeply_nested_case_is_one_error_and_the_others_load(tmp_path):
    """Was: a 2 KB case with 999 nested lists aborted list/validate/run for the whole folder (RecursionError)."""
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "deep.yaml").write_text(GOOD.replace("id: t-good", "id: deep") + "notes: " + "[" * 999 + "]" * 999)
    cases, errors = load_cases(discover(str(tmp_path)))
    assert [c.id for c in cases] == ["t-good"]
    assert len(errors) == 1 and "nested more than" in errors[0].message and errors[0].line


def test_a_link_to_the_root_folder_is_not_walked(tmp_path):
    """Was: `cases/root -> /` made `list` walk the whole file system."""
    (tmp_path / "good.yaml").write_text(GOOD)
    os.symlink("/", tmp_path / "root")
    code = f"import sys; sys.path.insert(0, {os.getcwd()!r})\nfrom harness.cases.load import discover\n" \
           f"print(discover({str(tmp_path)!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert out.stdout.strip() == repr([str(tmp_path / "good.yaml")])


@pytest.mark.parametrize("content", ["[]", "null", '"ok"', "[1, 2]"])
def test_a_cache_record_that_is_no_record_is_retrained_with_a_warning(tmp_path, capsys, content):
    """Was: a TypeError traceback in store._read that stopped every run on that cache."""
    store = UnitStore(str(tmp_path))
    unit = UnitId("c", "buggy", 0, "0123456789abcdef")
    path = tmp_path / "units" / "c" / "buggy-seed0-0123456789abcdef.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    assert store.get(unit) is None
    assert str(path) in capsys.readouterr().err


@pytest.mark.parametrize("content", ["[]", "null", "[{}]"])
def test_a_findings_file_that_is_no_mapping_means_replay(tmp_path, content):
    """Was: a findings file holding [] crashed `run` (AttributeError in FindingsStore.get)."""
    from harness.running.findings import FindingsStore

    (tmp_path / "u.findings.json").write_text(content)
    store = FindingsStore(str(tmp_path / "u.npz"))
    assert store.get("diagnose", "abc") is None


def _fixture_results(tmp_path):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(os.path.join(os.path.dirname(__file__), "fixtures", "results"), results)
    return results


@pytest.mark.parametrize("make", [lambda p: os.mkfifo(p), lambda p: os.symlink("/dev/zero", p)])
def test_a_fifo_or_a_device_named_json_in_runs_is_named_not_read(tmp_path, capsys, make):
    """Was: a FIFO named *.json hung `report`; a link to /dev/zero made it read until memory ran out."""
    results = _fixture_results(tmp_path)
    odd = results / "runs" / "case-a" / "odd-seed0.json"
    make(odd)
    code = f"import sys; sys.path.insert(0, {os.getcwd()!r})\nfrom harness import cli\n" \
           f"sys.exit(cli.main(['report', '--results', {str(results)!r}]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-1000:]
    assert f"{odd}: unreadable result file (not a regular file)" in out.stderr


def test_a_finding_without_its_epoch_is_named_not_a_crash(tmp_path, capsys):
    """Was: a KeyError traceback from outcomes, naming no file."""
    results = _fixture_results(tmp_path)
    path = next((results / "runs").rglob("*.json"))
    record = json.loads(path.read_text())
    record["findings"] = {"keras-ton": [{"detector": "keras-ton", "code": "X", "message": "m", "step": 1,
                                         "seconds": 0.1}]}
    path.write_text(json.dumps(record))
    assert cli.main(["report", "--results", str(results)]) == 0
    assert f"{path}: not a valid unit record (findings.keras-ton.0.epoch" in capsys.readouterr().err


def test_a_half_written_result_file_of_a_killed_run_is_removed_by_the_next_one(tmp_path):
    """Was: a run SIGKILLed while writing a record left `<record>.json.tmp<pid>` in results/runs for good (the
    resumed run's test found one); `run` now removes them first."""
    from harness.running.results import ResultsDir

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = tmp_path / "runs" / "c"
    folder.mkdir(parents=True)
    orphan = folder / f"buggy-seed0.json.tmp{int(dead.stdout)}"
    live = folder / f"patched-seed0.json.tmp{os.getpid()}"  # a writer still at work: left alone
    orphan.write_text('{"case": ')
    live.write_text("{")
    assert ResultsDir(str(tmp_path)).remove_orphans() == [str(orphan)]
    assert not orphan.exists() and live.exists()
