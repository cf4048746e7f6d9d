"""Plots of stored runs: where findings land, what is drawn, how a missing run is reported."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from detectors.toy_traces import make_trace
from harness import cli
from harness.reporting import figures, plots
from harness.running.records import UnitRecord
from harness.trace import STAGES, STATS, TraceRecorder

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CASE = "so-1234"


def small_trace(nan_from: int | None = None, epochs: int = 2, steps: int = 4):
    """Three layers with distinct, moving statistics; NaN everywhere from batch ``nan_from`` on."""
    rec = TraceRecorder(["dense", "activation", "dense_1"], ["loss", "accuracy", "learning_rate"])
    mask = np.ones((3, len(STAGES)), bool)
    mask[1, [STAGES.index("weights"), STAGES.index("weight_grad"), STAGES.index("update")]] = False
    for e in range(epochs):
        for b in range(steps):
            i = e * steps + b
            stats = np.full((3, len(STAGES), len(STATS)), 0.1 * (i + 1), np.float32)
            stats[:, :, STATS.index("nan")] = 0
            stats[:, :, STATS.index("inf")] = 0
            loss = 2.0 / (i + 1)
            if nan_from is not None and i >= nan_from:
                for stat in ("mean", "std", "min", "max"):
                    stats[:, :, STATS.index(stat)] = np.nan
                stats[:, :, STATS.index("nan")] = 5
                loss = float("nan")
            rec.add_batch(e, b, 0.01 * (i + 1), stats, mask, [loss, 0.5, 0.01], {"loss": loss})
        rec.add_epoch(e, 0.01 * (e + 1) * steps, {"loss": loss})
    layers = [{"name": "dense", "class": "Dense", "activation": "linear"},
              {"name": "activation", "class": "Activation"},
              {"name": "dense_1", "class": "Dense", "activation": "softmax"}]
    return rec.finish({"budget": {"epochs": epochs, "steps_per_epoch": steps}, "layers": layers})


def finding(detector, code, step, epoch, batch, layer=None):
    return {"detector": detector, "code": code, "step": step, "epoch": epoch, "batch": batch, "layer": layer,
            "layer_name": None if layer is None else f"layer{layer}", "diagnosis": None, "message": "", "seconds": 0.0}


def write_unit(results, cache, case, variant, trace, findings, seed=0):
    trace_path = cache / f"{case}-{variant}.npz"
    trace.save(str(trace_path))
    record = {"format": 2, "status": "ok", "variant": variant, "seed": seed, "trace": str(trace_path),
              "findings": findings,
              "summary": {"final": {"loss": "nan" if variant == "buggy" else 0.2, "accuracy": 0.5}},
              "case": {"id": case, "title": "tiny MLP, learning rate far too high", "status": "valid",
                       "symptom": {"kind": "nan_loss"},
                       "truth": {"faults": [{"code": "HLR", "layer": None}]}}}
    path = results / "runs" / case / f"{variant}-seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


@pytest.fixture
def results(tmp_path):
    results, cache = tmp_path / "results", tmp_path / "cache"
    cache.mkdir()
    buggy = {"layer-trend": [finding("layer-trend", "EBW", 6, 1, 1, layer=0),
                             finding("layer-trend", "EBA", 3, 0, 3, layer=2)],
             "keras-es-loss": [finding("keras-es-loss", "STOP", 4, 0, None)],
             "keras-ton": []}
    write_unit(results, cache, CASE, "buggy", small_trace(nan_from=5), buggy)
    silent = {"layer-trend": [], "keras-es-loss": [], "keras-ton": []}
    write_unit(results, cache, CASE, "patched", small_trace(), silent)
    return results


def is_png(path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(8) == PNG_MAGIC and path.stat().st_size > 1000


# -- where things land ------------------------------------------------------------


def test_step_positions_are_in_epochs_with_epoch_ends_at_whole_numbers():
    # Two epochs of 3 batches: steps are b0 b1 b2 E0 b3 b4 b5 E1; epoch 1 spans (0, 1].
    positions = plots.step_positions([0, 0, 0, 1, 1, 1], [0, 1])
    assert positions == pytest.approx([1 / 3, 2 / 3, 1, 1, 4 / 3, 5 / 3, 2, 2])


def test_step_positions_agree_with_the_replay_order():
    trace = make_trace(list(np.linspace(1, 0.1, 12)), steps_per_epoch=4)
    positions = plots.step_positions(trace.arrays["epoch"], trace.arrays["epoch_index"])
    batches = [(s.epoch, s.batch) for s in trace.steps()]
    for step, (epoch, batch) in enumerate(batches):
        if batch is None:
            assert positions[step] == epoch + 1  # "end of epoch {epoch + 1}"
        else:
            assert positions[step] == pytest.approx(epoch + (batch + 1) / 4)  # "epoch {epoch + 1} batch {batch + 1}"
            assert plots.step_to_x(trace, step) == positions[step]


def test_first_marks_take_each_detectors_earliest_finding(results):
    record = UnitRecord.model_validate_json((results / "runs" / CASE / "buggy-seed0.json").read_text())
    trace = plots.Trace.load(record.trace)
    marks = {m.detector: m for m in plots.first_marks(record, trace)}
    assert set(marks) == {"layer-trend", "keras-es-loss"}  # keras-ton found nothing
    assert marks["layer-trend"].x == 1  # step 3 = epoch 1 batch 4 of 4, before the later step 6
    label = "EBA (error before activation (a layer's output)) layer 2 (layer2), epoch 1 batch 4"
    assert marks["layer-trend"].label == label
    assert marks["keras-es-loss"].x == 1  # the end of epoch 1
    assert "end of epoch 1" in marks["keras-es-loss"].label


def test_first_nonfinite_batch():
    assert plots.first_nonfinite(small_trace(nan_from=5)) == 5
    assert plots.first_nonfinite(small_trace()) is None


def test_row_scale_is_logarithmic_only_for_wide_positive_ranges():
    assert plots.row_scale([np.array([1.0, 2.0]), np.array([3.0, np.nan])], positive=True)["scale"] == "linear"
    wide = plots.row_scale([np.array([1e-6, 0.0]), np.array([1e3, np.inf])], positive=True)
    assert wide["scale"] == "log" and 0 < wide["floor"] < 1e-6
    assert plots.row_scale([np.array([-1.0, 1.0, 1e9])], positive=False)["scale"] == "symlog"


def test_thin_keeps_the_last_batch():
    assert len(plots.thin(10)) == 10
    idx = plots.thin(5000)
    assert len(idx) <= plots.MAX_POINTS + 1 and idx[0] == 0 and idx[-1] == 4999


# -- files and the command line ---------------------------------------------------


def test_plot_case_writes_a_png(results, tmp_path):
    out = figures.plot_case(str(results), CASE, out=str(tmp_path / "x" / "plot.png"), stage="weight_grad", stat="std")
    assert is_png(tmp_path / "x" / "plot.png") and out.endswith("plot.png")


def test_show_writes_the_default_path(results, capsys):
    assert cli.main(["show", CASE, "--results", str(results)]) == 0
    path = results / "plots" / f"{CASE}.png"
    assert capsys.readouterr().out.strip() == str(path)
    assert is_png(path)


def test_show_missing_case_exits_2_and_says_what_to_run(results, capsys):
    assert cli.main(["show", "so-1235", "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert "run `bugbench run --case so-1235 --results " in err and "did you mean 'so-1234'" in err
    assert "Traceback" not in err


def test_show_missing_trace_exits_2(results, capsys):
    record = results / "runs" / CASE / "buggy-seed0.json"
    for variant in ("buggy", "patched"):
        data = json.loads(record.with_name(f"{variant}-seed0.json").read_text())
        data["trace"] = "/nonexistent/trace.npz"
        record.with_name(f"{variant}-seed0.json").write_text(json.dumps(data))
    assert cli.main(["show", CASE, "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert "is not in the cache" in err and f"bugbench run --case {CASE}" in err


def test_one_missing_variant_still_plots(results, capsys):
    (results / "runs" / CASE / "patched-seed0.json").unlink()
    assert cli.main(["show", CASE, "--results", str(results)]) == 0
    assert "patched-seed0.json" in capsys.readouterr().err
    assert is_png(results / "plots" / f"{CASE}.png")


def test_plot_all_skips_cases_without_traces(results, capsys):
    (results / "runs" / "so-9").mkdir()
    written = figures.plot_all(str(results), jobs=1)
    assert written == [str(results / "plots" / f"{CASE}.png")]
    assert "no plot for so-9" in capsys.readouterr().err


def test_show_and_report_do_not_import_tensorflow():
    code = ("import sys; from harness import cli\n"
            "for argv in (['show', '--help'], ['show', 'no-such-case'], ['report', '--help']):\n"
            "    try:\n        cli.main(argv)\n    except SystemExit:\n        pass\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_plot_all_redraws_only_what_changed(results):
    path = figures.plot_all(str(results), jobs=1)[0]
    drawn = os.path.getmtime(path)
    os.utime(path, (drawn - 100, drawn - 100))
    figures.plot_all(str(results), jobs=1)
    assert os.path.getmtime(path) == drawn - 100  # same stored runs: kept
    record = results / "runs" / CASE / "patched-seed0.json"
    record.write_text(record.read_text().replace('"accuracy": 0.5', '"accuracy": 0.75'))
    figures.plot_all(str(results), jobs=1)
    assert os.path.getmtime(path) > drawn - 100


def test_symlog_ticks_keep_clear_of_zero():
    ticks = plots.symlog_ticks(-1e3, 1e24, linthresh=0.3)
    assert 0.0 in ticks and max(ticks) == 1e24 and len([t for t in ticks if t > 0]) <= 3
    assert not [t for t in ticks if 0 < abs(t) < 1e3]  # +-1, +-10 would print on top of 0


def test_first_marks_prefer_the_first_error_over_an_earlier_warning(results):
    record = json.loads((results / "runs" / CASE / "buggy-seed0.json").read_text())
    trace = plots.Trace.load(record["trace"])
    early = dict(record["findings"]["layer-trend"][0], step=0, batch=0, code="ADVICE", severity="warning")
    record["findings"]["layer-trend"] = [early, *record["findings"]["layer-trend"]]
    record["findings"]["only-advice"] = [early]
    marks = {m.detector: m for m in plots.first_marks(UnitRecord.model_validate(record), trace)}
    assert marks["layer-trend"].x == 1 and marks["layer-trend"].label.startswith("EBA")
    assert marks["only-advice"].label.endswith("(warning)")


def test_a_layer_keeps_its_colour_when_the_patch_inserts_one_before_it():
    buggy = small_trace()
    patched = small_trace()
    patched.meta["layers"] = [buggy.layers[0], {"name": "dropout", "class": "Dropout"}, *buggy.layers[1:]]
    colors, labels = plots.layer_colors({"buggy": (None, buggy), "patched": (None, patched)})
    assert colors["patched"][0] == colors["buggy"][0]
    assert colors["patched"][2] == colors["buggy"][1] and colors["patched"][3] == colors["buggy"][2]
    assert colors["patched"][1] not in colors["buggy"]  # the inserted layer has a colour of its own
    assert labels[-1] == "patched 1 Dropout" and labels[1] == "1/2 Activation"
    assert labels[0] == "0 Dense(linear)"


def test_every_built_in_detector_has_its_own_colour():
    from detectors.registry import BUILTINS

    styles = plots.detector_styles([d for d in BUILTINS if d != "null"])
    assert len({s["color"] for s in styles.values()}) == len(styles)
    again = plots.detector_styles(["diagnose", "keras-ton"])  # the same detector looks the same in any figure
    assert again["diagnose"] == styles["diagnose"] and again["keras-ton"] == styles["keras-ton"]


def test_the_loss_row_carries_the_validation_loss_at_epoch_ends():
    trace = small_trace()
    trace.meta["epoch_log_names"] = ["loss", "val_loss"]
    trace.arrays["epoch_logs"] = np.array([[1.0, 1.5], [0.5, 1.7]], np.float32)
    x, y = plots.validation_loss(trace)
    assert x.tolist() == [1.0, 2.0] and y.tolist() == [1.5, pytest.approx(1.7)]
    assert plots.validation_loss(small_trace())[0].size == 0  # no validation data: nothing drawn


def test_every_code_in_the_committed_results_is_named_in_words_by_the_detector_that_emits_it():
    import glob

    from detectors import registry
    from harness.reporting.glossary import code_table

    root = os.path.join(os.path.dirname(os.path.dirname(__file__)), "results")
    emitted: dict[str, set] = {}
    for path in glob.glob(os.path.join(root, "runs", "*", "*.json")) + glob.glob(os.path.join(root, "zoo", "runs",
                                                                                               "*", "*.json")):
        for detector, found in (json.loads(open(path).read()).get("findings") or {}).items():
            emitted.setdefault(detector, set()).update(f["code"] for f in found)
    classes = {b.name: b.load() for b in registry.TABLE}
    assert emitted and set(emitted) <= set(classes)
    for detector, codes in emitted.items():
        assert not codes - set(classes[detector].codes), detector
    # Two detectors that emit one code mean the same by it, so one legend fits both.
    for cls in classes.values():
        for code, words in cls.codes.items():
            assert code_table()[code] == words, (cls.__name__, code)
