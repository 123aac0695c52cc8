"""Max pooling on Loihi 2: the MaxPool Lava process (backends/loihi2/max_pool)
against runtime_sim.maxpool, and max pools in lowered networks (payload
pools, pools feeding a residual skip, pools over a channel Concat, global
pools, a max pool hoisted between a conv and its neurons), simulated with
the integer simulator and checked bit-exactly against Lava's fixed_pt
models through the verify path (docs/loihi2.md, "Max pooling").
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from adacal import int_ir, ir
from adacal.backends.loihi2.compat import ensure_lava, lava_fixed_pt_run_config
from adacal.backends.loihi2.lava_plan import plan_lava
from adacal.backends.loihi2.lower import lower_loihi2
from adacal.backends.loihi2.network_file import read_network, write_network
from adacal.backends.loihi2.resources import estimate
from adacal.backends.loihi2.verify import verify
from adacal.errors import UnsupportedError
from adacal.runtime_sim import maxpool
from adacal.runtime_sim.float_sim import simulate
from adacal.runtime_sim.int_sim import run_int_maxpool, simulate_int
from irbuild import build, conv, dense, neuron
from test_loihi2_lower import check_formats

HOWS = maxpool.REALISATIONS


# ===========================================================================
# the Lava process on its own
# ===========================================================================
#: (kernel, stride, padding (t, l, b, r), dilation, ceil_mode, (C, H, W)); None kernel = global
GEOMETRIES = [
    ((2, 2), (2, 2), (0, 0, 0, 0), (1, 1), False, (2, 6, 6)),
    ((3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False, (2, 7, 5)),  # padded, overlapping, non-square map
    ((3, 2), (2, 3), (1, 0, 1, 0), (1, 1), True, (1, 6, 7)),  # ceil_mode adds a partial window
    ((2, 2), (1, 2), (0, 1, 0, 1), (2, 1), False, (2, 5, 6)),  # dilation
    (None, None, None, None, None, (3, 4, 5)),  # global
]


def _geometry(spec) -> maxpool.PoolGeometry:
    kernel, stride, pad, dil, ceil, shape = spec
    if kernel is None:
        return maxpool.PoolGeometry.of(ir.GlobalMaxPool(), shape[1:])
    return maxpool.PoolGeometry(kernel, stride, pad, dil, ceil)


def run_pools(x: np.ndarray, specs, hold: int, period: int, signed_shift: int = 0) -> dict:
    """One Lava run: a RingBuffer source of per-step (C, H, W) payloads x[t]
    (T_total, C, H, W) feeding one MaxPool process per (geometry, how), each
    into a sink.  Returns {(i, how): (T_total, C, Ho, Wo)} in PyTorch layout."""
    ensure_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from adacal.backends.loihi2.max_pool.process import MaxPool

    steps, c, h, w = x.shape
    src = Source(data=np.ascontiguousarray(x.transpose(3, 2, 1, 0)).astype(np.int32))  # (W, H, C, steps)
    sinks = {}
    for i, spec in enumerate(specs):
        geo = _geometry(spec)
        for how in HOWS:
            mp = MaxPool(shape=(w, h, c), kernel=geo.kernel, stride=geo.stride, padding=geo.padding,
                         dilation=geo.dilation, ceil_mode=geo.ceil_mode, how=how, hold=hold, period=period)
            assert mp.out_shape == tuple(reversed(geo.out_size((h, w)))) + (c,)
            sink = Sink(shape=mp.out_shape, buffer=steps)
            src.s_out.connect(mp.s_in)
            mp.s_out.connect(sink.a_in)
            sinks[(i, how)] = sink
    try:
        src.run(condition=RunSteps(num_steps=steps), run_cfg=lava_fixed_pt_run_config())
        got = {k: np.rint(s.data.get()).astype(np.int64).transpose(3, 2, 1, 0) for k, s in sinks.items()}
    finally:
        src.stop()
    return got


@functools.lru_cache(maxsize=None)
def back_to_back(signed: bool):
    """Three samples back to back (period P = hold + T + 1 tail step) on all
    geometries; the source also sends garbage during the hold and tail steps,
    which the process must discard / forget."""
    rng = np.random.default_rng(5 if signed else 4)
    T, hold, n = 5, 2, 3
    P = hold + T + 1
    c, h, w = 2, 7, 7
    lo = -4 if signed else 0
    x = rng.integers(lo, 5, (n * P, c, h, w))
    x[rng.random(x.shape) < 0.3] = 0
    specs = [g[:5] + ((c, h, w),) for g in GEOMETRIES[:4]] + [GEOMETRIES[4][:5] + ((c, h, w),)]
    return x, specs, T, hold, P, run_pools(x, specs, hold, P)


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_lava_maxpool_equals_runtime_sim_back_to_back(signed):
    """Per sample, the process's outputs in the T steps after the hold equal
    runtime_sim.maxpool.run on that sample's payloads, for every geometry and
    realisation; it sends 0 during the hold; its sums restart every period."""
    x, specs, T, hold, P, got = back_to_back(signed)
    n = len(x) // P
    differs = 0
    for i, spec in enumerate(specs):
        geo = _geometry(spec)
        for how in HOWS:
            out = got[(i, how)]
            for s in range(n):
                seg = x[s * P + hold:s * P + hold + T][:, None]  # (T, 1, C, H, W)
                want = maxpool.run(seg, geo, how)[:, 0]
                np.testing.assert_array_equal(out[s * P + hold:s * P + hold + T], want,
                                              err_msg=f"geometry {i}, {how}, sample {s}")
                assert not out[s * P:s * P + hold].any(), "the hold sends 0"
            if how != "step":  # without the reset, later samples would continue the sums
                cont = maxpool.run(x[:, None], geo, how)[:, 0]
                differs += not all(np.array_equal(out[s * P + hold:s * P + hold + T],
                                                  cont[s * P + hold:s * P + hold + T]) for s in range(1, n))
    assert differs >= 6, differs  # the reset matters on these data
    # the realisations really differ on these trains (so a mixed-up `how` fails)
    for i in range(len(specs)):
        outs = [got[(i, how)] for how in HOWS]
        assert not np.array_equal(outs[0], outs[2]) and not np.array_equal(outs[1], outs[2]), i


def test_lava_maxpool_single_run_hold_without_period():
    """period = 0: only the first `hold` steps of the run send 0."""
    rng = np.random.default_rng(9)
    x = rng.integers(0, 6, (7, 2, 5, 5))
    spec = ((3, 3), (2, 2), (1, 1, 1, 1), (1, 1), True, (2, 5, 5))
    got = run_pools(x, [spec], hold=3, period=0)
    geo = _geometry(spec)
    for how in HOWS:
        out = got[(0, how)]
        assert not out[:3].any()
        np.testing.assert_array_equal(out[3:], maxpool.run(x[3:, None], geo, how)[:, 0], err_msg=how)


def test_process_rejects_bad_arguments():
    ensure_lava()
    from adacal.backends.loihi2.max_pool.process import MaxPool

    with pytest.raises(ValueError, match="how"):
        MaxPool(shape=(4, 4, 1), kernel=2, how="mean")
    with pytest.raises(ValueError, match="hold"):
        MaxPool(shape=(4, 4, 1), kernel=2, hold=5, period=5)
    with pytest.raises(ValueError, match=r"\(W, H, C\)"):
        MaxPool(shape=(4, 4), kernel=2)


def test_int_maxpool_equals_runtime_sim_on_float_held_integers():
    """int_sim keeps payloads as exact integers in float32: its max pool gives
    runtime_sim.maxpool.run's integer result; a constant input (T' = 1) is the
    plain max under every realisation."""
    rng = np.random.default_rng(2)
    x = rng.integers(-3, 6, (6, 2, 3, 7, 6))
    for spec in GEOMETRIES[:4]:
        kernel, stride, pad, dil, ceil, _ = spec
        for how in HOWS:
            op = int_ir.IntMaxPool(kernel, stride, pad, dil, ceil, how, 0)
            got = run_int_maxpool(op, x.astype(np.float32))
            want = maxpool.run(x, maxpool.PoolGeometry.of(op, x.shape[-2:]), how)
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got.astype(np.int64), want)
            const = run_int_maxpool(op, x[:1].astype(np.float32))
            np.testing.assert_array_equal(const, maxpool.window_max(x[:1].astype(np.float32),
                                                                    maxpool.PoolGeometry.of(op, (7, 6))))


# ===========================================================================
# lowered networks, verified against Lava
# ===========================================================================
RNG_SEED = 11


def _conv(rng, cin, cout, k=3, pad=1):
    return conv(rng.normal(0, 1.6 / np.sqrt(cin * k * k), (cout, cin, k, k)), rng.normal(0, 0.1, cout), pad)


def _neuron(rng, c, phi=3):
    return neuron(rng.uniform(0.15, 0.45, c), phi, rng.normal(0, 0.05, c))


def _dense(rng, nin, nout):
    return dense(rng.normal(0, 0.4, (nout, nin)), np.zeros(nout))


def net_plain(how: str):
    """Input -> Conv -> neurons -> SpikingMaxPool(3x3 s2 pad 1) -> Conv -> neurons -> Flatten -> Dense."""
    rng = np.random.default_rng(RNG_SEED)
    return build((2, 8, 8), ("c0", _conv(rng, 2, 4), ["x"]), ("n0", _neuron(rng, 4), ["c0"]),
                 ("pool", ir.SpikingMaxPool(ir.MaxPool((3, 3), (2, 2), (1, 1, 1, 1)), how), ["n0"]),
                 ("c1", _conv(rng, 4, 3), ["pool"]), ("n1", _neuron(rng, 3), ["c1"]),
                 ("fl", ir.Flatten(), ["n1"]), ("fc", _dense(rng, 48, 3), ["fl"]))


def net_residual():
    """torchvision ResNet's stem: neurons -> MaxPool -> both the block's first
    conv and its identity skip into the block's residual neurons."""
    rng = np.random.default_rng(RNG_SEED + 1)
    return build((2, 8, 8), ("c0", _conv(rng, 2, 4), ["x"]), ("n0", _neuron(rng, 4), ["c0"]),
                 ("pool", ir.SpikingMaxPool(ir.MaxPool((3, 3), (2, 2), (1, 1, 1, 1)), "running"), ["n0"]),
                 ("c1", _conv(rng, 4, 4), ["pool"]), ("n1", _neuron(rng, 4), ["c1"]),
                 ("c2", _conv(rng, 4, 4), ["n1"]), ("add", ir.Add(), ["c2", "pool"]),
                 ("n2", _neuron(rng, 4), ["add"]), ("fl", ir.Flatten(), ["n2"]), ("fc", _dense(rng, 64, 3), ["fl"]))


def net_hoisted():
    """Input -> Conv -> MaxPool -> neurons (the pool hoisted before the neurons
    of an input-driven conv pools currents) -> Conv -> neurons -> Flatten -> Dense."""
    rng = np.random.default_rng(RNG_SEED + 2)
    return build((2, 8, 8), ("c0", _conv(rng, 2, 4), ["x"]), ("mp", ir.MaxPool((2, 2), (2, 2)), ["c0"]),
                 ("n0", _neuron(rng, 4), ["mp"]), ("c1", _conv(rng, 4, 3), ["n0"]), ("n1", _neuron(rng, 3), ["c1"]),
                 ("fl", ir.Flatten(), ["n1"]), ("fc", _dense(rng, 48, 3), ["fl"]))


def net_concat():
    """Two branches concatenated along channels -> SpikingMaxPool (ceil_mode,
    7x7 map: a partial last window) -> a pool of that pool -> Conv -> neurons
    -> global max pool -> Flatten -> Dense."""
    rng = np.random.default_rng(RNG_SEED + 3)
    return build((2, 7, 7), ("ca", _conv(rng, 2, 3), ["x"]), ("na", _neuron(rng, 3), ["ca"]),
                 ("cb", _conv(rng, 2, 2, k=1, pad=0), ["x"]), ("nb", _neuron(rng, 2), ["cb"]),
                 ("cat", ir.Concat(0), ["na", "nb"]),
                 ("pool", ir.SpikingMaxPool(ir.MaxPool((2, 2), (2, 2), ceil_mode=True), "gated"), ["cat"]),
                 ("pool2", ir.SpikingMaxPool(ir.MaxPool((2, 2), (1, 1)), "running"), ["pool"]),
                 ("c1", _conv(rng, 5, 4), ["pool2"]), ("n1", _neuron(rng, 4), ["c1"]),
                 ("gmp", ir.SpikingMaxPool(ir.GlobalMaxPool(), "running"), ["n1"]),
                 ("fl", ir.Flatten(), ["gmp"]), ("fc", _dense(rng, 4, 3), ["fl"]))


T = 5
NETS = {"plain_step": lambda: net_plain("step"), "plain_gated": lambda: net_plain("gated"),
        "plain_running": lambda: net_plain("running"), "residual": net_residual, "hoisted": net_hoisted,
        "concat": net_concat}


@functools.lru_cache(maxsize=None)
def lowered(name: str):
    g = NETS[name]()
    x = np.random.default_rng(3).random((3,) + g.input_shape).astype(np.float32)
    return g, lower_loihi2(g, x, T), x


@functools.lru_cache(maxsize=None)
def verified(name: str):
    _, low, x = lowered(name)
    return verify(low, x)


def _pools(g: ir.Graph) -> list[ir.Node]:
    return [n for n in g.nodes if isinstance(n.op, int_ir.IntMaxPool)]


@pytest.mark.parametrize("name", sorted(NETS))
def test_network_with_max_pools_is_bit_exact_against_lava(name):
    g, low, x = lowered(name)
    check_formats(low)  # chip formats; every depth (a max pool's too) is its path latency
    res = verified(name)
    assert res["mismatched_samples"] == 0 and res["first_mismatch"] is None, res["first_mismatch"]
    ours, _ = simulate_int(low.graph, x, T, record_payloads=True)
    payload_pools = [n.name for n in _pools(low.graph) if n.name in ours.payloads]
    # every payload pool's output is compared too, and the layers are not silent
    assert res["layers_compared"] == len(ours.payloads) + 1
    assert len(ours.payloads) == sum(isinstance(n.op, int_ir.IntBurstNeuron) for n in low.graph.nodes) + \
        len(payload_pools)
    for layer, k in ours.payloads.items():
        assert k.any(), f"{layer} silent: the comparison would be vacuous"


@pytest.mark.parametrize("name", sorted(NETS))
def test_integer_network_follows_the_float_snn(name):
    """The lowered network computes what the float SNN does: per neuron layer
    and spiking max pool the time-averaged value (payload x its unit) within
    10 %, the spike counts (pools counted as emitters by both simulators)
    within 2 %, the same class on >= 90 % of the samples."""
    g, low, _ = lowered(name)
    x = np.random.default_rng(8).random((64,) + g.input_shape).astype(np.float32)
    names = tuple(n.name for n in g.nodes if isinstance(n.op, (ir.BurstNeuron, ir.SpikingMaxPool)))
    fs, _ = simulate(g, x, T, keep=names)
    ires, _ = simulate_int(low.graph, x, T, record_payloads=True)
    assert set(ires.spikes) == set(fs.spikes) == {n for n in names}
    for layer in names:
        a_int = ires.payloads[layer].mean(axis=0) * low.payload_scale[layer]
        a_flt = fs.kept[layer]
        assert np.linalg.norm(a_int - a_flt) / np.linalg.norm(a_flt) < 0.1, layer
        f_sp, i_sp = fs.spikes[layer].sum(), ires.spikes[layer].sum()
        assert f_sp > 0 and abs(i_sp - f_sp) / f_sp < 0.02, (layer, f_sp, i_sp)
    agree = (low.logits(ires.readout).argmax(1) == fs.mean_output().reshape(len(x), -1).argmax(1)).mean()
    assert agree >= 0.9, agree


def test_pool_depths_and_lowered_structure():
    """A max pool sends in the step it receives: its depth is its input's, it
    adds no latency and needs no Delay of its own; the skip from a pool is a
    depthwise 1x1 conv behind Delay(1)."""
    flt, low, _ = lowered("plain_running")
    g = low.graph
    assert [n.kind for n in g.nodes] == ["GradedInput", "IntConv", "IntBurstNeuron", "IntMaxPool", "IntConv",
                                         "IntBurstNeuron", "Flatten", "IntDense"]
    pool = g.node("pool").op
    assert (pool.kernel, pool.stride, pool.padding, pool.how, pool.depth) == ((3, 3), (2, 2), (1, 1, 1, 1),
                                                                              "running", 1)
    assert g.node("n1").op.depth == 2 and low.depth == 3
    # the pool's payload unit is its input's: one spike of n0's channel
    np.testing.assert_array_equal(low.payload_scale["pool"], np.broadcast_to(
        flt.node("n0").op.threshold.reshape(-1, 1, 1), (4, 4, 4)))
    _, low, _ = lowered("residual")
    g = low.graph
    delays = [n for n in g.nodes if isinstance(n.op, int_ir.Delay)]
    assert len(delays) == 1 and delays[0].inputs == ("pool",) and delays[0].op.steps == 1
    skip = g.node("pool/skip->n2").op
    assert isinstance(skip, int_ir.IntConv) and skip.groups == 4 and skip.weight.shape == (4, 1, 1, 1)
    assert g.node("n2").op.depth == 3
    _, low, _ = lowered("hoisted")
    g = low.graph
    mp = g.node("mp")
    assert isinstance(mp.op, int_ir.IntMaxPool) and mp.op.how == "step" and mp.inputs == ("c0",)
    assert g.node("n0").inputs == ("mp",) and g.node("n0").op.depth == mp.op.depth == 1
    _, low, _ = lowered("concat")
    g = low.graph
    assert g.node("pool").inputs == ("cat",) and g.node("gmp").op.kernel == (3, 3)
    plan = plan_lava(g)
    assert plan.pool_parts["pool"] == ["pool[0:3]", "pool[3:5]"]  # one Lava MaxPool per population
    assert plan.pool_parts["pool2"] == ["pool2[0:3]", "pool2[3:5]"]  # it reads two populations too
    assert plan.pool_parts["gmp"] == ["gmp"] and set(plan.current_pools) == set()
    assert set(plan_lava(lowered("hoisted")[1].graph).current_pools) == {"mp"}


def test_realisations_give_different_networks():
    """The three realisations of the same network differ on these samples, so
    a Lava model running the wrong one would fail the bit-exact check."""
    outs = []
    for how in HOWS:
        _, low, x = lowered(f"plain_{how}")
        res, _ = simulate_int(low.graph, x, T, record_payloads=True)
        outs.append(res.payloads["pool"])
    assert not np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[1], outs[2])
    assert not np.array_equal(outs[0], outs[2])


def test_hoisted_pool_equals_pooling_the_currents():
    """The hoisted pool is the max of the integer conv currents, the neuron's
    bias added after it (exact: the bias is per channel)."""
    _, low, x = lowered("hoisted")
    g = low.graph
    upto = ir.Graph(g.nodes[:2], "c0")
    cur, _ = simulate_int(upto, x, T)
    want = maxpool.window_max(cur.readout[:1], maxpool.PoolGeometry((2, 2), (2, 2)))
    pooled = ir.Graph(g.nodes[:3], "mp")
    got, _ = simulate_int(pooled, x, T)
    np.testing.assert_array_equal(got.readout[:1], want)


def test_network_file_round_trip_with_max_pools(tmp_path):
    for name in ("concat", "hoisted"):
        _, low, x = lowered(name)
        write_network(low, tmp_path / f"{name}.h5")
        back = read_network(tmp_path / f"{name}.h5")
        for a, b in zip(low.graph.nodes, back.graph.nodes):
            assert (a.name, a.kind, a.inputs, tuple(a.shape)) == (b.name, b.kind, b.inputs, tuple(b.shape))
            if isinstance(a.op, int_ir.IntMaxPool):
                assert all(getattr(a.op, f) == getattr(b.op, f) for f in
                           ("kernel", "stride", "padding", "dilation", "ceil_mode", "how", "depth"))
                assert isinstance(b.op.how, str) and isinstance(b.op.ceil_mode, bool)
        r1, _ = simulate_int(low.graph, x, T, record_payloads=True)
        r2, _ = simulate_int(back.graph, x, T, record_payloads=True)
        np.testing.assert_array_equal(r1.readout, r2.readout)


def test_resources_count_pools():
    _, low, _ = lowered("concat")
    est = estimate(low.graph)
    rows = {L["name"]: L for L in est["layers"]}
    assert rows["pool"]["neurons"] == 5 * 4 * 4 and rows["pool"]["weights_stored"] == 0
    assert rows["pool"]["connections"] == 5 * 4 * 4 * 4
    _, low, _ = lowered("hoisted")
    rows = {L["name"]: L for L in estimate(low.graph)["layers"]}
    assert rows["n0"]["weights_stored"] == 4 * 2 * 9  # the conv behind the hoisted pool
    assert rows["mp"]["neurons"] == 4 * 4 * 4


def test_lowering_refuses_what_it_cannot_place():
    rng = np.random.default_rng(0)
    x = rng.random((4, 2, 6, 6)).astype(np.float32)
    # a max pool over a spatial Concat: one window would span two populations
    g = build((2, 6, 6), ("ca", _conv(rng, 2, 2), ["x"]), ("na", _neuron(rng, 2), ["ca"]),
              ("cb", _conv(rng, 2, 2), ["x"]), ("nb", _neuron(rng, 2), ["cb"]),
              ("wide", ir.Concat(1), ["na", "nb"]),
              ("spatialpool", ir.SpikingMaxPool(ir.MaxPool((2, 2), (2, 2)), "step"), ["wide"]),
              ("fl", ir.Flatten(), ["spatialpool"]), ("fc", _dense(rng, 36, 2), ["fl"]))
    with pytest.raises(UnsupportedError, match="spatialpool"):
        lower_loihi2(g, x, T)
    # a plain MaxPool after neurons (not converted to a SpikingMaxPool, not hoisted)
    g = build((2, 6, 6), ("ca", _conv(rng, 2, 2), ["x"]), ("na", _neuron(rng, 2), ["ca"]),
              ("stray", ir.MaxPool((2, 2), (2, 2)), ["na"]), ("fl", ir.Flatten(), ["stray"]),
              ("fc", _dense(rng, 18, 2), ["fl"]))
    with pytest.raises(UnsupportedError, match="stray"):
        lower_loihi2(g, x, T)
