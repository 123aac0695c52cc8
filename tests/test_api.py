"""The Python API (adacal/__init__.py): load_onnx, convert, compile and
load_artifact for both targets, with data given as .npz paths, arrays and
(x, y) pairs; errors are AdacalError with the CLI's one-line message.

The model is a small trained wine MLP (13-32-16-3, bench/models.py), which
fits every Xylo device and compiles for Loihi 2 in seconds.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import adacal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


@pytest.fixture(scope="module")
def wine():
    import models
    p = models.get("wine_mlp")  # trained once (deterministic), cached in bench/out/
    with np.load(p["calib"]) as f:
        cal = (f["x"], f["y"])
    with np.load(p["test"]) as f:
        test = (f["x"], f["y"])
    return {**p, "cal": cal, "val": test}


def test_load_onnx_runs_like_onnxruntime(wine):
    g = adacal.load_onnx(str(wine["onnx"]))
    x = wine["val"][0]
    ref = ort.InferenceSession(str(wine["onnx"])).run(None, {"input": x})[0]
    np.testing.assert_allclose(g.run(x), ref, rtol=1e-5, atol=1e-5)


def test_convert_from_paths_equals_from_arrays(wine, tmp_path):
    a = adacal.convert(str(wine["onnx"]), str(wine["calib"]), str(wine["test"]), timesteps=4)
    b = adacal.convert(str(wine["onnx"]), wine["cal"], wine["val"], timesteps=4)
    for key in ("ann_accuracy", "snn_accuracy", "spikes_per_sample", "synops_per_sample", "energy_pj_per_sample"):
        assert a.summary[key] == b.summary[key], key
    assert a.summary["snn_accuracy"] > 0.8
    # simulate: the same figures from a path, a pair, and an array (no labels: accuracy None)
    from_path = a.simulate(str(wine["test"]))
    assert from_path["snn_accuracy"] == a.summary["snn_accuracy"]
    assert a.simulate(wine["val"])["snn_accuracy"] == a.summary["snn_accuracy"]
    unlabelled = a.simulate(wine["val"][0])
    assert unlabelled["snn_accuracy"] is None and unlabelled["spikes_per_sample"] == a.summary["spikes_per_sample"]
    out = a.save(tmp_path / "conv")
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "network.txt", "report.html", "report.json"]
    assert json.loads((out / "report.json").read_text())["snn_accuracy"] == a.summary["snn_accuracy"]


@pytest.mark.parametrize("device", ["xylo-audio2"])
def test_compile_xylo_with_device(wine, tmp_path, device):
    art = adacal.compile(str(wine["onnx"]), "xylo", str(wine["calib"]), tmp_path / "x", val=wine["val"],
                         device=device, timesteps=8)
    assert art.target == "xylo" and art.manifest["device"] == device
    assert art.summary["device"] == device and art.summary["snn_accuracy"] > 0.8
    loaded = adacal.load_artifact(tmp_path / "x")
    sim = loaded.simulate(str(wine["test"]))
    assert sim["accuracy"] == art.summary["snn_accuracy"]
    ver = loaded.verify(wine["val"], samples=6)
    assert ver["samples"] == 6 and ver["reference"] == "xylosim" and ver["mismatched_samples"] == 0


def test_compile_loihi2_from_arrays_and_verify(wine, tmp_path):
    art = adacal.compile(str(wine["onnx"]), "loihi2", wine["cal"], tmp_path / "l", val=str(wine["test"]),
                         timesteps=4)
    assert art.target == "loihi2" and (tmp_path / "l" / "network.h5").exists()
    loaded = adacal.load_artifact(tmp_path / "l")
    sim = loaded.simulate(wine["val"])
    assert sim["accuracy"] == art.summary["snn_accuracy"]
    assert loaded.simulate(wine["val"][0])["accuracy"] is None
    ver = loaded.verify(str(wine["test"]), samples=3)
    assert ver["samples"] == 3 and ver["reference"] == "lava-fixed_pt" and ver["mismatched_samples"] == 0


def _cli_error(*args) -> str:
    r = subprocess.run([sys.executable, "-m", "adacal", *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    return r.stderr.strip().splitlines()[-1].removeprefix("adacal: error: ")


def test_errors_are_adacal_errors_with_the_cli_message(wine, tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((4, 5), np.float32))
    with pytest.raises(adacal.AdacalError) as e:
        adacal.compile(str(wine["onnx"]), "loihi2", str(bad), tmp_path / "o")
    assert str(e.value) == _cli_error("compile-loihi2", wine["onnx"], "--calib", bad, "-o", tmp_path / "o2")
    assert not (tmp_path / "o").exists()
    with pytest.raises(adacal.AdacalError, match="needs a device"):
        adacal.compile(str(wine["onnx"]), "xylo", wine["cal"], tmp_path / "o")
    with pytest.raises(adacal.AdacalError, match="unknown target 'spinnaker'"):
        adacal.compile(str(wine["onnx"]), "spinnaker", wine["cal"], tmp_path / "o")
    with pytest.raises(adacal.AdacalError, match="has no option device"):
        adacal.compile(str(wine["onnx"]), "loihi2", wine["cal"], tmp_path / "o", device="xylo-imu")
    with pytest.raises(adacal.AdacalError, match="unknown option timestep"):
        adacal.convert(str(wine["onnx"]), wine["cal"], timestep=4)
    with pytest.raises(adacal.AdacalError, match="per-sample shape"):
        adacal.convert(str(wine["onnx"]), np.zeros((3, 7), np.float32))
    with pytest.raises(adacal.AdacalError, match="not an adacal artifact directory"):
        adacal.load_artifact(tmp_path / "nowhere")
