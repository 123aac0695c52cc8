"""Signed burst neurons on Loihi 2 (linear, unrectified values: a Relay's
neurons, ir.BurstNeuron.signed): k is clamped to [-max_spikes, max_spikes].
The BurstIF Lava model against the integer simulator on random currents, the
lowering and the network file carrying the flag, and small networks whose
signed payloads flow through Conv, Dense, DelayDense, identity-relay and
residual-skip synapses, checked bit-exactly against Lava (docs/loihi2.md,
"Signed neurons")."""
from __future__ import annotations

import functools
from dataclasses import replace

import h5py
import numpy as np
import pytest

from adacal import int_ir, ir
from adacal.backends.loihi2.compat import ensure_lava, lava_fixed_pt_run_config
from adacal.backends.loihi2.lava_plan import plan_lava
from adacal.backends.loihi2.lower import lower_loihi2
from adacal.backends.loihi2.network_file import read_network, write_network
from adacal.backends.loihi2.verify import verify
from adacal.runtime_sim import loihi2_arith as arith
from adacal.runtime_sim.float_sim import simulate
from adacal.runtime_sim.int_sim import run_int_neuron, simulate_int
from irbuild import build, conv, dense, neuron
from test_loihi2_lower import check_formats


# ===========================================================================
# the neuron on its own
# ===========================================================================
def test_burst_step_signed_hand_values():
    v = np.array([0, 0, 5, -9, -30, 2])
    k = arith.burst_step(v, np.array([7, -1, -13, 0, 0, -2]), np.array([4, 4, 4, 4, 7, 1]), 3, signed=True)
    # floor(7/4)=1, floor(-1/4)=-1, floor(-8/4)=-2, floor(-9/4)=-3, floor(-30/7)=-5 -> -3, 0
    np.testing.assert_array_equal(k, [1, -1, -2, -3, -3, 0])
    np.testing.assert_array_equal(v, [3, 3, 0, 3, -9, 0])
    v = np.array([0, 0, 5, -9, -30, 2])
    np.testing.assert_array_equal(arith.burst_step(v, np.array([7, -1, -13, 0, 0, -2]),
                                                   np.array([4, 4, 4, 4, 7, 1]), 3), [1, 0, 0, 0, 0, 0])


def _lava_neuron(current: np.ndarray, op: int_ir.IntBurstNeuron, hold: int, period: int) -> np.ndarray:
    """Source (the current, (steps, n)) -> BurstIF -> sink; returns (steps, n)."""
    ensure_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from adacal.backends.loihi2.burst_if.process import BurstIF

    steps, n = current.shape
    src = Source(data=current.T.astype(np.int32))
    neu = BurstIF(shape=(n,), threshold=op.threshold, bias=op.bias, v_init=op.v_init, max_spikes=op.max_spikes,
                  hold=hold, period=period, signed=op.signed, memory=op.memory)
    sink = Sink(shape=(n,), buffer=steps)
    src.s_out.connect(neu.a_in)
    neu.s_out.connect(sink.a_in)
    try:
        src.run(condition=RunSteps(num_steps=steps), run_cfg=lava_fixed_pt_run_config())
        return np.rint(sink.data.get()).astype(np.int64).T
    finally:
        src.stop()


def test_signed_burst_if_equals_int_sim_on_random_currents():
    """Two samples back to back (period P, hold 1) of random positive and
    negative currents: Lava's BurstIF(signed=True) sends what run_int_neuron
    computes, reaching both caps; the unsigned neuron differs."""
    rng = np.random.default_rng(0)
    n, T, hold, samples = 12, 9, 1, 2
    P = T + hold
    th = rng.integers(3, 40, n)
    op = int_ir.IntBurstNeuron(th, rng.integers(-5, 6, n), rng.integers(-20, 20, n), 3, hold, signed=True)
    cur = rng.integers(-150, 150, (samples, T, n))
    cur[:, :, :3] = [-4000, 4000, 0]  # far beyond the caps
    stream = np.zeros((samples * P, n), np.int64)
    stream[:hold] = 777  # discarded during the hold
    for s in range(samples):
        stream[s * P + hold:(s + 1) * P] = cur[s]
        if s:
            stream[s * P:s * P + hold] = -999
    got = _lava_neuron(stream, op, hold, P)
    want, _ = run_int_neuron(op, cur.transpose(1, 0, 2).astype(np.float64), T)  # (T, samples, n)
    for s in range(samples):
        assert not got[s * P:s * P + hold].any()
        np.testing.assert_array_equal(got[s * P + hold:(s + 1) * P], want[:, s].astype(np.int64), err_msg=f"{s}")
    assert (want == -3).any() and (want == 3).any() and (want < 0).mean() > 0.2
    unsigned, _ = run_int_neuron(replace(op, signed=False), cur.transpose(1, 0, 2).astype(np.float64), T)
    assert unsigned.min() == 0 and not np.array_equal(unsigned, want)


# ===========================================================================
# lowering, network file
# ===========================================================================
def _conv(rng, cin, cout, k=3, pad=1):
    return conv(rng.normal(0, 1.6 / np.sqrt(cin * k * k), (cout, cin, k, k)), rng.normal(0, 0.1, cout), pad)


def _neuron(rng, c, signed=False, phi=3):
    return replace(neuron(rng.uniform(0.15, 0.4, c), phi, rng.normal(0, 0.05, c)), signed=signed)


def net_conv():
    """A signed (linear bottleneck) layer feeding a conv and, as the identity
    skip, a residual sum; the skip goes through Delay(1), i.e. Lava's relay
    chain; the output of the sum is a signed layer again, read by the Dense
    readout."""
    rng = np.random.default_rng(21)
    return build((2, 6, 6), ("c0", _conv(rng, 2, 4), ["x"]), ("n0", _neuron(rng, 4), ["c0"]),
                 ("c1", _conv(rng, 4, 3, k=1, pad=0), ["n0"]), ("lin", _neuron(rng, 3, signed=True), ["c1"]),
                 ("c2", _conv(rng, 3, 4), ["lin"]), ("n2", _neuron(rng, 4), ["c2"]),
                 ("c3", _conv(rng, 4, 3, k=1, pad=0), ["n2"]), ("add", ir.Add(), ["c3", "lin"]),
                 ("sum", _neuron(rng, 3, signed=True), ["add"]), ("fl", ir.Flatten(), ["sum"]),
                 ("fc", dense(rng.normal(0, 0.4, (3, 108)), np.zeros(3)), ["fl"]))


def net_dense():
    """Dense layers: a signed layer read by a Dense and, through Delay(1), by a
    diagonal DelayDense skip."""
    rng = np.random.default_rng(22)

    def d(nin, nout):
        return dense(rng.normal(0, 1.2 / np.sqrt(nin), (nout, nin)), rng.normal(0, 0.1, nout))
    return build((10,), ("d0", d(10, 8), ["x"]), ("lin", _neuron(rng, 8, signed=True), ["d0"]),
                 ("d1", d(8, 8), ["lin"]), ("n1", _neuron(rng, 8), ["d1"]), ("d2", d(8, 8), ["n1"]),
                 ("add", ir.Add(), ["d2", "lin"]), ("n2", _neuron(rng, 8), ["add"]), ("fc", d(8, 3), ["n2"]))


T = 6
NETS = {"conv": net_conv, "dense": net_dense}


@functools.lru_cache(maxsize=None)
def lowered(name: str):
    g = NETS[name]()
    x = (np.random.default_rng(4).random((3,) + g.input_shape) * 2 - 0.6).astype(np.float32)
    return g, lower_loihi2(g, x, T), x


def test_lowering_carries_the_flag():
    g, low, _ = lowered("conv")
    check_formats(low)
    check_formats(lowered("dense")[1])
    signed = {n.name for n in low.graph.nodes if isinstance(n.op, int_ir.IntBurstNeuron) and n.op.signed}
    assert signed == {"lin", "sum"}
    # thresholds and start potentials as for an unsigned neuron (θ·m, (θ/2 + v_init)·m)
    op, m = low.graph.node("lin").op, low.membrane_scale["lin"]
    np.testing.assert_array_equal(op.threshold, np.rint(g.node("lin").op.threshold * m))
    assert isinstance(low.graph.node("lin/skip->sum").op, int_ir.IntConv)
    assert plan_lava(low.graph).relays == {"lin": 1}  # the signed payload is delayed by a relay Conv
    _, low, _ = lowered("dense")
    plan = plan_lava(low.graph)
    assert any(p.kind == "dense" and p.delay == 1 and p.src == "lin" for p in plan.synapses["lin/skip->n2"].parts)


@pytest.mark.parametrize("name", sorted(NETS))
def test_signed_network_is_bit_exact_against_lava(name):
    _, low, x = lowered(name)
    res = verify(low, x)
    assert res["mismatched_samples"] == 0 and res["first_mismatch"] is None, res["first_mismatch"]
    ours, _ = simulate_int(low.graph, x, T, record_payloads=True)
    lin = ours.payloads["lin"]
    assert (lin < 0).any() and (lin > 0).any(), "the signed layer must carry both signs"
    assert (lin == -low.graph.node("lin").op.max_spikes).any()
    for layer, k in ours.payloads.items():
        assert k.any(), layer


def test_signed_integer_layer_follows_the_float_snn():
    """The integer signed layer's time-averaged value k·θ stays close to the
    float SNN's (the same signed neuron in float)."""
    g, low, _ = lowered("conv")
    x = (np.random.default_rng(5).random((64,) + g.input_shape) * 2 - 0.6).astype(np.float32)
    fs, _ = simulate(g, x, T, keep=("lin", "sum"))
    ires, _ = simulate_int(low.graph, x, T, record_payloads=True)
    for name in ("lin", "sum"):
        th = (low.graph.node(name).op.threshold / low.membrane_scale[name]).reshape(-1, 1, 1)
        a_int = ires.payloads[name].mean(axis=0) * th
        a_flt = fs.kept[name]
        assert (a_flt < 0).any()
        assert np.linalg.norm(a_int - a_flt) / np.linalg.norm(a_flt) < 0.15, name


def test_network_file_keeps_signed_and_reads_older_files(tmp_path):
    _, low, x = lowered("conv")
    path = tmp_path / "net.h5"
    write_network(low, path)
    back = read_network(path)
    assert {n.name for n in back.graph.nodes if isinstance(n.op, int_ir.IntBurstNeuron) and n.op.signed} == \
        {"lin", "sum"}
    with h5py.File(path, "r") as f:  # written only where set: unsigned layers look as before
        flags = {f["layer"][k]["name"][()].decode(): "signed" in f["layer"][k]["neuron"].attrs
                 for k in f["layer"] if "neuron" in f["layer"][k]}
    assert flags == {"n0": False, "lin": True, "n2": False, "sum": True}
    with h5py.File(path, "r+") as f:  # a file written before the flag existed
        for k in f["layer"]:
            if "neuron" in f["layer"][k]:
                f["layer"][k]["neuron"].attrs.pop("signed", None)
    old = read_network(path)
    assert not any(n.op.signed for n in old.graph.nodes if isinstance(n.op, int_ir.IntBurstNeuron))
    a, _ = simulate_int(back.graph, x, T)
    b, _ = simulate_int(old.graph, x, T)
    assert not np.array_equal(a.readout, b.readout)  # the flag matters
