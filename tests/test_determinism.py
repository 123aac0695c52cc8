"""Determinism: the same model, data, options and seed give byte-identical outputs.

Every command runs twice in separate `python -m adacal` processes that differ
in everything that must not matter: the output directory's name and parent,
the model file's path (a copy in another directory), the working directory
and PYTHONHASHSEED.  Compared byte for byte:

  compile-loihi2  network.h5, manifest.json (and network.nir with --emit-nir)
  compile-xylo    xylo_spec.npz, xylo_spec.json, manifest.json
  convert -o      manifest.json, network.txt

report.json / report.html carry wall-clock timings and are not compared.

The seed: with more calibration data than --calib-samples, a different --seed
picks a different calibration subset (different thresholds in the manifest),
and the manifest records the seed; with no more data than --calib-samples the
seed cannot matter and the networks are identical.
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
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]


def _mlp(n_in=8, hidden=24, n_out=3, seed=0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array((rng.standard_normal((hidden, n_in)) / np.sqrt(n_in)).astype(np.float32), "w1"),
             numpy_helper.from_array((0.1 * rng.standard_normal(hidden)).astype(np.float32), "b1"),
             numpy_helper.from_array((rng.standard_normal((n_out, hidden)) / np.sqrt(hidden)).astype(np.float32), "w2"),
             numpy_helper.from_array(np.zeros(n_out, np.float32), "b2")]
    nodes = [helper.make_node("Gemm", ["input", "w1", "b1"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="relu1"),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["output"], name="fc2", transB=1)]
    graph = helper.make_graph(nodes, "mlp",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", n_in])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", n_out])],
                              initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("det")
    model = d / "m1" / "model.onnx"
    model.parent.mkdir()
    onnx.save(_mlp(), str(model))
    copy = d / "elsewhere" / "model_copy.onnx"
    copy.parent.mkdir()
    shutil.copy(model, copy)
    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_normal((96, 8))).astype(np.float32)
    np.savez(d / "calib.npz", x=x, y=np.arange(96) % 3)
    np.savez(d / "val.npz", x=x[:24], y=np.arange(24) % 3)
    return {"dir": d, "model": model, "copy": copy, "calib": d / "calib.npz", "val": d / "val.npz"}


def _run(args, cwd, hashseed):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": str(hashseed),
           "PYTHONWARNINGS": "ignore"}
    r = subprocess.run([sys.executable, "-m", "adacal", *map(str, args)], capture_output=True, text=True,
                       env=env, cwd=cwd, timeout=600)
    assert r.returncode == 0, f"adacal {' '.join(map(str, args))}: exit {r.returncode}\n{r.stderr}"
    return r


FAST = ("-T", "4", "--calib-samples", "64", "--quiet")

#: command -> (arguments after the model, files compared)
COMMANDS = {
    "compile-loihi2": (("--calib", "{calib}", *FAST, "--emit-nir"),
                       ("network.h5", "manifest.json", "network.nir", "ann.onnx")),
    "compile-xylo": (("--calib", "{calib}", "--device", "xylo-audio3", *FAST),
                     ("xylo_spec.npz", "xylo_spec.json", "manifest.json", "ann.onnx")),
    "convert": (("--calib", "{calib}", "--val", "{val}", *FAST), ("manifest.json", "network.txt")),
    "convert_seed1": (("--calib", "{calib}", *FAST, "--seed", "1"), ("manifest.json", "network.txt")),
    "convert_all_data": (("--calib", "{calib}", "-T", "4", "--calib-samples", "500", "--quiet"),
                         ("manifest.json", "network.txt")),
    "convert_all_data_seed1": (("--calib", "{calib}", "-T", "4", "--calib-samples", "500", "--quiet",
                                "--seed", "1"), ("manifest.json", "network.txt")),
}


@pytest.fixture(scope="module")
def runs(setup):
    """Every command twice (a: model at m1/, out in a/, cwd = tmp; b: a copy of
    the model elsewhere, out in other/b_out, cwd = the repo, another hash seed)."""
    d = setup["dir"]

    def job(key, side):
        cmd = key.split("_")[0]
        rest, _ = COMMANDS[key]
        rest = [str(a).format(calib=setup["calib"], val=setup["val"]) for a in rest]
        if side == "a":
            out, model, cwd, seed = d / "a" / key, setup["model"], d, 1
        else:
            out, model, cwd, seed = d / "other" / "b_out" / key, setup["copy"], ROOT, 2
        _run([cmd, model, *rest, "-o", out], cwd, seed)
        return out

    jobs = [(k, s) for k in COMMANDS for s in ("a", "b")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {j: pool.submit(job, *j) for j in jobs}
        return {j: f.result() for j, f in futures.items()}


@pytest.mark.parametrize("key", ["compile-loihi2", "compile-xylo", "convert", "convert_seed1"])
def test_two_runs_are_byte_identical(runs, key):
    a, b = runs[(key, "a")], runs[(key, "b")]
    for name in COMMANDS[key][1]:
        assert (a / name).exists(), f"{key}: {name} not written"
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{key}: {name} differs between two runs"


def test_the_artifact_lists_what_it_holds(runs):
    for key in ("compile-loihi2", "compile-xylo"):
        out = runs[(key, "a")]
        man = json.loads((out / "manifest.json").read_text())
        assert sorted(man["files"]) == sorted(p.name for p in out.iterdir()), key


def test_manifest_has_no_paths_or_times(runs, setup):
    """Nothing that differs between the two runs (paths, names of the output or
    model, wall-clock time) is in a manifest."""
    for key in COMMANDS:
        text = runs[(key, "a")].joinpath("manifest.json").read_text()
        for leak in (str(setup["dir"]), "model.onnx", key, "seconds", "timings"):
            assert leak not in text, f"{key}: manifest.json contains {leak!r}"


def _thresholds(out: Path) -> list:
    return [L["threshold"] for L in json.loads((out / "manifest.json").read_text())["neuron_layers"]]


def test_the_manifest_records_the_seed(runs):
    for key, seed in (("convert", 0), ("convert_seed1", 1), ("compile-loihi2", 0), ("compile-xylo", 0)):
        assert json.loads((runs[(key, "a")] / "manifest.json").read_text())["options"]["seed"] == seed, key


def test_another_seed_picks_another_calibration_subset(runs, setup):
    from adacal.pipeline import pick_calibration

    with np.load(setup["calib"]) as f:
        x, y = f["x"], f["y"]
    x0, _ = pick_calibration(x, y, 64, 0)
    x1, _ = pick_calibration(x, y, 64, 1)
    assert len(x0) == len(x1) == 64 and not np.array_equal(x0, x1)
    # ... and so (96 samples, 64 used) other thresholds end to end
    assert _thresholds(runs[("convert", "a")]) != _thresholds(runs[("convert_seed1", "a")])


def test_the_seed_does_not_matter_when_all_data_is_used(runs, setup):
    """--calib-samples 500 > 96 samples: every seed uses all of them."""
    from adacal.pipeline import pick_calibration

    with np.load(setup["calib"]) as f:
        x, y = f["x"], f["y"]
    assert np.array_equal(pick_calibration(x, y, 500, 0)[0], pick_calibration(x, y, 500, 1)[0])
    m0 = json.loads((runs[("convert_all_data", "a")] / "manifest.json").read_text())
    m1 = json.loads((runs[("convert_all_data_seed1", "a")] / "manifest.json").read_text())
    assert (m0["options"]["seed"], m1["options"]["seed"]) == (0, 1)
    m0["options"].pop("seed"), m1["options"].pop("seed")
    assert m0 == m1  # the same network; only the recorded seed differs
    assert (runs[("convert_all_data", "a")] / "network.txt").read_bytes() == \
        (runs[("convert_all_data_seed1", "b")] / "network.txt").read_bytes()
