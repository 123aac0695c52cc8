"""Install guard for the Xylo toolchain: Rockpool's XyloSim (xylosim 0.1.3)
without samna, checked bit-for-bit against a hand-written numpy model.

The reference below follows the xylosim v2 C++ source
(xylosim-0.1.3/src/v2/cpp/XyloLayer.cpp `XyloLayer::evolve`,
`deliver_spikes`, `evolve_neurons`; XyloIAFNeuron.cpp `decay`,
`XyloIAFNeuron::evolve`; XyloIAFNeuron.h `safe_add`) and Rockpool's wrapper
(rockpool/devices/xylo/syns61201/xylo_sim.py `from_specification`/`evolve`):

per step t
 1. input counts (clamped to 15) -> isyn, one event at a time, each adding
    int16(w << weight_shift_in) with saturation (pre ascending, syn-0 targets
    then syn-1 targets);
 2. hidden counts of step t-1 (clamped to 31) -> hidden isyn via W_rec, then
    -> output isyn via W_out (W_out row k belongs to hidden neuron
    N - OEN + k);
 3. hidden neurons in ascending id: isyn_s -= decay(isyn_s, dash_syn_s);
    dv = int16(-decay(v, dash_mem)); dv = sat16(dv + sum_s isyn_s);
    if has_bias: dv = sat16(dv + bias); v = sat16(v + dv);
    k = alias spikes already in the buffer; while v >= th and k < 31:
    k += 1, v -= th; then alias targets get += k (capped at 31);
 4. output neurons: same, one synapse, at most one event.
 has_bias = any(bias != 0) or any(bias_out != 0) (shared flag).
"""
from __future__ import annotations

import numpy as np
import pytest

from adacal.backends.xylo.compat import (
    PLACEHOLDER_MODULES,
    ensure_rockpool_xylo,
    samna_available,
    xylosim_class,
)

DEVICES = ["xylo-audio2", "xylo-audio3", "xylo-imu"]
# Synapses per hidden neuron on the hardware (docs/xylo.md): IMU has one.
N_SYN = {"xylo-audio2": 2, "xylo-audio3": 2, "xylo-imu": 1}

I16_MIN, I16_MAX = -(2 ** 15), 2 ** 15 - 1


# --------------------------------------------------------------------------
# numpy reference of one xylosim v2 run
# --------------------------------------------------------------------------
def _sat16(x: int) -> int:
    # safe_add(): clamp to the 16-bit range instead of wrapping.
    return min(max(int(x), I16_MIN), I16_MAX)


def _wrap16(x: int) -> int:
    return ((int(x) - I16_MIN) % 2 ** 16) + I16_MIN


def _decay(x: int, dash: int) -> int:
    # decay(): arithmetic shift, but at least one LSB towards zero.
    dv = int(x) >> int(dash)
    if dv == 0:
        dv = (x > 0) - (x < 0)
    return dv


def _neuron_step(isyn, v, dash_syn, dash_mem, bias, has_bias, th, k0, kmax,
                 _sat16=_sat16):
    for s in range(len(isyn)):
        isyn[s] = isyn[s] - _decay(isyn[s], dash_syn[s])
    dv = _wrap16(-_decay(v, dash_mem))
    dv = _sat16(dv + sum(isyn))
    if has_bias:
        dv = _sat16(dv + bias)
    v = _sat16(v + dv)
    k = k0
    while v >= th and k < kmax:
        k += 1
        v -= th
    return v, k


def xylo_reference(spec: dict, raster: np.ndarray, *, saturate: bool = True) -> dict:
    """Run the reference; ``saturate=False`` replaces every saturating add by
    a plain one (only used to show that a test really reaches saturation)."""
    sat = _sat16 if saturate else (lambda x: int(x))
    w_in = np.asarray(spec["weights_in"]).astype(int)
    w_rec = np.asarray(spec["weights_rec"]).astype(int)
    w_out = np.asarray(spec["weights_out"]).astype(int)
    if w_in.ndim == 2:
        w_in = w_in[:, :, None]
    if w_rec.ndim == 2:
        w_rec = w_rec[:, :, None]
    n_in, _, n_syn_in = w_in.shape
    n_hid = w_rec.shape[0]
    oen, n_out = w_out.shape
    out_base = n_hid - oen
    dash_syn = np.stack([spec["dash_syn"], spec["dash_syn_2"]], axis=1)
    has_bias = bool(np.any(spec["bias"] != 0) or np.any(spec["bias_out"] != 0))
    aliases = spec["aliases"] or [[] for _ in range(n_hid)]

    isyn = np.zeros((n_hid, 2), dtype=np.int64)  # the sim always has 2 per hidden
    v = np.zeros(n_hid, dtype=np.int64)
    isyn_out = np.zeros(n_out, dtype=np.int64)
    v_out = np.zeros(n_out, dtype=np.int64)
    prev = np.zeros(n_hid, dtype=np.int64)

    def deliver(counts, weights, shift, cap, target):
        for pre, c in enumerate(counts):
            c = min(int(c), cap)
            if c <= 0:
                continue
            for s in range(weights.shape[2]):
                for post in np.flatnonzero(weights[pre, :, s]):
                    w = _wrap16(int(weights[pre, post, s]) << shift)
                    for _ in range(c):
                        target[post, s] = sat(target[post, s] + w)

    T = raster.shape[0]
    rec = {k: [] for k in ("spk", "v", "isyn", "isyn2", "v_out", "isyn_out", "out")}
    for t in range(T):
        deliver(raster[t], w_in, spec["weight_shift_in"], 15, isyn)
        deliver(prev, w_rec, spec["weight_shift_rec"], 31, isyn)
        tmp = isyn_out[:, None].copy()
        padded = np.zeros((n_hid, n_out, 1), dtype=int)
        padded[out_base:, :, 0] = w_out
        deliver(prev, padded, spec["weight_shift_out"], 31, tmp)
        isyn_out[:] = tmp[:, 0]

        spk = np.zeros(n_hid, dtype=np.int64)
        for n in range(n_hid):
            syn = [int(isyn[n, 0]), int(isyn[n, 1])]
            v[n], spk[n] = _neuron_step(
                syn, int(v[n]), dash_syn[n], int(spec["dash_mem"][n]),
                int(spec["bias"][n]), has_bias, int(spec["threshold"][n]),
                int(spk[n]), 31, sat,
            )
            isyn[n] = syn
            for a in aliases[n]:
                spk[a] = min(spk[a] + spk[n], 31)
        out = np.zeros(n_out, dtype=np.int64)
        for o in range(n_out):
            syn = [int(isyn_out[o])]
            v_out[o], out[o] = _neuron_step(
                syn, int(v_out[o]), [int(spec["dash_syn_out"][o])],
                int(spec["dash_mem_out"][o]), int(spec["bias_out"][o]),
                has_bias, int(spec["threshold_out"][o]), 0, 1, sat,
            )
            isyn_out[o] = syn[0]
        prev = spk
        rec["spk"].append(spk.copy())
        rec["v"].append(v.copy())
        rec["isyn"].append(isyn[:, 0].copy())
        rec["isyn2"].append(isyn[:, 1].copy())
        rec["v_out"].append(v_out.copy())
        rec["isyn_out"].append(isyn_out.copy())
        rec["out"].append(out)
    return {k: np.array(x) for k, x in rec.items()}


# --------------------------------------------------------------------------
# a small two-hidden-layer network packed into one hidden population
# --------------------------------------------------------------------------
def make_spec(device: str, output_mode: str, *, big: bool = False) -> dict:
    rng = np.random.default_rng(7)
    n_in, n_h1, n_h2, n_out = 4, 5, 4, 3
    n_hid = n_h1 + n_h2
    n_syn = N_SYN[device]
    # input -> first hidden layer (ids 0..4), both synapses where available
    w_in = np.zeros((n_in, n_hid, n_syn), dtype=np.int8)
    w_in[:, :n_h1, 0] = rng.integers(-6, 20, size=(n_in, n_h1))
    if n_syn == 2:
        w_in[:, :n_h1, 1] = rng.integers(-4, 12, size=(n_in, n_h1))
    # layer 1 -> layer 2: an off-diagonal block of weights_rec
    w_rec = np.zeros((n_hid, n_hid, n_syn), dtype=np.int8)
    w_rec[:n_h1, n_h1:, 0] = rng.integers(-5, 15, size=(n_h1, n_h2))
    if n_syn == 2:
        w_rec[:n_h1, n_h1:, 1] = rng.integers(-3, 9, size=(n_h1, n_h2))
    # last hidden layer -> outputs: weights_out covers only the last n_h2
    # hidden neurons (Rockpool pads the first N - OEN rows with nothing)
    w_out = rng.integers(-8, 16, size=(n_h2, n_out)).astype(np.int8)
    if big:
        # drive isyn into saturation: 127 << 8 = 32512 per event
        w_in[0, 0, 0] = 127
        w_in[1, 1, 0] = -128
    aliases = [[] for _ in range(n_hid)]
    aliases[2] = [7]  # to a later neuron: counted in the same step
    aliases[6] = [1]  # to an earlier neuron: lands in its outgoing buffer
    return dict(
        weights_in=w_in,
        weights_out=w_out,
        weights_rec=w_rec,
        dash_mem=np.array([4, 2, 15, 3, 1, 5, 0, 2, 6]),
        dash_mem_out=np.array([3, 15, 1]),
        dash_syn=np.array([1, 2, 3, 1, 4, 2, 1, 3, 0]),
        dash_syn_2=np.array([2, 1, 0, 3, 1, 2, 4, 1, 2]),
        dash_syn_out=np.array([2, 1, 3]),
        threshold=np.array([40, 25, 60, 33, 50, 45, 30, 70, 28]),
        threshold_out=np.array([90, 120, 75]),
        bias=np.array([0, 3, -2, 0, 1, 0, -1, 2, 0]),
        bias_out=np.array([1, 0, -3]),
        weight_shift_in=8 if big else 2,
        weight_shift_rec=1,
        weight_shift_out=2,
        aliases=aliases,
        dt=1e-3,
        output_mode=output_mode,
    )


def make_input(T: int = 24) -> np.ndarray:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 7, size=(T, 4))
    x[2, 0] = 15
    x[3, 1] = 19  # > 15: clamped to 15 by the simulator
    x[T - 6:] = 0  # let the network drain
    return x


def _build(device: str, spec: dict):
    cls = xylosim_class(device)
    # every from_specification argument passed explicitly
    return cls.from_specification(
        weights_in=spec["weights_in"],
        weights_out=spec["weights_out"],
        weights_rec=spec["weights_rec"],
        dash_mem=spec["dash_mem"],
        dash_mem_out=spec["dash_mem_out"],
        dash_syn=spec["dash_syn"],
        dash_syn_2=spec["dash_syn_2"],
        dash_syn_out=spec["dash_syn_out"],
        threshold=spec["threshold"],
        threshold_out=spec["threshold_out"],
        bias=spec["bias"],
        bias_out=spec["bias_out"],
        weight_shift_in=spec["weight_shift_in"],
        weight_shift_rec=spec["weight_shift_rec"],
        weight_shift_out=spec["weight_shift_out"],
        aliases=spec["aliases"],
        dt=spec["dt"],
        output_mode=spec["output_mode"],
    )


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------
def test_imports_without_samna():
    used = ensure_rockpool_xylo()
    assert used == (not samna_available())
    assert ensure_rockpool_xylo() == used  # idempotent
    import sys

    from rockpool.devices.xylo.syns61201 import XyloSim as A2
    from rockpool.devices.xylo.syns63300 import XyloSim as IMU
    from rockpool.devices.xylo.syns65302 import XyloSim as A3

    assert xylosim_class("xylo-audio2") is A2
    assert xylosim_class("xylo-imu") is IMU
    # Rockpool re-exports the IMU simulator for Xylo Audio 3
    assert xylosim_class("xylo-audio3") is A3 is IMU
    if used:
        for name in PLACEHOLDER_MODULES:
            assert getattr(sys.modules[name], "__adacal_samna_placeholder__", False)
        assert "samna" not in sys.modules
    with pytest.raises(ValueError):
        xylosim_class("xylo-v1")


@pytest.mark.parametrize("device", DEVICES)
def test_xylosim_matches_reference(device):
    x = make_input()
    spec = make_spec(device, "Vmem")
    ref = xylo_reference(spec, x)
    # the run must exercise bursts, multi-layer delivery and outputs
    assert ref["spk"].max() > 1
    assert ref["spk"][:, 5:].sum() > 0
    assert ref["out"].sum() > 0

    mod = _build(device, spec)
    vmem_out, _, rec = mod.evolve(x, record=True)
    np.testing.assert_array_equal(np.asarray(rec["Spikes"]), ref["spk"])
    np.testing.assert_array_equal(np.asarray(vmem_out), ref["v_out"])
    np.testing.assert_array_equal(np.asarray(rec["Vmem"]), ref["v"])
    np.testing.assert_array_equal(np.asarray(rec["Isyn"]), ref["isyn"])
    np.testing.assert_array_equal(np.asarray(rec["Vmem_out"]), ref["v_out"])
    np.testing.assert_array_equal(np.asarray(rec["Isyn_out"]), ref["isyn_out"])
    if "Isyn2" in rec:
        np.testing.assert_array_equal(np.asarray(rec["Isyn2"]), ref["isyn2"])

    # evolve() keeps state across calls; reset_state() restarts from zero
    mod.reset_state()
    again, _, _ = mod.evolve(x, record=False)
    np.testing.assert_array_equal(np.asarray(again), ref["v_out"])

    # "Spike" mode returns output events (at most 1 per neuron per step)
    spike_mod = _build(device, make_spec(device, "Spike"))
    out, _, _ = spike_mod.evolve(x, record=False)
    np.testing.assert_array_equal(np.asarray(out), ref["out"])
    assert np.asarray(out).max() <= 1


@pytest.mark.parametrize("device", ["xylo-audio2", "xylo-imu"])
def test_xylosim_saturation(device):
    x = make_input()
    spec = make_spec(device, "Isyn", big=True)
    ref = xylo_reference(spec, x)
    # the input really saturates isyn: without clamping the result differs
    unsat = xylo_reference(spec, x, saturate=False)
    assert not np.array_equal(unsat["isyn"], ref["isyn"])
    mod = _build(device, spec)
    isyn_out, _, rec = mod.evolve(x, record=True)
    np.testing.assert_array_equal(np.asarray(rec["Isyn"]), ref["isyn"])
    np.testing.assert_array_equal(np.asarray(rec["Vmem"]), ref["v"])
    np.testing.assert_array_equal(np.asarray(rec["Spikes"]), ref["spk"])
    np.testing.assert_array_equal(np.asarray(isyn_out), ref["isyn_out"])
