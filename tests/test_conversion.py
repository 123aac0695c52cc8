"""Unit arithmetic of the conversion (docs/method.md) on hand-built IR.

Every expected value here is computed independently of adacal: closed forms,
brute-force enumeration, or plain numpy / Python loops re-implementing the
burst neuron (docs/method.md, Burst neurons: V(0) = 0.5·θ + v_init;
V += I + bias; k = clamp(floor(V/θ), 0, φ); out = k·θ; V -= k·θ).
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from adacal import ir
from adacal.passes import adaptive_timesteps as iat
from adacal.passes import bias_correction, frontier
from adacal.passes.thresholds import channel_thresholds, quantise, set_thresholds
from adacal.passes.to_spiking import neuron_names, set_neuron, to_spiking
from adacal.runtime_sim.energy import fanout_maps
from adacal.runtime_sim.float_sim import run_neuron, simulate

from irbuild import build, conv, dense, f32, kinds, neuron


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny tensors: torch's intra-op threads only add contention (on a busy
    2-core box a 130k-element op goes from 0.5 ms to 60 ms with 2 threads)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


# ---------------------------------------------------------------------------
# independent references
# ---------------------------------------------------------------------------

def ref_neuron(current, theta, phi, bias=0.0, v_init=0.0):
    """Burst IF neuron in float64 numpy. current: (T, ...) with the channel
    axis last-but-spatial as broadcast by the caller (theta/bias broadcast
    against current[0]). Returns (out (T, ...), k (T, ...))."""
    current = np.asarray(current, np.float64)
    theta = np.asarray(theta, np.float64)
    v = 0.5 * theta + np.asarray(v_init, np.float64) + np.zeros_like(current[0])
    outs, ks = [], []
    for t in range(len(current)):
        v = v + current[t] + bias
        k = np.clip(np.floor(v / theta), 0, phi)
        v = v - k * theta
        outs.append(k * theta)
        ks.append(k)
    return np.stack(outs), np.stack(ks)


def closed_form(a, theta, T, phi):
    """Time-averaged output for constant input a: clamp(round_half_up(aT/θ)·θ/T, 0, φθ)."""
    a, theta = np.asarray(a, np.float64), np.asarray(theta, np.float64)
    return np.clip(np.floor(a * T / theta + 0.5) * theta / T, 0.0, phi * theta)


def identity_neuron_graph(theta, phi):
    """x (C,) -> Dense(I, 0) -> BurstNeuron: the neuron sees the constant current x."""
    c = len(theta)
    return build((c,), ("fc", dense(np.eye(c)), ["x"]), ("n", neuron(theta, phi), ["fc"]))


# ---------------------------------------------------------------------------
# 1. the neuron against its closed form for constant input
# ---------------------------------------------------------------------------

THETAS = np.array([0.25, 0.5, 0.75, 1.0, 1.5, 3.0])


@pytest.mark.parametrize("phi", [1, 2, 4, 8])
@pytest.mark.parametrize("T", [1, 2, 4, 8, 16])
def test_neuron_closed_form_dense_grid(T, phi):
    # a = m·θ_c/(4T) for m from well below 0 to well above φθ: includes exact
    # half-level ties (round half up), 0, negative inputs and saturation.
    # All values are dyadic multiples of θ, exact in float32.
    m = np.arange(-12, 4 * T * (phi + 2) + 3)
    a = m[:, None] * THETAS[None, :] / (4 * T)
    g = identity_neuron_graph(THETAS, phi)
    res, _ = simulate(g, f32(a), T)
    assert res.outputs.shape == (T,) + a.shape
    avg = res.outputs.astype(np.float64).mean(axis=0)
    expect = closed_form(a, THETAS, T, phi)
    np.testing.assert_allclose(avg, expect, rtol=1e-6, atol=1e-7)
    # spikes: Σ_t k = T·avg/θ, summed over the channels of each sample
    np.testing.assert_allclose(res.spikes["n"].sum(axis=0), (expect * T / THETAS).sum(axis=1), atol=1e-6)
    # per step the neuron never sends more than φ spikes per neuron
    k = res.outputs / THETAS
    assert k.max() <= phi and k.min() >= 0
    np.testing.assert_allclose(k, np.round(k), atol=1e-6)
    # events = number of steps/neurons with k > 0
    np.testing.assert_array_equal(res.events["n"], (np.round(k) > 0).sum(axis=2))


def _near_tie(a, theta, T):
    r = a * T / theta
    return abs(r - math.floor(r) - 0.5) < 1e-3


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=st.lists(st.floats(-20, 60, allow_nan=False, width=32), min_size=1, max_size=6),
       theta_seed=st.integers(0, 2**16), T=st.sampled_from([1, 2, 4, 8, 16]), phi=st.sampled_from([1, 2, 4, 8]))
def test_neuron_closed_form_random(a, theta_seed, T, phi):
    theta = np.random.default_rng(theta_seed).uniform(0.05, 5.0, len(a)).astype(np.float32).astype(np.float64)
    a = np.asarray(a, np.float32).astype(np.float64)
    assume(not any(_near_tie(ai, ti, T) for ai, ti in zip(a, theta)))
    g = identity_neuron_graph(theta, phi)
    res, _ = simulate(g, f32(a[None]), T)
    avg = res.outputs.astype(np.float64).mean(axis=0)[0]
    np.testing.assert_allclose(avg, closed_form(a, theta, T, phi), rtol=1e-5, atol=1e-6)


def test_neuron_rate_limit_is_clipped_relu():
    """The float interpreter's view of a BurstNeuron (T -> inf) is min(relu(I + b), φθ)."""
    theta = np.array([0.5, 2.0])
    g = build((2,), ("fc", dense(np.eye(2)), ["x"]), ("n", neuron(theta, 3, bias=[0.25, -1.0]), ["fc"]))
    x = f32([[-1.0, -1.0], [0.5, 3.0], [10.0, 10.0]])
    np.testing.assert_allclose(g.run(x), [[0.0, 0.0], [0.75, 2.0], [1.5, 6.0]], rtol=1e-6)


def test_neuron_bias_and_v_init():
    """bias adds to the current every step; v_init shifts the start potential."""
    cur = torch.full((1, 1, 1), 0.3)
    op = neuron([1.0], 2, bias=[0.2], v_init=[-0.5])
    out, counts = run_neuron(op, cur, 6)
    ref_out, ref_k = ref_neuron(np.full((6, 1, 1), 0.3), 1.0, 2, bias=0.2, v_init=-0.5)
    np.testing.assert_allclose(out.numpy(), ref_out, atol=1e-6)
    # V: 0 -> .5 -> 1 (k=1) ... : 3 spikes in 6 steps at rate 0.5
    assert ref_k.sum() == 3
    np.testing.assert_allclose(counts["spikes"][:, 0], ref_k[:, 0, 0])


# ---------------------------------------------------------------------------
# 2. bursts catch up with late input, φ = 1 cannot
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("phi, expect_spikes", [(1, 4), (2, 8), (4, 8), (8, 8)])
def test_burst_catches_up_with_late_input(phi, expect_spikes):
    T, theta = 8, 0.5
    # zero current for 4 steps, then 2θ per step: the average input is θ,
    # i.e. T spikes in total; a φ = 1 neuron can send at most one per step.
    current = np.zeros((T, 1, 1), np.float32)
    current[T // 2:] = 2 * theta
    op = neuron([theta], phi)
    out, counts = run_neuron(op, torch.from_numpy(current), T)
    k = out.numpy()[:, 0, 0] / theta
    assert counts["spikes"].sum() == expect_spikes
    assert k[: T // 2].sum() == 0  # nothing before the input arrives
    if phi == 1:
        np.testing.assert_array_equal(k, [0, 0, 0, 0, 1, 1, 1, 1])
        assert out.numpy().mean() == pytest.approx(theta / 2)  # half the ANN value: it cannot catch up
    else:
        np.testing.assert_array_equal(k, [0, 0, 0, 0, 2, 2, 2, 2])
        assert out.numpy().mean() == pytest.approx(theta)  # exactly the average input
    assert counts["events"].sum() == 4


def test_burst_catch_up_through_a_graph():
    """The same effect between layers: layer 1 (negative v_init) only starts
    sending after 4 steps, then 2 spikes per step; layer 2 sees a late input
    and catches up only if it may burst."""
    T = 8
    for phi2, expect in ((1, [0, 0, 0, 0, 1, 1, 1, 1]), (2, [0, 0, 0, 0, 2, 2, 2, 2]),
                         (4, [0, 0, 0, 0, 2, 2, 2, 2])):
        g = build((1,),
                  ("fc1", dense([[1.0]]), ["x"]), ("n1", neuron([1.0], 8, v_init=[-8.0]), ["fc1"]),
                  ("fc2", dense([[1.0]]), ["n1"]), ("n2", neuron([1.0], phi2), ["fc2"]))
        res, _ = simulate(g, f32([[2.0]]), T)
        # independent: layer 1 gets 2.0 per step from V(0) = 0.5 - 8
        out1, k1 = ref_neuron(np.full((T, 1), 2.0), 1.0, 8, v_init=-8.0)
        np.testing.assert_array_equal(k1[:, 0], [0, 0, 0, 0, 2, 2, 2, 2])
        np.testing.assert_array_equal(res.spikes["n1"][:, 0], k1[:, 0])
        np.testing.assert_array_equal(res.spikes["n2"][:, 0], expect)
        assert res.spikes["n2"].sum() == (4 if phi2 == 1 else 8)  # the input delivered 8 in total


# ---------------------------------------------------------------------------
# 3. thresholds
# ---------------------------------------------------------------------------

def quant_err(y, theta, T, phi):
    """Σ (y − q(y))² with the neuron's quantiser, numpy float64, per channel (y: (C, M))."""
    q = np.clip(np.floor(y * T / theta + 0.5), 0, phi * T) * theta / T
    return ((y - q) ** 2).sum(axis=-1)


def relu_acts(rng, shape, dead=()):
    y = np.maximum(rng.normal(0.3, 1.0, size=shape) * rng.uniform(0.5, 3.0, size=(1, shape[1]) + (1,) * (len(shape) - 2)),
                   0.0).astype(np.float32)
    for c in dead:
        y[:, c] = 0.0
    return y


@pytest.mark.parametrize("phi", [1, 2, 4, 8])
def test_threshold_max(phi):
    y = relu_acts(np.random.default_rng(1), (20, 5, 3, 3))
    th = channel_thresholds(y, 4, phi, "max")
    np.testing.assert_allclose(th, y.max(axis=(0, 2, 3)) / phi, rtol=1e-6)


@pytest.mark.parametrize("p", [50.0, 90.0, 99.0, 99.99, 100.0])
@pytest.mark.parametrize("phi", [1, 3])
def test_threshold_percentile(p, phi):
    y = relu_acts(np.random.default_rng(2), (40, 4))
    th = channel_thresholds(y, 8, phi, f"percentile:{p}")
    np.testing.assert_allclose(th, np.percentile(y.astype(np.float64), p, axis=0) / phi, rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), T=st.sampled_from([1, 2, 4, 8, 16]), phi=st.sampled_from([1, 2, 4, 8]),
       n=st.integers(1, 200))
def test_threshold_mse_is_optimal_on_its_grid(seed, T, phi, n):
    rng = np.random.default_rng(seed)
    y = relu_acts(rng, (n, 3))
    if rng.random() < 0.3:  # heavy tail: one outlier per channel
        y[0] *= 20
    th = channel_thresholds(y, T, phi, "mse").astype(np.float64)
    v = y.T.astype(np.float64)
    m = v.max(axis=1)
    alive = m > 0
    err = quant_err(v, th[:, None], T, phi)
    err_max = quant_err(v, (m / phi)[:, None].clip(1e-12), T, phi)
    tol = 1e-5 * (v ** 2).sum(axis=1) + 1e-9
    assert np.all(th > 0)
    assert np.all(err[alive] <= err_max[alive] + tol[alive]), "mse threshold worse than max/φ"
    # brute force over the grid θ = m(1 − 0.01 i)/φ, i = 0..94 (clip level m(1 − 0.01 i))
    for i in range(95):
        theta_i = (m * (1 - 0.01 * i) / phi).clip(1e-12)
        e_i = quant_err(v, theta_i[:, None], T, phi)
        assert np.all(err[alive] <= e_i[alive] + tol[alive]), f"grid point i={i} beats the mse choice"
    # the chosen θ is itself on the grid
    ratio = th[alive] * phi / m[alive]
    steps = (1 - ratio) / 0.01
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    assert np.all((np.round(steps) >= 0) & (np.round(steps) <= 94))


def test_threshold_mse_beats_max_with_an_outlier():
    """One moderate outlier among many values: max wastes the levels on it,
    mse clips it (strictly lower error)."""
    rng = np.random.default_rng(3)
    y = np.abs(rng.normal(size=(5000, 1))).astype(np.float32)
    y[0, 0] = 10.0
    T, phi = 4, 2
    th = channel_thresholds(y, T, phi, "mse")[0]
    assert th < 0.5 * 10.0 / phi
    assert quant_err(y.T.astype(np.float64), th, T, phi)[0] < 0.5 * quant_err(y.T.astype(np.float64), 10.0 / phi, T, phi)[0]


@pytest.mark.parametrize("method", ["mse", "max", "percentile:99", "percentile:50"])
def test_dead_channels_get_positive_threshold(method):
    y = relu_acts(np.random.default_rng(4), (30, 4, 2, 2), dead=(1, 3))
    y[:25, 2] = 0  # a sparse channel: its median is 0
    th = channel_thresholds(y, 4, 2, method)
    assert th.shape == (4,)
    assert np.all(np.isfinite(th)) and np.all(th > 0)
    dead = np.zeros((10, 3), np.float32)
    th = channel_thresholds(dead, 4, 2, method)
    assert np.all(np.isfinite(th)) and np.all(th > 0)


def test_quantise_matches_neuron():
    """thresholds.quantise is exactly the neuron's time average for constant input."""
    T, phi = 8, 3
    theta = np.array([0.5, 1.25], np.float32)
    a = (np.arange(-5, 120)[:, None] * theta[None] / (2 * T)).astype(np.float32)
    q = np.asarray(quantise(a, theta, T, phi))
    res, _ = simulate(identity_neuron_graph(theta, phi), a, T)
    np.testing.assert_allclose(res.outputs.mean(axis=0), q, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("bad", ["percentile:0", "percentile:101", "percentile:x", "median", ""])
def test_threshold_method_errors(bad):
    from adacal.errors import AdacalError
    with pytest.raises(AdacalError):
        channel_thresholds(np.ones((3, 2), np.float32), 4, 1, bad)


def test_set_thresholds_uses_each_layers_phi():
    rng = np.random.default_rng(5)
    ann = build((3,), ("fc1", dense(rng.normal(size=(4, 3))), ["x"]), ("r1", ir.Relu(), ["fc1"]),
                ("fc2", dense(rng.normal(size=(5, 4))), ["r1"]), ("r2", ir.Relu(), ["fc2"]),
                ("out", dense(rng.normal(size=(2, 5))), ["r2"]))
    snn = set_neuron(to_spiking(ann, 2), "r2", max_spikes=5)
    x = f32(rng.normal(size=(50, 3)))
    acts = ann.activations(x, ["r1", "r2"])
    snn = set_thresholds(snn, acts, 4, "max")
    for name, phi in (("r1", 2), ("r2", 5)):
        m = acts[name].max(axis=0)
        th = snn.node(name).op.threshold
        assert np.all(th > 0)
        np.testing.assert_allclose(th[m > 0], m[m > 0] / phi, rtol=1e-6)


# ---------------------------------------------------------------------------
# 4. bias / potential correction
# ---------------------------------------------------------------------------

def _mlp(rng, sizes):
    specs, prev = [], "x"
    for i, (a, b) in enumerate(zip(sizes[:-2], sizes[1:-1])):
        specs += [(f"fc{i}", dense(rng.normal(size=(b, a)), rng.normal(0.3, 0.5, size=b)), [prev]),
                  (f"r{i}", ir.Relu(), [f"fc{i}"])]
        prev = f"r{i}"
    specs.append(("out", dense(rng.normal(size=(sizes[-1], sizes[-2]))), [prev]))
    return build((sizes[0],), *specs)


def _ref_mlp_layer_outputs(snn, x, T):
    """Independent forward pass of a Dense/BurstNeuron chain: per layer (T, N, C) outputs."""
    outs = {}
    cur_in = np.broadcast_to(x.astype(np.float64), (T,) + x.shape)
    for node in snn.nodes[1:]:
        if isinstance(node.op, ir.Dense):
            w, b = node.op.weight.astype(np.float64), node.op.bias.astype(np.float64)
            lin = cur_in @ w.T + b
        elif isinstance(node.op, ir.BurstNeuron):
            op = node.op
            vi = 0.0 if op.v_init is None else op.v_init.astype(np.float64)
            out, _ = ref_neuron(lin, op.threshold, op.max_spikes, op.bias.astype(np.float64), vi)
            outs[node.name] = out
            cur_in = out
    return outs


@pytest.mark.parametrize("T, phi", [(2, 1), (4, 2), (8, 4)])
def test_light_bias_correction_one_layer(T, phi):
    rng = np.random.default_rng(10 + T)
    ann = _mlp(rng, [3, 6, 2])
    x = f32(rng.normal(size=(64, 3)))
    acts = ann.activations(x, ["r0"])
    snn = set_thresholds(to_spiking(ann, phi), acts, T, "max")
    before = _ref_mlp_layer_outputs(snn, x, T)["r0"].mean(axis=0)  # (N, C) time average
    ann_mean = acts["r0"].astype(np.float64).mean(axis=0)
    delta = before.mean(axis=0) - ann_mean
    assert np.abs(delta).max() > 1e-3  # there is something to correct
    # the simulator agrees with the independent forward pass before correction
    res, _ = simulate(snn, x, T, keep=["r0"])
    np.testing.assert_allclose(res.kept["r0"], before, atol=1e-5)

    fixed = bias_correction.correct(snn, acts, x, T, "light")
    np.testing.assert_allclose(fixed.node("r0").op.bias, -delta, rtol=1e-5, atol=1e-6)
    assert fixed.node("r0").op.v_init is None
    np.testing.assert_array_equal(fixed.node("r0").op.threshold, snn.node("r0").op.threshold)
    after = _ref_mlp_layer_outputs(fixed, x, T)["r0"].mean(axis=0).mean(axis=0)
    gap_before, gap_after = np.abs(delta), np.abs(after - ann_mean)
    assert gap_after.sum() < gap_before.sum()
    # no channel may get worse by more than one quantum θ/T spread over the batch
    assert np.all(gap_after <= gap_before + snn.node("r0").op.threshold / T / 4)


def test_light_bias_correction_is_sequential_over_layers():
    """Layer 2 is corrected from the spikes layer 1 sends *after* its own correction."""
    T, phi = 4, 2
    rng = np.random.default_rng(20)
    ann = _mlp(rng, [4, 5, 6, 3])
    x = f32(rng.normal(size=(80, 4)))
    acts = ann.activations(x, ["r0", "r1"])
    snn = set_thresholds(to_spiking(ann, phi), acts, T, "max")
    fixed = bias_correction.correct(snn, acts, x, T, "light")

    ref = snn
    for name in ("r0", "r1"):
        mean_snn = _ref_mlp_layer_outputs(ref, x, T)[name].mean(axis=(0, 1))
        delta = mean_snn - acts[name].astype(np.float64).mean(axis=0)
        ref = set_neuron(ref, name, bias=f32(ref.node(name).op.bias - delta))
    for name in ("r0", "r1"):
        np.testing.assert_allclose(fixed.node(name).op.bias, ref.node(name).op.bias, rtol=1e-4, atol=1e-5)


def test_advanced_correction_sets_v_init():
    T, phi = 4, 2
    rng = np.random.default_rng(30)
    ann = _mlp(rng, [3, 5, 2])
    x = f32(rng.normal(size=(64, 3)))
    acts = ann.activations(x, ["r0"])
    snn = set_thresholds(to_spiking(ann, phi), acts, T, "max")
    light = bias_correction.correct(snn, acts, x, T, "light")
    adv = bias_correction.correct(snn, acts, x, T, "advanced")
    np.testing.assert_allclose(adv.node("r0").op.bias, light.node("r0").op.bias, rtol=1e-6)
    # v_init = T·(mean ANN − mean SNN) per neuron, after the bias correction
    after_light = _ref_mlp_layer_outputs(light, x, T)["r0"].mean(axis=0)  # (N, C)
    expect = T * (acts["r0"].astype(np.float64) - after_light).mean(axis=0)
    v_init = adv.node("r0").op.v_init
    assert v_init is not None and v_init.shape == (5,)
    np.testing.assert_allclose(v_init, expect, rtol=1e-5, atol=1e-5)
    # the simulator starts from 0.5θ + v_init
    ref = _ref_mlp_layer_outputs(adv, x, T)["r0"].mean(axis=0)
    res, _ = simulate(adv, x, T, keep=["r0"])
    np.testing.assert_allclose(res.kept["r0"], ref, atol=1e-5)


def test_advanced_correction_per_neuron_on_conv():
    """For a conv layer, bias is per channel, v_init per neuron (C, H, W)."""
    T, phi = 4, 2
    rng = np.random.default_rng(31)
    ann = build((1, 4, 4), ("c", conv(rng.normal(size=(2, 1, 3, 3)), [0.2, 0.1], pad=1), ["x"]),
                ("r", ir.Relu(), ["c"]), ("gap", ir.GlobalAvgPool(), ["r"]), ("fl", ir.Flatten(), ["gap"]),
                ("out", dense(rng.normal(size=(3, 2))), ["fl"]))
    x = f32(rng.uniform(0, 1, size=(16, 1, 4, 4)))
    acts = ann.activations(x, ["r", "c"])
    snn = set_thresholds(to_spiking(ann, phi), {"r": acts["r"]}, T, "max")
    adv = bias_correction.correct(snn, {"r": acts["r"]}, x, T, "advanced")
    op = adv.node("r").op
    assert op.bias.shape == (2,) and op.v_init.shape == (2, 4, 4)
    # independent: channel-mean Δ, then per-neuron gap
    cur = np.broadcast_to(acts["c"].astype(np.float64), (T,) + acts["c"].shape)
    th = snn.node("r").op.threshold.astype(np.float64)[:, None, None]
    out, _ = ref_neuron(cur, th, phi)
    delta = out.mean(axis=0).mean(axis=(0, 2, 3)) - acts["r"].astype(np.float64).mean(axis=(0, 2, 3))
    np.testing.assert_allclose(op.bias, -delta, rtol=1e-5, atol=1e-6)
    out2, _ = ref_neuron(cur, th, phi, bias=(-delta)[:, None, None])
    expect = T * (acts["r"].astype(np.float64) - out2.mean(axis=0)).mean(axis=0)
    np.testing.assert_allclose(op.v_init, expect, rtol=1e-5, atol=1e-5)


def test_no_correction_is_identity():
    rng = np.random.default_rng(40)
    ann = _mlp(rng, [3, 4, 2])
    x = f32(rng.normal(size=(8, 3)))
    acts = ann.activations(x, ["r0"])
    snn = set_thresholds(to_spiking(ann, 2), acts, 4)
    same = bias_correction.correct(snn, acts, x, 4, "none")
    assert same is snn or all(a.op is b.op for a, b in zip(same.nodes, snn.nodes))


# ---------------------------------------------------------------------------
# 5. the frontier solver against brute force
# ---------------------------------------------------------------------------

# floats with deliberate ties: a small set of values mixed with arbitrary ones
_num = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 3.0]),
                 st.floats(0.0, 10.0, allow_nan=False, allow_infinity=False))
# costs may be negative too (the solver shifts them)
_cost = st.one_of(_num, st.sampled_from([-1.0, -0.5]), st.floats(-5.0, 0.0, allow_nan=False))


@st.composite
def knapsack(draw):
    layers = draw(st.integers(1, 5))
    sizes = [draw(st.integers(1, 6)) for _ in range(layers)]
    values = [[draw(_num) for _ in range(s)] for s in sizes]
    costs = [[draw(_cost) for _ in range(s)] for s in sizes]
    cmin = sum(min(c) for c in costs)
    cmax = sum(max(c) for c in costs)
    budget = draw(st.one_of(
        st.floats(cmin - 1.0, cmax + 1.0, allow_nan=False),     # anything
        st.floats(cmin, cmax, allow_nan=False) if cmin < cmax else st.just(cmin),
        st.just(cmin), st.just(cmax),                            # exactly on the boundary
        st.floats(cmin - 5.0, cmin, allow_nan=False, exclude_max=True),  # infeasible
    ))
    return values, costs, budget


def brute_force(values, costs, budget):
    """Minimum Σ value over all assignments with Σ cost <= budget (None if none)."""
    best = None
    for combo in itertools.product(*[range(len(v)) for v in values]):
        cost = 0.0
        val = 0.0
        for layer, j in enumerate(combo):
            cost += costs[layer][j]
            val += values[layer][j]
        if cost <= budget and (best is None or val < best):
            best = val
    return best


@settings(max_examples=600, deadline=None)
@given(knapsack())
@example(([[1.0, 1.0]], [[2.0, 2.0]], 2.0))                    # ties in both
@example(([[3.0, 2.0, 1.0], [1.0, 0.0]], [[0.0, 1.0, 2.0], [0.0, 1.0]], 2.0))
@example(([[1.0], [1.0]], [[1.0], [1.0]], 1.5))                # infeasible
@example(([[0.0, 5.0], [5.0, 0.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], 0.0))  # layer order matters
@example(([[0.0, 0.0, 0.5]], [[0.0, 0.0, -1e-190]], -1e-190))  # tiny costs: a relative slack
def test_frontier_matches_brute_force(case):
    values, costs, budget = case
    got = frontier.solve(values, costs, budget)
    best = brute_force(values, costs, budget)
    # The solver documents a 1e-9 slack for float sums in another order; an
    # assignment that fits only inside the slack may be taken.  So the optimum
    # must lie between the strict optimum and the optimum with the slack.
    # (That the slack is absolute for budgets < 1 is tested separately.)
    slack = 1e-9 * (1.0 + abs(budget) + sum(max(abs(c) for c in row) for row in costs))
    best_slack = brute_force(values, costs, budget + slack)
    if best_slack is None:
        assert got is None, f"{got} returned for an infeasible budget"
        return
    if best is not None:
        assert got is not None, f"None returned but {best} is reachable"
    if got is None:
        return
    assert len(got) == len(values)
    assert all(0 <= j < len(v) for j, v in zip(got, values))
    cost = sum(c[j] for c, j in zip(costs, got))
    value = sum(v[j] for v, j in zip(values, got))
    assert cost <= budget + slack, "chosen assignment exceeds the budget"
    # minimising: no better than the optimum with the slack, no worse than the
    # strict one (the solver's slack is relative to the costs, so with tiny
    # costs it may take less than this test's absolute 1e-9)
    tol = 1e-9 * (1.0 + abs(best_slack))
    worst = best if best is not None else best_slack
    assert best_slack - tol <= value <= worst + tol, "not optimal (or choices not in layer order)"


@pytest.mark.parametrize("scale", [1e-9, 1e-6, 1.0, 1e6])
def test_frontier_is_scale_invariant(scale):
    """Multiplying every cost and the budget by the same factor must not change
    the answer (the ratio search's costs are KL divergences, often << 1)."""
    values = [[100.0, 50.0], [10.0, 10.0]]
    costs = [[1.0, 1.05], [0.0, 0.0]]
    # option 1 of layer 0 costs 5 % more than the budget: it must not be chosen
    got = frontier.solve(values, [[c * scale for c in row] for row in costs], 1.0 * scale)
    assert got is not None and got[0] == 0, f"budget exceeded by 5 % at scale {scale}: {got}"


def test_frontier_layer_order_distinct_sizes():
    """Layers of different lengths: the result must index each layer's own options."""
    values = [[5.0, 0.0], [0.0, 9.0, 9.0, 9.0], [9.0, 9.0, 0.0]]
    costs = [[0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    assert frontier.solve(values, costs, 3.0) == [1, 0, 2]
    assert frontier.solve(values, costs, 2.0) == [0, 0, 2]  # give up the cheapest loss (5)
    assert frontier.solve(values, costs, -0.5) is None


def test_frontier_no_layers():
    assert frontier.solve([], [], 0.0) == []


# ---------------------------------------------------------------------------
# 5b. the searches that use the solver: tables and choice against an
#     independent recomputation (whole simulations, plain numpy KL, brute force)
# ---------------------------------------------------------------------------

def sym_kl(snn_out, ann_out):
    def log_softmax(z):
        z = np.asarray(z, np.float64).reshape(len(z), -1)
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    lp, lq = log_softmax(ann_out), log_softmax(snn_out)
    return float(((np.exp(lp) * (lp - lq)).sum(axis=1) + (np.exp(lq) * (lq - lp)).sum(axis=1)).mean())


def _search_net(n):
    rng = np.random.default_rng(70)
    ann = _mlp(rng, [6, 12, 10, 4])
    x = f32(rng.normal(size=(n, 6)))
    return ann, x, ann.activations(x, ["r0", "r1"]), ann.run(x)


# 200 > one simulation batch at T = 16; price "events": a burst of k costs one (Loihi 2)
@pytest.mark.parametrize("n, T, price", [(40, 4, "spikes"), (200, 16, "spikes"), (40, 4, "events")])
def test_burst_search_against_independent_recomputation(n, T, price):
    from adacal.passes.burst_search import search_max_spikes
    ann, x, acts, ann_out = _search_net(n)
    lo, hi, ref, ratio = 2, 4, 3, 0.9  # φ_min != 1: the budget row is looked up by value
    snn = set_thresholds(to_spiking(ann, hi), acts, T)
    res = search_max_spikes(snn, acts, ann_out, x, T, (lo, hi), ref, ratio, price=price)
    assert res.price == price
    cands = list(range(lo, hi + 1))
    assert list(res.candidates) == cands and list(res.layers) == ["r0", "r1"]
    base = snn
    for name in ("r0", "r1"):
        base = set_neuron(base, name, max_spikes=hi, threshold=channel_thresholds(acts[name], T, hi))
    sens = np.zeros((2, len(cands)))
    cost = np.zeros((2, len(cands)))
    spikes = np.zeros((2, len(cands)))
    for li, name in enumerate(("r0", "r1")):
        for ci, phi in enumerate(cands):
            trial = set_neuron(base, name, max_spikes=phi, threshold=channel_thresholds(acts[name], T, phi))
            sim, _ = simulate(trial, x, T, batch_size=len(x))
            sens[li, ci] = sym_kl(sim.outputs.mean(axis=0), ann_out)
            spikes[li, ci] = sim.spikes[name].sum(axis=0).mean()
            cost[li, ci] = (sim.events if price == "events" else sim.spikes)[name].sum(axis=0).mean()
    if price == "events":  # bursts of more than one spike occur, so the two prices differ
        assert (cost < spikes).any()
    np.testing.assert_allclose(res.sensitivity, sens, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(res.cost, cost, rtol=1e-9)
    budget = ratio * cost[:, cands.index(ref)].sum()
    assert res.budget == pytest.approx(budget)
    feasible = [(sens[0, i] + sens[1, j], (cands[i], cands[j])) for i in range(3) for j in range(3)
                if cost[0, i] + cost[1, j] <= budget]
    assert feasible, "test instance should be feasible"
    best = min(v for v, _ in feasible)
    chosen_value = sum(sens[li, cands.index(c)] for li, c in enumerate(res.chosen))
    assert chosen_value == pytest.approx(best, rel=1e-9)
    assert sum(cost[li, cands.index(c)] for li, c in enumerate(res.chosen)) <= budget * (1 + 1e-9)


def test_burst_search_infeasible_budget_is_a_clear_error():
    from adacal.errors import AdacalError
    from adacal.passes.burst_search import search_max_spikes
    ann, x, acts, ann_out = _search_net(30)
    snn = set_thresholds(to_spiking(ann, 4), acts, 4)
    with pytest.raises(AdacalError, match="budget"):
        search_max_spikes(snn, acts, ann_out, x, 4, (1, 4), 4, 0.01)


@pytest.mark.parametrize("n, T, price", [(40, 4, "spikes"), (200, 16, "spikes"), (40, 4, "events")])
def test_threshold_ratio_search_against_independent_recomputation(n, T, price):
    from adacal.passes.threshold_ratio_search import RATIOS, search_threshold_ratios
    ann, x, acts, ann_out = _search_net(n)
    snn = bias_correction.correct(set_thresholds(to_spiking(ann, 2), acts, T), acts, x, T, "light")
    fan = fanout_maps(snn)
    lam = 1.5
    res = search_threshold_ratios(snn, ann_out, x, T, lam, fan, price=price)
    assert res.price == price
    assert list(RATIOS) == [1.0 + 0.5 * i for i in range(19)]
    sens = np.zeros((2, len(RATIOS)))
    syn = np.zeros((2, len(RATIOS)))
    for li, name in enumerate(("r0", "r1")):
        for ri, r in enumerate(RATIOS):
            trial = set_neuron(snn, name, threshold=f32(snn.node(name).op.threshold * np.float32(r)))
            sim, _ = simulate(trial, x, T, batch_size=len(x), fanout=fan)
            sens[li, ri] = sym_kl(sim.outputs.mean(axis=0), ann_out)
            syn[li, ri] = (sim.event_synops if price == "events" else sim.synops)[name].sum(axis=0).mean()
            if price == "events" and ri == 0:  # bursts of two occur: events x fan-out < spikes x fan-out
                assert syn[li, ri] < sim.synops[name].sum(axis=0).mean()
    # every row's r = 1.0 entry is the same unscaled network
    np.testing.assert_allclose(sens[:, 0], sens[0, 0], rtol=1e-9)
    # the budget of docs/method.md, Threshold-ratio search (a deliberate reading
    # of the paper): Σ_l [S_l(r_l) − S_l(1)] ≤ λ·max(S_0, MIN_REFERENCE_KL)
    from adacal.passes.threshold_ratio_search import MIN_REFERENCE_KL, PRUNE_FACTOR
    allowance = lam * max(sens[0, 0], MIN_REFERENCE_KL)
    budget = sens[:, 0].sum() + allowance
    assert res.budget == pytest.approx(budget, rel=1e-9)
    # a row is cut off (infinite divergence) right after the first ratio whose
    # divergence alone exceeds PRUNE_FACTOR budgets; measured entries match
    for li in range(2):
        measured = np.isfinite(res.sensitivity[li])
        last = int(measured.sum()) - 1
        over = np.flatnonzero(sens[li, 1:] - sens[li, 0] > PRUNE_FACTOR * allowance)
        assert last == (over[0] + 1 if len(over) else len(RATIOS) - 1)
        np.testing.assert_allclose(res.sensitivity[li, measured], sens[li, measured], rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(res.cost[li, measured], syn[li, measured], rtol=1e-9)
        sens[li, ~measured] = np.inf
    best = min(syn[0, i] + syn[1, j] for i in range(19) for j in range(19) if sens[0, i] + sens[1, j] <= budget)
    idx = [RATIOS.index(r) for r in res.chosen]
    assert syn[0, idx[0]] + syn[1, idx[1]] == pytest.approx(best, rel=1e-9)
    assert sens[0, idx[0]] + sens[1, idx[1]] <= budget * (1 + 1e-9)


def test_threshold_ratio_search_has_room_when_the_snn_already_matches_the_reference():
    """With S_0 = 0 (the reference is the SNN's own output) a purely relative
    allowance would forbid every change; the floor MIN_REFERENCE_KL gives the
    search λ·1e-4 nats, and what it picks stays inside that."""
    from adacal.passes.threshold_ratio_search import MIN_REFERENCE_KL, search_threshold_ratios
    ann, x, acts, _ = _search_net(60)
    T = 8
    snn = bias_correction.correct(set_thresholds(to_spiking(ann, 4), acts, T), acts, x, T, "light")
    fan = fanout_maps(snn)
    own, _ = simulate(snn, x, T, fanout=fan)
    res = search_threshold_ratios(snn, own.mean_output(), x, T, 1.0, fan)
    assert res.sensitivity[0, 0] == pytest.approx(0.0, abs=1e-12)
    assert res.budget == pytest.approx(MIN_REFERENCE_KL, rel=1e-6)
    idx = [list(res.ratios).index(r) for r in res.chosen]
    assert sum(res.sensitivity[i, j] for i, j in enumerate(idx)) <= res.budget * (1 + 1e-9)


# ---------------------------------------------------------------------------
# 6. residual and concat conversions against hand-computed spikes
# ---------------------------------------------------------------------------

def ref_conv(x, w, b, pad):
    """Plain loop cross-correlation, stride 1. x (C, H, W), w (O, C, k, k)."""
    c_in, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.zeros((c_in, h + 2 * pad, wd + 2 * pad))
    xp[:, pad:pad + h, pad:pad + wd] = x
    ho, wo = h + 2 * pad - k + 1, wd + 2 * pad - k + 1
    y = np.zeros((o, ho, wo))
    for oc in range(o):
        for i in range(ho):
            for j in range(wo):
                s = b[oc]
                for ic in range(c_in):
                    for di in range(k):
                        for dj in range(k):
                            s += w[oc, ic, di, dj] * xp[ic, i + di, j + dj]
                y[oc, i, j] = s
    return y


class ScalarNeurons:
    """Neuron state for one sample, element by element (a plain Python loop)."""

    def __init__(self, shape, theta, phi):
        self.theta, self.phi = theta, phi
        self.v = np.zeros(shape)
        for idx in np.ndindex(*shape):
            self.v[idx] = 0.5 * theta[idx[0]]

    def step(self, current):
        k = np.zeros_like(self.v)
        for idx in np.ndindex(*self.v.shape):
            th = self.theta[idx[0]]
            self.v[idx] += current[idx]
            kk = math.floor(self.v[idx] / th)
            kk = min(max(kk, 0), self.phi)
            self.v[idx] -= kk * th
            k[idx] = kk
        return k


def test_residual_block_against_hand_computation():
    # conv1 (1 -> 2, 3x3 pad 1) -> relu1;  conv2 (2 -> 2, 3x3 pad 1) + relu1 -> Add -> relu2;
    # then GlobalAvgPool -> Flatten -> Dense readout.  Integer-friendly weights.
    w1 = np.zeros((2, 1, 3, 3)); w1[0, 0, 1, 1] = 1.0; w1[0, 0, 0, 1] = 0.5; w1[1, 0] = 0.25
    b1 = np.array([0.0, -0.25])
    w2 = np.zeros((2, 2, 3, 3)); w2[0, 1, 1, 1] = 0.5; w2[1, 0, 1, 0] = -0.5; w2[1, 1, 2, 2] = 1.0
    b2 = np.array([0.25, 0.0])
    wr = np.array([[1.0, -1.0], [0.5, 2.0], [0.0, 1.0]])
    br = np.array([0.0, 0.5, -0.25])
    ann = build((1, 3, 3),
                ("conv1", conv(w1, b1, pad=1), ["x"]), ("relu1", ir.Relu(), ["conv1"]),
                ("conv2", conv(w2, b2, pad=1), ["relu1"]), ("add", ir.Add(), ["conv2", "relu1"]),
                ("relu2", ir.Relu(), ["add"]), ("gap", ir.GlobalAvgPool(), ["relu2"]),
                ("flat", ir.Flatten(), ["gap"]), ("fc", dense(wr, br), ["flat"]))
    phi, T = 2, 6
    snn = to_spiking(ann, phi)
    assert kinds(snn) == ["Input", "Conv2d", "BurstNeuron", "Conv2d", "Add", "BurstNeuron",
                          "GlobalAvgPool", "Flatten", "Dense"]
    assert neuron_names(snn) == ["relu1", "relu2"]
    th1, th2 = np.array([0.5, 0.25]), np.array([1.0, 0.5])
    snn = set_neuron(snn, "relu1", threshold=f32(th1))
    snn = set_neuron(snn, "relu2", threshold=f32(th2))

    x = np.array([[[0.0, 1.0, 0.5], [0.25, 1.0, 0.75], [1.0, 0.0, 0.5]],
                  [[0.5, 0.5, 0.5], [0.0, 2.0, 0.0], [0.25, 0.25, 1.0]]])[:, None]
    res, _ = simulate(snn, f32(x), T, keep_steps=["relu1", "relu2"])

    for s in range(len(x)):
        n1 = ScalarNeurons((2, 3, 3), th1, phi)
        n2 = ScalarNeurons((2, 3, 3), th2, phi)
        i1 = ref_conv(x[s], w1, b1, 1)
        for t in range(T):
            k1 = n1.step(i1)
            s1 = k1 * th1[:, None, None]
            k2 = n2.step(ref_conv(s1, w2, b2, 1) + s1)
            s2 = k2 * th2[:, None, None]
            out = wr @ s2.mean(axis=(1, 2)) + br
            assert res.spikes["relu1"][t, s] == k1.sum(), (s, t)
            assert res.spikes["relu2"][t, s] == k2.sum(), (s, t)
            assert res.events["relu2"][t, s] == (k2 > 0).sum()
            np.testing.assert_allclose(res.kept_steps["relu1"][t, s], s1, atol=1e-6)
            np.testing.assert_allclose(res.kept_steps["relu2"][t, s], s2, atol=1e-6)
            np.testing.assert_allclose(res.outputs[t, s], out, atol=1e-5)
    assert res.spikes["relu2"].sum() > 0 and res.spikes["relu1"].sum() > 0
    # fan-out of relu1 = conv2's 3x3 window (2 output channels) + the identity skip
    fan = fanout_maps(snn)["relu1"]
    assert fan[0, 1, 1] == 9 * 2 + 1 and fan[1, 0, 0] == 4 * 2 + 1 and fan[0, 0, 1] == 6 * 2 + 1


def test_concat_of_two_neuron_layers_against_hand_computation():
    wa, ba = np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([0.0, 0.25])
    wb = np.array([[0.0, 1.0], [1.0, -1.0], [0.25, 0.25]])
    bb = np.array([0.5, 0.0, 0.0])
    wr = np.array([[1.0, 0.0, -1.0, 0.5, 0.0], [0.0, 1.0, 1.0, 0.0, 2.0]])
    ann = build((2,), ("fa", dense(wa, ba), ["x"]), ("ra", ir.Relu(), ["fa"]),
                ("fb", dense(wb, bb), ["x"]), ("rb", ir.Relu(), ["fb"]),
                ("cat", ir.Concat(0), ["ra", "rb"]), ("fc", dense(wr), ["cat"]))
    phi, T = 3, 5
    snn = to_spiking(ann, phi)
    assert kinds(snn) == ["Input", "Dense", "BurstNeuron", "Dense", "BurstNeuron", "Concat", "Dense"]
    tha, thb = np.array([0.5, 0.25]), np.array([0.25, 1.0, 0.5])
    snn = set_neuron(set_neuron(snn, "ra", threshold=f32(tha)), "rb", threshold=f32(thb))
    x = np.array([[1.0, 0.5], [0.25, 2.0], [-1.0, 0.75], [3.0, -0.5]])
    res, _ = simulate(snn, f32(x), T)
    for s in range(len(x)):
        na, nb = ScalarNeurons((2,), tha, phi), ScalarNeurons((3,), thb, phi)
        ia, ib = wa @ x[s] + ba, wb @ x[s] + bb
        for t in range(T):
            ka, kb = na.step(ia), nb.step(ib)
            cat = np.concatenate([ka * tha, kb * thb])
            np.testing.assert_allclose(res.outputs[t, s], wr @ cat, atol=1e-6)
            assert res.spikes["ra"][t, s] == ka.sum() and res.spikes["rb"][t, s] == kb.sum()
    fan = fanout_maps(snn)
    np.testing.assert_array_equal(fan["ra"], [2, 2])
    np.testing.assert_array_equal(fan["rb"], [2, 2, 2])


# ---------------------------------------------------------------------------
# 7. fan-out and synops
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("c_out", [1, 3, 4])
def test_fanout_conv_dense_avgpool(c_out):
    rng = np.random.default_rng(50)
    g = build((2, 6, 6),
              ("c1", conv(rng.normal(size=(3, 2, 3, 3)), pad=1), ["x"]), ("n1", neuron(np.ones(3), 2), ["c1"]),
              ("c2", conv(rng.normal(size=(c_out, 3, 3, 3)), pad=1), ["n1"]),
              ("n2", neuron(np.ones(c_out), 2), ["c2"]),
              ("pool", ir.AvgPool((2, 2), (2, 2)), ["n2"]), ("flat", ir.Flatten(), ["pool"]),
              ("fc", dense(rng.normal(size=(7, c_out * 9))), ["flat"]))
    fan = fanout_maps(g)
    f1 = fan["n1"]
    assert f1.shape == (3, 6, 6)
    for c in range(3):
        for i in range(6):
            for j in range(6):
                rows = 3 - (i in (0, 5))
                cols = 3 - (j in (0, 5))
                assert f1[c, i, j] == rows * cols * c_out, (c, i, j)
    assert f1[0, 2, 3] == 9 * c_out and f1[1, 0, 0] == 4 * c_out and f1[2, 0, 3] == 6 * c_out
    np.testing.assert_array_equal(fan["n2"], np.full((c_out, 6, 6), 7))


def test_fanout_dense_and_global_pool():
    rng = np.random.default_rng(51)
    g = build((5,), ("f1", dense(rng.normal(size=(6, 5))), ["x"]), ("n1", neuron(np.ones(6), 1), ["f1"]),
              ("f2", dense(rng.normal(size=(3, 6))), ["n1"]))
    np.testing.assert_array_equal(fanout_maps(g)["n1"], np.full(6, 3))
    g = build((1, 4, 4), ("c", conv(rng.normal(size=(2, 1, 3, 3)), pad=1), ["x"]),
              ("n", neuron(np.ones(2), 1), ["c"]), ("gap", ir.GlobalAvgPool(), ["n"]),
              ("fl", ir.Flatten(), ["gap"]), ("fc", dense(rng.normal(size=(10, 2))), ["fl"]))
    np.testing.assert_array_equal(fanout_maps(g)["n"], np.full((2, 4, 4), 10))


def test_synops_are_spikes_times_fanout():
    rng = np.random.default_rng(52)
    g = build((2, 6, 6),
              ("c1", conv(rng.normal(size=(3, 2, 3, 3)), pad=1), ["x"]),
              ("n1", neuron([0.3, 0.5, 0.2], 3), ["c1"]),
              ("c2", conv(rng.normal(size=(4, 3, 3, 3)), pad=1), ["n1"]),
              ("n2", neuron([0.5] * 4, 2), ["c2"]),
              ("pool", ir.AvgPool((2, 2), (2, 2)), ["n2"]), ("flat", ir.Flatten(), ["pool"]),
              ("fc", dense(rng.normal(size=(5, 36))), ["flat"]))
    x = f32(rng.uniform(0, 1, size=(6, 2, 6, 6)))
    T = 4
    fan = fanout_maps(g)
    res, _ = simulate(g, x, T, fanout=fan, keep_steps=["n1", "n2"])
    for name in ("n1", "n2"):
        th = g.node(name).op.threshold[:, None, None]
        k = np.round(res.kept_steps[name] / th)
        assert k.sum() > 0
        np.testing.assert_allclose(res.spikes[name], k.sum(axis=(2, 3, 4)))
        np.testing.assert_allclose(res.events[name], (k > 0).sum(axis=(2, 3, 4)))
        np.testing.assert_allclose(res.synops[name], (k * fan[name]).sum(axis=(2, 3, 4)), rtol=1e-9)
        np.testing.assert_allclose(res.event_synops[name], ((k > 0) * fan[name]).sum(axis=(2, 3, 4)), rtol=1e-9)


# ---------------------------------------------------------------------------
# 8. adaptive timesteps
# ---------------------------------------------------------------------------

def test_scores_on_hand_made_logits():
    # one sample, K = 2, cumulative logits z1 = (0, 0): p = (.5, .5);
    # z2 = (ln 3, 0): p = (.75, .25);  z3 = (-2 ln 3, 0): p = (.1, .9)
    out = np.array([[[0.0, 0.0]], [[math.log(3.0), 0.0]], [[-3 * math.log(3.0), 0.0]]])
    conf, pred = iat.scores(out, "confidence")
    np.testing.assert_allclose(conf[:, 0], [0.5, 0.75, 0.9])
    np.testing.assert_array_equal(pred[1:, 0], [0, 1])
    ent, pred_e = iat.scores(out, "entropy")
    h = lambda p: -sum(q * math.log(q) for q in p)  # noqa: E731
    assert ent[0, 0] == pytest.approx(0.0, abs=1e-12)
    assert ent[1, 0] == pytest.approx(1 - h([0.75, 0.25]) / math.log(2))
    assert ent[2, 0] == pytest.approx(1 - h([0.1, 0.9]) / math.log(2))
    np.testing.assert_array_equal(pred[1:, 0], pred_e[1:, 0])


def test_scores_three_classes():
    out = np.array([[[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
                    [[-4.0, 0.0, 1.0], [0.0, math.log(2.0), 0.0]]])  # (T=2, N=2, K=3)
    conf, pred = iat.scores(out, "confidence")
    e2 = math.exp(2.0)
    np.testing.assert_allclose(conf[0], [e2 / (e2 + 2), 1 / 3])
    # z2 = (-2, 0, 1) and (0, ln 2, 0)
    p = np.exp([-2.0, 0.0, 1.0]); p /= p.sum()
    np.testing.assert_allclose(conf[1], [p.max(), 0.5])
    np.testing.assert_array_equal(pred, [[0, 0], [2, 1]])
    ent, _ = iat.scores(out, "entropy")
    h = -(p * np.log(p)).sum()
    np.testing.assert_allclose(ent[1, 0], 1 - h / math.log(3))
    np.testing.assert_allclose(ent[0, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(ent[1, 1], 1 - (-(0.25 * math.log(0.25) * 2 + 0.5 * math.log(0.5))) / math.log(3))


@pytest.mark.parametrize("metric", ["confidence", "entropy"])
@pytest.mark.parametrize("level", [0.0, 0.6, 0.9, 0.995])
def test_calibrate_thresholds_formula(metric, level):
    rng = np.random.default_rng(60)
    T, N, K = 5, 40, 4
    out = rng.normal(size=(T, N, K)) + 2.0 * (np.arange(K) == 1)
    labels = rng.integers(0, K, N)
    labels[:20] = 1
    policy = iat.calibrate(out, labels, metric, level)
    # independent scores
    z = out.cumsum(axis=0)
    p = np.exp(z - z.max(axis=2, keepdims=True)); p /= p.sum(axis=2, keepdims=True)
    s = p.max(axis=2) if metric == "confidence" else 1 + (p * np.log(p)).sum(axis=2) / math.log(K)
    ok = z.argmax(axis=2) == labels[None]
    e = np.array([s[t][ok[t]].mean() for t in range(T)])
    tau = level + (1 - level) * np.exp(e.min() - e)
    np.testing.assert_allclose(policy.thresholds, tau, rtol=1e-9)
    assert policy.metric == metric and policy.level == level
    assert len(policy.thresholds) == T
    assert max(policy.thresholds) <= 1.0 + 1e-12 and min(policy.thresholds) >= level - 1e-12


@pytest.mark.parametrize("metric", ["confidence", "entropy"])
def test_level_one_never_exits_early(metric):
    rng = np.random.default_rng(61)
    T, N, K = 6, 30, 3
    out = rng.normal(size=(T, N, K)) * 50  # very confident, even saturated softmax
    out[:, :5] = [1000.0, 0.0, 0.0]
    labels = out.sum(axis=0).argmax(axis=1)
    policy = iat.calibrate(out, labels, metric, 1.0)
    assert all(t == 1.0 for t in policy.thresholds)
    steps, pred = iat.decide(out, policy)
    np.testing.assert_array_equal(steps, np.full(N, T))
    np.testing.assert_array_equal(pred, out.sum(axis=0).argmax(axis=1))


def test_decide_exits_at_first_step_over_threshold():
    # confidence scores for 3 samples over T = 4 steps, built from logits (a, 0):
    # softmax max = 1/(1+e^{-a}); choose cumulative margins.
    margins = np.array([[0.0, 1.0, 3.0, 3.0],    # s: .5, .73, .95, .95
                        [0.0, 0.0, 0.0, 0.0],    # never confident -> exits at T
                        [4.0, 0.0, 5.0, 6.0]])   # s1 = .982 > .9 -> exits at 1
    per_step = np.diff(np.concatenate([np.zeros((3, 1)), margins], axis=1), axis=1)  # (N, T)
    out = np.zeros((4, 3, 2))
    out[:, :, 0] = per_step.T
    s = 1 / (1 + np.exp(-margins))
    policy = iat.ExitPolicy("confidence", 0.9, (0.98, 0.7, 0.9, 0.9))
    steps, pred = iat.decide(out, policy)
    expect = []
    for n in range(3):
        over = [t for t in range(4) if s[n, t] > policy.thresholds[t]]
        expect.append(over[0] + 1 if over else 4)
    assert expect == [2, 4, 1]
    np.testing.assert_array_equal(steps, expect)
    np.testing.assert_array_equal(pred, [0, 0, 0])
    # a score exactly equal to the threshold does not exit (strictly greater)
    eq = iat.ExitPolicy("confidence", 0.9, (0.5, 0.5, 0.5, 0.5))
    steps, _ = iat.decide(out[:, 1:2], eq)
    assert steps[0] == 4
    # prediction is argmax of the cumulative logits at the exit step
    out2 = np.array([[[1.0, 0.0]], [[-3.0, 0.0]], [[0.0, 0.0]]])  # z: (1,0) (-2,0) (-2,0)
    steps, pred = iat.decide(out2, iat.ExitPolicy("confidence", 0.0, (0.99, 0.8, 0.0)))
    assert steps[0] == 2 and pred[0] == 1


def test_exit_metric_and_level_errors():
    from adacal.errors import AdacalError
    out = np.zeros((2, 3, 4))
    with pytest.raises(AdacalError):
        iat.scores(out, "margin")
    with pytest.raises(AdacalError):
        iat.calibrate(out, np.zeros(3, int), "confidence", 1.5)
