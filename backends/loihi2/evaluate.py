"""How the Loihi 2 integer network does: its run on data, the compile
report's bit-accurate figures, and how far each layer is from the float SNN."""
from __future__ import annotations

import numpy as np

from adacal import ir
from adacal.backends.loihi2.lower import Loihi2Lowering, calibrate_int, lower_loihi2
from adacal.passes.fold_pooling import fold_pooling
from adacal.passes.to_spiking import neuron_names
from adacal.runtime_sim import energy
from adacal.runtime_sim.float_sim import simulate
from adacal.runtime_sim.int_sim import simulate_int
from adacal.summary import Activity, accuracy_by_step, measure, output_error
from adacal.target import ERROR_SAMPLES

QUANTISATION_METRIC = ("per neuron layer: ||a_int - a_float|| / ||a_float|| of the time-averaged outputs "
                       "(a_int: the integer network's spikes x threshold value; a_float: the float SNN)")


def lower_calibrated(conv, x_cal: np.ndarray, calibrate: bool = True) -> Loihi2Lowering:
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


def run(low: Loihi2Lowering, x: np.ndarray, fanout_graph: ir.Graph | None = None):
    """The integer network on x (an int_sim result), synops counted with the
    fan-out of fanout_graph (default: the integer graph itself)."""
    fan = energy.fanout_maps(low.graph if fanout_graph is None else fanout_graph)
    res, _ = simulate_int(low.graph, x, low.timesteps, fanout=fan)
    return res


def activity(low: Loihi2Lowering, res, y, policy, input_macs: float) -> Activity:
    """The Activity of integer run res, each sample stopping at its exit step
    under the exit policy (None: all T steps)."""
    from adacal.passes import adaptive_timesteps

    T = low.timesteps
    per_step = low.step_logits(res.readout)
    n = per_step.shape[1]
    if policy is not None:
        steps, pred = adaptive_timesteps.decide(per_step, policy)
    else:
        steps, pred = np.full(n, T), per_step.sum(axis=0).argmax(axis=1)
    return measure(res, pred, y, steps, T, input_macs)


def readout(low: Loihi2Lowering, res) -> np.ndarray:
    """The integer network's output in the ANN's units, (N, K): the readout
    currents of all T steps mapped back with the lowering's scale and bias
    as Loihi2Lowering.logits does (a conv readout's bias is per channel);
    docs/method.md, "Output error"."""
    mean = res.readout.astype(np.float64).mean(axis=0)  # (N, *out)
    b = np.asarray(low.readout_bias, np.float64)
    per = mean.shape[1:]
    b = b.reshape(per) if b.size == int(np.prod(per)) else b.reshape((-1,) + (1,) * (len(per) - 1))
    return ((mean + b) / low.readout_scale).reshape(len(mean), -1)


def compile_report(conv, low: Loihi2Lowering, x, y, flt: dict, log=None, res=None) -> dict:
    """The compile report's fields for validation data x (y): the bit-accurate
    network's accuracy and activity beside the float SNN's (flt), per layer,
    accuracy after each step, quantisation errors and the exit policy run on
    the bit-accurate network.  res: the integer run on x when it was made
    elsewhere (run(low, x, fold_pooling(conv.snn)) on shards, joined)."""
    from adacal.progress import progress_task

    with progress_task(log, "evaluation", 2, "bit-accurate, layer errors") as advance:
        if res is None:
            res = run(low, x, fold_pooling(conv.snn))
        input_macs = energy.input_macs(conv.snn)
        bit = activity(low, res, y, None, input_macs)
        advance()
        errors = layer_errors(conv.snn, low, x)
        advance()
    out = {k: flt[k] for k in ("ann_accuracy", "ann_energy_pj_per_sample", "ann_macs_per_sample")}
    out.update({"float_snn_accuracy": flt["snn_accuracy"], "snn_accuracy": bit.accuracy,
                **{k: getattr(bit, k) for k in ("avg_timesteps", "spikes_per_sample", "events_per_sample",
                                                "synops_per_sample", "graded_synops_per_sample",
                                                "energy_pj_per_sample")},
                "energy_convention": flt["energy_convention"],
                "output_error": output_error(readout(low, res), conv.ann.run(x)),
                "float_snn_output_error": flt["output_error"],
                "per_layer": _per_layer(flt, bit, errors)})
    n = len(x)
    out["samples"] = n
    out["float_snn_accuracy_by_timestep"] = flt["accuracy_by_timestep"]
    out["snn_accuracy_by_timestep"] = accuracy_by_step(low.step_logits(res.readout).cumsum(axis=0).argmax(axis=2), y)
    out["quantisation_error"] = {
        "metric": QUANTISATION_METRIC, "samples": min(n, ERROR_SAMPLES),
        "layers": [{"name": L["name"], "relative_error": L["float_int_relative_error"]} for L in out["per_layer"]]}
    if conv.exit_policy is not None:
        m = activity(low, res, y, conv.exit_policy, input_macs)
        out["adaptive_exit"] = {**conv.exit_policy.as_dict(), "network": "bit-accurate",
                                "accuracy": m.accuracy, "avg_timesteps": m.avg_timesteps,
                                "exit_histogram": list(m.exit_histogram), "energy_pj_per_sample": m.energy_pj_per_sample}
    return out


def _per_layer(flt: dict, bit: Activity, errors: dict) -> list[dict]:
    rows = []
    for L in flt["per_layer"]:
        b = bit.layers.get(L["name"])
        row = {**L, "bit_accurate_spikes_per_sample": None if b is None else b.spikes,
               "float_int_relative_error": errors.get(L["name"])}
        if b is not None:
            row.update({"bit_accurate_events_per_sample": b.events, "bit_accurate_synops_per_sample": b.synops,
                        "bit_accurate_energy_pj_per_sample": energy.E_AC_PJ * b.synops})
        rows.append(row)
    return rows
