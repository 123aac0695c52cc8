#!/usr/bin/env python3
"""Exporter sweep on the bench CNNs (issue 15): one trained model, every exporter.

    .venv/bin/python bench/bench_exporters.py [--models mnist_vgg mnist_resnet] [--out bench/results/exporters.json]

For each bench CNN of bench/models.py (mnist_vgg, mnist_resnet; mnist_vgg11 on
request, which trains it once if bench/out has no cache) the trained torch
module (models.load_torch: the same weights as bench/out/<name>.onnx) is
exported with torch's classic exporter at opsets 9, 11, 13 and 17
(tests/onnx_fixtures.export_onnx, do_constant_folding=False, which keeps
BatchNormalization in the graph, as tests/test_onnx_exporters.py does) and with
the dynamo exporter (onnx_fixtures.export_onnx_dynamo: opset 18, onnxscript's
optimiser on, which folds BatchNorm into Conv).  Every export is converted with

    adacal.convert(path, <name>_calib.npz, val=<name>_test.npz, timesteps=4, max_spikes=4)

and compared against the classic opset-17 export (the reference):

  * snn_accuracy, ann_accuracy, spikes_per_sample, synops_per_sample: must be
    identical (exact float equality);
  * the SNN's neuron thresholds, layer by layer in graph order: rtol 1e-5;
  * adacal's float run of the loaded graph vs onnxruntime on the same file,
    on the test split: max |adacal - ort| / max |ort| (reported; also checked
    against 1e-5).

Reported besides (not checked): the largest |difference| of the weights and
biases of the cleaned-up IR (BatchNorm folded) against the reference's, and
onnxruntime vs the torch module.

An export that fails, or that adacal refuses, is recorded with its message.
Prints a table, writes --out (JSON) and exits 1 if any export failed or differs.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
import models  # noqa: E402  bench/models.py: training, cache, load_torch
import onnx_fixtures as fx  # noqa: E402  tests' export helpers (classic and dynamo)

EXPORTS = ("opset9", "opset11", "opset13", "opset17", "dynamo")
REFERENCE = "opset17"
CNNS = ("mnist_vgg", "mnist_resnet", "mnist_vgg11")
EXACT = ("snn_accuracy", "ann_accuracy", "spikes_per_sample", "synops_per_sample")
THRESHOLD_RTOL = 1e-5
FLOAT_RTOL = 1e-5


def _message(exc: BaseException) -> str:
    """Exception type and its message's first line (full text goes to the JSON)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def export(model, key: str, x, path: Path) -> Path:
    import torch
    example = torch.from_numpy(x[:2])
    if key == "dynamo":
        return fx.export_onnx_dynamo(model, example, path)
    return fx.export_onnx(model, example, path, do_constant_folding=False, opset=int(key[len("opset"):]))


def onnx_facts(path: Path) -> dict:
    import onnx
    mp = onnx.load(str(path))
    opset = next((o.version for o in mp.opset_import if o.domain in ("", "ai.onnx")), None)
    return {"opset": opset, "nodes": len(mp.graph.node),
            "op_types": dict(sorted(Counter(n.op_type for n in mp.graph.node).items())),
            "producer": f"{mp.producer_name} {mp.producer_version}".strip()}


def ort_logits(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def max_rel(a: np.ndarray, ref: np.ndarray) -> float:
    """max |a - ref| / max |ref|"""
    return float(np.abs(a.reshape(ref.shape) - ref).max() / np.abs(ref).max())


def ir_weight_diff(conv, ref) -> float | None:
    """Largest |w - w_ref| and |b - b_ref| over the cleaned-up ANN's linear
    layers (in graph order); None when the layer lists do not match."""
    from adacal import ir
    a = [n.op for n in conv.ann.nodes if isinstance(n.op, ir.LINEAR_LAYERS)]
    b = [n.op for n in ref.ann.nodes if isinstance(n.op, ir.LINEAR_LAYERS)]
    if [(type(o), o.weight.shape) for o in a] != [(type(o), o.weight.shape) for o in b]:
        return None
    return max((float(max(np.abs(p.weight - q.weight).max(), np.abs(p.bias - q.bias).max())) for p, q in zip(a, b)),
               default=0.0)


def thresholds(conv) -> list[tuple[str, np.ndarray]]:
    from adacal.passes.to_spiking import neuron_names
    return [(n, np.asarray(conv.snn.node(n).op.threshold, np.float64)) for n in neuron_names(conv.snn)]


def run_model(name: str, tmp: Path, timesteps: int, max_spikes: int) -> dict:
    import torch

    import adacal
    paths = models.get(name)
    model = models.load_torch(name)
    with np.load(paths["calib"]) as f:
        x_cal = f["x"]
    with np.load(paths["test"]) as f:
        x_te = f["x"]
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x_te)).numpy()
    rows, convs = {}, {}
    for key in EXPORTS:
        row: dict = {"export": key}
        rows[key] = row
        path = tmp / f"{name}_{key}.onnx"
        t0 = time.perf_counter()
        try:
            export(model, key, x_cal, path)
        except Exception as exc:  # noqa: BLE001 - recorded, not hidden
            row.update(status="export failed", error=_message(exc), traceback=traceback.format_exc())
            print(f"  {name} {key}: export failed: {row['error']}", flush=True)
            continue
        row["export_seconds"] = time.perf_counter() - t0
        row.update(onnx_facts(path))
        # each stage's failure is recorded under its own status: onnxruntime, then adacal's float run, then convert
        stage = "onnxruntime failed"
        try:
            ort_out = ort_logits(path, x_te)
            row["ort_vs_torch_max_rel"] = max_rel(ort_out, torch_logits)
            stage = "adacal float run"
            row["float_vs_ort_max_rel"] = max_rel(adacal.load_onnx(str(path)).run(x_te), ort_out)
            stage = "adacal convert"
            t0 = time.perf_counter()
            conv = adacal.convert(str(path), str(paths["calib"]), val=str(paths["test"]),
                                  timesteps=timesteps, max_spikes=max_spikes)
        except Exception as exc:  # noqa: BLE001 - AdacalError (refused) or a crash: recorded either way
            if stage != "onnxruntime failed":
                stage += ": refused (AdacalError)" if isinstance(exc, adacal.AdacalError) else ": crashed"
            row.update(status=stage, error=_message(exc), traceback=traceback.format_exc())
            print(f"  {name} {key}: {row['status']}: {row['error']}", flush=True)
            continue
        row["convert_seconds"] = time.perf_counter() - t0
        s = conv.summary
        row.update({k: s[k] for k in EXACT})
        row["output_relative_l2"] = s["output_error"]["relative_l2"]
        row["neuron_layers"] = len(thresholds(conv))
        row["status"] = "converted"
        convs[key] = conv
        print(f"  {name} {key}: opset {row['opset']}, {row['nodes']} nodes, SNN {100 * s['snn_accuracy']:.2f} %, "
              f"{s['spikes_per_sample']:,.1f} spikes, float vs ort {row['float_vs_ort_max_rel']:.1e} "
              f"({row['export_seconds']:.1f} + {row['convert_seconds']:.1f} s)", flush=True)

    ref_key = REFERENCE if REFERENCE in convs else next(iter(convs), None)
    for key, row in rows.items():
        if row["status"] != "converted":
            row["verdict"] = "FAILED"
            continue
        problems = []
        row["ir_weights_max_abs_diff"] = ir_weight_diff(convs[key], convs[ref_key])
        ref_row, ref_th = rows[ref_key], thresholds(convs[ref_key])
        for k in EXACT:
            if row[k] != ref_row[k]:
                problems.append(f"{k} {row[k]!r} != {ref_row[k]!r}")
        th = thresholds(convs[key])
        if len(th) != len(ref_th) or any(a.shape != b.shape for (_, a), (_, b) in zip(th, ref_th)):
            row["threshold_max_rel"] = None
            problems.append(f"neuron layers {[a.shape for _, a in th]} != {[b.shape for _, b in ref_th]}")
        else:
            rel = [float((np.abs(a - b) / np.maximum(np.abs(b), 1e-300)).max()) if a.size else 0.0
                   for (_, a), (_, b) in zip(th, ref_th)]
            row["threshold_max_rel"] = max(rel, default=0.0)
            row["threshold_max_rel_by_layer"] = rel
            bad = [i for i, ((_, a), (_, b)) in enumerate(zip(th, ref_th))
                   if not np.allclose(a, b, rtol=THRESHOLD_RTOL, atol=0.0)]
            if bad:
                problems.append(f"thresholds of neuron layers {bad} differ beyond rtol {THRESHOLD_RTOL:g}")
        if not row["float_vs_ort_max_rel"] <= FLOAT_RTOL:
            problems.append(f"float run vs onnxruntime {row['float_vs_ort_max_rel']:.1e} > {FLOAT_RTOL:g}")
        row["differences"] = problems
        row["verdict"] = "reference" if key == ref_key and not problems else ("same" if not problems else "DIFFERS")
    return {"model": name, "reference": ref_key, "test_samples": int(len(x_te)), "exports": list(rows.values())}


def _fmt(v, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def table(results: list[dict]) -> str:
    head = ("| model | export | opset | ONNX nodes | ANN acc. | SNN acc. | spikes / sample | synops / sample "
            "| IR weights max abs. diff | thresholds max rel. diff | float vs ort max rel. err | verdict |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in results:
        for e in r["exports"]:
            if e["status"] != "converted":
                lines.append(f"| {r['model']} | {e['export']} | {_fmt(e.get('opset'), 'd')} | "
                             f"{_fmt(e.get('nodes'), 'd')} | {e['status']}: {e['error']} | | | | | | | FAILED |")
                continue
            lines.append(
                f"| {r['model']} | {e['export']} | {e['opset']} | {e['nodes']} | {100 * e['ann_accuracy']:.2f} % | "
                f"{100 * e['snn_accuracy']:.2f} % | {e['spikes_per_sample']:,.2f} | {e['synops_per_sample']:,.0f} | "
                f"{_fmt(e.get('ir_weights_max_abs_diff'), '.1e')} | {_fmt(e.get('threshold_max_rel'), '.1e')} | "
                f"{e['float_vs_ort_max_rel']:.1e} | {e['verdict']} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=CNNS, default=["mnist_vgg", "mnist_resnet"])
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--max-spikes", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "exporters.json")
    args = ap.parse_args()
    import onnx
    import onnxruntime
    import onnxscript
    import torch

    versions = {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                "onnxscript": onnxscript.__version__, "numpy": np.__version__}
    print("exporter sweep:", ", ".join(f"{k} {v}" for k, v in versions.items()), flush=True)
    t0 = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            results.append(run_model(name, Path(tmp), args.timesteps, args.max_spikes))
    print()
    print(table(results))
    failed = [(r["model"], e["export"]) for r in results for e in r["exports"] if e["verdict"] in ("FAILED", "DIFFERS")]
    for r in results:
        for e in r["exports"]:
            for p in e.get("differences", []):
                print(f"{r['model']} {e['export']}: {p}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"command": "bench/bench_exporters.py " + " ".join(sys.argv[1:]), "versions": versions,
               "options": {"timesteps": args.timesteps, "max_spikes": args.max_spikes},
               "reference": REFERENCE, "exact_fields": list(EXACT), "threshold_rtol": THRESHOLD_RTOL,
               "float_rtol": FLOAT_RTOL, "seconds": time.perf_counter() - t0, "ok": not failed, "models": results}
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"\n{'all exports identical' if not failed else f'{len(failed)} export(s) failed or differ: {failed}'}"
          f"; wrote {args.out} ({payload['seconds']:.0f} s)")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
