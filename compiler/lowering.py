"""From a calibrated float SNN to a target's integer network, and how far the
integer network is from the float one (what the compile commands report)."""
from __future__ import annotations

import numpy as np

from adacal import ir
from adacal.passes.fold_pooling import fold_pooling
from adacal.passes.lower_loihi2 import Loihi2Lowering, calibrate_int, lower_loihi2
from adacal.passes.to_spiking import neuron_names
from adacal.pipeline import Conversion
from adacal.runtime_sim import energy
from adacal.runtime_sim.float_sim import simulate
from adacal.runtime_sim.int_sim import simulate_int

ERROR_SAMPLES = 128


def lower_for_loihi2(conv: Conversion, x_cal: np.ndarray, calibrate: bool = True) -> Loihi2Lowering:
    """Fold pooling, lower to integers, then correct biases through the
    bit-accurate simulator (unless calibration is 'none')."""
    snn = fold_pooling(conv.snn)
    low = lower_loihi2(snn, x_cal, conv.options.timesteps)
    if calibrate and conv.options.calibration != "none":
        acts = conv.ann.activations(x_cal, neuron_names(snn))
        low = calibrate_int(low, acts, x_cal)
    return low


def layer_errors(float_snn: ir.Graph, low: Loihi2Lowering, x: np.ndarray) -> dict[str, float]:
    """Per neuron layer: ‖a_int − a_float‖ / ‖a_float‖ of the time-averaged
    outputs (a_int = mean k · θ) on up to ERROR_SAMPLES samples."""
    x = x[:ERROR_SAMPLES]
    T = low.timesteps
    names = neuron_names(float_snn)
    fres, _ = simulate(fold_pooling(float_snn), x, T, keep=names)
    ires, _ = simulate_int(low.graph, x, T, record_payloads=True)
    out = {}
    for name in names:
        m = low.membrane_scale[name]
        op = low.graph.node(name).op
        theta = (op.threshold / m).reshape((-1,) + (1,) * (ires.payloads[name].ndim - 3))
        a_int = ires.payloads[name].mean(axis=0) * theta
        a_flt = fres.kept[name]
        out[name] = float(np.linalg.norm(a_int - a_flt) / max(np.linalg.norm(a_flt), 1e-12))
    return out


def run_loihi2(conv: Conversion, low: Loihi2Lowering, x: np.ndarray):
    """The integer network on x (an int_sim result), synops counted with the
    fan-out of the pooling-folded float SNN."""
    res, _ = simulate_int(low.graph, x, low.timesteps, fanout=energy.fanout_maps(fold_pooling(conv.snn)))
    return res


def evaluate_loihi2(conv: Conversion, low: Loihi2Lowering, x: np.ndarray, y=None, res=None) -> dict:
    """Accuracy, spikes, synops and energy of the integer network on x
    (res: the run_loihi2 result on x when the caller already has it)."""
    T = low.timesteps
    res = run_loihi2(conv, low, x) if res is None else res
    pred = low.logits(res.readout).reshape(len(x), -1).argmax(axis=1)
    n = len(x)
    spikes = {k: float(v.sum() / n) for k, v in res.spikes.items()}
    synops = {k: float(v.sum() / n) for k, v in res.synops.items()}
    gsyn = {k: float(v.sum() / n) for k, v in res.event_synops.items()}
    e_snn = energy.E_MAC_PJ * energy.input_macs(conv.snn) * T + energy.E_AC_PJ * sum(synops.values())
    return {
        "samples": n,
        "accuracy": None if y is None else float((pred == y).mean()),
        "agreement_with_ann": float((pred == conv.ann.run(x).reshape(n, -1).argmax(axis=1)).mean()),
        "avg_timesteps": float(T),
        "spikes_per_sample": sum(spikes.values()),
        "events_per_sample": float(sum(v.sum() for v in res.events.values()) / n),
        "synops_per_sample": sum(synops.values()),
        "graded_synops_per_sample": sum(gsyn.values()),
        "energy_pj_per_sample": e_snn,
        "per_layer_spikes": spikes,
    }
