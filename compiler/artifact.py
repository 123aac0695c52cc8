"""Compiled artifacts: compile a model for a target into a directory, load it
back, simulate it bit-accurately, and verify it against the vendor's model.

    art = adacal.compile("model.onnx", target="loihi2", calib=x_cal, out_dir="build/")
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

TARGETS = ("loihi2",)


@dataclass
class Artifact:
    path: Path
    manifest: dict
    lowering: object  # target-specific integer network

    @property
    def target(self) -> str:
        return self.manifest["target"]

    def simulate(self, x: np.ndarray, y=None, adaptive: bool = False) -> dict:
        from adacal.passes import adaptive_timesteps
        from adacal.runtime_sim.int_sim import simulate_int

        t0 = time.perf_counter()
        low = self.lowering
        T = low.timesteps
        res, _ = simulate_int(low.graph, x, T, fanout=_int_fanout(low.graph))
        n = len(x)
        per_step = (res.readout.reshape(T, n, -1) + low.readout_bias.reshape(1, 1, -1)) / low.readout_scale
        if adaptive:
            pol = self.manifest.get("exit_policy")
            if not pol:
                raise AdacalError(f"{self.path}: compiled without --adaptive-timesteps; no exit policy stored")
            policy = adaptive_timesteps.ExitPolicy(pol["metric"], pol["level"], tuple(pol["thresholds"]))
            steps, pred = adaptive_timesteps.decide(per_step, policy)
        else:
            steps, pred = np.full(n, T), per_step.sum(axis=0).argmax(axis=1)
        used = np.arange(1, T + 1)[:, None] <= steps[None, :]
        tot = (lambda d: float(sum((v * used).sum() for v in d.values()) / n))
        from adacal.runtime_sim import energy
        synops = tot(res.synops)
        e = energy.E_MAC_PJ * self.manifest["input_layer_macs"] * float(steps.mean()) + energy.E_AC_PJ * synops
        return {"samples": n, "accuracy": None if y is None else float((pred == y).mean()),
                "avg_timesteps": float(steps.mean()),
                "exit_histogram": np.bincount(steps, minlength=T + 1)[1:].tolist(),
                "spikes_per_sample": tot(res.spikes), "events_per_sample": tot(res.events),
                "synops_per_sample": synops, "graded_synops_per_sample": tot(res.event_synops),
                "energy_pj_per_sample": e, "predictions": pred.tolist(),
                "seconds": time.perf_counter() - t0}

    def verify(self, x: np.ndarray, samples: int | None = None) -> dict:
        from adacal.backends.loihi2.lava_net import run_lava
        from adacal.runtime_sim.int_sim import simulate_int

        x = x[:samples] if samples else x
        low = self.lowering
        t0 = time.perf_counter()
        ours, _ = simulate_int(low.graph, x, low.timesteps, record_payloads=True)
        t1 = time.perf_counter()
        ref = run_lava(low.graph, x, low.timesteps)
        t2 = time.perf_counter()
        first, bad = _compare(ours.payloads, ours.readout, ref["payloads"], ref["readout"], low.graph)
        return {"samples": len(x), "reference": "lava-fixed_pt", "mismatched_samples": int(bad.sum()),
                "first_mismatch": first, "layers_compared": len(ours.payloads) + 1,
                "adacal_seconds": t1 - t0, "reference_seconds": t2 - t1}


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
                  log=None, device: str | None = None, model_path=None) -> tuple[Artifact, dict]:
    """Convert, lower for `target`, evaluate and write the artifact directory."""
    from adacal.frontends.onnx import load_onnx
    from adacal.ir import Graph
    from adacal.passes import cleanup
    from adacal.pipeline import ConvertOptions, convert_graph, evaluate, manifest, pick_calibration

    if target not in TARGETS:
        raise AdacalError(f"unknown target '{target}' (available: {', '.join(TARGETS)})")
    t0 = time.perf_counter()
    opts = options or ConvertOptions()
    ann = cleanup(model if isinstance(model, Graph) else load_onnx(model))
    xc, yc = calib if isinstance(calib, tuple) else (calib, None)
    xc, yc = pick_calibration(np.asarray(xc, np.float32), yc, opts.calib_samples, opts.seed)
    conv = convert_graph(ann, xc, yc, opts, log)
    art, summary, files = _lower_loihi2(conv, xc, val, log)
    man = manifest(conv, model_path or (model if not isinstance(model, Graph) else None), target)
    man["input_layer_macs"] = _input_macs(conv)
    man["files"] = sorted(files) + [MANIFEST, "report.json", "report.html"]
    summary["options"] = asdict(opts)
    summary["timings"] = {**conv.timings, **summary.get("timings", {})}
    summary["seconds"] = time.perf_counter() - t0
    files = {**files, MANIFEST: man, "report.json": summary, "report.html": _html(summary)}
    path = write_output_dir(out_dir, files, force=force)
    art.path, art.manifest = path, man
    return art, summary


def _input_macs(conv) -> int:
    from adacal.runtime_sim import energy
    return energy.input_macs(conv.snn)


def _lower_loihi2(conv, xc, val, log):
    from adacal.backends.loihi2.network_file import write_network
    from adacal.backends.loihi2.resources import estimate
    from adacal.lowering import evaluate_loihi2, layer_errors, lower_for_loihi2
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
        flt = evaluate(conv, xv, yv, adaptive=False)
        bit = evaluate_loihi2(conv, low, xv, yv)
        errors = layer_errors(conv.snn, low, xv)
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
    art = Artifact(Path("."), {}, low)
    return art, summary, {"network.h5": lambda p: write_network(low, p)}


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
    raise AdacalError(f"{p}: artifact target '{target}' cannot be simulated (expected one of {', '.join(TARGETS)})")


def _html(summary: dict) -> str:
    """A minimal self-contained report (the full report is issue 7's)."""
    rows = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in summary.items()
                   if not isinstance(v, (dict, list)))
    return ("<!doctype html><html><head><meta charset='utf-8'><title>adacal report</title></head><body>"
            f"<h1>adacal report</h1><table>{rows}</table></body></html>\n")
