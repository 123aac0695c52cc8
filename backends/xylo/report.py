"""What a Xylo network did: its Activity on data, the compile report's fields
(resources against the device's limits, per-layer figures, accuracy after
each input step, quantisation errors)."""
from __future__ import annotations

import numpy as np

from adacal.backends.xylo.devices import get_device
from adacal.runtime_sim import energy
from adacal.summary import Activity, accuracy_by_step, output_error
from adacal.target import ERROR_SAMPLES

ENERGY_CONVENTION = ("Xylo: synops = events x fan-out (a burst of k delivers k additions), hidden layers + "
                     "bias units + input events x their fan-out; energy = 0.9 pJ x synops (no MACs: "
                     "the input is encoded as events)")
QUANTISATION_METRIC = ("per neuron layer: ||a_xylo - a_float|| / ||a_float|| of the time-averaged outputs (a_xylo: "
                       "the layer's Xylo events x their value / T; a_float: the float SNN)")
_EXTRA = ("steps", "bursts_per_sample", "input_events_per_sample", "input_synops_per_sample",
          "bias_events_per_sample", "bias_synops_per_sample")


def activity(low, x, y, parts=None) -> tuple[Activity, dict]:
    """The Activity of the Xylo network on x (every sample runs all T input
    steps; the readout is the output Vmem after the last), and evaluate_xylo's
    full result (per_layer, predictions_by_step).  parts: evaluate_part's
    results on consecutive shards of x, made elsewhere."""
    from adacal.backends.xylo.evaluate import evaluate_merge, evaluate_xylo

    if parts:
        return activity_of(low, evaluate_merge(low, parts, y))
    return activity_of(low, evaluate_xylo(low, np.asarray(x, np.float32), y))


def activity_of(low, r: dict) -> tuple[Activity, dict]:
    """activity's answer from evaluate_xylo's result r."""
    T, n = low.timesteps, r["samples"]
    e = energy.E_AC_PJ * (r["synops_per_sample"] + r["input_synops_per_sample"])
    extra = {**{k: r[k] for k in _EXTRA}, "energy_convention": ENERGY_CONVENTION,
             "hidden_vmem_saturation": r["hidden_vmem_saturation"]}
    act = Activity(samples=n, timesteps=T, accuracy=r["accuracy"], avg_timesteps=float(T),
                   exit_histogram=(0,) * (T - 1) + (n,), spikes_per_sample=r["spikes_per_sample"],
                   events_per_sample=r["events_per_sample"], synops_per_sample=r["synops_per_sample"],
                   graded_synops_per_sample=None, energy_pj_per_sample=e, input_layer_macs_per_sample=0.0,
                   predictions=np.asarray(r["predictions"]), extra=extra)
    return act, r


def limits(device: str) -> dict:
    d = get_device(device)
    return {"inputs": d.n_inputs, "hidden_neurons": d.n_hidden, "outputs": d.n_outputs,
            "synapses_per_neuron": d.synapses_per_neuron, "max_fanout": d.max_fanout,
            "max_hidden_events_per_step": d.max_hidden_events}


def resources(low) -> dict:
    spec = low.spec
    return {"device": low.device, "inputs": spec.n_in, "hidden_neurons": spec.n_hidden,
            "bias_units": len(low.bias_neurons), "outputs": spec.n_out,
            "layers": [{"name": l.name, "neurons": l.size, "hidden_ids": [l.first, l.stop]} for l in low.layers],
            "weights_nonzero": int(np.count_nonzero(spec.weights_in) + np.count_nonzero(spec.weights_rec)
                                   + np.count_nonzero(spec.weights_out)),
            "limits": limits(low.device)}


def compile_report(conv, low, x, y, flt: dict, log=None, parts=None) -> dict:
    """The compile report's fields for validation data x (y): the Xylo
    network beside the float SNN (flt).  parts: the Xylo runs of
    consecutive shards of x, made elsewhere (adacal.distribute)."""
    from adacal.progress import progress_task

    x = np.asarray(x, np.float32)
    with progress_task(log, "evaluation", 1, "bit-accurate") as advance:
        bit, r = activity(low, x, y, parts)
        advance()
    out = {k: flt[k] for k in ("ann_accuracy", "ann_energy_pj_per_sample", "ann_macs_per_sample")}
    b = bit.as_json()
    out.update({"float_snn_accuracy": flt["snn_accuracy"], "snn_accuracy": bit.accuracy,
                **{k: b[k] for k in ("avg_timesteps", "steps", "spikes_per_sample", "events_per_sample",
                                     "bursts_per_sample", "synops_per_sample", "input_events_per_sample",
                                     "input_synops_per_sample", "bias_events_per_sample", "bias_synops_per_sample",
                                     "energy_pj_per_sample", "energy_convention", "hidden_vmem_saturation")},
                "float_snn_spikes_per_sample": flt.get("spikes_per_sample"), "per_layer": r["per_layer"],
                "output_error": output_error(r["scores"], conv.ann.run(x)),
                "float_snn_output_error": flt["output_error"]})
    n = len(x)
    out["samples"] = n
    out["float_snn_accuracy_by_timestep"] = flt["accuracy_by_timestep"]
    out["snn_accuracy_by_timestep"] = accuracy_by_step(r["predictions_by_step"], y) if n else None
    errors = layer_errors(conv, low, x)
    fl = {L["name"]: L for L in flt["per_layer"]}
    for L in out["per_layer"]:
        f = fl.get(L["name"], {})
        L.update({"max_spikes": f.get("max_spikes"), "threshold_ratio": f.get("threshold_ratio"),
                  "threshold_mean": f.get("threshold_mean"), "float_spikes_per_sample": f.get("spikes_per_sample"),
                  "energy_pj_per_sample": energy.E_AC_PJ * L["synops_per_sample"],
                  "float_int_relative_error": errors.get(L["name"])})
    out["quantisation_error"] = {"metric": QUANTISATION_METRIC, "samples": min(n, ERROR_SAMPLES),
                                 "layers": [{"name": k, "relative_error": v} for k, v in errors.items()]}
    return out


def layer_errors(conv, low, x) -> dict[str, float]:
    """Per layer ‖a_xylo − a_float‖ / ‖a_float‖ on up to ERROR_SAMPLES samples."""
    from adacal.runtime_sim.float_sim import simulate

    T, ne = low.timesteps, min(len(x), ERROR_SAMPLES)
    xres = low.run(x[:ne], record_isyn=False)
    fres, _ = simulate(conv.snn, x[:ne], T, keep=tuple(l.name for l in low.layers))
    errors = {}
    for l in low.layers:
        a_x = xres.spikes[:ne, :l.window, l.first:l.stop].astype(np.float64).sum(axis=1) * l.event_value / T
        a_f = np.asarray(fres.kept[l.name], np.float64).reshape(ne, -1)
        errors[l.name] = float(np.linalg.norm(a_x - a_f) / max(np.linalg.norm(a_f), 1e-12))
    return errors
