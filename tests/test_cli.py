"""The command line: cheap --help, file:line errors, exit codes without tracebacks."""

import subprocess
import sys

import pytest

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
    assert f"{path}:8: preprocessing step 0 (minmax): got an unexpected keyword argument 'onn'" in capsys.readouterr().err
