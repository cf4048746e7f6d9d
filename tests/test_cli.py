"""The command line: cheap --help, file:line errors, exit codes without tracebacks."""

import os
import subprocess
import sys

import pytest
import yaml

from harness import cli

BAD = "tests/fixtures/bad_cases"


def test_help_does_not_import_tensorflow():
    code = ("import sys; from harness import cli\n"
            "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "for sub in ('list', 'validate', 'run', 'report'):\n"
            "    try:\n        cli.main([sub, '--help'])\n    except SystemExit:\n        pass\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_run_help_names_the_default_detectors(capsys):
    from detectors import registry

    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, also at hyphens
    assert "default:" + ",".join(registry.DEFAULT) + ")" in text


def test_validate_reports_every_bad_file_with_line(capsys):
    assert cli.main(["validate", BAD]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{BAD}/unknown_key.yaml:13: unknown key 'optimiser' (did you mean 'optimizer'?)" in err
    assert f"{BAD}/bad_layer.yaml:11: layer 0 (Dens): 'Dens' is not a keras.layers class (did you mean 'Dense'?)" in err
    assert f"{BAD}/wrong_type.yaml:9: model.input_shape:" in err
    assert f"{BAD}/bad_kwarg.yaml:11: layer 0 (Dense):" in err and "use 'kernel_initializer'" in err
    assert "1 case(s) valid, 4 problem(s)" in err


def test_validate_schema_only_is_fast_path(capsys):
    assert cli.main(["validate", "--schema-only", BAD]) == 1
    err = capsys.readouterr().err
    assert "bad_layer.yaml" not in err  # layer names need Keras
    assert "unknown_key.yaml:13" in err


def test_validate_repository_cases(capsys):
    assert cli.main(["validate"]) == 0


def test_list_detectors(capsys):
    assert cli.main(["list", "--detectors"]) == 0
    out = capsys.readouterr().out
    for name in ("keras-ton", "keras-es-loss", "keras-es-acc", "keras-union", "keras-baseline"):
        assert name in out


def test_run_unknown_case_is_a_clean_error(capsys, tmp_path):
    assert cli.main(["run", "--case", "so-4838583", "--results", str(tmp_path)]) == 2
    assert "did you mean 'so-48385830'" in capsys.readouterr().err


def test_validate_checks_preprocessing_arguments(tmp_path, capsys):
    from tests.test_validation import GOOD

    path = tmp_path / "case.yaml"
    path.write_text(GOOD.replace("params: {repeat: 2}", "params: {repeat: 2}\n  preprocess: [{minmax: {onn: y}}]"))
    assert cli.main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:8: preprocessing step 0 (minmax): got an unexpected keyword argument 'onn'" in err


def test_prune_keeps_only_units_of_the_current_case_files(tmp_path, capsys):
    """An edited case leaves units under its old key; prune deletes those and nothing current."""
    from harness.cases.load import discover, load_case
    from harness.running.runner import RunConfig, units_for
    from harness.running.store import UnitStore

    cases_dir = tmp_path / "cases"
    assert cli.main(["new", "t-case", "--cases-dir", str(cases_dir), "--kind", "other"]) == 0
    case = load_case(discover(str(cases_dir))[0])
    current = units_for([case], RunConfig(seeds=(0, 1)))
    units = tmp_path / "store" / "units" / case.id
    units.mkdir(parents=True)
    for u in current:
        for ext in (".json", ".npz", ".findings.json"):
            (units / f"{u.variant}-seed{u.seed}-{u.key}{ext}").write_text("{}")
    (units / "buggy-seed0-0123456789abcdef.json").write_text("{}")  # the case before an edit
    (units / "buggy-seed0-0123456789abcdef.npz").write_text("x" * 2048)
    gone = tmp_path / "store" / "units" / "removed-case"
    gone.mkdir()
    (gone / "patched-seed1-fedcba9876543210.json").write_text("{}")
    (units / "notes.txt").write_text("not a unit file: left alone")

    store = ["--cases-dir", str(cases_dir), "--cache", str(tmp_path / "store")]
    capsys.readouterr()
    assert cli.main(["prune", "--dry-run", *store]) == 0
    assert "would delete 3 file(s)" in capsys.readouterr().out
    assert len(list(UnitStore(str(tmp_path / "store")).files())) == 3 + 4 * 3
    assert cli.main(["prune", *store]) == 0
    assert "deleted 3 file(s)" in capsys.readouterr().out
    left = {os.path.basename(p) for p, *_ in UnitStore(str(tmp_path / "store")).files()}
    assert left == {f"{u.variant}-seed{u.seed}-{u.key}{ext}" for u in current
                    for ext in (".json", ".npz", ".findings.json")}
    assert (units / "notes.txt").exists()


def test_prune_refuses_while_a_case_file_is_broken(tmp_path, capsys):
    cases_dir = tmp_path / "cases"
    cases_dir.mkdir()
    (cases_dir / "bad.yaml").write_text("id: [unclosed\n")
    assert cli.main(["prune", "--cases-dir", str(cases_dir), "--cache", str(tmp_path / "store")]) == 1
    assert "not pruning" in capsys.readouterr().err


def test_version_and_help_texts(capsys):
    from harness import __version__

    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"bugbench {__version__}"
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("the folder of case files (default: cases)", "the results folder (default: results)",
                  "train only this variant", "parallel training processes (default: 1"):
        assert words in text


def test_spec_prints_the_patched_spec_where_the_patch_landed(capsys):
    assert cli.main(["spec", "so-31880720", "--variant", "patched"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# cases/stackoverflow/31880720.yaml: patched variant")
    spec = yaml.safe_load(out)
    assert spec["model"]["layers"][-1] == {"Activation": {"activation": "sigmoid"}}  # the fix: softmax -> sigmoid
    assert cli.main(["spec", "so-31880720"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["model"]["layers"][-1] == {"Activation": {"activation": "softmax"}}


def test_spec_of_an_unknown_case_exits_2_with_a_suggestion(capsys):
    assert cli.main(["spec", "so-3188072"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_fidelity_is_run_with_three_seeds_and_the_same_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["fidelity", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 3; make uses 3)" in text and "--jobs" in text and "--more-seeds" in text
    args = cli.parser_().parse_args(["fidelity", "--jobs", "2"])
    assert args.seeds == 3 and args.jobs == 2 and args.func is cli.run.cmd_run


@pytest.mark.fit
def test_validate_reports_every_stage_of_a_file_in_one_run(tmp_path, capsys):
    """A schema mistake (outside the spec), a layer name, a loss name and a metric: one round, all four."""
    from tests.test_validation import GOOD

    text = (GOOD.replace("title: tiny", "title: tiny\ntitel: typo")
            .replace("- Dense: {units: 4, activation: tanh}", "- Dens: {units: 4, activation: tanh}")
            .replace("loss: binary_crossentropy", "loss: binary_crossentropi")
            .replace("metrics: [accuracy]", "metrics: [acuracy]")
            .replace("optimizer: {SGD: {learning_rate: 0.1}}", "optimizer: {SDG: {learning_rate: 0.1}}"))
    path = tmp_path / "four.yaml"
    path.write_text(text)
    assert cli.main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:3: unknown key 'titel'" in err
    assert "layer 0 (Dens)" in err and "did you mean 'Dense'" in err
    assert "loss:" in err and "did you mean 'binary_crossentropy'" in err
    assert "optimizer:" in err and "did you mean 'SGD'" in err


def test_kill_takes_the_dask_backend_like_run():
    args = cli.parser_().parse_args(["kill", "--backend", "dask", "--scheduler", "tcp://127.0.0.1:1", "--seeds", "2"])
    assert (args.backend, args.scheduler, args.seeds) == ("dask", "tcp://127.0.0.1:1", 2)
