"""compile-loihi2 / simulate / verify end to end through the CLI, on the
bundled digits example (Lava's fixed_pt models as the reference)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def adacal(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "adacal", *map(str, args)], capture_output=True, text=True, env=ENV)
    if check and r.returncode != 0:
        raise AssertionError(f"exit {r.returncode}: {r.stderr}")
    return r


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    subprocess.run([sys.executable, str(ROOT / "examples" / "digits_cnn.py"), "--out", str(out)], check=True,
                   capture_output=True, env=ENV)
    return out


@pytest.fixture(scope="module")
def artifact(example, tmp_path_factory):
    art = tmp_path_factory.mktemp("art") / "loihi2"
    r = adacal("compile-loihi2", example / "digits_cnn.onnx", "--calib", example / "digits_calib.npz",
               "--val", example / "digits_test.npz", "-o", art, "-T", 8, "--max-spikes", 4, "--json")
    return art, json.loads(r.stdout)


def test_compile_writes_the_artifact_and_reports_bit_accurate_accuracy(artifact):
    art, summary = artifact
    assert sorted(p.name for p in art.iterdir()) == ["ann.onnx", "manifest.json", "network.h5", "report.html",
                                                     "report.json"]
    man = json.loads((art / "manifest.json").read_text())
    assert man["format"] == "adacal-loihi2" and man["target"] == "loihi2" and man["timesteps"] == 8
    for key in ("ann_accuracy", "float_snn_accuracy", "snn_accuracy", "spikes_per_sample", "synops_per_sample",
                "energy_pj_per_sample", "per_layer", "resources", "seconds"):
        assert key in summary
    assert abs(summary["snn_accuracy"] - summary["float_snn_accuracy"]) <= 0.01
    assert summary["snn_accuracy"] >= summary["ann_accuracy"] - 0.02
    assert summary["resources"]["cores"] >= 1 and summary["resources"]["neurons"] == 8 * 8 * 8 + 16 * 4 * 4
    assert all(L["float_int_relative_error"] < 0.25 for L in summary["per_layer"])


def test_simulate_agrees_with_the_compile_report(artifact, example):
    art, summary = artifact
    sim = json.loads(adacal("simulate", art, "--data", example / "digits_test.npz", "--json").stdout)
    assert sim["accuracy"] == pytest.approx(summary["snn_accuracy"])
    assert sim["spikes_per_sample"] == pytest.approx(summary["spikes_per_sample"])
    assert sim["avg_timesteps"] == 8


def test_verify_is_bit_exact_against_lava(artifact, example):
    art, _ = artifact
    r = adacal("verify", art, "--data", example / "digits_test.npz", "--samples", 4, "--json", check=False)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["mismatched_samples"] == 0 and res["first_mismatch"] is None
    assert res["reference"] == "lava-fixed_pt" and res["samples"] == 4


def test_verify_reports_an_injected_mismatch_with_exit_1(artifact, example, monkeypatch, capsys):
    """One spike changed on adacal's side only: verify must exit 1 and name it."""
    from adacal import cli
    from adacal.runtime_sim import int_sim

    real = int_sim.simulate_int

    def off_by_one(*args, **kw):
        res, g = real(*args, **kw)
        name = next(iter(res.payloads))
        res.payloads[name][2, 1, 3, 4, 5] += 1  # step 3, sample 1, neuron (3, 4, 5)
        return res, g

    monkeypatch.setattr(int_sim, "simulate_int", off_by_one)
    code = cli.main(["verify", str(artifact[0]), "--data", str(example / "digits_test.npz"), "--samples", "2",
                     "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 1 and res["mismatched_samples"] == 1
    m = res["first_mismatch"]
    assert (m["step"], m["sample"], m["neuron"]) == (3, 1, [3, 4, 5]) and m["adacal"] == m["reference"] + 1


def test_network_file_runs_on_lava_in_a_fresh_process(artifact, example):
    art, _ = artifact
    code = f"""
import json, numpy as np
from adacal.backends.loihi2 import load_network, run_network
x = np.load({str(example / 'digits_test.npz')!r})['x'][:2]
res = run_network({str(art)!r}, x)
low = load_network({str(art)!r})
from adacal.runtime_sim.int_sim import simulate_int
ours, _ = simulate_int(low.graph, x, low.timesteps, record_payloads=True)
same = all(np.array_equal(ours.payloads[k], res['payloads'][k]) for k in ours.payloads)
print(json.dumps({{'same': bool(same and np.array_equal(ours.readout, res['readout'])), 'layers': len(ours.payloads)}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"same": True, "layers": 2}


def test_compile_is_deterministic(example, tmp_path):
    outs = []
    for name in ("a", "b"):
        adacal("compile-loihi2", example / "digits_cnn.onnx", "--calib", example / "digits_calib.npz",
               "-o", tmp_path / name, "-T", 4, "--quiet")
        outs.append(tmp_path / name)
    for f in ("network.h5", "manifest.json"):
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes()


def test_compile_refuses_existing_output_and_bad_input(example, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("user data")
    r = adacal("compile-loihi2", example / "digits_cnn.onnx", "--calib", example / "digits_calib.npz",
               "-o", tmp_path / "x", check=False)
    assert r.returncode == 2 and "not an adacal output" in r.stderr and "Traceback" not in r.stderr
    r = adacal("verify", tmp_path / "x", "--data", example / "digits_test.npz", check=False)
    assert r.returncode == 2 and "manifest.json" in r.stderr
