"""A case's own code (a file.py data generator) runs only with consent, only in a worker, confined.

Each test is a row of docs/reliability.md's attack table; each failed before consent and the
sandbox existed (validate imported the file; run imported it in the main process too).
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from harness import cli
from harness.cases.load import load_case
from harness.cases.trust import bundled_hashes, refusal
from harness.data import sandbox
from harness.data.files import digest
from harness.errors import CaseFileError
from tests.test_validation import GOOD

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASE = GOOD.replace("source: synthetic.xor\n  params: {repeat: 2}",
                    "source: file.py\n  params: {path: gen.py, function: FN}")
MARKER = "bugbench-test-marker-{}"
GEN = '''\
import os, signal, subprocess, sys, time
import numpy as np
open(os.environ.get("MARK_AT_IMPORT", os.devnull), "w").close()

def make(rng):
    x = rng.normal(size=(32, 2))
    return x, (x[:, 0] > 0).astype(float)

def sleeps(rng):
    time.sleep(3600)

def exits(rng):
    sys.exit(0)

def kills_parent(rng):
    for kill in (lambda: os.kill(os.getppid(), signal.SIGKILL), lambda: os.killpg(os.getpgid(0), signal.SIGKILL)):
        try:
            kill()
        except OSError:
            pass
    time.sleep(1)
    return make(rng)

def spawns(rng, token="x"):
    subprocess.Popen(["sleep", token], start_new_session=True)
    if os.fork() == 0:
        os.setsid()
        os.execvp("sleep", ["sleep", token + "1"])
    return make(rng)

def writes(rng, target="x"):
    with open(target, "w") as fh:
        fh.write("tampered")
    return make(rng)
'''


def case_folder(tmp_path, fn="make", name="case.yaml", case_id="t-gen", args=None):
    (tmp_path / "gen.py").write_text(GEN)
    text = CASE.replace("FN", fn).replace("t-good", case_id)
    if args:
        text = text.replace(f"function: {fn}", f"function: {fn}, args: {json.dumps(args)}")
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


def leftovers(token: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if token in line and "ps -eo" not in line]


# -- validate and load read the code, never run it ---------------------------------------------

def test_validate_never_runs_a_generator(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.setenv("MARK_AT_IMPORT", str(marker))
    path = case_folder(tmp_path)
    assert cli.main(["validate", path]) == 0
    assert not marker.exists()


def test_a_syntax_error_in_a_generator_points_into_the_file(tmp_path):
    path = case_folder(tmp_path)
    (tmp_path / "gen.py").write_text("def make(rng):\n    return (\n")
    with pytest.raises(CaseFileError) as info:
        load_case(path)
    (err,) = info.value.errors
    assert err.path.endswith("gen.py") and err.line == 2 and "syntax error" in err.message


@pytest.mark.parametrize("fn, args, words", [
    ("missing", None, "defines no top-level function 'missing'"),
    ("make", {"n": 3}, "takes no argument 'n'"),
    ("writes", {"targe": "x"}, "takes no argument 'targe'"),
])
def test_a_generator_that_does_not_fit_its_case_is_a_case_error_at_its_line(tmp_path, fn, args, words):
    path = case_folder(tmp_path, fn, args=args)
    with pytest.raises(CaseFileError) as info:
        load_case(path)
    (err,) = info.value.errors
    assert err.path == path and err.line == 7 and words in err.message  # the params line


# -- consent -------------------------------------------------------------------------------------

def test_without_consent_the_generator_is_refused_before_anything_starts(tmp_path):
    case_folder(tmp_path)
    with pytest.raises(sandbox.CaseCodeRefused, match="--trust-case-code"):
        sandbox.run_generator(str(tmp_path / "gen.py"), "make", {}, np.random.default_rng(0))


def test_consent_is_the_flag_the_bundled_hashes_or_the_users_trust_file(tmp_path, monkeypatch):
    monkeypatch.setenv("BUGBENCH_TRUST_FILE", str(tmp_path / "trusted.json"))
    case_folder(tmp_path)
    gen = str(tmp_path / "gen.py")
    assert "--trust-case-code" in refusal(gen, digest(gen), flag=False)
    assert refusal(gen, digest(gen), flag=True) is None
    assert cli.main(["trust", str(tmp_path)]) == 0
    assert refusal(gen, digest(gen), flag=False) is None
    (tmp_path / "gen.py").write_text(GEN + "\n# edited\n")
    assert "changed since you trusted it" in refusal(gen, digest(gen), flag=False)
    zoo = os.path.join(ROOT, "zoo", "programs", "tokens.py")
    assert refusal(zoo, digest(zoo), flag=False) is None


def test_every_generator_the_project_ships_is_trusted_by_its_committed_hash():
    """Edit a generator in cases/ or zoo/ and this fails until harness/cases/bundled_code.sha256 lists it."""
    shipped = [os.path.join(d, n) for top in ("cases", "zoo") for d, _, names in os.walk(os.path.join(ROOT, top))
               for n in names if n.endswith(".py")]
    assert shipped and {digest(p) for p in shipped} <= bundled_hashes()


# -- confinement (the caller stands in for a training worker) ------------------------------------

def run_gen(tmp_path, fn, timeout=20, **args):
    case_folder(tmp_path)
    with sandbox.allowed(True, timeout):
        return sandbox.run_generator(str(tmp_path / "gen.py"), fn, args, np.random.default_rng(0))


def test_a_confined_generator_gives_the_data_and_the_rng_state_it_would_give_in_process(tmp_path):
    x, y = run_gen(tmp_path, "make")
    ref = np.random.default_rng(0)
    assert np.array_equal(x, ref.normal(size=(32, 2))) and y.shape == (32,)
    rng = np.random.default_rng(0)
    with sandbox.allowed(True):
        sandbox.run_generator(str(tmp_path / "gen.py"), "make", {}, rng)
    assert rng.random() == ref.random()  # the validation split after it draws the same rows


def test_a_generator_that_hangs_is_killed_at_the_time_limit(tmp_path):
    started = time.monotonic()
    with pytest.raises(sandbox.GeneratorFailed, match="ran past 2 s"):
        run_gen(tmp_path, "sleeps", timeout=2)
    assert time.monotonic() - started < 15


def test_a_generator_that_exits_is_an_error(tmp_path):
    with pytest.raises(sandbox.GeneratorFailed, match="SystemExit"):
        run_gen(tmp_path, "exits")


def test_a_generator_cannot_kill_its_parent(tmp_path):
    """Its SIGKILLs reach neither the interpreter that started it nor this process: its data still arrives."""
    x, _ = run_gen(tmp_path, "kills_parent")
    assert x.shape == (32, 2)


def test_a_generator_that_forks_and_spawns_leaves_no_process(tmp_path):
    token = f"987{os.getpid()}.5"
    run_gen(tmp_path, "spawns", token=token)
    time.sleep(0.5)
    assert leftovers(token) == []


def test_a_generator_cannot_write_into_the_cache_or_outside_its_sandbox(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "unit.json").write_text("{}")
    with pytest.raises(sandbox.GeneratorFailed, match="PermissionError"):
        run_gen(tmp_path, "writes", target=str(cache / "unit.json"))
    assert (cache / "unit.json").read_text() == "{}"


# -- a whole run (real workers, real fits) -------------------------------------------------------

def write_suite(folder, cases: dict):
    folder.mkdir()
    (folder / "gen.py").write_text(GEN)
    for case_id, (fn, args) in cases.items():
        text = CASE.replace("FN", fn).replace("t-good", case_id)
        if args:
            text = text.replace(f"function: {fn}", f"function: {fn}, args: {json.dumps(args)}")
        (folder / f"{case_id}.yaml").write_text(text)
    (folder / "t-plain.yaml").write_text(GOOD.replace("t-good", "t-plain"))


def run(tmp_path, cases, *extra):
    cmd = [sys.executable, "-m", "harness", "run", "--cases-dir", str(cases), "--results", str(tmp_path / "results"),
           "--cache", str(tmp_path / "cache"), "--detector", "keras-ton", "--variant", "buggy", "--strict", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=ROOT)


def records(tmp_path) -> dict:
    out = {}
    for folder, _, names in os.walk(tmp_path / "results" / "runs"):
        for n in names:
            r = json.load(open(os.path.join(folder, n)))
            out[r["case"]["id"]] = r
    return out


@pytest.mark.fit
def test_run_refuses_untrusted_code_with_the_flag_named_and_the_rest_goes_on(tmp_path):
    cases = tmp_path / "shared"
    write_suite(cases, {"t-gen": ("make", None)})
    out = run(tmp_path, cases)
    got = records(tmp_path)
    assert out.returncode == 1
    assert got["t-gen"]["status"] == "error" and "--trust-case-code" in got["t-gen"]["error"]
    assert "gen.py" in got["t-gen"]["error"] and got["t-plain"]["status"] == "ok"


@pytest.mark.fit
def test_with_consent_hostile_generators_are_error_rows_and_leave_nothing_behind(tmp_path):
    token = f"986{os.getpid()}.5"
    cases = tmp_path / "shared"
    write_suite(cases, {"t-gen": ("make", None), "t-sleeps": ("sleeps", None), "t-exits": ("exits", None),
                        "t-kills": ("kills_parent", None), "t-spawns": ("spawns", {"token": token}),
                        "t-writes": ("writes", {"target": str(tmp_path / "cache" / "units" / "forged")})})
    out = run(tmp_path, cases, "--trust-case-code", "--timeout", "5", "--jobs", "1")
    got = records(tmp_path)
    assert out.returncode == 1, out.stderr[-2000:]
    assert {c: r["status"] for c, r in got.items()} == {
        "t-gen": "ok", "t-plain": "ok", "t-spawns": "ok", "t-kills": "ok",  # their attacks failed; data came
        "t-sleeps": "error", "t-exits": "error", "t-writes": "error"}
    assert "ran past 5 s" in got["t-sleeps"]["error"] and "PermissionError" in got["t-writes"]["error"]
    # Trained here, so not "from the cache" (a consented unit is a copy of its unit: counted cached, it was)
    assert got["t-gen"]["cached"] is False and "4 trained, 0 from the cache" in out.stderr
    assert not (tmp_path / "cache" / "units" / "forged").exists()
    time.sleep(0.5)
    assert leftovers(token) == []
