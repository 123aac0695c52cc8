"""Human- and machine-readable reports (the conversion plan for now)."""
from __future__ import annotations

import hashlib
import os

from adacal.frontends.onnx import load_onnx
from adacal.passes import cleanup, conversion_plan


def _fmt_shape(shape) -> str:
    return "x".join(str(d) for d in shape)


def inspect_model(model) -> dict:
    """Load, clean up and plan a model; return the plan as a JSON-able dict."""
    g = cleanup(load_onnx(model))
    plan = conversion_plan(g)
    label = os.fspath(model) if isinstance(model, (str, os.PathLike)) else "<model>"
    sha = None
    if isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
    problems = [f"{e.name} ({e.op}): {e.detail}" for e in plan if e.role == "unsupported"]
    return {
        "model": label,
        "sha256": sha,
        "input_shape": list(g.input_shape),
        "output_shape": list(g.output_shape),
        "layers": [e.as_dict() for e in plan],
        "spiking_layers": sum(e.role == "spiking" for e in plan),
        "total_params": sum(e.params for e in plan),
        "total_macs": sum(e.macs for e in plan),
        "convertible": not problems,
        "problems": problems,
    }


def format_plan(info: dict) -> str:
    rows = [("layer", "op", "output", "params", "MACs", "becomes")]
    for e in info["layers"]:
        becomes = e["role"] + (f": {e['detail']}" if e["detail"] else "")
        rows.append((e["name"], e["op"], _fmt_shape(e["shape"]), f"{e['params']:,}", f"{e['macs']:,}", becomes))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [f"{info['model']}: input {_fmt_shape(info['input_shape'])} -> output {_fmt_shape(info['output_shape'])}", ""]
    for k, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i in (0, 1, 2) else c.rjust(w) for i, (c, w) in
                               enumerate(zip(r[:5], widths))) + "  " + r[5])
        if k == 0:
            lines.append("-" * (sum(widths) + 10 + len("becomes")))
    lines.append("")
    lines.append(f"{info['spiking_layers']} spiking layers, {info['total_params']:,} parameters, "
                 f"{info['total_macs']:,} MACs per sample")
    if info["convertible"]:
        lines.append("convertible: yes")
    else:
        lines.append(f"convertible: NO — {len(info['problems'])} problem(s):")
        lines.extend(f"  - {p}" for p in info["problems"])
    return "\n".join(lines)


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


def output_error_text(e: dict | None) -> str:
    """'relative L2 0.0123, cosine 0.9998, max |SNN - ANN| 0.0456' (the
    output_error of adacal.summary; docs/method.md, "Output error")."""
    if not e:
        return "n/a (no ANN reference)"
    rel = "n/a" if e.get("relative_l2") is None else f"{e['relative_l2']:.4f}"
    cos = "n/a" if e.get("cosine") is None else f"{e['cosine']:.4f}"
    return f"relative L2 {rel}, cosine {cos}, max |SNN - ANN| {e['max_abs']:.4g}"


def _relative(snn: float, ann: float) -> str:
    r = 1 - snn / ann if ann else 0.0
    return f"{100 * r:.1f} % less" if r >= 0 else f"{-100 * r:.1f} % more"


def _agreement_lines(s: dict) -> list[str]:
    """The calibration check and the conversion's warnings (pipeline.conversion_warnings)."""
    lines = []
    c = s.get("calibration_check")
    if c:
        from adacal.pipeline import check_line
        lines.append(f"calibration check   {check_line(c)}")
    lines += [f"warning: {w}" for w in s.get("warnings") or []]
    return lines


def format_summary(s: dict) -> str:
    """The readable table `adacal convert` prints."""
    o = s["options"]
    searches = [n for n, on in (("burst caps", o.get("search_spikes")), ("threshold ratios",
                                                                       o.get("search_thresholds"))) if on]
    lines = [f"T = {o['timesteps']}, max spikes {o['max_spikes']}, thresholds {o['threshold']}, "
             f"calibration {o['calibration']}"
             + (f", searched {' and '.join(searches)} priced in {o.get('search_cost', 'spikes')}"
                if searches else "")]
    lines += _agreement_lines(s)
    if "samples" not in s:
        lines.append("(no --val data: nothing evaluated)")
        return "\n".join(lines)
    lines += [
        f"samples             {s['samples']}",
        f"ANN accuracy        {_pct(s['ann_accuracy'])}",
        f"SNN accuracy        {_pct(s['snn_accuracy'])}" + (f"  (all {o['timesteps']} steps: {_pct(s['snn_accuracy_full_T'])})"
                                                             if o["adaptive_timesteps"] else ""),
        f"output error        {output_error_text(s.get('output_error'))}  (SNN readout vs ANN output)",
        f"avg timesteps       {s['avg_timesteps']:.2f}",
        f"spikes / sample     {s['spikes_per_sample']:,.0f}  (events {s['events_per_sample']:,.0f})",
        f"synops / sample     {s['synops_per_sample']:,.0f}  (spikes x fan-out; graded events x fan-out "
        f"{s['graded_synops_per_sample']:,.0f})",
        f"energy / sample     SNN {s['energy_pj_per_sample'] / 1e6:.3f} uJ vs ANN "
        f"{s['ann_energy_pj_per_sample'] / 1e6:.3f} uJ ({_relative(s['energy_pj_per_sample'], s['ann_energy_pj_per_sample'])})",
        "",
        "layer".ljust(32) + "phi  theta-ratio   spikes/sample   synops/sample",
    ]
    for L in s["per_layer"]:
        lines.append(f"{L['name'][:31]:32}{L['max_spikes']:>3}  {L['threshold_ratio']:>11.1f}  "
                     f"{L['spikes_per_sample']:>14,.0f}  {L['synops_per_sample']:>14,.0f}")
    lines.append(f"\nconverted in {s['seconds']:.1f} s")
    return "\n".join(lines)


def format_compile_summary(s: dict, out_dir) -> str:
    lines = [f"compiled for {s['target']} into {out_dir}"] + _agreement_lines(s)
    if "snn_accuracy" in s:
        lines += [
            f"accuracy            ANN {_pct(s['ann_accuracy'])}, float SNN {_pct(s['float_snn_accuracy'])}, "
            f"bit-accurate SNN {_pct(s['snn_accuracy'])}",
            f"output error        bit-accurate {output_error_text(s.get('output_error'))}",
            f"                    float SNN {output_error_text(s.get('float_snn_output_error'))}",
            f"spikes / sample     {s['spikes_per_sample']:,.0f}  (events {s['events_per_sample']:,.0f})",
            f"synops / sample     {s['synops_per_sample']:,.0f}",
            f"energy / sample     SNN {s['energy_pj_per_sample'] / 1e6:.3f} uJ vs ANN "
            f"{s['ann_energy_pj_per_sample'] / 1e6:.3f} uJ",
        ]
    r = s.get("resources")
    if r and "cores" in r:
        lines.append(f"resources           {r['neurons']:,} neurons, {r['weights_stored']:,} weights stored, "
                     f"{r['cores']} cores ({r['chips']} chip)")
    lines.append(f"compiled in {s['seconds']:.1f} s")
    return "\n".join(lines)
