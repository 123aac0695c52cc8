"""Compiled artifacts: compile a model for a target into a directory, load it
back, simulate it bit-accurately, and verify it against the vendor's model.

    art = adacal.compile("model.onnx", target="loihi2", calib=x_cal, out_dir="build/")
    art = compile_model("model.onnx", "xylo", x_cal, "build/", device="xylo-audio3")
    art = adacal.load_artifact("build/")
    art.simulate(x), art.verify(x)
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from adacal.errors import AdacalError
from adacal.output import MANIFEST, write_output_dir
from adacal.progress import noop_advance, progress_task

TARGETS = ("loihi2", "xylo")


@dataclass
class Artifact:
    path: Path
    manifest: dict
    lowering: object  # target-specific integer network

    @property
    def target(self) -> str:
        return self.manifest["target"]

    def simulate(self, x: np.ndarray, y=None, adaptive: bool = False, log=None) -> dict:
        """log: optional message callable or adacal.progress.Reporter."""
        if adaptive and self.target == "xylo":
            raise AdacalError(f"{self.path}: adaptive timesteps are not supported for Xylo artifacts")
        if adaptive and not self.manifest.get("exit_policy"):
            raise AdacalError(f"{self.path}: compiled without --adaptive-timesteps; no exit policy stored")
        if log:
            log(f"simulating {len(x)} samples bit-accurately ({self.target}) ...")
        with progress_task(log, "bit-accurate simulation", None, f"{len(x)} samples"):
            return self._simulate(x, y, adaptive)

    def _simulate(self, x: np.ndarray, y, adaptive: bool) -> dict:
        if self.target == "xylo":
            return _simulate_xylo(self, x, y, adaptive)
        from adacal.passes import adaptive_timesteps
        from adacal.runtime_sim.int_sim import simulate_int

        t0 = time.perf_counter()
        low = self.lowering
        res, _ = simulate_int(low.graph, x, low.timesteps, fanout=_int_fanout(low.graph))
        policy = None
        if adaptive:
            pol = self.manifest["exit_policy"]
            policy = adaptive_timesteps.ExitPolicy(pol["metric"], pol["level"], tuple(pol["thresholds"]))
        out = _int_metrics(low, res, y, policy, self.manifest["input_layer_macs"])
        return {**out, "seconds": time.perf_counter() - t0}

    def verify(self, x: np.ndarray, samples: int | None = None, log=None) -> dict:
        """log: optional message callable or adacal.progress.Reporter (a
        progress bar over the reference's samples)."""
        if self.target == "xylo":
            return _verify_xylo(self, x[:samples] if samples else x, log)
        from adacal.backends.loihi2.lava_net import run_lava
        from adacal.runtime_sim.int_sim import simulate_int

        x = x[:samples] if samples else x
        low = self.lowering
        if log:
            log(f"verify: adacal's bit-accurate simulator on {len(x)} samples ...")
        t0 = time.perf_counter()
        ours, _ = simulate_int(low.graph, x, low.timesteps, record_payloads=True)
        t1 = time.perf_counter()
        if log:
            log(f"verify: Lava (Loihi2SimCfg fixed_pt) on {len(x)} samples ...")
        with progress_task(log, "Lava run", len(x), "samples") as advance:
            ref = run_lava(low.graph, x, low.timesteps, progress=None if advance is noop_advance else advance)
        t2 = time.perf_counter()
        first, bad = _compare(ours.payloads, ours.readout, ref["payloads"], ref["readout"], low.graph)
        return {"samples": len(x), "reference": "lava-fixed_pt", "mismatched_samples": int(bad.sum()),
                "first_mismatch": first, "layers_compared": len(ours.payloads) + 1,
                "adacal_seconds": t1 - t0, "reference_seconds": t2 - t1}


def _int_metrics(low, res, y, policy, input_macs: int) -> dict:
    """Accuracy, exit steps, spikes / events / synops and energy per sample of
    an integer run `res` (int_sim), each sample stopping at its exit step
    under `policy` (None: all T steps)."""
    from adacal.passes import adaptive_timesteps
    from adacal.runtime_sim import energy

    T = low.timesteps
    per_step = low.step_logits(res.readout)
    n = per_step.shape[1]
    if policy is not None:
        steps, pred = adaptive_timesteps.decide(per_step, policy)
    else:
        steps, pred = np.full(n, T), per_step.sum(axis=0).argmax(axis=1)
    used = np.arange(1, T + 1)[:, None] <= steps[None, :]
    tot = (lambda d: float(sum((v * used).sum() for v in d.values()) / n))
    synops = tot(res.synops)
    e = energy.E_MAC_PJ * input_macs * float(steps.mean()) + energy.E_AC_PJ * synops
    return {"samples": n, "accuracy": None if y is None else float((pred == np.asarray(y)).mean()),
            "avg_timesteps": float(steps.mean()),
            "exit_histogram": np.bincount(steps, minlength=T + 1)[1:].tolist(),
            "spikes_per_sample": tot(res.spikes), "events_per_sample": tot(res.events),
            "synops_per_sample": synops, "graded_synops_per_sample": tot(res.event_synops),
            "energy_pj_per_sample": e, "predictions": pred.tolist()}


def _int_fanout(g) -> dict:
    from adacal.runtime_sim.energy import fanout_maps
    return fanout_maps(g)


def _compare(pay_a, out_a, pay_b, out_b, g) -> tuple[dict | None, np.ndarray]:
    """First mismatch (layer, step, sample, neuron, both values) and a per-sample flag."""
    n = out_a.shape[1]
    bad = np.zeros(n, bool)
    first = None
    order = [nd.name for nd in g.nodes if nd.name in pay_a] + [g.output]
    for name in order:
        a = pay_a[name] if name in pay_a else out_a
        b = np.asarray(pay_b[name] if name in pay_a else out_b)
        if a.shape != b.shape:
            raise AdacalError(f"verify: layer '{name}' has shape {a.shape} here and {b.shape} in the reference")
        diff = a != b
        bad |= diff.reshape(diff.shape[0], n, -1).any(axis=(0, 2))
        if first is None and diff.any():
            t, s, *idx = np.argwhere(diff)[0]
            first = {"layer": name, "step": int(t) + 1, "sample": int(s), "neuron": [int(i) for i in idx],
                     "adacal": int(a[(t, s, *idx)]), "reference": int(b[(t, s, *idx)])}
    return first, bad


def compile_model(model, target: str, calib, out_dir, val=None, options=None, force: bool = False,
                  log=None, device: str | None = None, model_path=None,
                  emit_nir: bool = False) -> tuple[Artifact, dict]:
    """Convert, lower for `target`, evaluate and write the artifact directory
    (with emit_nir also network.nir: the float burst SNN as a NIR graph)."""
    from adacal.frontends.onnx import load_onnx
    from adacal.ir import Graph
    from adacal.passes import cleanup
    from adacal.pipeline import ConvertOptions, conversion_fields, convert_graph, manifest, split_calibration

    if target not in TARGETS:
        raise AdacalError(f"unknown target '{target}' (available: {', '.join(TARGETS)})")
    t0 = time.perf_counter()
    opts = options or ConvertOptions()
    ann = cleanup(model if isinstance(model, Graph) else load_onnx(model))
    xc, yc, x_check = split_calibration(calib, opts)
    if target == "xylo":
        from adacal.backends.xylo.devices import get_device
        if device is None:
            raise AdacalError("target 'xylo' needs a device (xylo-audio2, xylo-audio3 or xylo-imu)")
        try:
            device = get_device(device).name
        except (KeyError, ValueError) as e:
            raise AdacalError(str(e).strip("'\"")) from None
        if opts.adaptive_timesteps:
            raise AdacalError("--adaptive-timesteps is not supported for Xylo (the readout is the output "
                              "Vmem after the last step)")
        if opts.search_cost != "spikes":
            raise AdacalError("search cost 'events' prices a burst as one graded message (Loihi 2); Xylo "
                              "delivers a burst of k as k spikes, so its searches price spikes")
    conv = convert_graph(ann, xc, yc, opts, log, x_check)
    nir_file = None
    if emit_nir:  # built before lowering: an export problem surfaces early
        from adacal.backends.nir.export import nir_writer
        nir_file = nir_writer(conv)
    if target == "xylo":
        art, summary, files, extra = _lower_xylo(conv, xc, val, device, opts.seed, log)
    else:
        (art, summary, files), extra = _lower_loihi2(conv, xc, val, log), {}
    if nir_file is not None:
        files = {**files, "network.nir": nir_file}
    man = manifest(conv, model_path or (model if not isinstance(model, Graph) else None), target)
    man["input_layer_macs"] = _input_macs(conv)
    man.update(extra)
    man["files"] = sorted(files) + [MANIFEST, "report.json", "report.html"]
    summary["options"] = asdict(opts)
    summary["timings"] = {**conv.timings, **summary.get("timings", {})}
    summary["seconds"] = time.perf_counter() - t0
    summary.update(conversion_fields(conv))
    files = {**files, MANIFEST: man, "report.json": summary, "report.html": _report_html(summary, man)}
    path = write_output_dir(out_dir, files, force=force)
    art.path, art.manifest = path, man
    return art, summary


def _input_macs(conv) -> int:
    from adacal.runtime_sim import energy
    return energy.input_macs(conv.snn)


def _lower_loihi2(conv, xc, val, log):
    from adacal.backends.loihi2.network_file import write_network
    from adacal.backends.loihi2.resources import estimate
    from adacal.lowering import evaluate_loihi2, layer_errors, lower_for_loihi2, run_loihi2
    from adacal.pipeline import evaluate

    t = time.perf_counter()
    if log:
        log("lowering to Loihi 2 integers ...")
    low = lower_for_loihi2(conv, xc)
    timings = {"lowering": time.perf_counter() - t}
    resources = estimate(low.graph)
    summary = {"target": "loihi2", "resources": resources, "timings": timings}
    if val is not None:
        xv, yv = val if isinstance(val, tuple) else (val, None)
        if log:
            log("evaluating float and bit-accurate networks ...")
        with progress_task(log, "evaluation", 3, "float SNN, bit-accurate, layer errors") as advance:
            flt = evaluate(conv, xv, yv, adaptive=False)
            advance()
            res = run_loihi2(conv, low, xv)
            bit = evaluate_loihi2(conv, low, xv, yv, res)
            advance()
            errors = layer_errors(conv.snn, low, xv)
            advance()
        summary.update({k: flt[k] for k in ("ann_accuracy", "ann_energy_pj_per_sample", "ann_macs_per_sample")})
        summary.update({
            "float_snn_accuracy": flt["snn_accuracy"], "snn_accuracy": bit["accuracy"],
            "avg_timesteps": bit["avg_timesteps"], "spikes_per_sample": bit["spikes_per_sample"],
            "events_per_sample": bit["events_per_sample"], "synops_per_sample": bit["synops_per_sample"],
            "graded_synops_per_sample": bit["graded_synops_per_sample"],
            "energy_pj_per_sample": bit["energy_pj_per_sample"],
            "energy_convention": flt["energy_convention"],
            "per_layer": [{**L, "bit_accurate_spikes_per_sample": bit["per_layer_spikes"].get(L["name"]),
                           "float_int_relative_error": errors.get(L["name"])} for L in flt["per_layer"]],
        })
        _add_loihi2_report_fields(summary, conv, low, res, yv, flt)
    art = Artifact(Path("."), {}, low)
    return art, summary, {"network.h5": lambda p: write_network(low, p)}


# ----------------------------------------------------------------------
# Xylo
# ----------------------------------------------------------------------
XYLO_SPEC_NPZ, XYLO_SPEC_JSON = "xylo_spec.npz", "xylo_spec.json"
#: fixed zip member timestamp: np.savez stamps members with the current time
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_XYLO_SCALARS = {"weight_shift_in": "int64", "weight_shift_rec": "int64", "weight_shift_out": "int64",
                 "dt": "float64", "output_mode": "str"}


def xylo_spec_fields(spec) -> dict:
    """The keyword arguments of ``XyloSim.from_specification`` as numpy values
    with explicit dtypes (arrays as stored in the spec; shifts int64 scalars,
    dt float64, output_mode a str scalar).  ``aliases`` is left out when None
    (from_specification's default); adacal's lowering never uses aliases."""
    out = {}
    for k, v in spec.as_kwargs().items():
        if k == "aliases":
            if v is not None:
                raise AdacalError("xylo artifact: aliases are not supported in xylo_spec.npz")
            continue
        if k in _XYLO_SCALARS:
            out[k] = np.array(v, dtype=np.str_ if _XYLO_SCALARS[k] == "str" else _XYLO_SCALARS[k])
        else:
            out[k] = np.ascontiguousarray(v)
    return out


def _npz_bytes(arrays: dict) -> bytes:
    """An .npz archive (np.load reads it) with fixed member timestamps and
    order, so equal arrays give equal bytes (np.savez writes the wall time)."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        for name in sorted(arrays):
            b = io.BytesIO()
            np.lib.format.write_array(b, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            z.writestr(info, b.getvalue())
    return buf.getvalue()


def _spec_json(fields: dict) -> dict:
    return {"format": "adacal-xylo-spec", "format_version": 1,
            "description": "keyword arguments of rockpool XyloSim.from_specification (aliases=None); "
                           "value as nested lists, cast to dtype",
            "kwargs": {k: {"dtype": str(v.dtype) if v.dtype.kind != "U" else "str", "shape": list(v.shape),
                           "value": v.tolist()} for k, v in fields.items()}}


def read_xylo_spec(path) -> dict:
    """xylo_spec.npz -> the from_specification keyword arguments."""
    with np.load(path, allow_pickle=False) as z:
        kw = {k: (z[k].item() if k in _XYLO_SCALARS else z[k]) for k in z.files}
    kw["aliases"] = None
    return kw


def _xylo_description(low) -> dict:
    """Everything of the lowering besides the spec needed to run it from files."""
    enc = low.encoder
    return {
        "device": low.device, "neuron": low.neuron, "timesteps": low.timesteps, "steps": low.steps,
        "input_delay": low.input_delay, "drain_steps": low.drain_steps, "event_gain": low.event_gain,
        "encoder": {"n_features": enc.n_features, "modes": list(enc.modes), "feature": enc.feature.tolist(),
                    "sign": enc.sign.tolist(), "offset": enc.offset.tolist(), "scale": enc.scale.tolist(),
                    "max_count": enc.max_count, "steps": low.steps, "delay": low.input_delay,
                    "rule": "u = clip(sign * (x[feature] - offset) / scale, 0, max_count); counts at steps "
                            "[delay, delay + T): floor(u (t+1) + 1/2) - floor(u t + 1/2), t = 0..T-1; "
                            "zeros elsewhere (uint8)"},
        "layers": [{"name": l.name, "hidden_ids": [l.first, l.stop], "event_value": l.event_value.tolist(),
                    "threshold": l.threshold.tolist(), "weight_shift": l.weight_shift, "window": l.window,
                    "note": l.note} for l in low.layers],
        "bias_units": list(low.bias_neurons),
        "readout": {"name": low.readout.name, "n_classes": low.readout.n_classes, "gain": low.readout.gain,
                    "weight_shift": low.readout.weight_shift, "mode": low.readout.mode,
                    "output_mode": low.readout.output_mode, "rule": low.readout.rule},
    }


def _xylo_lowering(desc: dict, spec):
    from adacal.backends.xylo.lower import InputEncoder, XyloLayer, XyloLowering, XyloReadout

    e = desc["encoder"]
    enc = InputEncoder(int(e["n_features"]), tuple(e["modes"]), np.array(e["feature"], np.int64),
                       np.array(e["sign"], np.float64), np.array(e["offset"], np.float64),
                       np.array(e["scale"], np.float64), int(e["max_count"]))
    layers = tuple(XyloLayer(L["name"], int(L["hidden_ids"][0]), int(L["hidden_ids"][1]),
                             np.array(L["event_value"], np.float64), np.array(L["threshold"], np.int64),
                             int(L["weight_shift"]), int(L["window"]), L.get("note", ""))
                   for L in desc["layers"])
    r = desc["readout"]
    ro = XyloReadout(r["name"], int(r["n_classes"]), float(r["gain"]), int(r["weight_shift"]), r["mode"],
                     r["output_mode"], r["rule"])
    return XyloLowering(desc["device"], spec, enc, int(desc["timesteps"]), int(desc["steps"]), layers, ro,
                        None, int(desc["event_gain"]), {}, desc["neuron"], tuple(desc["bias_units"]),
                        int(desc["drain_steps"]), int(desc["input_delay"]))


def _xylo_drc(conv, xc, device) -> None:
    """The design-rule check before lowering: every violation in one error line."""
    from adacal.backends.xylo.devices import design_rule_check, get_device
    from adacal.backends.xylo.lower import fit_encoder, xylo_plan

    dev = get_device(device)
    enc = fit_encoder(np.asarray(xc, np.float32), dev.n_inputs)
    problems = design_rule_check(xylo_plan(conv.snn, enc, dev), dev)
    if problems:
        raise AdacalError(f"the network does not fit {dev.name} ({len(problems)} design-rule "
                          f"violation{'s' if len(problems) > 1 else ''}): " + "; ".join(problems))


def _xylo_energy(res: dict) -> float:
    from adacal.runtime_sim import energy
    return energy.E_AC_PJ * (res["synops_per_sample"] + res["input_synops_per_sample"])


XYLO_ENERGY_CONVENTION = ("Xylo: synops = events x fan-out (a burst of k delivers k additions), hidden layers + "
                          "bias units + input events x their fan-out; energy = 0.9 pJ x synops (no MACs: "
                          "the input is encoded as events)")


def _xylo_metrics(low, x, y) -> dict:
    from adacal.backends.xylo.lower import evaluate_xylo

    r = evaluate_xylo(low, np.asarray(x, np.float32), y)
    T, n = low.timesteps, r["samples"]
    hist = [0] * T
    hist[-1] = n
    return {"samples": n, "accuracy": r["accuracy"], "avg_timesteps": float(T), "steps": r["steps"],
            "exit_histogram": hist, "spikes_per_sample": r["spikes_per_sample"],
            "events_per_sample": r["events_per_sample"], "bursts_per_sample": r["bursts_per_sample"],
            "synops_per_sample": r["synops_per_sample"], "input_events_per_sample": r["input_events_per_sample"],
            "input_synops_per_sample": r["input_synops_per_sample"],
            "bias_events_per_sample": r["bias_events_per_sample"],
            "bias_synops_per_sample": r["bias_synops_per_sample"],
            "energy_pj_per_sample": _xylo_energy(r), "energy_convention": XYLO_ENERGY_CONVENTION,
            "hidden_vmem_saturation": r["hidden_vmem_saturation"],
            "per_layer": r["per_layer"], "predictions": r["predictions"].tolist(),
            "predictions_by_step": r["predictions_by_step"]}


def _simulate_xylo(art: Artifact, x, y, adaptive: bool) -> dict:
    t0 = time.perf_counter()
    res = _xylo_metrics(art.lowering, x, y)
    res.pop("per_layer")
    res.pop("predictions_by_step")
    res["seconds"] = time.perf_counter() - t0
    return res


def _verify_xylo(art: Artifact, x, log=None) -> dict:
    """adacal's xylo_sim.simulate against Rockpool's XyloSim on the encoded
    inputs: every hidden neuron's events per step, the output Vmem and the
    output events."""
    from adacal.runtime_sim import xylo_sim

    low = art.lowering
    enc = low.encode(np.asarray(x, np.float32))
    if log:
        log(f"verify: adacal's Xylo simulator on {len(x)} samples ...")
    t0 = time.perf_counter()
    ours = xylo_sim.simulate(low.spec, enc, record_isyn=False)
    t1 = time.perf_counter()
    if log:
        log(f"verify: XyloSim ({low.device}) on {len(x)} samples ...")
    with progress_task(log, "XyloSim run", len(x), "samples") as advance:
        ref = xylo_sim.run_xylosim(low.spec, enc, low.device, progress=None if advance is noop_advance else advance)
    t2 = time.perf_counter()
    n = len(x)
    # hidden id -> (layer name, index in the layer)
    where = {}
    for L in low.layers:
        for i in range(L.first, L.stop):
            where[i] = (L.name, i - L.first)
    for k, i in enumerate(low.bias_neurons):
        where[i] = ("bias units", k)
    rname = low.readout.name
    bad = np.zeros(n, bool)
    first = None
    for quantity, a, b in (("events", ours.spikes, ref.spikes), ("vmem_out", ours.vmem_out, ref.vmem_out),
                           ("events_out", ours.spikes_out, ref.spikes_out)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            raise AdacalError(f"verify: {quantity} has shape {a.shape} here and {b.shape} in XyloSim")
        diff = a != b
        bad |= diff.any(axis=(1, 2))
        if diff.any():
            cells = np.argwhere(diff)  # (sample, step, neuron)
            s, t, j = min(map(tuple, cells), key=lambda c: (c[1], c[0], c[2]))
            layer, idx = where.get(int(j), ("hidden", int(j))) if quantity == "events" else (rname, int(j))
            cand = {"layer": layer, "quantity": quantity, "step": int(t) + 1, "sample": int(s), "neuron": [idx],
                    "hidden_id" if quantity == "events" else "output_id": int(j),
                    "adacal": int(a[s, t, j]), "reference": int(b[s, t, j])}
            if first is None or (cand["step"], cand["sample"]) < (first["step"], first["sample"]):
                first = cand
    return {"samples": n, "reference": "xylosim", "device": low.device, "mismatched_samples": int(bad.sum()),
            "first_mismatch": first, "layers_compared": len(low.layers) + bool(low.bias_neurons) + 1,
            "steps": int(enc.shape[1]), "adacal_seconds": t1 - t0, "reference_seconds": t2 - t1}


def _xylo_hardware_config(low):
    """Rockpool's hardware configuration of the spec, written only when a real
    samna is installed (config_from_specification needs it).  Not exercised
    by the tests: samna is not installable in this environment."""
    import importlib

    from adacal.backends.xylo.compat import XYLO_DEVICE_MODULES

    mod = importlib.import_module(XYLO_DEVICE_MODULES[low.device])
    kw = low.spec.as_kwargs()
    kw["weights_out"] = low.spec.padded_weights_out()  # the hardware wants all Nhid rows
    for k in ("dt", "output_mode"):
        kw.pop(k, None)
    cfg, ok, msg = mod.config_from_specification(**kw)
    if not ok:
        raise AdacalError(f"Rockpool rejected the configuration for {low.device}: {msg}")
    return cfg.to_json()


def _lower_xylo(conv, xc, val, device, seed, log):
    from adacal.backends.xylo.compat import samna_available
    from adacal.backends.xylo.lower import lower_xylo
    from adacal.pipeline import evaluate

    _xylo_drc(conv, xc, device)
    t = time.perf_counter()
    if log:
        log(f"lowering to {device} integers and calibrating on the Xylo arithmetic ...")
    low = lower_xylo(conv.snn, xc, device, conv.options.timesteps, ann=conv.ann, seed=seed, log=log)
    timings = {"lowering": time.perf_counter() - t}
    spec = low.spec
    desc = _xylo_description(low)
    resources = {"device": low.device, "inputs": spec.n_in, "hidden_neurons": spec.n_hidden,
                 "bias_units": len(low.bias_neurons), "outputs": spec.n_out,
                 "layers": [{"name": l.name, "neurons": l.size, "hidden_ids": [l.first, l.stop]}
                            for l in low.layers],
                 "weights_nonzero": int(np.count_nonzero(spec.weights_in) + np.count_nonzero(spec.weights_rec)
                                        + np.count_nonzero(spec.weights_out))}
    resources["limits"] = _xylo_limits(low.device)
    summary = {"target": "xylo", "device": low.device, "resources": resources, "timings": timings,
               "xylo": {k: desc[k] for k in ("neuron", "timesteps", "steps", "input_delay", "readout")},
               "calibration": low.calibration}
    if val is not None:
        xv, yv = val if isinstance(val, tuple) else (val, None)
        if log:
            log("evaluating float and bit-accurate (Xylo) networks ...")
        with progress_task(log, "evaluation", 2, "float SNN, bit-accurate") as advance:
            flt = evaluate(conv, xv, yv, adaptive=False)
            advance()
            bit = _xylo_metrics(low, xv, yv)
            advance()
        summary.update({k: flt[k] for k in ("ann_accuracy", "ann_energy_pj_per_sample", "ann_macs_per_sample")})
        summary.update({
            "float_snn_accuracy": flt["snn_accuracy"], "snn_accuracy": bit["accuracy"],
            **{k: bit[k] for k in ("avg_timesteps", "steps", "spikes_per_sample", "events_per_sample",
                                   "bursts_per_sample", "synops_per_sample", "input_events_per_sample",
                                   "input_synops_per_sample", "bias_events_per_sample", "bias_synops_per_sample",
                                   "energy_pj_per_sample", "energy_convention", "hidden_vmem_saturation")},
            "float_snn_spikes_per_sample": flt.get("spikes_per_sample"),
            "per_layer": bit["per_layer"],
        })
        _add_xylo_report_fields(summary, conv, low, np.asarray(xv, np.float32), yv, flt,
                                bit["predictions_by_step"])
        timings["evaluation"] = time.perf_counter() - t - timings["lowering"]
    fields = xylo_spec_fields(spec)
    files = {XYLO_SPEC_NPZ: _npz_bytes(fields), XYLO_SPEC_JSON: _spec_json(fields)}
    if samna_available():  # pragma: no cover - needs the vendor's samna (not installable here: untested)
        try:
            files["xylo_config.json"] = _xylo_hardware_config(low)
            summary["hardware_config"] = "xylo_config.json"
        except Exception as e:  # the spec files stay the artifact; say why the config is missing
            summary["hardware_config"] = f"not written: {type(e).__name__}: {e}"
            if log:
                log(f"hardware configuration not written ({type(e).__name__}: {e})")
    else:
        summary["hardware_config"] = "not written: samna is not installed"
    extra = {"device": low.device, "xylo": desc,
             "xylo_spec": {"npz": XYLO_SPEC_NPZ, "json": XYLO_SPEC_JSON,
                           "load": "kw = {k: (v.item() if v.ndim == 0 else v) for k, v in np.load(npz).items()}; "
                                   "XyloSim.from_specification(**kw, aliases=None)"},
             "readout_rule": low.readout.rule}
    art = Artifact(Path("."), {}, low)
    return art, summary, files, extra


def load_artifact(path) -> Artifact:
    p = Path(path)
    try:
        with open(p / MANIFEST) as f:
            man = json.load(f)
    except (OSError, ValueError) as e:
        raise AdacalError(f"{p}: not an adacal artifact directory (cannot read {MANIFEST}: {e})") from None
    target = man.get("target")
    if target == "loihi2":
        from adacal.backends.loihi2.network_file import read_network
        return Artifact(p, man, read_network(p / "network.h5"))
    if target == "xylo":
        from adacal.runtime_sim.xylo_sim import XyloSpec
        try:
            spec = XyloSpec(**read_xylo_spec(p / XYLO_SPEC_NPZ))
            return Artifact(p, man, _xylo_lowering(man["xylo"], spec))
        except (OSError, ValueError, KeyError) as e:
            raise AdacalError(f"{p}: broken Xylo artifact ({type(e).__name__}: {e})") from None
    raise AdacalError(f"{p}: artifact target '{target}' cannot be simulated (expected one of {', '.join(TARGETS)})")


# ----------------------------------------------------------------------
# report.html (adacal.report_html renders it from the summary)
# ----------------------------------------------------------------------
def _report_html(summary: dict, man: dict) -> bytes:
    from adacal.report_html import render
    return render(summary, man).encode("utf-8")


QUANTISATION_METRIC = ("per neuron layer: ||a_int - a_float|| / ||a_float|| of the time-averaged outputs "
                       "(a_int: the integer network's spikes x threshold value; a_float: the float SNN)")


def _accuracy_by_step(pred_by_step: np.ndarray, y) -> list | None:
    """(T, N) predictions after each step -> accuracy per step."""
    return None if y is None else [float((p == np.asarray(y)).mean()) for p in pred_by_step]


def _add_loihi2_report_fields(summary: dict, conv, low, res, y, flt: dict) -> None:
    """Accuracy after each step (float and bit-accurate), per-layer bit-accurate
    events / synops / energy, the quantisation error per layer and, with
    --adaptive-timesteps, the stored exit policy run on the bit-accurate network
    (res: the integer run on the validation samples)."""
    from adacal.lowering import ERROR_SAMPLES
    from adacal.runtime_sim import energy

    per_step = low.step_logits(res.readout)
    n = per_step.shape[1]
    summary["samples"] = n
    summary["float_snn_accuracy_by_timestep"] = flt["accuracy_by_timestep"]
    summary["snn_accuracy_by_timestep"] = _accuracy_by_step(per_step.cumsum(axis=0).argmax(axis=2), y)
    for L in summary["per_layer"]:
        if L["name"] in res.synops:
            syn = float(res.synops[L["name"]].sum() / n)
            L["bit_accurate_events_per_sample"] = float(res.events[L["name"]].sum() / n)
            L["bit_accurate_synops_per_sample"] = syn
            L["bit_accurate_energy_pj_per_sample"] = energy.E_AC_PJ * syn
    summary["quantisation_error"] = {
        "metric": QUANTISATION_METRIC, "samples": min(n, ERROR_SAMPLES),
        "layers": [{"name": L["name"], "relative_error": L["float_int_relative_error"]} for L in summary["per_layer"]]}
    if conv.exit_policy is not None:
        m = _int_metrics(low, res, y, conv.exit_policy, _input_macs(conv))
        summary["adaptive_exit"] = {**conv.exit_policy.as_dict(), "network": "bit-accurate",
                                    **{k: m[k] for k in ("accuracy", "avg_timesteps", "exit_histogram",
                                                         "energy_pj_per_sample")}}


def _xylo_limits(device: str) -> dict:
    from adacal.backends.xylo.devices import get_device
    d = get_device(device)
    return {"inputs": d.n_inputs, "hidden_neurons": d.n_hidden, "outputs": d.n_outputs,
            "synapses_per_neuron": d.synapses_per_neuron, "max_fanout": d.max_fanout,
            "max_hidden_events_per_step": d.max_hidden_events}


def _add_xylo_report_fields(summary: dict, conv, low, x, y, flt: dict, pred_by_step) -> None:
    """Accuracy after each input step (float; Xylo: pred_by_step, the argmax of
    the output Vmem after input step t, the last one being the readout),
    per-layer φ / threshold ratio / float spikes / energy and the quantisation
    error per layer (a_xylo = events x event value / T against the float SNN)."""
    from adacal.lowering import ERROR_SAMPLES
    from adacal.runtime_sim import energy
    from adacal.runtime_sim.float_sim import simulate

    T, n = low.timesteps, len(x)
    summary["samples"] = n
    summary["float_snn_accuracy_by_timestep"] = flt["accuracy_by_timestep"]
    summary["snn_accuracy_by_timestep"] = _accuracy_by_step(pred_by_step, y) if n else None
    ne = min(n, ERROR_SAMPLES)
    xres = low.run(x[:ne], record_isyn=False)
    fres, _ = simulate(conv.snn, x[:ne], T, keep=tuple(l.name for l in low.layers))
    errors = {}
    for l in low.layers:
        a_x = xres.spikes[:ne, :l.window, l.first:l.stop].astype(np.float64).sum(axis=1) * l.event_value / T
        a_f = np.asarray(fres.kept[l.name], np.float64).reshape(ne, -1)
        errors[l.name] = float(np.linalg.norm(a_x - a_f) / max(np.linalg.norm(a_f), 1e-12))
    fl = {L["name"]: L for L in flt["per_layer"]}
    for L in summary["per_layer"]:
        f = fl.get(L["name"], {})
        L.update({"max_spikes": f.get("max_spikes"), "threshold_ratio": f.get("threshold_ratio"),
                  "threshold_mean": f.get("threshold_mean"), "float_spikes_per_sample": f.get("spikes_per_sample"),
                  "energy_pj_per_sample": energy.E_AC_PJ * L["synops_per_sample"],
                  "float_int_relative_error": errors.get(L["name"])})
    summary["quantisation_error"] = {
        "metric": "per neuron layer: ||a_xylo - a_float|| / ||a_float|| of the time-averaged outputs (a_xylo: "
                  "the layer's Xylo events x their value / T; a_float: the float SNN)", "samples": ne,
        "layers": [{"name": k, "relative_error": v} for k, v in errors.items()]}
