"""Lowering converted burst SNNs onto Xylo (passes/lower_xylo.py) and the
device models / design-rule check (backends/xylo/devices.py).

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
* DRC messages for too many inputs, hidden neurons, outputs, fan-out,
  input / output window overflow, on plans, specs and through lower_xylo;
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
from adacal.backends.xylo.devices import (  # noqa: E402
    DEVICES,
    HiddenLayerPlan,
    XyloPlan,
    design_rule_check,
    get_device,
)
from adacal.errors import UnsupportedError  # noqa: E402
from adacal.backends.xylo.lower import evaluate_xylo, fit_encoder, lower_xylo  # noqa: E402
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


def _dense_graph(sizes, seed=0):
    """Input -> [Dense -> Relu]* -> Dense with random weights (an ANN IR graph)."""
    rng = np.random.default_rng(seed)
    nodes = [ir.Node("input", ir.Input(), (), (sizes[0],))]
    prev = "input"
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = (rng.normal(size=(b, a)) / np.sqrt(a)).astype(np.float32)
        nodes.append(ir.Node(f"fc{i}", ir.Dense(w, np.zeros(b, np.float32)), (prev,), (b,)))
        prev = f"fc{i}"
        if i < len(sizes) - 2:
            nodes.append(ir.Node(f"relu{i}", ir.Relu(), (prev,), (b,)))
            prev = f"relu{i}"
    return ir.Graph(tuple(nodes), prev)


def _snn(sizes, seed=0, n=64):
    g = _dense_graph(sizes, seed)
    x = np.random.default_rng(seed + 1).normal(size=(n, sizes[0])).astype(np.float32)
    conv, _ = convert(g, x, timesteps=4, max_spikes=4, calibration="none")
    return conv, x


# --------------------------------------------------------------------------
# device models
# --------------------------------------------------------------------------
def test_device_limits_match_targets_and_simulator():
    expect = {  # targets.md
        "xylo-audio2": (16, 1000, 8, 2, 64, None, None),
        "xylo-audio3": (16, 992, 32, 2, 1024, 128, 128),
        "xylo-imu": (16, 496, 16, 1, 512, 128, 128),
    }
    for name, (n_in, h, o, s, fan, ien, oen) in expect.items():
        d = get_device(name)
        assert (d.n_inputs, d.n_hidden, d.n_outputs, d.synapses_per_neuron, d.max_fanout,
                d.input_window, d.output_window) == (n_in, h, o, s, fan, ien, oen)
        assert d.weight_range == (-128, 127) and d.threshold_range == (1, 32767)
        assert d.dash_range == (0, 15) and d.weight_shift_range == xylo_sim.WEIGHT_SHIFT_RANGE
        assert (d.max_input_events, d.max_hidden_events, d.max_output_events) == (15, 31, 1)
        lim = xylo_sim.DEVICE_LIMITS[name]  # the simulator's validate() agrees
        assert (lim["n_in"], lim["n_hidden"], lim["n_out"], lim["n_syn"], lim["ien"], lim["oen"]) == \
               (n_in, h, o, s, ien, oen)
    assert sorted(DEVICES) == sorted(expect)
    with pytest.raises(ValueError, match="unknown Xylo device"):
        get_device("xylo-9000")


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
    ref = xylo_sim.run_xylosim(spec, enc, device)
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
    ref = xylo_sim.run_xylosim(low.spec, enc, device)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(ours, f), getattr(ref, f), err_msg=f"{device} {f}")


def test_digits16_rejected_on_audio2_with_output_limit(digits16):
    conv, _, cal, _ = digits16
    with pytest.raises(UnsupportedError, match=r"readout 'fc2': 10 output neurons exceed xylo-audio2's 8"):
        lower_xylo(conv.snn, cal[0], "xylo-audio2", T, ann=conv.ann)


# --------------------------------------------------------------------------
# design-rule check
# --------------------------------------------------------------------------
def _plan(n_in=8, sizes=(32, 16), fanouts=None, n_out=3, max_spikes=4):
    fanouts = fanouts or [*sizes[1:], n_out]
    hidden = tuple(HiddenLayerPlan(f"layer{i}", s, f, max_spikes) for i, (s, f) in enumerate(zip(sizes, fanouts)))
    return XyloPlan(n_in, hidden, n_out, input_name="x", readout_name="out")


def test_drc_plan_that_fits():
    for d in DEVICE_NAMES:
        assert design_rule_check(_plan(), d) == []


def test_drc_too_many_inputs():
    msgs = design_rule_check(_plan(n_in=20), "xylo-audio3")
    assert msgs == ["input 'x': 20 input channels exceed xylo-audio3's 16"]


def test_drc_too_many_hidden_neurons():
    msgs = design_rule_check(_plan(sizes=(100, 1000, 100), fanouts=[100, 100, 3]), "xylo-imu")
    assert any("layer 'layer1': 1200 hidden neurons in total" in m and "exceed xylo-imu's 496" in m
               for m in msgs), msgs


def test_drc_too_many_hidden_neurons_audio3():
    msgs = design_rule_check(_plan(sizes=(100, 800, 100), fanouts=[100, 100, 3]), "xylo-audio3")
    assert msgs == ["layer 'layer2': 1000 hidden neurons in total ('layer0' 100 + 'layer1' 800 + "
                    "'layer2' 100) exceed xylo-audio3's 992"]


def test_drc_too_many_outputs():
    assert design_rule_check(_plan(n_out=10), "xylo-audio2") == [
        "readout 'out': 10 output neurons exceed xylo-audio2's 8"]
    assert design_rule_check(_plan(n_out=10), "xylo-imu") == []
    assert "exceed xylo-imu's 16" in design_rule_check(_plan(n_out=20), "xylo-imu")[0]


def test_drc_fanout():
    msgs = design_rule_check(_plan(sizes=(32, 100), fanouts=[100, 3]), "xylo-audio2")
    assert msgs == ["layer 'layer0': a neuron drives 100 synapses (fan-out), xylo-audio2 allows at most "
                    "64 per hidden neuron"]
    assert design_rule_check(_plan(sizes=(32, 100), fanouts=[100, 3]), "xylo-audio3") == []


def test_drc_input_and_output_windows():
    plan = _plan(sizes=(200, 16, 200), fanouts=[16, 200, 3])
    for d in ("xylo-audio3", "xylo-imu"):
        msgs = design_rule_check(plan, d)
        assert f"layer 'layer0': receives the input with 200 neurons, but on {d} inputs reach only the " \
               f"first 128 hidden neurons (input window)" in msgs
        assert f"layer 'layer2': drives the outputs with 200 neurons, but on {d} only the last 128 hidden " \
               f"neurons reach the outputs (output window)" in msgs
    assert all("window" not in m for m in design_rule_check(plan, "xylo-audio2"))


def test_drc_burst_cap_and_input_events():
    msgs = design_rule_check(_plan(max_spikes=40), "xylo-imu")
    assert any("max_spikes=40 exceeds xylo-imu's 31 events" in m for m in msgs), msgs


def _spec(n_in=4, sizes=(8, 4), n_out=2, **over):
    """A packed feed-forward spec (dense blocks of ones)."""
    h = sum(sizes)
    first = np.concatenate([[0], np.cumsum(sizes)])
    w_in = np.zeros((n_in, h), np.int64)
    w_in[:, :sizes[0]] = 1
    w_rec = np.zeros((h, h), np.int64)
    for i in range(1, len(sizes)):
        w_rec[first[i - 1]:first[i], first[i]:first[i + 1]] = 1
    w_out = np.zeros((h, n_out), np.int64)
    w_out[first[-2]:] = 1
    kw = dict(weights_in=w_in, weights_out=w_out, weights_rec=w_rec, dash_mem=np.full(h, 15),
              dash_mem_out=np.zeros(n_out), dash_syn=np.ones(h), dash_syn_2=np.ones(h),
              dash_syn_out=np.full(n_out, 15), threshold=np.full(h, 100), threshold_out=np.full(n_out, 32767),
              bias=np.zeros(h), bias_out=np.zeros(n_out), weight_shift_in=0, weight_shift_rec=0,
              weight_shift_out=0, output_mode="Vmem")
    kw.update(over)
    return xylo_sim.XyloSpec(**kw)


def test_drc_on_specs():
    assert design_rule_check(_spec(), "xylo-imu") == []
    assert design_rule_check(_spec(n_in=20), "xylo-audio2") == ["input: 20 input channels exceed xylo-audio2's 16"]
    assert design_rule_check(_spec(n_out=9), "xylo-audio2") == ["readout: 9 output neurons exceed xylo-audio2's 8"]
    msgs = design_rule_check(_spec(sizes=(100, 600)), "xylo-imu")
    assert msgs == ["hidden population: 700 hidden neurons in total exceed xylo-imu's 496",
                    "fan-out: hidden neuron 0 drives 600 synapses (100 neuron(s) above the limit), xylo-imu "
                    "allows at most 512 per hidden neuron",
                    "output window: hidden neuron 100 drives an output, but on xylo-imu only the last 128 hidden "
                    "neurons (ids >= 572) reach the outputs"]
    msgs = design_rule_check(_spec(sizes=(8, 70)), "xylo-audio2")
    assert msgs == ["fan-out: hidden neuron 0 drives 70 synapses (8 neuron(s) above the limit), xylo-audio2 "
                    "allows at most 64 per hidden neuron"]
    msgs = design_rule_check(_spec(sizes=(130, 4)), "xylo-audio3")
    assert msgs == ["input window: inputs reach hidden neuron 129, but on xylo-audio3 inputs reach only the "
                    "first 128 hidden neurons"]
    msgs = design_rule_check(_spec(sizes=(8, 130)), "xylo-imu")
    assert msgs == ["output window: hidden neuron 8 drives an output, but on xylo-imu only the last 128 hidden "
                    "neurons (ids >= 10) reach the outputs"]
    # a second synapse on the IMU (one synapse per neuron)
    w_in = np.zeros((4, 12, 2), np.int64)
    w_in[:, :8, 1] = 1
    msgs = design_rule_check(_spec(weights_in=w_in), "xylo-imu")
    assert msgs == ["weights_in: hidden neuron 0 uses synapse 2, xylo-imu has 1 synapse per hidden neuron"]
    assert design_rule_check(_spec(weights_in=w_in), "xylo-audio2") == []
    # number formats, on a raw dict (XyloSpec itself would refuse to build)
    kw = _spec().as_kwargs()
    kw.update(threshold=np.full(12, 40000), dash_mem=np.full(12, 16), weight_shift_rec=9)
    msgs = design_rule_check(kw, "xylo-audio2")
    assert any("threshold: hidden neuron 0 has threshold 40000, xylo-audio2 allows 1..32767" in m for m in msgs)
    assert any("dash_mem: dash 16 outside 0..15" in m for m in msgs)
    assert any("weight_shift_rec: 9 outside 0..8" in m for m in msgs)


def test_lower_xylo_reports_every_violation_up_front():
    # 20 features, a 200-wide first layer feeding 70 neurons, 10 classes
    conv, x = _snn([20, 200, 70, 10])
    with pytest.raises(UnsupportedError) as e:
        lower_xylo(conv.snn, x, "xylo-audio2", 8)
    msg = str(e.value)
    assert "input 'input': 20 input channels (20 features: 20 offset) exceed xylo-audio2's 16" in msg
    assert "readout 'fc2': 10 output neurons exceed xylo-audio2's 8" in msg
    assert "layer 'relu0': a neuron drives 71 synapses (fan-out, incl. 1 self-reset synapse), xylo-audio2 " \
           "allows at most 64 per hidden neuron" in msg
    with pytest.raises(UnsupportedError) as e:
        lower_xylo(conv.snn, x, "xylo-imu", 8)
    assert "layer 'relu0': receives the input with 200 neurons, but on xylo-imu inputs reach only the " \
           "first 128 hidden neurons (input window)" in str(e.value)
    conv, x = _snn([8, 400, 200, 4])
    with pytest.raises(UnsupportedError, match=r"layer 'relu1': 603 hidden neurons in total \('relu0' 400 \+ "
                                               r"'bias units' 3 \+ 'relu1' 200\) exceed xylo-imu's 496"):
        lower_xylo(conv.snn, x, "xylo-imu", 8)
    with pytest.raises(UnsupportedError, match=r"layer 'relu1': 600 hidden neurons in total \('relu0' 400 \+ "
                                               r"'relu1' 200\) exceed xylo-imu's 496"):
        lower_xylo(conv.snn, x, "xylo-imu", 8, neuron="leaky")


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
