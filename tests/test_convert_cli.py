"""`adacal convert` end to end on the bundled digits example (docs/method.md).

The example (examples/digits_cnn.py, ~6 s) is trained once per module.  The
independent CLI runs are started together (two at a time) by one module
fixture, because process start-up (torch + onnx imports) dominates each run;
every test then checks one of the finished runs.  Subprocesses run with one
torch thread: on a busy 2-core machine torch's intra-op threads make these tiny
tensors tens of times slower.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits_cnn.py"
TIMING_KEYS = ("timings", "seconds")

REQUIRED = ("ann_accuracy", "snn_accuracy", "avg_timesteps", "spikes_per_sample", "events_per_sample",
            "synops_per_sample", "ann_energy_pj_per_sample", "energy_pj_per_sample", "per_layer", "seconds")


def _env():
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore")
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    return env


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "adacal", *map(str, args)], capture_output=True, text=True,
                          env=_env(), timeout=timeout, cwd=ROOT)


def strict_json(text):
    """Parse, rejecting NaN/Infinity (not JSON)."""
    def bad(c):
        raise ValueError(f"non-JSON constant {c}")
    return json.loads(text, parse_constant=bad)


def assert_user_error(proc, *must_mention):
    """Exit 2, stderr is exactly one `adacal: error: ...` line, no traceback, nothing on stdout."""
    err = proc.stderr
    assert proc.returncode == 2, f"exit code {proc.returncode}, stderr:\n{err}"
    assert "Traceback" not in err and "Traceback" not in proc.stdout, f"traceback printed:\n{err}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert lines[0].startswith("adacal: error: "), err
    for item in must_mention:
        assert item.lower() in lines[0].lower(), f"stderr does not mention {item!r}:\n{err}"
    assert proc.stdout.strip() == "", f"stdout not empty:\n{proc.stdout}"
    return lines[0]


# ---------------------------------------------------------------------------
# fixtures: the example, bad data files, and every CLI run
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--out", str(out)], capture_output=True, text=True,
                          env=_env(), timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    paths = {"dir": out, "model": out / "digits_cnn.onnx", "calib": out / "digits_calib.npz",
             "test": out / "digits_test.npz"}
    for p in paths.values():
        assert p.exists()
    # bad data files, each with one problem
    with np.load(paths["test"]) as f:
        x, y = f["x"], f["y"]
    bad = out / "bad"
    bad.mkdir()
    np.savez(bad / "shape.npz", x=x[:, :, :7, :7], y=y)
    y_hi = y.copy(); y_hi[3] = 10
    np.savez(bad / "labels.npz", x=x, y=y_hi)
    y_neg = y.copy(); y_neg[0] = -1
    np.savez(bad / "neg_labels.npz", x=x, y=y_neg)
    x_nan = x.copy(); x_nan[5, 0, 3, 3] = np.nan
    np.savez(bad / "nan.npz", x=x_nan, y=y)
    np.savez(bad / "count.npz", x=x, y=y[:-1])
    np.savez(bad / "no_x.npz", images=x, y=y)
    (bad / "garbage.npz").write_bytes(b"this is not a zip file")
    paths["bad"] = bad
    # a smaller validation set for the search runs
    np.savez(out / "small_val.npz", x=x[:120], y=y[:120])
    paths["small_val"] = out / "small_val.npz"
    return paths


def _runs(d):
    """The runs that need a process of their own (a successful conversion's
    stdout, determinism across processes, the error path end to end)."""
    m, c, v, sv, bad = d["model"], d["calib"], d["test"], d["small_val"], d["bad"]
    base = ("convert", m, "--calib", c)
    fast = ("--calib-samples", "64")
    out_dir = d["dir"] / "out"

    def output_dir_sequence():
        first = run_cli(*base, "--val", sv, *fast, "--json", "-o", out_dir)
        manifest = (out_dir / "manifest.json").read_text() if (out_dir / "manifest.json").exists() else None
        report = (out_dir / "report.json").read_text() if (out_dir / "report.json").exists() else None
        again = run_cli(*base, "--val", sv, *fast, "--json", "-o", out_dir)
        forced = run_cli(*base, "--val", sv, *fast, "--json", "-o", out_dir, "--force", "-T", "4")
        manifest2 = (out_dir / "manifest.json").read_text() if (out_dir / "manifest.json").exists() else None
        return {"first": first, "manifest": manifest, "report": report, "again": again, "forced": forced,
                "manifest2": manifest2, "dir": out_dir}

    return {
        "output_dir": output_dir_sequence,  # the longest chain first
        "basic": lambda: run_cli(*base, "--val", v, "-T", "8", "--max-spikes", "4", "--json"),
        "basic_again": lambda: run_cli(*base, "--val", v, "-T", "8", "--max-spikes", "4", "--json"),
        "search_spikes": lambda: run_cli(*base, "--val", sv, *fast, "--search-spikes", "--spike-range", "1:4",
                                         "--json"),
        "search_thresholds": lambda: run_cli(*base, "--val", sv, *fast, "--search-thresholds", "--json"),
        "search_events": lambda: run_cli(*base, "--val", sv, *fast, "-T", "2", "--search-spikes", "--spike-range",
                                         "1:4", "--search-thresholds", "--search-cost", "events", "--json"),
        # default calibration set (256) at T = 16: more than one simulation batch
        "searches_T16": lambda: run_cli(*base, "--val", sv, "-T", "16", "--search-spikes", "--spike-range", "1:4",
                                        "--json"),
        "adaptive": lambda: run_cli(*base, "--val", sv, *fast, "--adaptive-timesteps", "--json"),
        "infeasible": lambda: run_cli(*base, "--val", sv, *fast, "--search-spikes", "--energy-budget", "0.01",
                                      "--json"),
        "bad_nan": lambda: run_cli("convert", m, "--calib", bad / "nan.npz", "--val", v, "--json"),
    }


@pytest.fixture(scope="module")
def runs(digits):
    jobs = _runs(digits)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(fn) for name, fn in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


class Proc:
    """What an in-process `adacal.cli.main(argv)` call produced."""

    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys):
    """Run the CLI in this process (cheap: no interpreter start-up) for the
    cases that fail before or right after loading."""
    from adacal.cli import main

    def run(*args):
        capsys.readouterr()
        try:
            rc = main([str(a) for a in args])
        except SystemExit as e:  # argparse errors
            rc = e.code
        out, err = capsys.readouterr()
        return Proc(rc, out, err)

    return run


def _ok_json(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return strict_json(proc.stdout)


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------

def test_json_is_one_object_with_the_required_fields(runs):
    proc = runs["basic"]
    summary = _ok_json(proc)  # the whole of stdout is one JSON document
    assert isinstance(summary, dict)
    missing = [k for k in REQUIRED if k not in summary]
    assert not missing, f"missing keys: {missing}"
    assert isinstance(summary["per_layer"], list) and len(summary["per_layer"]) == 2  # two conv+ReLU layers
    # --json prints no progress on stderr either
    assert proc.stderr.strip() == "", proc.stderr


def test_report_values_are_sane(runs):
    s = _ok_json(runs["basic"])
    for k in ("ann_accuracy", "snn_accuracy"):
        assert 0.0 <= s[k] <= 1.0
    assert s["ann_accuracy"] > 0.9  # the example trains to ~98 %
    assert s["snn_accuracy"] >= s["ann_accuracy"] - 0.05, "T=8, φ=4 loses more than 5 points"
    assert s["avg_timesteps"] == 8.0  # no adaptive timesteps
    assert s["spikes_per_sample"] > 0 and s["events_per_sample"] > 0 and s["synops_per_sample"] > 0
    assert s["events_per_sample"] <= s["spikes_per_sample"]  # a burst of k is one event
    # φ = 4: at most 4 spikes per event
    assert s["spikes_per_sample"] <= 4 * s["events_per_sample"] + 1e-9
    assert s["energy_pj_per_sample"] > 0 and s["ann_energy_pj_per_sample"] > 0
    assert s["seconds"] > 0
    # totals are the sums of the per-layer numbers
    for key in ("spikes_per_sample", "events_per_sample", "synops_per_sample"):
        assert s[key] == pytest.approx(sum(layer[key] for layer in s["per_layer"]), rel=1e-9)
    for layer in s["per_layer"]:
        assert layer["max_spikes"] == 4
        assert layer["spikes_per_sample"] > 0
        # spikes per sample cannot exceed neurons × T × φ
        assert layer["spikes_per_sample"] <= layer["neurons"] * 8 * 4
    # the documented energy convention (docs/method.md, Energy)
    if "ann_macs_per_sample" in s:
        assert s["ann_energy_pj_per_sample"] == pytest.approx(4.6 * s["ann_macs_per_sample"])
    if "input_layer_macs_per_sample" in s:
        assert s["energy_pj_per_sample"] == pytest.approx(
            4.6 * s["input_layer_macs_per_sample"] + 0.9 * s["synops_per_sample"])


def test_table_output_without_json(digits, cli):
    import torch
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        proc = cli("convert", digits["model"], "--calib", digits["calib"], "--val", digits["small_val"],
                   "--calib-samples", "32", "--quiet")
    finally:
        torch.set_num_threads(saved)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() and proc.stderr.strip() == ""
    with pytest.raises(ValueError):
        json.loads(proc.stdout)


def test_same_command_twice_gives_identical_json(runs):
    a, b = _ok_json(runs["basic"]), _ok_json(runs["basic_again"])
    for k in TIMING_KEYS:
        a.pop(k, None), b.pop(k, None)
    assert a == b


# ---------------------------------------------------------------------------
# output directory
# ---------------------------------------------------------------------------

def test_output_dir_written(runs):
    r = runs["output_dir"]
    summary = _ok_json(r["first"])
    assert r["manifest"] is not None and r["report"] is not None, "manifest.json / report.json not written"
    manifest = strict_json(r["manifest"])
    report = strict_json(r["report"])
    assert str(manifest.get("format", "")).startswith("adacal")
    assert manifest.get("timesteps") == 8
    assert len(manifest.get("neuron_layers", [])) == 2
    for k in ("snn_accuracy", "spikes_per_sample", "per_layer"):
        assert report[k] == summary[k]


def test_output_dir_not_overwritten_without_force(runs):
    r = runs["output_dir"]
    assert_user_error(r["again"], "--force")
    # with --force it is replaced (the new run used T = 4)
    _ok_json(r["forced"])
    assert strict_json(r["manifest2"])["timesteps"] == 4


def test_foreign_directory_is_refused_even_with_force(digits, cli, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    for extra in ((), ("--force",)):
        proc = cli("convert", digits["model"], "--calib", digits["calib"], "--json", "-o", foreign, *extra)
        assert_user_error(proc, "not an adacal output")
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_output_path_that_is_a_file_is_refused(digits, cli, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert_user_error(cli("convert", digits["model"], "--calib", digits["calib"], "-o", f), "not a directory")


# ---------------------------------------------------------------------------
# bad input: exit 2, one line, no traceback
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("key, mentions", [
    ("bad_nan", ["nan.npz", "NaN"]),
])
def test_bad_data_is_a_user_error_end_to_end(runs, key, mentions):
    assert_user_error(runs[key], *mentions)


@pytest.mark.parametrize("option, name, mentions", [
    ("--val", "shape.npz", ["shape.npz", "shape", "(1, 8, 8)"]),
    ("--val", "labels.npz", ["labels.npz", "label", "10"]),
    ("--calib", "neg_labels.npz", ["neg_labels.npz", "label", "-1"]),
    ("--val", "nan.npz", ["nan.npz", "NaN"]),
    ("--val", "count.npz", ["count.npz", "labels"]),
    ("--val", "no_x.npz", ["no_x.npz", "'x'"]),
    ("--calib", "garbage.npz", ["garbage.npz"]),
    ("--val", "missing.npz", ["missing.npz", "no such file"]),
])
def test_bad_data_is_a_user_error(digits, cli, option, name, mentions):
    data = {"--calib": digits["calib"], "--val": digits["test"]}
    data[option] = digits["bad"] / name
    proc = cli("convert", digits["model"], "--calib", data["--calib"], "--val", data["--val"], "--json")
    assert_user_error(proc, *mentions)


@pytest.mark.parametrize("args, mentions", [
    (("-T", "0"), ["timesteps"]),
    (("--max-spikes", "0"), ["max-spikes"]),
    (("--threshold", "percentile:200"), ["percentile"]),
    (("--spike-range", "4"), ["MIN:MAX"]),
])
def test_bad_options_are_user_errors(digits, cli, args, mentions):
    proc = cli("convert", digits["model"], "--calib", digits["calib"], *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("adacal: error: ")
    for m in mentions:
        assert m.lower() in last.lower(), last


def test_infeasible_burst_budget_is_a_clear_user_error(runs):
    line = assert_user_error(runs["infeasible"], "budget")
    assert "energy-budget" in line or "energy budget" in line


# ---------------------------------------------------------------------------
# the optional passes run and report what they chose
# ---------------------------------------------------------------------------

def test_search_spikes_run(runs):
    s = _ok_json(runs["search_spikes"])
    assert 0.0 <= s["snn_accuracy"] <= 1.0 and s["spikes_per_sample"] > 0
    caps = [layer["max_spikes"] for layer in s["per_layer"]]
    assert all(1 <= c <= 4 for c in caps), caps
    found = s.get("searches", {}).get("burst_caps")
    if found is not None:
        assert found["chosen"] == caps  # reported in layer order
        # the chosen caps fit the spike budget the search priced
        spikes = np.asarray(found["spikes"])
        cands = found["candidates"]
        cost = sum(spikes[i, cands.index(c)] for i, c in enumerate(caps))
        assert cost <= found["budget_spikes"] * (1 + 1e-9)


def test_search_thresholds_run(runs):
    s = _ok_json(runs["search_thresholds"])
    assert 0.0 <= s["snn_accuracy"] <= 1.0 and s["spikes_per_sample"] > 0
    ratios = [layer["threshold_ratio"] for layer in s["per_layer"]]
    assert all(1.0 <= r <= 10.0 for r in ratios)
    found = s.get("searches", {}).get("threshold_ratios")
    if found is not None:
        assert found["chosen"] == ratios


def test_searches_priced_in_events(runs):
    """--search-cost events (Loihi 2's graded spikes): both searches report
    what they priced under its own name, and the choice fits the event budget."""
    s = _ok_json(runs["search_events"])
    assert s["options"]["search_cost"] == "events"
    caps, ratios = s["searches"]["burst_caps"], s["searches"]["threshold_ratios"]
    assert caps["cost"] == "events" and "spikes" not in caps and "budget_spikes" not in caps
    events = np.asarray(caps["events"], dtype=float)
    cands = caps["candidates"]
    chosen = [layer["max_spikes"] for layer in s["per_layer"]]
    assert caps["chosen"] == chosen
    assert sum(events[i, cands.index(c)] for i, c in enumerate(chosen)) <= caps["budget_events"] * (1 + 1e-9)
    assert ratios["cost"] == "events" and "synops" not in ratios
    assert np.asarray(ratios["graded_synops"], dtype=float).shape == (len(chosen), len(ratios["ratios"]))
    # the default prices spikes, under the names it always had
    d = _ok_json(runs["search_spikes"])
    assert d["options"]["search_cost"] == "spikes" and d["searches"]["burst_caps"]["cost"] == "spikes"
    # the table's first line says what the searches priced
    from adacal.report import format_summary
    assert format_summary(s).splitlines()[0].endswith("searched burst caps and threshold ratios priced in events")
    assert format_summary(d).splitlines()[0].endswith("searched burst caps priced in spikes")


def test_xylo_has_no_event_pricing(cli, digits, tmp_path):
    """Xylo delivers a burst of k as k spikes: compile-xylo has no --search-cost,
    and the Python API refuses it for the Xylo target."""
    from adacal.artifact import compile_model
    from adacal.errors import AdacalError
    from adacal.pipeline import ConvertOptions
    out = tmp_path / "x"
    p = cli("compile-xylo", digits["model"], "--calib", digits["calib"], "-o", out, "--device", "xylo-audio3",
            "--search-cost", "events")
    assert p.returncode == 2 and "--search-cost" in p.stderr and not out.exists()
    with pytest.raises(AdacalError, match="Xylo delivers a burst"):
        compile_model(str(digits["model"]), "xylo", np.load(digits["calib"])["x"], out, device="xylo-audio3",
                      options=ConvertOptions(search_cost="events"))
    assert not out.exists()


def test_burst_search_with_the_default_calibration_set_at_T16(runs):
    """256 calibration samples at T = 16 are simulated in more than one batch
    (float_sim.default_batch(16) = 128)."""
    s = _ok_json(runs["searches_T16"])
    assert s["timesteps"] == 16
    assert [layer["max_spikes"] for layer in s["per_layer"]] == s["searches"]["burst_caps"]["chosen"]


def test_adaptive_timesteps_run(runs):
    s = _ok_json(runs["adaptive"])
    assert 0.0 <= s["snn_accuracy"] <= 1.0
    assert 1.0 <= s["avg_timesteps"] <= 8.0
    assert s["spikes_per_sample"] > 0
    if "exit_histogram" in s:
        assert sum(s["exit_histogram"]) == s.get("samples", 120)
        assert s["avg_timesteps"] == pytest.approx(
            sum((t + 1) * n for t, n in enumerate(s["exit_histogram"])) / sum(s["exit_histogram"]))
    policy = s.get("exit_policy")
    assert policy is not None and len(policy["thresholds"]) == 8


# ---------------------------------------------------------------------------
# the calibration check (pipeline.AGREEMENT_WARNING)
# ---------------------------------------------------------------------------

def test_calibration_check_is_the_agreement_of_the_finished_snn(digits):
    """calibration_check = share of the check samples on which the finished SNN
    (all T steps) predicts the ANN's class, recomputed here: samples of the
    calibration file that calibration did not use (the same permutation as
    pick_calibration, disjoint from it) or, when calibration used them all, the
    calibration samples themselves."""
    from adacal.pipeline import CHECK_SAMPLES, AGREEMENT_WARNING, convert, pick_calibration, pick_check
    from adacal.runtime_sim.float_sim import simulate

    with np.load(digits["calib"]) as f:
        x, y = f["x"].astype(np.float32), f["y"]
    cases = ((1, 1, "none", 96, True), (4, 4, "light", 96, True), (2, 2, "light", len(x), False))
    for T, phi, cal, n, held_out in cases:
        conv, s = convert(str(digits["model"]), (x, y), None, timesteps=T, max_spikes=phi, calibration=cal,
                          calib_samples=n)
        xc, _ = pick_calibration(x, y, n, 0)
        xk = pick_check(x, n, 0)
        if held_out:
            assert len(xk) == min(CHECK_SAMPLES, len(x) - n)
            assert not (xk[:, None] == xc[None]).reshape(len(xk), len(xc), -1).all(axis=2).any()  # disjoint
        else:
            assert xk is None
            xk = xc
        sim, _ = simulate(conv.snn, xk, T)
        k = len(xk)
        want = float((sim.mean_output().reshape(k, -1).argmax(1) == conv.ann.run(xk).reshape(k, -1).argmax(1))
                     .mean())
        c = s["calibration_check"]
        assert {key: c[key] for key in ("agreement", "samples", "held_out", "regression")} == {
            "agreement": want, "samples": k, "held_out": held_out, "regression": False}
        from adacal.summary import output_error
        assert c["output_error"] == output_error(sim.mean_output(), conv.ann.run(xk))
        assert bool(s["warnings"]) == (want < AGREEMENT_WARNING)
        assert "calibration check" in s["timings"]


def test_a_lossy_conversion_is_reported_with_one_warning(digits, cli):
    """T=1, φ=1, no calibration loses accuracy on the digits CNN: the JSON and
    the table carry one warning naming the agreement and what to try; the
    default conversion carries none."""
    base = ("convert", digits["model"], "--calib", digits["calib"], "--calib-samples", "128")
    lossy = ("-T", "1", "--max-spikes", "1", "--calibration", "none")
    s = _ok_json(cli(*base, *lossy, "--json"))
    c = s["calibration_check"]
    assert 0.5 < c["agreement"] < 0.97 and c["held_out"], c
    w = s["warnings"]
    assert len(w) == 1 and f"{100 * c['agreement']:.1f} % of {c['samples']} held-out" in w[0], w
    assert "--timesteps" in w[0] and "--max-spikes" in w[0]
    table = cli(*base, *lossy, "--quiet")
    assert table.returncode == 0 and table.stderr == ""
    assert [line for line in table.stdout.splitlines() if line.startswith("warning: ")] == ["warning: " + w[0]]
    good = _ok_json(cli(*base, "--json"))  # T=8, φ=4, light
    assert good["calibration_check"]["agreement"] >= 0.97 and good["warnings"] == []
