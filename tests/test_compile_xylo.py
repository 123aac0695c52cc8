"""compile-xylo / simulate / verify end to end through the CLI.

* the wine MLP (bench/models.py, 13-32-16-3) compiles for all three Xylo
  devices (`adacal compile-xylo` in a subprocess; simulate / verify through
  adacal.cli.main in-process, to keep the test short); `verify` on the whole wine test set is bit-exact against
  Rockpool's XyloSim (every hidden neuron's events per step, output Vmem and
  output events); `simulate --json` gives the compile report's accuracy;
* xylo_spec.npz is exactly the XyloSim.from_specification keyword arguments
  (a fresh XyloSim built from the file alone reproduces adacal's simulator);
* a 10-class model does not fit xylo-audio2 (8 outputs): exit 2, the limit
  named, no output directory;
* an injected mismatch makes `verify` exit 1 naming step and neuron;
* two compiles are byte-identical (xylo_spec.npz, xylo_spec.json, manifest.json).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
DEVICES = ["xylo-audio2", "xylo-audio3", "xylo-imu"]
T = 16


def adacal(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "adacal", *map(str, args)], capture_output=True, text=True, env=ENV)
    if check and r.returncode != 0:
        raise AssertionError(f"exit {r.returncode}: {r.stderr}")
    return r


@pytest.fixture(scope="module")
def wine():
    import models
    return models.get("wine_mlp")  # trained once (deterministic), cached in bench/out/


@pytest.fixture(scope="module")
def artifacts(wine, tmp_path_factory):
    root = tmp_path_factory.mktemp("xylo")
    out = {}
    for d in DEVICES:
        r = adacal("compile-xylo", wine["onnx"], "--calib", wine["calib"], "--val", wine["test"], "-o", root / d,
                   "--device", d, "-T", T, "--json")
        out[d] = (root / d, json.loads(r.stdout))
    return out


@pytest.mark.parametrize("device", DEVICES)
def test_compile_verify_simulate(artifacts, wine, device, capsys):
    from adacal import cli

    art, summary = artifacts[device]
    assert sorted(p.name for p in art.iterdir()) == ["ann.onnx", "manifest.json", "report.html", "report.json",
                                                     "xylo_spec.json", "xylo_spec.npz"]
    man = json.loads((art / "manifest.json").read_text())
    assert (man["format"], man["target"], man["device"], man["timesteps"]) == ("adacal-xylo", "xylo", device, T)
    assert man["xylo"]["encoder"]["n_features"] == 13 and man["source_model_sha256"]
    assert "argmax" in man["readout_rule"]
    for key in ("ann_accuracy", "float_snn_accuracy", "snn_accuracy", "spikes_per_sample", "synops_per_sample",
                "energy_pj_per_sample", "per_layer", "resources", "seconds"):
        assert key in summary
    assert summary["snn_accuracy"] >= summary["ann_accuracy"] - 0.03
    with np.load(wine["test"]) as t:
        n = len(t["x"])
    capsys.readouterr()
    code = cli.main(["verify", str(art), "--data", str(wine["test"]), "--samples", str(n), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0 and res["samples"] == n and res["mismatched_samples"] == 0
    assert res["first_mismatch"] is None and res["reference"] == "xylosim"
    assert cli.main(["simulate", str(art), "--data", str(wine["test"]), "--json"]) == 0
    sim = json.loads(capsys.readouterr().out)
    assert sim["accuracy"] == summary["snn_accuracy"]
    assert sim["spikes_per_sample"] == pytest.approx(summary["spikes_per_sample"])
    assert sim["energy_pj_per_sample"] == pytest.approx(summary["energy_pj_per_sample"])


def test_spec_file_is_exactly_the_from_specification_kwargs(artifacts, wine):
    from adacal.artifact import load_artifact
    from adacal.backends.xylo.compat import xylosim_class
    from adacal.backends.xylo.spec import XyloSpec
    from adacal.runtime_sim import xylo_sim

    art, _ = artifacts["xylo-audio3"]
    with np.load(art / "xylo_spec.npz") as z:
        kw = {k: (z[k].item() if z[k].ndim == 0 else z[k]) for k in z.files}
    spec_json = json.loads((art / "xylo_spec.json").read_text())["kwargs"]
    assert set(spec_json) == set(kw)
    for k, v in spec_json.items():
        assert np.array_equal(np.asarray(v["value"], dtype=None if v["dtype"] == "str" else v["dtype"]), kw[k])
    mod = xylosim_class("xylo-audio3").from_specification(**kw)
    with np.load(wine["test"]) as t:
        x = t["x"][:1]
    enc = load_artifact(art).lowering.low.encode(x)
    out, _, rec = mod.evolve(enc[0], record=True)
    ours = xylo_sim.simulate(XyloSpec(**kw), enc)
    assert np.array_equal(np.asarray(out).reshape(ours.vmem_out[0].shape), ours.vmem_out[0])
    assert np.array_equal(np.asarray(rec["Spikes"]).reshape(ours.spikes[0].shape), ours.spikes[0])


def test_verify_reports_an_injected_mismatch_with_exit_1(artifacts, wine, monkeypatch, capsys):
    from adacal import cli
    from adacal.runtime_sim import xylo_sim

    art, _ = artifacts["xylo-imu"]
    real = xylo_sim.simulate

    def off_by_one(*args, **kw):
        res = real(*args, **kw)
        res.spikes[1, 4, 5] += 1  # sample 1, step 5 (1-based), hidden neuron 5 (layer 0)
        return res

    monkeypatch.setattr(xylo_sim, "simulate", off_by_one)
    code = cli.main(["verify", str(art), "--data", str(wine["test"]), "--samples", "3", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 1 and res["mismatched_samples"] >= 1
    m = res["first_mismatch"]
    assert (m["quantity"], m["step"], m["sample"], m["neuron"], m["hidden_id"]) == ("events", 5, 1, [5], 5)
    assert m["adacal"] == m["reference"] + 1
    code = cli.main(["verify", str(art), "--data", str(wine["test"]), "--samples", "3"])
    text = capsys.readouterr().out
    assert code == 1 and "MISMATCH" in text and "step 5" in text and "neuron [5]" in text


def test_ten_classes_do_not_fit_audio2(tmp_path):
    import torch
    from models import export
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    x = np.random.default_rng(0).random((64, 16), dtype=np.float32)
    y = np.arange(64) % 10
    export(model, x, tmp_path / "d10.onnx")
    np.savez(tmp_path / "cal.npz", x=x, y=y)
    out = tmp_path / "out"
    r = adacal("compile-xylo", tmp_path / "d10.onnx", "--calib", tmp_path / "cal.npz", "-o", out,
               "--device", "xylo-audio2", check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "10 output neurons exceed xylo-audio2's 8" in r.stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    # fits on audio3
    adacal("compile-xylo", tmp_path / "d10.onnx", "--calib", tmp_path / "cal.npz", "-o", out,
           "--device", "xylo-audio3", "-T", 4, "--quiet")
    assert (out / "xylo_spec.npz").exists()


def test_compile_is_deterministic(wine, artifacts, tmp_path):
    # without --val, in a fresh process: the same bytes as the --val compile of the fixture
    adacal("compile-xylo", wine["onnx"], "--calib", wine["calib"], "-o", tmp_path / "b",
           "--device", "xylo-audio2", "-T", T, "--quiet")
    a = artifacts["xylo-audio2"][0]
    for f in ("xylo_spec.npz", "xylo_spec.json", "manifest.json"):
        assert (a / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
