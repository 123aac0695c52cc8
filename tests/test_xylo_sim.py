"""adacal.runtime_sim.xylo_sim.simulate against Rockpool's XyloSim (xylosim
0.1.3), spike for spike and state for state, on random networks.

Hypothesis draws the structure and regime of each network (device class,
synapse count, packed feed-forward layers or a random recurrent population,
IEN < Nhid / OEN < Nhid, weight scale incl. saturating ones, shifts 0-8,
dash 0-15, thresholds 1-32767, biases, aliases, input counts above 15);
numpy fills the arrays from a drawn seed.  Runs are derandomized, so CI is
deterministic.  Every example compares, for every sample and step: hidden
events, output events, hidden and output Vmem, Isyn, Isyn2, Isyn_out.
test_random_networks_reach_their_cases draws its own networks from the same
distribution (with numpy) and checks that they reach every case the random
tests are for.
"""
from __future__ import annotations

from collections import Counter
from typing import Optional

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adacal.backends.xylo.reference import run_xylosim
from adacal.backends.xylo.spec import XyloSpec
from adacal.runtime_sim import xylo_sim
from adacal.runtime_sim.xylo_sim import XyloResult, simulate

DEVICES = ["xylo-audio2", "xylo-audio3", "xylo-imu"]
FIELDS = ("spikes", "spikes_out", "vmem", "vmem_out", "isyn", "isyn2", "isyn_out")
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def assert_same(ours: XyloResult, ref: XyloResult, what: str = "") -> None:
    for f in FIELDS:
        a, b = getattr(ours, f), getattr(ref, f)
        assert a.shape == b.shape, (what, f, a.shape, b.shape)
        if not np.array_equal(a, b):
            n, t, j = np.argwhere(a != b)[0]
            raise AssertionError(
                f"{what} {f} differs first at sample {n}, step {t}, neuron {j}: "
                f"simulate {a[n, t, j]} vs XyloSim {b[n, t, j]}"
            )
    np.testing.assert_array_equal(ours.output, ref.output)


# --------------------------------------------------------------------------
# random networks
# --------------------------------------------------------------------------
class HypothesisChoices:
    """Choices drawn by hypothesis (inside a composite strategy)."""

    def __init__(self, draw):
        self.draw = draw

    def pick(self, options):
        return self.draw(st.sampled_from(options))

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def flag(self) -> bool:
        return self.draw(st.booleans())


class NumpyChoices:
    """The same choices drawn uniformly by a numpy generator."""

    def __init__(self, rng):
        self.rng = rng

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def integer(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def flag(self) -> bool:
        return bool(self.rng.integers(2))


def make_network(c, regime: Optional[str] = None, aliases: Optional[bool] = None):
    """(device, spec, inputs, tags) of one random network; ``c`` makes the
    choices (HypothesisChoices or NumpyChoices), numpy fills the arrays."""
    seed = c.integer(0, 2 ** 32 - 1)
    rng = np.random.default_rng(seed)
    device = c.pick(DEVICES)
    n_syn = c.pick([1, 2])
    topology = c.pick(["ff", "ff", "ff_ien", "recurrent"])
    regime = regime or c.pick(["small", "mid", "mid", "big", "saturating"])
    n_in = c.integer(1, 16)
    n_out = c.integer(1, 8)
    if topology == "recurrent":
        widths = [c.integer(1, 40)]
    else:
        widths = [c.integer(1, 20) for _ in range(c.integer(1, 4))]
    h = sum(widths)
    starts = np.cumsum([0] + widths)

    lim = {"small": 8, "mid": 40, "big": 127, "saturating": 127}[regime]

    def weights(shape, density):
        w = rng.integers(-lim, lim + 1, size=shape)
        if regime != "saturating":
            w = w + rng.integers(0, lim // 3 + 1, size=shape)  # mostly excitatory
        w = np.clip(w, -128, 127)
        return (w * (rng.random(shape) < density)).astype(np.int8)

    density = c.pick([0.1, 0.3, 0.7, 1.0])
    # input -> first layer (topology ff_ien: weights_in only has those columns)
    ien = widths[0] if topology == "ff_ien" else h
    w_in = np.zeros((n_in, ien, n_syn), np.int8)
    w_in[:, :widths[0]] = weights((n_in, widths[0], n_syn), density)
    w_rec = np.zeros((h, h, n_syn), np.int8)
    if topology == "recurrent":
        w_rec[:] = weights((h, h, n_syn), density * 0.5)
    else:  # layer l -> l+1 as off-diagonal blocks of weights_rec
        for layer in range(len(widths) - 1):
            a, b, cc = starts[layer], starts[layer + 1], starts[layer + 2]
            w_rec[a:b, b:cc] = weights((b - a, cc - b, n_syn), density)
    # weights_out: the last layer's rows (OEN < Nhid) or all hidden neurons
    oen = widths[-1] if c.flag() else h
    w_out = weights((oen, n_out), density)
    if c.flag():  # 2-D weights (from_specification adds the axis)
        if n_syn == 1:
            w_in, w_rec = w_in[:, :, 0], w_rec[:, :, 0]

    if regime == "saturating":
        shifts = [c.integer(5, 8) for _ in range(3)]
    else:
        shifts = [c.integer(0, 8) for _ in range(3)]
    dash_mode = c.pick(["any", "any", "slow", "zero_syn"])

    def dash(n):
        if dash_mode == "slow":
            return rng.integers(10, 16, n)
        d = rng.integers(0, 16, n)
        if dash_mode == "zero_syn":
            d[rng.random(n) < 0.5] = 0
        return d

    # thresholds on the scale of one step's drive, plus extremes
    scale = max(1, lim * (2 ** max(shifts[:2])) * max(1, n_in // 2))
    th_mode = c.pick(["scaled", "scaled", "scaled", "tiny", "huge", "mixed"])

    def thresholds(n, s):
        th = (s * np.exp(rng.uniform(np.log(0.05), np.log(3.0), n))).astype(np.int64)
        if th_mode == "tiny":
            th = rng.integers(1, 4, n)
        elif th_mode == "huge":
            th = rng.integers(20000, 32768, n)
        elif th_mode == "mixed":
            th[rng.random(n) < 0.3] = 1
            th[rng.random(n) < 0.3] = 32767
        return np.clip(th, 1, 32767)

    bias_mode = c.pick(["none", "none", "hidden", "out_only", "both", "extreme"])
    bias = np.zeros(h, np.int64)
    bias_out = np.zeros(n_out, np.int64)
    if bias_mode in ("hidden", "both"):
        bias = rng.integers(-scale // 4 - 1, scale // 4 + 2, h)
    if bias_mode in ("out_only", "both"):
        bias_out = rng.integers(-scale // 4 - 1, scale // 4 + 2, n_out)
    if bias_mode == "extreme":
        bias = rng.choice([-32768, -1, 0, 1, 32767], h)
        bias_out = rng.choice([-32768, 0, 32767], n_out)
    bias, bias_out = np.clip(bias, -32768, 32767), np.clip(bias_out, -32768, 32767)

    use_aliases = c.flag() if aliases is None else aliases
    al = None
    if use_aliases:
        al = [[] for _ in range(h)]
        for i in rng.choice(h, size=min(h, 1 + h // 4), replace=False):
            al[i] = [int(a) for a in rng.choice(h, size=int(rng.integers(1, 3)))]
    elif c.flag():
        al = [[] for _ in range(h)]  # explicit empty aliases

    spec = XyloSpec(
        weights_in=w_in, weights_out=w_out, weights_rec=w_rec,
        dash_mem=dash(h), dash_mem_out=dash(n_out), dash_syn=dash(h),
        dash_syn_2=dash(h), dash_syn_out=dash(n_out),
        threshold=thresholds(h, scale), threshold_out=thresholds(n_out, scale * 2),
        bias=bias, bias_out=bias_out,
        weight_shift_in=shifts[0], weight_shift_rec=shifts[1], weight_shift_out=shifts[2],
        aliases=al, dt=1e-3, output_mode=c.pick(["Spike", "Vmem", "Isyn"]),
    )
    n = c.integer(1, 3)
    T = c.integer(1, 20)
    max_count = c.pick([1, 3, 15, 15, 40])
    x = rng.integers(0, max_count + 1, size=(n, T, n_in))
    x[rng.random(x.shape) < rng.uniform(0, 0.7)] = 0
    tags = {topology, regime, f"syn{n_syn}", device, f"bias_{bias_mode}", dash_mode,
            th_mode, spec.output_mode, f"layers{len(widths)}"}
    if use_aliases:
        tags.add("aliases")
    if x.max() > 15:
        tags.add("input>15")
    return device, spec, x, tags


@st.composite
def networks(draw, regime=None, aliases=None):
    return make_network(HypothesisChoices(draw), regime, aliases)


def check_network(device, spec, x, tags, coverage: Optional[Counter] = None):
    """simulate (and both exact loops, forced) equal XyloSim; with coverage,
    count which cases the network reached."""
    ours = simulate(spec, x)
    ref = run_xylosim(spec, x, device)
    assert_same(ours, ref, f"[{device} {sorted(tags)}]")
    cov = Counter() if coverage is None else coverage
    if ours.stats["exact_steps"]:
        # both exact loops (normally picked by cost) must agree with XyloSim
        for mode in ("source", "contribution"):
            xylo_sim._FORCE_REPLAY = mode
            try:
                forced = simulate(spec, x)
            finally:
                xylo_sim._FORCE_REPLAY = None
            assert forced.stats[f"exact_by_{mode}"] == forced.stats["exact_steps"]
            assert_same(forced, ref, f"[{device} {sorted(tags)} exact loop {mode}]")
            cov[f"forced_{mode}"] += 1
    cov.update(tags)
    cov["networks"] += 1
    reached = {
        "exact_path": ours.stats["exact_steps"],
        "exact_by_source": ours.stats["exact_by_source"],
        "exact_by_contribution": ours.stats["exact_by_contribution"],
        "static_fast": ours.stats["static_fast_columns"],
        "checked_fast": ours.stats["checked_columns"] and not ours.stats["exact_steps"],
        "bursts": ref.spikes.max() > 1,
        "burst_cap_31": ref.spikes.max() == 31,
        "output_events": ref.spikes_out.any(),
        "isyn_saturated": (np.any(np.abs(ref.isyn.astype(int)) >= 32767)
                           or np.any(np.abs(ref.isyn_out.astype(int)) >= 32767)),
        "vmem_saturated": np.any(ref.vmem == -32768) or np.any(ref.vmem == 32767),
    }
    cov.update(k for k, v in reached.items() if v)


@settings(max_examples=150, **SETTINGS)
@given(networks())
def test_random_networks(net):
    check_network(*net)


@settings(max_examples=40, **SETTINGS)
@given(networks(regime="saturating"))
def test_saturating_networks(net):
    check_network(*net)


@settings(max_examples=25, **SETTINGS)
@given(networks(aliases=True))
def test_alias_networks(net):
    check_network(*net)


COVERAGE_TAGS = [
    "ff", "ff_ien", "recurrent", "saturating", "syn1", "syn2",
    "xylo-audio2", "xylo-audio3", "xylo-imu", "bias_none", "bias_hidden",
    "bias_out_only", "bias_extreme", "zero_syn", "aliases", "input>15",
    "layers3", "Spike", "Vmem", "Isyn", "exact_path", "exact_by_source",
    "exact_by_contribution", "forced_source", "forced_contribution",
    "static_fast", "checked_fast", "bursts", "burst_cap_31", "output_events",
    "isyn_saturated", "vmem_saturated",
]


def test_random_networks_reach_their_cases():
    """Networks from the random tests' distribution (numpy-drawn, every
    fourth saturating, every fifth with aliases) match XyloSim and reach every
    case the random tests are for: each topology, device, regime, delivery
    path, saturation and the burst cap."""
    rng = np.random.default_rng(0)
    coverage: Counter = Counter()
    for i in range(120):
        regime = "saturating" if i % 4 == 0 else None
        aliases = True if i % 5 == 0 else None
        check_network(*make_network(NumpyChoices(rng), regime, aliases), coverage=coverage)
    missing = [tag for tag in COVERAGE_TAGS if coverage[tag] == 0]
    assert not missing, (missing, dict(coverage))


# --------------------------------------------------------------------------
# targeted cases
# --------------------------------------------------------------------------
def base_kwargs(n_in=2, h=2, n_out=1, n_syn=2):
    return dict(
        weights_in=np.zeros((n_in, h, n_syn), np.int8),
        weights_out=np.zeros((h, n_out), np.int8),
        weights_rec=np.zeros((h, h, n_syn), np.int8),
        dash_mem=np.full(h, 4), dash_mem_out=np.full(n_out, 4),
        dash_syn=np.full(h, 1), dash_syn_2=np.full(h, 1), dash_syn_out=np.full(n_out, 1),
        threshold=np.full(h, 1000), threshold_out=np.full(n_out, 1000),
        bias=np.zeros(h, int), bias_out=np.zeros(n_out, int),
        weight_shift_in=0, weight_shift_rec=0, weight_shift_out=0,
        aliases=None, dt=1e-3, output_mode="Vmem",
    )


@pytest.mark.parametrize("device", DEVICES)
def test_delivery_order_under_saturation(device):
    # two events of +127<<8 then one of -128<<8 on the same synapse:
    # xylosim: sat(32512*2) = 32767, then -32768 -> -1 (the plain sum would
    # be 32256, the reverse order 32767): the exact path must replay it.
    kw = base_kwargs()
    kw["weights_in"][0, 0, 0] = 127
    kw["weights_in"][1, 0, 0] = -128
    kw["weight_shift_in"] = 8
    kw["dash_syn"][:] = 15
    kw["threshold"][:] = 32767
    spec = XyloSpec(**kw)
    x = np.array([[[2, 1], [0, 0], [1, 2]], [[0, 1], [2, 0], [0, 0]]])
    ours = simulate(spec, x)
    assert ours.stats["exact_steps"] > 0
    # isyn after delivery -1, decayed by one LSB (dash 15) -> -1 + 1 = 0
    assert ours.isyn[0, 0, 0] == 0
    assert_same(ours, run_xylosim(spec, x, device))


def test_vmem_decay_wrap():
    # v = -32768 with dash_mem 0: -decay(v, 0) = 32768 wraps to int16 -32768
    # (XyloIAFNeuron::evolve), so v stays pinned at -32768 where the
    # mathematically correct update would lift it.
    kw = base_kwargs(n_in=1, h=1)
    kw["weights_in"][0, 0, :] = -128
    kw["weight_shift_in"] = 8
    kw["dash_mem"][:] = 0
    spec = XyloSpec(**kw)
    x = np.array([[[1], [0], [0]]])
    ours = simulate(spec, x)
    assert ours.vmem[0, 0, 0] == -32768  # isyn -16384 on both synapses
    assert ours.vmem[0, 1, 0] == -32768  # wrapped; unwrapped it would be -16384
    assert_same(ours, run_xylosim(spec, x))


def test_dash_syn_zero_kills_input_static_path():
    kw = base_kwargs()
    kw["weights_in"][:, :, 0] = 100
    kw["dash_syn"][:] = 0
    kw["dash_syn_2"][:] = 0
    kw["weights_rec"][0, 1, 0] = 50
    spec = XyloSpec(**kw)
    x = np.full((2, 5, 2), 15)
    ours = simulate(spec, x)
    assert ours.stats["checked_columns"] == 0  # all columns proven safe
    assert not ours.isyn.any() and not ours.vmem.any()
    assert_same(ours, run_xylosim(spec, x))


@pytest.mark.parametrize("which", ["none", "hidden", "out_only"])
def test_bias_switch(which):
    kw = base_kwargs()
    kw["weights_in"][0, :, 0] = 30
    kw["weights_out"][:, 0] = 20
    kw["weight_shift_in"] = kw["weight_shift_out"] = 4
    if which == "hidden":
        kw["bias"][:] = [-7, 13]
    elif which == "out_only":
        kw["bias_out"][:] = [-50]
    spec = XyloSpec(**kw)
    assert spec.has_bias == (which != "none")
    x = np.random.default_rng(0).integers(0, 20, (3, 12, 2))
    assert_same(simulate(spec, x), run_xylosim(spec, x))


def test_alias_chain_and_cap():
    # 0 -> 2 (later: seeds its count), 2 -> 1 (earlier: joins 1's buffer),
    # 1 -> 1 (self alias doubles), counts capped at 31
    kw = base_kwargs(n_in=1, h=3)
    kw["weights_in"][0, :, 0] = [127, 60, 127]
    kw["weight_shift_in"] = 6
    kw["threshold"][:] = [300, 500, 250]
    kw["aliases"] = [[2], [1], [1, 1]]
    spec = XyloSpec(**kw)
    x = np.array([[[15]] * 6 + [[0]] * 4])
    ours = simulate(spec, x)
    assert ours.spikes.max() == 31
    assert_same(ours, run_xylosim(spec, x))


# --------------------------------------------------------------------------
# what simulate accepts
# --------------------------------------------------------------------------
def test_simulate_reads_any_object_with_the_spec_attributes():
    from types import SimpleNamespace

    kw = base_kwargs(n_syn=1)
    kw["weights_in"][:, :, 0] = 90
    kw["weights_out"][:, 0] = 50
    kw["weight_shift_in"] = kw["weight_shift_out"] = 3
    spec = XyloSpec(**kw)
    x = np.random.default_rng(1).integers(0, 16, (2, 8, 2))
    duck = SimpleNamespace(**spec.as_kwargs())  # plain writable arrays, no XyloSpec methods
    assert_same(simulate(duck, x), run_xylosim(spec, x))
    # 2-D weights get the synapse axis, as in from_specification
    duck.weights_in, duck.weights_rec = duck.weights_in[:, :, 0], duck.weights_rec[:, :, 0]
    assert_same(simulate(duck, x), run_xylosim(spec, x))


def test_simulate_input_and_spec_errors():
    spec = XyloSpec(**base_kwargs(n_syn=2))
    with pytest.raises(ValueError, match="inputs.*>= 0"):
        simulate(spec, -np.ones((1, 2, 2), int))
    with pytest.raises(ValueError, match="inputs.*shape"):
        simulate(spec, np.ones((2, 2), int))
    with pytest.raises(ValueError, match="inputs.*integers"):
        simulate(spec, np.full((1, 2, 2), 0.5))
    with pytest.raises(TypeError, match="dict"):
        simulate(base_kwargs(), np.ones((1, 2, 2), int))
    with pytest.raises(TypeError, match="without .*threshold_out"):
        simulate(object(), np.ones((1, 2, 2), int))
