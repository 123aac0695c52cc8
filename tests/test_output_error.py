"""Outputs that are not classes (issue 15): output_error of the SNN's readout
against the ANN in convert, compile and simulate; float regression targets
give null accuracies (docs/method.md, "Output error")."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from adacal.data import as_data
from adacal.errors import AdacalError
from adacal.summary import accuracy, output_error

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
KEYS = {"relative_l2", "cosine", "max_abs"}


def test_output_error_by_hand():
    ann = np.array([[3.0, 4.0], [0.0, 1.0]])  # ||ann||_F = sqrt(26)
    snn = np.array([[3.0, 4.0], [1.0, 1.0]])  # differs by 1 in one value
    e = output_error(snn, ann)
    assert set(e) == KEYS
    assert e["relative_l2"] == pytest.approx(1 / np.sqrt(26))
    # sample 0: identical (cos 1); sample 1: (1,1).(0,1) / (sqrt 2 * 1) = 1/sqrt 2
    assert e["cosine"] == pytest.approx((1 + 1 / np.sqrt(2)) / 2)
    assert e["max_abs"] == 1.0
    # per-sample shapes are flattened; zero vectors: cos 1 if both are 0, else 0
    z = output_error(np.zeros((2, 1, 2)), np.array([[[0.0, 0.0]], [[1.0, 0.0]]]))
    assert z["cosine"] == 0.5 and z["relative_l2"] == 1.0 and z["max_abs"] == 1.0
    assert output_error(np.zeros((1, 2)), np.zeros((1, 2))) == {"relative_l2": 0.0, "cosine": 1.0, "max_abs": 0.0}
    assert output_error(np.ones((1, 2)), np.zeros((1, 2)))["relative_l2"] is None
    with pytest.raises(ValueError):
        output_error(np.zeros((2, 3)), np.zeros((2, 2)))


def test_float_targets_are_accepted_and_give_no_accuracy():
    x = np.zeros((4, 3), np.float32)
    _, y = as_data((x, np.full((4, 2), 0.5)), (3,), 2, "val", (2,))
    assert y.dtype == np.float32 and y.shape == (4, 2) and accuracy(np.zeros(4), y) is None
    _, y = as_data((x, np.array([0.0, 1.0, 1.0, 0.0])), (3,), 2, "val", (2,))  # whole numbers (N,): labels
    assert y.dtype == np.int64 and accuracy(np.zeros(4), y) == 0.5
    _, y = as_data((x, np.array([0.5, 1.5, 2.0, 0.0])), (3,), 1, "val", (1,))  # one output: (N,) targets
    assert y.shape == (4, 1) and y.dtype == np.float32
    for bad, msg in ((np.full((4, 3), 0.5), "per-sample shape"), (np.full((3, 2), 0.5), "3 targets for 4"),
                     (np.array([0.5, 1.5, 2.0, 0.0]), "expected integer labels"),
                     (np.full((4, 2), np.nan), "NaN")):
        with pytest.raises(AdacalError, match=msg):
            as_data((x, bad), (3,), 2, "val", (2,))


def _regression_model(path: Path, rng) -> tuple[np.ndarray, np.ndarray]:
    """A 6-32-2 ReLU MLP fitted (ridge regression on fixed random features) to a
    smooth function of its input; returns (x, targets)."""
    x = rng.uniform(0, 1, (600, 6)).astype(np.float32)
    t = np.stack([x[:, :3].sum(1), x[:, 3] * x[:, 4] + x[:, 5]], axis=1).astype(np.float32)
    w1 = rng.standard_normal((32, 6)).astype(np.float32)
    b1 = rng.uniform(0, 1, 32).astype(np.float32)
    h = np.maximum(x @ w1.T + b1, 0)
    hb = np.c_[h, np.ones(len(h))]  # ridge: small readout weights, as a trained net has
    sol = np.linalg.solve(hb.T @ hb + 3.0 * np.eye(hb.shape[1]), hb.T @ t)
    w2, b2 = sol[:-1].T.astype(np.float32), sol[-1].astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    nodes = [helper.make_node("Gemm", ["input", "w1", "b1"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="relu1"),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["output"], name="fc2", transB=1)]
    graph = helper.make_graph(nodes, "reg", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 6])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 2])], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return x, t


def _adacal(*args) -> dict:
    r = subprocess.run([sys.executable, "-m", "adacal", *map(str, args), "--json"], capture_output=True, text=True,
                       env=ENV, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _sane(e: dict, limit: float) -> None:
    assert set(e) == KEYS
    assert 0 <= e["relative_l2"] <= limit and e["cosine"] > 0.99 and 0 <= e["max_abs"] < 1


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("reg")
    x, t = _regression_model(d / "reg.onnx", np.random.default_rng(0))
    np.savez(d / "cal.npz", x=x[:400], y=t[:400])
    np.savez(d / "val.npz", x=x[400:], y=t[400:])
    return d


def test_convert_reports_output_error_and_no_accuracy(files):
    s = _adacal("convert", files / "reg.onnx", "--calib", files / "cal.npz", "--val", files / "val.npz", "-T", 16,
                "--calib-samples", 200)
    assert s["ann_accuracy"] is None and s["snn_accuracy"] is None and s["accuracy_by_timestep"] is None
    _sane(s["output_error"], 0.05)


@pytest.mark.parametrize("T,warned", [(16, False), (1, True)])
def test_calibration_check_of_a_regression_model_is_its_output_error(files, T, warned):
    """Float targets: the check reports the readout's error against the ANN
    and warns on it (argmax agreement means little for regression)."""
    s = _adacal("convert", files / "reg.onnx", "--calib", files / "cal.npz", "-T", T, "--max-spikes", 1,
                "--calib-samples", 200)
    c = s["calibration_check"]
    assert c["regression"] is True and c["samples"] == 200 and c["held_out"] is True
    rel = c["output_error"]["relative_l2"]
    assert (rel > 0.10) is warned
    assert any("relative L2 error" in w for w in s["warnings"]) is warned
    assert not any("predicts what the ANN predicts" in w for w in s["warnings"])


def test_compile_and_simulate_report_output_error(files, tmp_path):
    out = tmp_path / "loihi2"
    s = _adacal("compile-loihi2", files / "reg.onnx", "--calib", files / "cal.npz", "--val", files / "val.npz",
                "-T", 16, "--calib-samples", 200, "-o", out)
    assert s["ann_accuracy"] is None and s["snn_accuracy"] is None and s["float_snn_accuracy"] is None
    _sane(s["output_error"], 0.05)
    _sane(s["float_snn_output_error"], 0.05)
    man = json.loads((out / "manifest.json").read_text())
    assert "ann.onnx" in man["files"] and (out / "ann.onnx").read_bytes() == (files / "reg.onnx").read_bytes()
    report = json.loads((out / "report.json").read_text())
    assert report["output_error"] == s["output_error"]
    assert "Output error against the ANN" in (out / "report.html").read_text()
    sim = _adacal("simulate", out, "--data", files / "val.npz")
    assert sim["accuracy"] is None
    # simulate runs the same network and the stored ANN on the same data
    assert sim["output_error"] == pytest.approx(s["output_error"])


def test_without_the_ann_simulate_reports_null(files, tmp_path):
    import adacal
    from adacal.pipeline import load_model

    art = adacal.compile(load_model(str(files / "reg.onnx")), "loihi2", str(files / "cal.npz"), tmp_path / "a",
                         timesteps=4, calib_samples=64)
    assert not (tmp_path / "a" / "ann.onnx").exists()
    res = adacal.load_artifact(tmp_path / "a").simulate(str(files / "val.npz"))
    assert res["output_error"] is None and res["outputs"].shape == (200, 2)


def test_simulate_text_line_names_the_output_error(files, tmp_path):
    out = tmp_path / "x"
    _adacal("compile-loihi2", files / "reg.onnx", "--calib", files / "cal.npz", "-T", 4, "--calib-samples", 64,
            "-o", out)
    r = subprocess.run([sys.executable, "-m", "adacal", "simulate", str(out), "--data", str(files / "val.npz")],
                       capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "accuracy n/a (no labels)" in r.stdout and "output error vs ANN: relative L2" in r.stdout
