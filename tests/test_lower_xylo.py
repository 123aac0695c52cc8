"""Lowering converted burst SNNs onto Xylo (backends/xylo/lower.py and its
stages: encoder, network, plan, quantise, assemble, calibrate, evaluate).
The design rules and the device table: test_xylo_rules.py.

* the wine MLP (bench/models.py, 13-32-16-3; trained on first use and
  cached in bench/out/ like the benchmarks do) compiles for all three devices, passes the DRC, its XyloSpec
  validates for the device, adacal's simulator equals Rockpool's XyloSim on
  the encoded test set (every recorded state), and the bit-accurate accuracy
  at T = 16 is within 2 points of the ANN;
* a digits MLP on 16 features (8x8 digits average-pooled to 4x4, 16-64-10,
  trained here) compiles for xylo-audio3 and xylo-imu and is rejected for
  xylo-audio2 (10 classes > 8 outputs);
* the exact neurons (integrating isyn, Vmem = isyn + bias, self-reset
  synapse, bias pipeline) reproduce the float SNN's spike counts before any
  calibration and fire nothing after their window; the leaky alternative
  compiles too;
* the encoder's exact event totals, the conv unrolling, clear rejections.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from adacal import ir  # noqa: E402
from adacal.backends.xylo.encoder import fit_encoder  # noqa: E402
from adacal.backends.xylo.evaluate import evaluate_xylo  # noqa: E402
from adacal.backends.xylo.lower import lower_xylo  # noqa: E402
from adacal.backends.xylo.reference import run_xylosim  # noqa: E402
from adacal.backends.xylo.rules import design_rule_check  # noqa: E402
from adacal.errors import UnsupportedError  # noqa: E402
from adacal.pipeline import convert  # noqa: E402
from adacal.runtime_sim import xylo_sim  # noqa: E402

DEVICE_NAMES = ["xylo-audio2", "xylo-audio3", "xylo-imu"]
FIELDS = ("spikes", "spikes_out", "vmem", "vmem_out", "isyn", "isyn_out")
T = 16


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wine():
    import models
    p = models.get("wine_mlp")  # trained once (deterministic), cached in bench/out/
    with np.load(p["calib"]) as c, np.load(p["test"]) as t:
        cal, test = (c["x"], c["y"]), (t["x"], t["y"])
    conv, summary = convert(str(p["onnx"]), cal, test, timesteps=T, max_spikes=4)
    return conv, summary, cal, test


@pytest.fixture(scope="module")
def wine_lowered(wine):
    conv, _, cal, _ = wine
    return {d: lower_xylo(conv.snn, cal[0], d, T, ann=conv.ann) for d in DEVICE_NAMES}


@pytest.fixture(scope="module")
def digits16():
    from bench_xylo_accuracy import digits16_mlp
    g, cal, test = digits16_mlp()
    conv, summary = convert(g, cal, test, timesteps=T, max_spikes=4)
    return conv, summary, cal, test


# --------------------------------------------------------------------------
# the wine MLP on every device
# --------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICE_NAMES)
def test_wine_compiles_validates_and_matches_xylosim(wine, wine_lowered, device):
    conv, summary, cal, (xt, yt) = wine
    low = wine_lowered[device]
    assert design_rule_check(low, device) == []
    assert design_rule_check(low.spec, device) == []
    low.spec.validate(device)
    spec = low.spec
    assert spec.output_mode == "Vmem"
    # 13 standardised (signed) features: 3 spare channels -> 3 split, 10 offset-coded
    assert low.encoder.modes.count("split") == 3 and low.encoder.modes.count("offset") == 10
    # packing: layer 0 at the start (input window), then the bias units
    # (timer, stage 0, stage 1), the last layer at the end (output window)
    assert low.neuron == "exact" and low.bias_neurons == (32, 33, 34)
    assert [(l.first, l.stop) for l in low.layers] == [(0, 32), (35, 51)]
    assert spec.n_in == 16 and spec.n_hidden == 51 and spec.n_out == 3
    assert not spec.weights_in[:, 32:].any() and not spec.padded_weights_out()[:35].any()
    # exact neurons: integrating isyn, Vmem = isyn + bias, self-reset -Theta >> shift_rec
    ids = np.r_[0:32, 35:51]
    assert (spec.dash_syn[ids] == 15).all() and (spec.dash_mem[ids] == 0).all() and (spec.bias[ids] >= 1).all()
    np.testing.assert_array_equal(-spec.weights_rec[ids, ids, 0].astype(int) << spec.weight_shift_rec,
                                  spec.threshold[ids])
    # T = 16 input steps after one step of delay, one step per hidden layer
    assert low.steps == 1 + T + 2 and [l.window for l in low.layers] == [1 + T, 2 + T]
    enc = low.encode(xt)
    assert enc.shape == (len(xt), low.steps, 16) and enc.max() <= 15
    assert not enc[:, 0].any() and not enc[:, 1 + T:].any()
    ours = xylo_sim.simulate(spec, enc)
    ref = run_xylosim(spec, enc, device)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(ours, f), getattr(ref, f), err_msg=f"{device} {f}")
    acc = float((low.predict_result(ref) == yt).mean())
    assert acc >= summary["ann_accuracy"] - 0.02, (device, acc, summary["ann_accuracy"])
    r = evaluate_xylo(low, xt, yt)
    assert r["accuracy"] == acc
    assert r["events_per_sample"] > 0 and len(r["per_layer"]) == 2
    assert r["per_layer"][0]["max_events_per_step"] <= 31


def test_exact_neurons_reproduce_the_float_snn(wine):
    """Uncalibrated, the exact Xylo neurons emit the float SNN's spike counts
    (integer rounding aside); the bias pipeline stops with the input, so no
    layer fires after its window."""
    from adacal.runtime_sim.float_sim import simulate
    conv, summary, cal, (xt, _) = wine
    low = lower_xylo(conv.snn, cal[0], "xylo-imu", T, ann=conv.ann, calibration_iters=0,
                     readout_calibration=False)
    res = low.run(xt, record_isyn=False)
    sim, _ = simulate(conv.snn, xt, T, keep_steps=tuple(l.name for l in low.layers))
    for l in low.layers:
        xylo = res.spikes[:, :l.window, l.first:l.stop].sum(axis=1)
        flt = np.round(sim.kept_steps[l.name].sum(axis=0) / conv.snn.node(l.name).op.threshold)
        diff = np.abs(xylo.astype(int) - flt)
        assert (diff == 0).mean() > 0.85 and (diff <= 1).mean() > 0.97, (l.name, (diff == 0).mean())
        assert not res.spikes[:, l.window:, l.first:l.stop].any(), l.name  # no tail events
    # the bias units fire c_l events per step for T steps (stage l from step l), the timer once
    timer, stage0, stage1 = low.bias_neurons
    k = res.spikes[0]
    assert k[:, timer].sum() == 1 and k[T - 1, timer] == 1
    c0 = k[0, stage0]
    assert c0 >= 1 and (k[:T, stage0] == c0).all() and not k[T:, stage0].any()
    c1 = k[1, stage1]
    assert c1 >= 1 and (k[1:T + 1, stage1] == c1).all() and not k[T + 1:, stage1].any() and k[0, stage1] == 0


def test_leaky_neurons_also_compile(wine):
    conv, summary, cal, (xt, yt) = wine
    low = lower_xylo(conv.snn, cal[0], "xylo-audio2", T, ann=conv.ann, neuron="leaky")
    assert low.bias_neurons == () and low.steps == T + 4 + 2
    assert (low.spec.dash_syn == 1).all() and (low.spec.dash_mem == 15).all()
    assert design_rule_check(low, "xylo-audio2") == []
    r = evaluate_xylo(low, xt, yt)
    assert r["accuracy"] >= summary["ann_accuracy"] - 0.02


def test_wine_xylo_close_to_ann_logits(wine, wine_lowered):
    """The readout estimates the ANN's logits (scores = Vmem / (G T))."""
    conv, _, _, (xt, _) = wine
    low = wine_lowered["xylo-audio3"]
    ann = conv.ann.run(xt)
    res = low.run(xt)
    err = np.sqrt(((low.scores(res) - ann) ** 2).mean())
    assert err < 0.1 * np.abs(ann).max(), err
    # the calibration reduced every layer's mismatch
    for name, hist in low.calibration["layers"].items():
        assert hist[-1] <= hist[0], (name, hist)


# --------------------------------------------------------------------------
# the 16-feature digits MLP
# --------------------------------------------------------------------------
@pytest.mark.parametrize("device", ["xylo-audio3", "xylo-imu"])
def test_digits16_compiles_on_audio3_and_imu(digits16, device):
    conv, summary, cal, (xt, yt) = digits16
    low = lower_xylo(conv.snn, cal[0], device, T, ann=conv.ann)
    assert design_rule_check(low, device) == []
    low.spec.validate(device)
    assert low.encoder.modes == ("positive",) * 16  # pixel intensities >= 0: one channel each
    r = evaluate_xylo(low, xt, yt)
    assert r["accuracy"] >= summary["ann_accuracy"] - 0.02, (r["accuracy"], summary["ann_accuracy"])
    enc = low.encode(xt[:40])
    ours = xylo_sim.simulate(low.spec, enc)
    ref = run_xylosim(low.spec, enc, device)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(ours, f), getattr(ref, f), err_msg=f"{device} {f}")


def test_digits16_rejected_on_audio2_with_output_limit(digits16):
    conv, _, cal, _ = digits16
    with pytest.raises(UnsupportedError, match=r"readout 'fc2': 10 output neurons exceed xylo-audio2's 8"):
        lower_xylo(conv.snn, cal[0], "xylo-audio2", T, ann=conv.ann)


# --------------------------------------------------------------------------
# encoder, conv unrolling, rejections
# --------------------------------------------------------------------------
def test_encoder_codes_and_exact_totals():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)).astype(np.float32)
    x[:, 0] = np.abs(x[:, 0])
    enc = fit_encoder(x, 16, 15)
    assert enc.modes == ("positive",) + ("split",) * 5 and enc.n_channels == 11
    x13 = rng.normal(size=(50, 13))
    enc13 = fit_encoder(x13, 16, 15)  # 13 signed features: 3 split, 10 offset
    assert enc13.n_channels == 16 and enc13.modes.count("split") == 3 and enc13.modes.count("offset") == 10
    for e, data in ((enc, x), (enc13, x13)):
        for T_ in (1, 7, 16):
            counts = e.encode(data, T_, T_ + 3)
            assert counts.max() <= 15 and not counts[:, T_:].any()
            u = e.rates(data)
            np.testing.assert_array_equal(counts.sum(axis=1), np.floor(u * T_ + 0.5))
            assert np.all(np.abs(counts[:, :T_] - u[:, None, :]) < 1)  # floor(u) or ceil(u)
        # decoding the totals gives back the features (up to the T-step resolution)
        T_ = 64
        tot = e.encode(data, T_).sum(axis=1) / T_
        rec = e.base.copy()[None].repeat(len(data), 0)
        np.add.at(rec.T, e.feature, (tot * e.sign * e.scale).T)
        assert np.abs(rec - data).max() <= (0.5 / T_ + 1e-9) * e.scale.max() * 2 + 1e-6


def test_conv_unrolled_into_dense():
    from irbuild import build, conv as mkconv, dense as mkdense
    rng = np.random.default_rng(3)
    g = build((1, 4, 4),
              ("c1", mkconv(rng.normal(size=(4, 1, 3, 3)) * 0.5, rng.normal(size=4) * 0.1, pad=1), ["x"]),
              ("r1", ir.Relu(), ["c1"]),
              ("p1", ir.AvgPool((2, 2), (2, 2)), ["r1"]),
              ("f1", ir.Flatten(), ["p1"]),
              ("d1", mkdense(rng.normal(size=(5, 16))), ["f1"]))
    x = rng.uniform(0, 1, size=(200, 1, 4, 4)).astype(np.float32)
    conv, _ = convert(g, x, timesteps=16, max_spikes=4)
    low = lower_xylo(conv.snn, x, "xylo-audio3", 16, ann=conv.ann)
    # one hidden layer: the two bias units (timer, stage 0) go before it
    assert low.spec.n_in == 16 and low.spec.n_hidden == 2 + 64 and low.bias_neurons == (0, 1)
    assert "conv unrolled into a 64x16 dense layer" in low.layers[0].note
    # a 3x3 conv with padding: each input pixel reaches at most 9 positions x 4 channels
    reach = np.count_nonzero(low.spec.weights_in[:, 2:, 0], axis=1)
    assert reach.max() <= 36 and reach.min() >= 16
    ann_pred = conv.ann.run(x).argmax(axis=1)
    r = evaluate_xylo(low, x, ann_pred)
    assert r["accuracy"] >= 0.85, r["accuracy"]


def test_conv_too_large_is_rejected_clearly():
    from irbuild import build, conv as mkconv, dense as mkdense
    rng = np.random.default_rng(0)
    g = build((1, 8, 8),
              ("c1", mkconv(rng.normal(size=(4, 1, 3, 3)), pad=1), ["x"]),
              ("r1", ir.Relu(), ["c1"]),
              ("f1", ir.Flatten(), ["r1"]),
              ("d1", mkdense(rng.normal(size=(3, 256))), ["f1"]))
    x = rng.uniform(0, 1, size=(32, 1, 8, 8)).astype(np.float32)
    conv, _ = convert(g, x, timesteps=4, max_spikes=4, calibration="none")
    with pytest.raises(UnsupportedError) as e:
        lower_xylo(conv.snn, x, "xylo-audio3", 4)
    msg = str(e.value)
    assert "64 input channels (64 features: 64 positive) exceed xylo-audio3's 16" in msg
    assert "layer 'r1' (conv unrolled into a 256x64 dense layer): receives the input with 256 neurons" not in msg
    assert "receives the input with 256 neurons" in msg and "first 128 hidden neurons" in msg


def test_non_chain_graphs_are_rejected():
    from irbuild import build, dense as mkdense, neuron
    rng = np.random.default_rng(0)
    g = build((4,),
              ("d1", mkdense(rng.normal(size=(4, 4))), ["x"]),
              ("n1", neuron(np.ones(4), 4), ["d1"]),
              ("d2", mkdense(rng.normal(size=(4, 4))), ["n1"]),
              ("a", ir.Add(), ["d2", "d1"]),
              ("n2", neuron(np.ones(4), 4), ["a"]),
              ("d3", mkdense(rng.normal(size=(2, 4))), ["n2"]))
    with pytest.raises(UnsupportedError, match="feed-forward chain"):
        lower_xylo(g, rng.normal(size=(8, 4)).astype(np.float32), "xylo-audio3", 4)
    g = build((4,), ("d1", mkdense(rng.normal(size=(2, 4))), ["x"]))
    with pytest.raises(UnsupportedError, match="no burst-neuron layer"):
        lower_xylo(g, rng.normal(size=(8, 4)).astype(np.float32), "xylo-audio3", 4)
