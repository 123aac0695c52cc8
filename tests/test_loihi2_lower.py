"""Pooling folding (passes/fold_pooling.py) and the Loihi 2 integer lowering
(backends/loihi2/lower.py): exactness of the folding, integer formats, depths and
delays, accuracy of the integer network on the bundled digits example, the
integer-aware calibration, and a residual block.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from adacal import int_ir, ir
from adacal.errors import UnsupportedError
from adacal.passes.fold_pooling import fold_pooling
from adacal.backends.loihi2.lower import Loihi2Lowering, calibrate_int, lower_loihi2
from adacal.passes.to_spiking import neuron_names
from adacal.pipeline import convert, pick_calibration
from adacal.runtime_sim import loihi2_arith as arith
from adacal.runtime_sim.float_sim import simulate
from adacal.runtime_sim.int_sim import simulate_int
from irbuild import build, conv, dense, kinds, neuron

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits_cnn.py"
T, PHI = 8, 4


# ===========================================================================
# helpers
# ===========================================================================
def latencies(g: ir.Graph) -> dict[str, int]:
    """Hardware latency of every node from the graph alone: one step per
    synapse, `steps` per Delay, none for neurons, max pools and payload
    routing.  Asserts
    that both inputs of every Add (and all of a Concat) arrive at the same step
    and that each synapse / neuron records its latency as `depth`."""
    lat = {g.input.name: 0}
    for n in g.nodes[1:]:
        op, ins = n.op, [lat[i] for i in n.inputs]
        if isinstance(op, (ir.Add, ir.Concat)):
            assert len(set(ins)) == 1, f"{n.kind} '{n.name}' joins paths of latencies {ins}"
        if isinstance(op, (int_ir.IntDense, int_ir.IntConv)):
            lat[n.name] = ins[0] + 1
        elif isinstance(op, int_ir.Delay):
            assert op.steps >= 1
            lat[n.name] = ins[0] + op.steps
        else:
            lat[n.name] = max(ins)
        if isinstance(op, (int_ir.IntDense, int_ir.IntConv, int_ir.IntBurstNeuron, int_ir.IntMaxPool)):
            assert op.depth == lat[n.name], f"'{n.name}': depth {op.depth}, path latency {lat[n.name]}"
    return lat


def check_formats(low: Loihi2Lowering) -> None:
    """Weights in the chip's formats, thresholds >= 1, depths increasing."""
    g = low.graph
    assert isinstance(g.input.op, int_ir.GradedInput)
    for n in g.nodes[1:]:
        op = n.op
        assert isinstance(op, (int_ir.IntDense, int_ir.IntConv, int_ir.IntBurstNeuron, int_ir.Delay, ir.Add,
                               ir.Flatten, ir.Reshape, ir.Concat, int_ir.IntMaxPool)), n.kind
        if isinstance(op, int_ir.IntDense):
            w = np.asarray(op.weight)
            assert np.issubdtype(w.dtype, np.integer)
            assert np.all(w % 2 == 0), f"odd weight in IntDense '{n.name}'"
            assert np.abs(w).max() <= 254, n.name
            assert np.array_equal(arith.dense_weights(w, op.num_weight_bits), w), f"Lava alters '{n.name}'"
        elif isinstance(op, int_ir.IntConv):
            w = np.asarray(op.weight)
            assert np.issubdtype(w.dtype, np.integer) and np.abs(w).max() <= 127, n.name
        elif isinstance(op, int_ir.IntBurstNeuron):
            assert np.issubdtype(np.asarray(op.threshold).dtype, np.integer)
            assert np.all(op.threshold >= 1), n.name
            assert np.all(op.threshold <= 2 ** 16), n.name
    lat = latencies(g)
    # depths strictly increase from every synapse / neuron to the next synapse
    for n in g.nodes[1:]:
        if isinstance(n.op, (int_ir.IntDense, int_ir.IntConv)):
            assert all(lat[i] < n.op.depth for i in n.inputs)
    assert low.depth == lat[g.output]


def int_predictions(low: Loihi2Lowering, x: np.ndarray) -> np.ndarray:
    res, _ = simulate_int(low.graph, x, low.timesteps)
    return low.logits(res.readout).reshape(len(x), -1).argmax(axis=1)


def float_predictions(snn: ir.Graph, x: np.ndarray, steps: int = T) -> np.ndarray:
    sim, _ = simulate(snn, x, steps)
    return sim.mean_output().reshape(len(x), -1).argmax(axis=1)


# ===========================================================================
# (a) fold_pooling is exact
# ===========================================================================
RNG = np.random.default_rng(0)


def rconv(cin, cout, k=3, pad=1, stride=1, groups=1):
    w = RNG.normal(0, 1.5 / np.sqrt(cin // groups * k * k), (cout, cin // groups, k, k)).astype(np.float32)
    op = conv(w, RNG.normal(0, 0.1, cout), pad, stride)
    return ir.Conv2d(op.weight, op.bias, op.stride, op.padding, (1, 1), groups)


def rdense(nin, nout):
    return dense(RNG.normal(0, 1.5 / np.sqrt(nin), (nout, nin)), RNG.normal(0, 0.1, nout))


def rneuron(c, phi=PHI, spatial=None):
    th = RNG.uniform(0.3, 0.8, c)
    v = None if spatial is None else RNG.uniform(-0.2, 0.2, (c,) + spatial)
    return neuron(th, phi, RNG.normal(0, 0.05, c), v)


def pool(k=2, s=None, pad=(0, 0, 0, 0)):
    return ir.AvgPool((k, k), (s or k, s or k), pad)


POOL_GRAPHS = {
    # AvgPool(2) -> Conv(pad 1) -> ...; a second AvgPool(2) -> Flatten -> Dense
    "pool_conv_and_pool_dense": lambda: build(
        (2, 8, 8), ("c0", rconv(2, 4), ["x"]), ("n0", rneuron(4, spatial=(8, 8)), ["c0"]),
        ("p0", pool(2), ["n0"]), ("c1", rconv(4, 6), ["p0"]), ("n1", rneuron(6), ["c1"]),
        ("p1", pool(2), ["n1"]), ("fl", ir.Flatten(), ["p1"]), ("fc", rdense(24, 5), ["fl"])),
    # a strided, grouped conv after the pooling
    "pool_strided_grouped_conv": lambda: build(
        (2, 8, 8), ("c0", rconv(2, 4), ["x"]), ("n0", rneuron(4), ["c0"]),
        ("p0", pool(2), ["n0"]), ("c1", rconv(4, 6, stride=2, groups=2), ["p0"]), ("n1", rneuron(6), ["c1"]),
        ("fl", ir.Flatten(), ["n1"]), ("fc", rdense(24, 5), ["fl"])),
    # GlobalAvgPool -> Flatten -> Dense
    "global_pool_dense": lambda: build(
        (2, 6, 6), ("c0", rconv(2, 4), ["x"]), ("n0", rneuron(4), ["c0"]),
        ("c1", rconv(4, 8, stride=2), ["n0"]), ("n1", rneuron(8), ["c1"]),
        ("gp", ir.GlobalAvgPool(), ["n1"]), ("fl", ir.Flatten(), ["gp"]), ("fc", rdense(8, 5), ["fl"])),
    # pooling the input, then a dense hidden layer after pooled spikes
    "pool_input_and_hidden_dense": lambda: build(
        (1, 8, 8), ("p0", pool(2), ["x"]), ("c0", rconv(1, 4), ["p0"]), ("n0", rneuron(4), ["c0"]),
        ("p1", pool(2), ["n0"]), ("fl", ir.Flatten(), ["p1"]), ("d1", rdense(16, 12), ["fl"]),
        ("n1", rneuron(12), ["d1"]), ("fc", rdense(12, 3), ["n1"])),
}


@pytest.mark.parametrize("name", sorted(POOL_GRAPHS))
def test_fold_pooling_is_exact(name):
    g = POOL_GRAPHS[name]()
    f = fold_pooling(g)
    assert not {"AvgPool", "GlobalAvgPool"} & set(kinds(f))
    assert f.output_shape == g.output_shape
    x = np.random.default_rng(1).random((64,) + g.input_shape).astype(np.float32)
    a, _ = simulate(g, x, 12)
    b, _ = simulate(f, x, 12)
    assert set(a.spikes) == set(b.spikes)
    for layer in a.spikes:
        assert a.spikes[layer].sum() > 0, f"{layer} silent: the test would be vacuous"
        np.testing.assert_array_equal(b.spikes[layer], a.spikes[layer], err_msg=layer)
    np.testing.assert_allclose(b.outputs, a.outputs, rtol=1e-5, atol=1e-5 * np.abs(a.outputs).max())
    # and the ANN view (float reference interpreter) agrees too
    np.testing.assert_allclose(f.run(x), g.run(x), rtol=1e-5, atol=1e-5 * np.abs(g.run(x)).max())


def test_fold_pooling_shapes_of_the_folded_conv():
    g = POOL_GRAPHS["pool_conv_and_pool_dense"]()
    f = fold_pooling(g)
    c1 = f.node("c1").op
    assert c1.weight.shape == (6, 4, 6, 6) and c1.stride == (2, 2) and c1.padding == (2, 2, 2, 2)
    np.testing.assert_allclose(c1.weight[:, :, :2, :2].sum(axis=(2, 3)), g.node("c1").op.weight[:, :, 0, 0],
                               rtol=1e-6)
    assert f.node("fc").op.weight.shape == (5, 6 * 4 * 4) and f.node("fl").shape == (96,)
    assert f.node("c1").inputs == ("n0",) and f.node("fl").inputs == ("n1",)


@pytest.mark.parametrize("pool_op, shape, why", [
    (ir.AvgPool((3, 3), (2, 2)), (4, 9, 9), "overlapping"),
    (ir.AvgPool((2, 2), (2, 2), (1, 1, 1, 1)), (4, 8, 8), "padded"),
    (ir.AvgPool((2, 2), (2, 2)), (4, 7, 7), "remainder"),
    (ir.AvgPool((2, 2), (2, 2), ceil_mode=True), (4, 8, 8), "ceil"),
])
def test_fold_pooling_rejects_inexact_pooling(pool_op, shape, why):
    c = shape[0]
    g = build(shape, ("n0", rneuron(c), ["x"]), ("mypool", pool_op, ["n0"]), ("c1", rconv(c, 2), ["mypool"]),
              ("n1", rneuron(2), ["c1"]), ("fl", ir.Flatten(), ["n1"]))
    with pytest.raises(UnsupportedError, match="mypool"):
        fold_pooling(g)


def test_fold_pooling_rejects_pool_not_followed_by_a_synapse():
    g = build((4, 8, 8), ("c0", rconv(4, 4), ["x"]), ("n0", rneuron(4), ["c0"]), ("lonely", pool(2), ["n0"]),
              ("n1", rneuron(4), ["lonely"]))
    with pytest.raises(UnsupportedError, match="lonely"):
        fold_pooling(g)


# ===========================================================================
# (b, c) the bundled digits example at T = 8, φ = 4
# ===========================================================================
@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits_lower")
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--out", str(out)], capture_output=True, text=True,
                          env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with np.load(out / "digits_calib.npz") as f:
        xc, yc = f["x"], f["y"]
    with np.load(out / "digits_test.npz") as f:
        xt, yt = f["x"], f["y"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        conv_, summary = convert(str(out / "digits_cnn.onnx"), (xc, yc), timesteps=T, max_spikes=PHI)
        x_cal, _ = pick_calibration(xc, yc, conv_.options.calib_samples, conv_.options.seed)
        snn = fold_pooling(conv_.snn)
        low = lower_loihi2(snn, x_cal, T)
        acts = conv_.ann.activations(x_cal, neuron_names(snn))
        cal = calibrate_int(low, acts, x_cal)
        acc = {
            "ann": float((conv_.ann.run(xt).argmax(1) == yt).mean()),
            "float_snn": float((float_predictions(conv_.snn, xt) == yt).mean()),
            "float_snn_folded": float((float_predictions(snn, xt) == yt).mean()),
            "int": float((int_predictions(low, xt) == yt).mean()),
            "int_calibrated": float((int_predictions(cal, xt) == yt).mean()),
        }
    finally:
        torch.set_num_threads(threads)
    print(f"\ndigits_cnn T={T} phi={PHI} test accuracy ({len(yt)} samples): " +
          ", ".join(f"{k} {v:.4f}" for k, v in acc.items()))
    return {"conv": conv_, "snn": snn, "low": low, "cal": cal, "acc": acc, "x_cal": x_cal, "xt": xt, "yt": yt}


def test_digits_integer_accuracy_within_one_point_of_float_snn(digits):
    acc = digits["acc"]
    assert acc["float_snn"] > 0.9
    assert acc["float_snn_folded"] == acc["float_snn"]  # pooling folding is exact on the real model too
    assert abs(acc["int"] - acc["float_snn"]) <= 0.01, acc
    assert abs(acc["int_calibrated"] - acc["float_snn"]) <= 0.01, acc


def test_digits_integer_formats_and_depths(digits):
    low = digits["low"]
    check_formats(low)
    check_formats(digits["cal"])
    g = low.graph
    assert kinds(g) == ["GradedInput", "IntConv", "IntBurstNeuron", "IntConv", "IntBurstNeuron", "Flatten",
                        "IntDense"]
    depths = [n.op.depth for n in g.nodes if hasattr(n.op, "depth")]
    assert depths == sorted(depths) and depths[-1] == low.depth == 3
    # the membrane scales are Θ / θ per channel
    for name in neuron_names(digits["snn"]):
        np.testing.assert_allclose(g.node(name).op.threshold / low.membrane_scale[name],
                                   digits["snn"].node(name).op.threshold, rtol=1e-5)
    # input is 8-bit graded (digits are in [0, 1]: unsigned 0..255)
    assert (g.input.op.lo, g.input.op.hi) == (0, 255)


def test_calibrate_int_changes_only_biases_and_keeps_accuracy(digits):
    low, cal = digits["low"], digits["cal"]
    assert digits["acc"]["int_calibrated"] >= digits["acc"]["int"]
    assert [n.name for n in cal.graph.nodes] == [n.name for n in low.graph.nodes]
    changed = 0
    for a, b in zip(low.graph.nodes, cal.graph.nodes):
        assert a.kind == b.kind and a.inputs == b.inputs and a.shape == b.shape
        if isinstance(a.op, int_ir.IntBurstNeuron):
            for f in ("threshold", "v_init"):
                np.testing.assert_array_equal(getattr(b.op, f), getattr(a.op, f), err_msg=f"{a.name}.{f}")
            assert (b.op.max_spikes, b.op.depth) == (a.op.max_spikes, a.op.depth)
            assert np.asarray(b.op.bias).dtype.kind == "i"
            changed += int(not np.array_equal(a.op.bias, b.op.bias))
        else:
            assert b.op is a.op, a.name
    assert changed >= 1  # calibration did move some bias
    for f in ("membrane_scale", "payload_scale"):
        assert getattr(cal, f) is getattr(low, f)
    assert (cal.readout_scale, cal.timesteps, cal.depth) == (low.readout_scale, low.timesteps, low.depth)
    np.testing.assert_array_equal(cal.readout_bias, low.readout_bias)


# ===========================================================================
# (d) residual blocks
# ===========================================================================
def _residual_ann(rng, dense_block: bool) -> ir.Graph:
    if dense_block:
        def d(nin, nout):
            return dense(rng.normal(0, 1 / np.sqrt(nin), (nout, nin)), rng.normal(0, 0.1, nout))
        return build((16,), ("d0", d(16, 12), ["x"]), ("r0", ir.Relu(), ["d0"]),
                     ("d1", d(12, 12), ["r0"]), ("r1", ir.Relu(), ["d1"]), ("d2", d(12, 12), ["r1"]),
                     ("add", ir.Add(), ["d2", "r0"]), ("r2", ir.Relu(), ["add"]), ("fc", d(12, 6), ["r2"]))

    def c(cin, cout):
        return conv(rng.normal(0, 1 / np.sqrt(cin * 9), (cout, cin, 3, 3)), rng.normal(0, 0.1, cout), 1)
    return build((1, 8, 8), ("c0", c(1, 6), ["x"]), ("r0", ir.Relu(), ["c0"]),
                 ("c1", c(6, 6), ["r0"]), ("r1", ir.Relu(), ["c1"]), ("c2", c(6, 6), ["r1"]),
                 ("add", ir.Add(), ["c2", "r0"]), ("r2", ir.Relu(), ["add"]),
                 ("pool", ir.AvgPool((2, 2), (2, 2)), ["r2"]), ("fl", ir.Flatten(), ["pool"]),
                 ("fc", dense(rng.normal(0, 0.2, (10, 96)), rng.normal(0, 0.1, 10)), ["fl"]))


@pytest.mark.parametrize("dense_block", [False, True], ids=["conv", "dense"])
def test_residual_block_lowering(dense_block):
    rng = np.random.default_rng(0)
    ann = _residual_ann(rng, dense_block)
    x = rng.random((600,) + ann.input_shape).astype(np.float32)
    if dense_block:
        x = x * 2 - 0.5  # signed input: the ±127 quantiser
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        conv_, _ = convert(ann, x[:256], timesteps=T, max_spikes=PHI)
        snn = fold_pooling(conv_.snn)
        low = lower_loihi2(snn, x[:256], T)
        g = low.graph
        check_formats(low)
        # a Delay on the skip, feeding a one-synapse-per-neuron skip into the Add
        delays = [n for n in g.nodes if isinstance(n.op, int_ir.Delay)]
        assert len(delays) == 1 and delays[0].inputs == ("r0",) and delays[0].op.steps == 1
        skip = [n for n in g.nodes if delays[0].name in n.inputs]
        assert len(skip) == 1
        skip = skip[0]
        add = g.node("add")
        assert set(add.inputs) == {"d2" if dense_block else "c2", skip.name} and g.node("r2").inputs == ("add",)
        sigma_m = snn.node("r0").op.threshold * low.membrane_scale["r2"]  # σ_src · m
        if dense_block:
            assert isinstance(skip.op, int_ir.IntDense) and skip.op.weight_exp == 0
            w = np.asarray(skip.op.weight)
            assert np.array_equal(w, np.diag(np.diag(w))) and np.all(np.diag(w) > 0)
            np.testing.assert_allclose(np.diag(w), sigma_m, atol=1.0)  # nearest even value
        else:
            assert isinstance(skip.op, int_ir.IntConv)
            c = g.node("r0").shape[0]
            assert skip.op.groups == c and skip.op.weight.shape == (c, 1, 1, 1)
            w = np.asarray(skip.op.weight).reshape(-1)
            assert np.all(w > 0) and np.all(w <= 127)
            np.testing.assert_allclose(w, sigma_m, atol=0.5)
        lat = latencies(g)
        assert lat[add.inputs[0]] == lat[add.inputs[1]] == 3
        # integer vs float simulation on held-out samples
        xt = x[256:]
        fs, _ = simulate(snn, xt, T)
        ires, _ = simulate_int(g, xt, T)
    finally:
        torch.set_num_threads(threads)
    for layer in ("r0", "r1", "r2"):
        f_sp, i_sp = fs.spikes[layer].sum(axis=0), ires.spikes[layer].sum(axis=0)  # per sample
        assert f_sp.mean() > 1
        rel = abs(i_sp.mean() - f_sp.mean()) / f_sp.mean()
        per_sample = np.abs(i_sp - f_sp).mean() / f_sp.mean()
        assert rel < 0.02 and per_sample < 0.05, (layer, f_sp.mean(), i_sp.mean(), per_sample)
    agree = (low.logits(ires.readout).reshape(len(xt), -1).argmax(1) == fs.mean_output().argmax(1)).mean()
    assert agree >= 0.95, agree


def test_dense_identity_skip_weight_is_the_nearest_even_value():
    """A dense identity skip's weight is σ·m rounded once, to the nearest even
    value (|w − σ·m| ≤ 1).  Regression test: it used to be rounded twice (to an
    integer clipped to ±127, then to even), e.g. 126.51 → 127 → 128 (error
    1.49) instead of 126, a systematic upward bias of the skip current (fixed
    in 3872aa2 "dense identity skip rounds straight to even")."""
    rng = np.random.default_rng(0)
    ann = _residual_ann(rng, True)
    x = (rng.random((600,) + ann.input_shape) * 2 - 0.5).astype(np.float32)
    conv_, _ = convert(ann, x[:256], timesteps=T, max_spikes=PHI)
    snn = fold_pooling(conv_.snn)
    low = lower_loihi2(snn, x[:256], T)
    skip = low.graph.node("r0/skip->r2").op
    sigma_m = snn.node("r0").op.threshold.astype(np.float64) * low.membrane_scale["r2"]
    err = np.abs(np.diag(skip.weight) - sigma_m)
    assert err.max() <= 1.0, f"skip weights {np.diag(skip.weight).tolist()} for σ·m {np.round(sigma_m, 3).tolist()}"


def test_long_skip_gets_a_longer_delay_and_blocks_chain():
    """A skip over three synapses needs Delay(2); a second block after it
    (downsampling 1x1 conv skip, both paths synapses) is balanced too; a
    Concat of paths of different latency is refused."""
    rng = np.random.default_rng(3)

    def c(cin, cout, k=3, stride=1):
        return ir.Conv2d(rng.normal(0, 1 / np.sqrt(cin * k * k), (cout, cin, k, k)).astype(np.float32),
                         rng.normal(0, 0.1, cout).astype(np.float32), (stride, stride), ((k - 1) // 2,) * 4)
    ann = build((2, 8, 8), ("c0", c(2, 4), ["x"]), ("r0", ir.Relu(), ["c0"]),
                ("c1", c(4, 4), ["r0"]), ("r1", ir.Relu(), ["c1"]), ("c2", c(4, 4), ["r1"]),
                ("r2", ir.Relu(), ["c2"]), ("c3", c(4, 4), ["r2"]),
                ("add", ir.Add(), ["c3", "r0"]), ("r3", ir.Relu(), ["add"]),
                ("c4", c(4, 6, stride=2), ["r3"]), ("r4", ir.Relu(), ["c4"]), ("c5", c(6, 6), ["r4"]),
                ("down", c(4, 6, k=1, stride=2), ["r3"]), ("add2", ir.Add(), ["c5", "down"]),
                ("r5", ir.Relu(), ["add2"]), ("gp", ir.GlobalAvgPool(), ["r5"]), ("fl", ir.Flatten(), ["gp"]),
                ("fc", dense(rng.normal(0, 0.3, (3, 6)), np.zeros(3)), ["fl"]))
    x = rng.random((300, 2, 8, 8)).astype(np.float32)
    conv_, _ = convert(ann, x[:200], timesteps=T, max_spikes=PHI)
    snn = fold_pooling(conv_.snn)
    low = lower_loihi2(snn, x[:200], T)
    check_formats(low)
    g = low.graph
    delays = {n.inputs[0]: n.op.steps for n in g.nodes if isinstance(n.op, int_ir.Delay)}
    assert delays == {"r0": 2, "r3": 1}
    lat = latencies(g)
    assert lat["add"] == 4 and lat["add2"] == 6 and low.depth == 7
    assert isinstance(g.node("down").op, int_ir.IntConv) and g.node("down").op.stride == (2, 2)
    fs, _ = simulate(snn, x[200:], T)
    ires, _ = simulate_int(g, x[200:], T)
    for layer in fs.spikes:
        f_sp, i_sp = fs.spikes[layer].sum(), ires.spikes[layer].sum()
        assert f_sp > 0 and abs(i_sp - f_sp) / f_sp < 0.03, (layer, f_sp, i_sp)
    # concat of a 1-synapse path and a 2-synapse path: different latencies
    cat = build((2, 6, 6), ("c0", c(2, 3), ["x"]), ("r0", ir.Relu(), ["c0"]), ("c1", c(3, 3), ["r0"]),
                ("r1", ir.Relu(), ["c1"]), ("cat", ir.Concat(0), ["r0", "r1"]), ("c2", c(6, 2), ["cat"]),
                ("r2", ir.Relu(), ["c2"]), ("fl", ir.Flatten(), ["r2"]),
                ("fc", dense(rng.normal(size=(3, 72)), np.zeros(3)), ["fl"]))
    xc = rng.random((64, 2, 6, 6)).astype(np.float32)
    conv2, _ = convert(cat, xc, timesteps=T, max_spikes=PHI)
    with pytest.raises(UnsupportedError, match="cat"):
        lower_loihi2(fold_pooling(conv2.snn), xc, T)
