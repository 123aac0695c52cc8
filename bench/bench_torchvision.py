#!/usr/bin/env python3
"""Torchvision architectures (issue 16): adacal against SpikingJelly's ANN->SNN
converter, side by side in one run, on the torchvision classifiers of
bench/tv_models.py (MNIST digits at 32x32x3, trained here, nothing downloaded).

    python bench/bench_torchvision.py                  # full run, whole test split (~1 h on the shared 2 cores)
    python bench/bench_torchvision.py --quick          # fewer settings, 100 test samples (~4 min)
    python bench/bench_torchvision.py --models resnet18,vgg11_bn,squeezenet1_1 --sj-modes 'max,99.9%'

For every model it reports
  ANN         test accuracy with onnxruntime on the exported ONNX and with torch;
              MACs per sample (Conv2d / Linear modules of the torch model)
  adacal      adacal.convert(onnx, calib.npz, timesteps=T, max_spikes=phi,
              calibration="light") at T = 1, 2, 4, 8 and phi = 4, 8 (the
              options' other defaults: threshold "mse", 256 calibration
              samples, seed 0), then Conversion.simulate on the test subset
              (the same numbers as convert(..., val=...)'s summary; timed
              apart so that "conv s" is the conversion alone).  A model that
              contains MaxPool is also converted with every MaxPool
              realisation (ConvertOptions.maxpool = step / gated / running /
              hoist) at T = 1, 2, 4, phi = 4, when this adacal has the option.
              A refusal (AdacalError) is put in the table as its one-line
              message; the run goes on.
  SpikingJelly ann2snn.Converter(RateCodingRecipe(loader, mode)) with mode
              'max' ('99.9%' with --sj-modes: its conversion is cheap but
              simulating it doubles the run's largest cost, T = 128 on the
              test split) (layer-wise scale, IF neurons with threshold 1
              and soft reset; Conv-BN fused by the recipe), calibrated on the
              same 256 training samples adacal calibrates on (one batch),
              simulated once for the largest T with the image presented every
              step and read out (mean output over the first T steps) at
              T = 8, 16, 32, 64, 128.  A failure (fx tracing, an activation it
              does not convert such as ReLU6 or F.relu, a tensor method) is put
              in the table as its one-line message.

Conventions (per test sample):
  spikes  Σ over IF neurons and steps of their spikes (adacal: Σ k, a burst of
          k counts k)
  synops  spikes × fan-out.  adacal: its own count (runtime_sim.energy).
          SpikingJelly: the same convention computed here on the converted fx
          graph (`fanout_maps`): a neuron's fan-out is the number of synapses
          it reaches before the next IF neurons or the output, found with every
          conv / linear weight set to 1 (exact border handling, groups,
          strides), average pooling folded into the next layer (sum-pool),
          BN and the VoltageScalers as identity, an identity skip into the
          next neurons counting 1.  Spikes through a MaxPool are counted where
          they leave it: a pooled unit that passes a spike (output > 0) in a
          step costs the pooled unit's fan-out; the spikes entering the
          MaxPool cost nothing.
  energy  adacal: its summary (4.6 pJ × input-layer MACs × steps + 0.9 pJ ×
          synops; ANN 4.6 pJ × MACs).  SpikingJelly: 0.9 pJ × synops + 4.6 pJ
          × first-layer MACs × T (first layer: the conv / linear layers that
          read the image before any IF neuron).
  conv s  conversion wall time (adacal: convert() without evaluation;
          SpikingJelly: Converter.convert incl. its calibration pass).
          Evaluation is separate (eval_seconds / sim_seconds in the JSON).
Test data: the 1,000-sample test split, or a fixed stratified subset of it,
the same for every method (the first N/10 of each class; --test-samples,
default all; --quick 100).  Measured cost on the shared 2 cores (load
average 3-12 from other jobs), one torch thread: SpikingJelly 2.5 ms
(resnet18) to 6 ms (vgg11_bn) per sample and step, so T = 128 on the whole
split takes 5 to 13 min per mode; the whole default run took about an hour
(vgg11_bn 28 min of it).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import datetime
import io
import json
import logging
import os
import platform
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import tv_models  # noqa: E402

import adacal  # noqa: E402
from adacal.errors import AdacalError  # noqa: E402
from adacal.pipeline import ConvertOptions, pick_calibration  # noqa: E402

CALIB_SAMPLES = 256
E_MAC_PJ, E_AC_PJ = 4.6, 0.9
try:  # the realisations this adacal offers (ConvertOptions.maxpool)
    from adacal.passes.to_spiking import MAXPOOL_CHOICES as MAXPOOL_REALISATIONS
except ImportError:  # an adacal without the option: the table is not run
    MAXPOOL_REALISATIONS = ("step", "gated", "running", "hoist")
FULL = dict(adacal_T=[1, 2, 4, 8], adacal_phi=[4, 8], maxpool_T=[1, 2, 4], sj_T=[8, 16, 32, 64, 128],
            sj_modes=["max"], test_samples=1000)
QUICK = dict(adacal_T=[2, 4], adacal_phi=[4], maxpool_T=[2], sj_T=[8, 16, 32], sj_modes=["max"], test_samples=100)


# --------------------------------------------------------------------------- helpers

def now() -> float:
    return time.perf_counter()


@contextlib.contextmanager
def quiet():
    """Silence progress bars, log lines and warnings of the converters."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def one_line(e: BaseException) -> str:
    """The exception as one line, without memory addresses (reproducible)."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    msg = re.sub(r" at 0x[0-9a-fA-F]+", "", msg)
    return f"{type(e).__name__}: {msg}"


def short(s: str, n: int = 150) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."


def load_npz(path):
    with np.load(path) as f:
        return f["x"].astype(np.float32), f["y"].astype(np.int64)


def stratified(y: np.ndarray, n: int) -> np.ndarray:
    """The first n/K test samples of each class (all if n >= len(y) or n <= 0)."""
    if n <= 0 or n >= len(y):
        return np.arange(len(y))
    classes = np.unique(y)
    k = max(1, n // len(classes))
    return np.sort(np.concatenate([np.flatnonzero(y == c)[:k] for c in classes]))


def has_maxpool(onnx_path) -> bool:
    import onnx
    return any(n.op_type in ("MaxPool", "GlobalMaxPool") for n in onnx.load(str(onnx_path)).graph.node)


def ann_macs(model: nn.Module, x: torch.Tensor) -> int:
    """MACs per sample of the Conv2d / Linear modules (torch forward hooks)."""
    total = [0]

    def hook(mod, inp, out):
        per_out = mod.weight.numel() // mod.weight.shape[0]  # C_in/groups x kh x kw, or in_features
        total[0] += per_out * out[0].numel()

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in hooks:
            h.remove()
    return int(total[0])


# --------------------------------------------------------------------------- adacal

def maxpool_option() -> bool:
    return "maxpool" in {f.name for f in dataclasses.fields(ConvertOptions)}


def run_adacal(paths: dict, x: np.ndarray, y: np.ndarray, T: int, phi: int, maxpool: str | None = None,
               neuron: str = "burst") -> dict:
    kw = dict(timesteps=T, max_spikes=phi, calibration="light")
    if maxpool is not None:
        kw["maxpool"] = maxpool
    if neuron != "burst":  # an adacal without the option refuses it (the row says so)
        kw["neuron"] = neuron
    row = {"method": "adacal", "T": T, "phi": phi, "maxpool": maxpool, "neuron": neuron}
    try:
        t0 = now()
        with quiet():
            conv = adacal.convert(str(paths["onnx"]), str(paths["calib"]), **kw)
        row["seconds"] = now() - t0
        t1 = now()
        with quiet():
            ev = conv.simulate((x, y))
        row["eval_seconds"] = now() - t1
    except AdacalError as e:
        row.update(error=one_line(e), refused=True)
        return row
    except Exception as e:  # a crash inside adacal: report it and go on
        row.update(error="CRASH " + one_line(e), refused=False)
        return row
    opts = dataclasses.asdict(conv.options)
    row.update({
        "maxpool": opts.get("maxpool", maxpool),
        "ann_accuracy": ev["ann_accuracy"], "accuracy": ev["snn_accuracy"],
        "agreement_with_ann": ev.get("agreement_with_ann"),
        "spikes_per_sample": ev["spikes_per_sample"], "events_per_sample": ev.get("events_per_sample"),
        "synops_per_sample": ev["synops_per_sample"],
        "energy_pj_per_sample": ev["energy_pj_per_sample"], "ann_energy_pj_per_sample": ev["ann_energy_pj_per_sample"],
        "input_layer_macs_per_sample": ev.get("input_layer_macs_per_sample"),
        "timings": conv.timings, "calibration_check": conv.calibration_check,
        "warnings": (conv.summary or {}).get("warnings", []),
    })
    return row


# --------------------------------------------------------------------------- SpikingJelly

def _is_if(mod) -> bool:
    from spikingjelly.activation_based import neuron
    return isinstance(mod, neuron.BaseNode)


class _Shapes(fx.Interpreter):
    """Records every node's output (batch 1) of the converted graph."""

    def __init__(self, gm):
        super().__init__(gm)
        self.out = {}

    def run_node(self, n):
        r = super().run_node(n)
        self.out[n.name] = r
        return r


class _Counts(fx.Interpreter):
    """The converted graph in 'count' mode (energy.fanout_maps' convention):
    every source (IF node or MaxPool node) emits a leaf tensor z; conv /
    linear run with weights 1 and no bias; average pools sum; BN and the
    VoltageScalers are identities; every IF node counts what reaches it and
    emits its own z (so counts stop at the next neurons); a MaxPool reached
    is where its inputs' spikes stop (counted at its output).  The gradient of
    the total w.r.t. each z is that source's fan-out map."""

    def __init__(self, gm, shapes, sources):
        super().__init__(gm)
        self.shapes, self.sources = shapes, set(sources)
        self.z, self.total = {}, torch.zeros((), dtype=torch.float64)

    def placeholder(self, target, args, kwargs):
        return torch.zeros_like(self.shapes[self.current.name], dtype=torch.float64)

    def run_node(self, n):
        self.current = n
        return super().run_node(n)

    def call_module(self, target, args, kwargs):
        mod = self.fetch_attr(target)
        x = args[0] if args else None
        name = self.current.name
        if name in self.sources:
            if _is_if(mod) and torch.is_tensor(x) and x.requires_grad:
                self.total = self.total + x.sum()  # the neurons reached count what reaches them
            z = torch.zeros_like(self.shapes[name], dtype=torch.float64).requires_grad_(True)
            self.z[name] = z
            return z
        if _is_if(mod):
            raise RuntimeError(f"IF node {name} is not a source")
        if isinstance(mod, nn.Conv2d):
            w = torch.ones(mod.weight.shape, dtype=torch.float64)
            if mod.padding_mode != "zeros":
                raise RuntimeError(f"{name}: padding_mode {mod.padding_mode} not handled")
            return F.conv2d(x, w, None, mod.stride, mod.padding, mod.dilation, mod.groups)
        if isinstance(mod, nn.Linear):
            return F.linear(x, torch.ones(mod.weight.shape, dtype=torch.float64))
        if isinstance(mod, nn.AvgPool2d):
            k = mod.kernel_size if isinstance(mod.kernel_size, tuple) else (mod.kernel_size, mod.kernel_size)
            return mod(x) * float(k[0] * k[1])
        if isinstance(mod, nn.AdaptiveAvgPool2d):
            out = mod(x)
            return out * (x.shape[-2] * x.shape[-1] / (out.shape[-2] * out.shape[-1]))
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)) or type(mod).__name__ == "VoltageScaler":
            return x
        return mod(*args, **kwargs)

    def output(self, target, args, kwargs):
        out = args[0]
        if torch.is_tensor(out) and out.requires_grad:
            self.total = self.total + out.sum()
        return out


def fanout_maps(gm: fx.GraphModule, x1: torch.Tensor):
    """(sources, fanout, first_layer_macs): sources = [(node name, module
    path, kind 'if' | 'maxpool', shape)], fanout = {node name: flat float64
    fan-out per neuron / pooled unit}; first_layer_macs = MACs per sample of
    the conv / linear layers reading the image before any IF node."""
    shp = _Shapes(gm)
    with torch.no_grad():
        shp.run(x1)
    mods = dict(gm.named_modules())
    sources, analog, macs = [], set(), 0
    for n in gm.graph.nodes:
        mod = mods.get(n.target) if n.op == "call_module" else None
        if mod is not None and _is_if(mod):
            sources.append((n.name, n.target, "if", tuple(shp.out[n.name].shape[1:])))
        elif mod is not None and isinstance(mod, nn.MaxPool2d):
            sources.append((n.name, n.target, "maxpool", tuple(shp.out[n.name].shape[1:])))
        if n.op == "placeholder":
            analog.add(n.name)
        elif any(getattr(a, "name", None) in analog for a in n.all_input_nodes) and not (mod is not None and _is_if(mod)):
            analog.add(n.name)
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                macs += (mod.weight.numel() // mod.weight.shape[0]) * shp.out[n.name][0].numel()
    targets = [s[1] for s in sources]
    if len(set(targets)) != len(targets):
        raise RuntimeError("a neuron / MaxPool module is called more than once; spike counts would mix")
    cnt = _Counts(gm, shp.out, [s[0] for s in sources])
    cnt.run(x1)
    if cnt.total.requires_grad:
        cnt.total.backward()
    fan = {}
    for name, _, _, shape in sources:
        g = cnt.z[name].grad
        fan[name] = (torch.zeros(int(np.prod(shape)), dtype=torch.float64) if g is None
                     else g[0].reshape(-1).detach().clone())
    return sources, fan, int(macs)


class SpikingJellyRun:
    """SpikingJelly 2.0 ann2snn: Converter(recipe=RateCodingRecipe(loader, mode))."""

    def __init__(self, ann: nn.Module, x_cal: np.ndarray, y_cal: np.ndarray, mode: str):
        from spikingjelly.activation_based.ann2snn import Converter, RateCodingRecipe
        with contextlib.suppress(Exception):
            from spikingjelly.logger import logger as sj_logger
            sj_logger.remove()
        self.mode, self.note = mode, None
        loader = [(torch.from_numpy(x_cal), torch.from_numpy(y_cal))]  # one batch: the 256 samples
        model = copy.deepcopy(ann).eval()
        t0 = now()
        try:
            with quiet():
                self.snn = Converter(recipe=RateCodingRecipe(loader, mode=mode)).convert(model)
        except RuntimeError as e:
            if "too large" not in str(e):  # torch.quantile's size limit: calibrate in 4 batches of 64
                raise
            loader = [(torch.from_numpy(x_cal[i:i + 64]), torch.from_numpy(y_cal[i:i + 64]))
                      for i in range(0, len(x_cal), 64)]
            self.note = f"calibrated in 4 batches of 64 (SpikingJelly's momentum 0.1): {one_line(e)}"
            model = copy.deepcopy(ann).eval()
            t0 = now()
            with quiet():
                self.snn = Converter(recipe=RateCodingRecipe(loader, mode=mode)).convert(model)
        self.seconds = now() - t0
        self.snn.eval()
        self.sources, self.fanout, self.first_layer_macs = fanout_maps(self.snn, torch.from_numpy(x_cal[:1]))

    def simulate(self, x_np: np.ndarray, y_np: np.ndarray, checkpoints: list[int], batch: int = 100) -> dict:
        from spikingjelly.activation_based import functional
        snn, ckpts = self.snn, sorted(set(checkpoints))
        t_max = ckpts[-1]
        mods = dict(snn.named_modules())
        state = {}

        def hook_for(i, kind):
            def hook(mod, inp, out):
                flat = out.detach().reshape(out.shape[0], -1)
                if kind == "maxpool":
                    flat = flat > 0  # a pooled unit passing a spike this step
                state["run"][i] += flat.to(torch.float64).sum(dim=0)
            return hook

        hooks = [mods[t].register_forward_hook(hook_for(i, kind)) for i, (_, t, kind, _) in enumerate(self.sources)]
        fan = [self.fanout[s[0]] for s in self.sources]
        is_if = [s[2] == "if" for s in self.sources]
        correct = {t: 0 for t in ckpts}
        spikes = {t: 0.0 for t in ckpts}
        synops = {t: 0.0 for t in ckpts}
        per_layer = {t: np.zeros(len(self.sources)) for t in ckpts}
        try:
            t1 = now()
            with torch.no_grad():
                for s in range(0, len(x_np), batch):
                    x = torch.from_numpy(x_np[s:s + batch])
                    y = torch.from_numpy(y_np[s:s + batch])
                    functional.reset_net(snn)
                    state["run"] = [torch.zeros(int(np.prod(src[3])), dtype=torch.float64) for src in self.sources]
                    cum = None
                    for t in range(1, t_max + 1):
                        o = snn(x)
                        cum = o.clone() if cum is None else cum + o
                        if t in correct:
                            correct[t] += int((cum.argmax(dim=1) == y).sum())
                            for i, r in enumerate(state["run"]):
                                so = float(r @ fan[i])
                                synops[t] += so
                                per_layer[t][i] += so
                                if is_if[i]:
                                    spikes[t] += float(r.sum())
            functional.reset_net(snn)
            sim_seconds = now() - t1
        finally:
            for h in hooks:
                h.remove()
        n = len(x_np)
        rows = []
        for t in ckpts:
            rows.append({"T": t, "accuracy": correct[t] / n, "spikes_per_sample": spikes[t] / n,
                         "synops_per_sample": synops[t] / n,
                         "energy_pj_per_sample": E_AC_PJ * synops[t] / n + E_MAC_PJ * self.first_layer_macs * t,
                         "per_source_synops": [float(v) / n for v in per_layer[t]]})
        return {"sim_seconds": sim_seconds, "sim_T": t_max, "samples": n, "by_T": rows}


# --------------------------------------------------------------------------- per model

def run_model(name: str, cfg: dict, args, log=print) -> dict:
    tm = now()
    paths = tv_models.get(name, args.models_dir, log=log)
    train = json.loads(paths["info"].read_text())
    x_cal_all, y_cal_all = load_npz(paths["calib"])
    x_test, y_test = load_npz(paths["test"])
    sub = stratified(y_test, cfg["test_samples"])
    x, y = x_test[sub], y_test[sub]
    ann = tv_models.load_torch(name, args.models_dir)
    macs = ann_macs(ann, torch.from_numpy(x))
    res = {"model": name, "head_change": tv_models.HEAD_CHANGES.get(name, "none"), "training": train,
           "test_samples": len(x), "ann_macs": macs, "ann_energy_pj": E_MAC_PJ * macs,
           "ann_accuracy_torch": tv_models.torch_accuracy(ann, x, y),
           "ann_accuracy_onnxruntime": tv_models.onnx_accuracy(paths["onnx"], x, y),
           "has_maxpool": has_maxpool(paths["onnx"]), "adacal": [], "adacal_maxpool": [], "spikingjelly": [],
           "load_avg_start": os.getloadavg()}
    log(f"[{name}] ANN torch {100 * res['ann_accuracy_torch']:.2f} %, onnxruntime "
        f"{100 * res['ann_accuracy_onnxruntime']:.2f} % on {len(x)} test samples; {macs / 1e6:.2f} M MACs; "
        f"MaxPool: {'yes' if res['has_maxpool'] else 'no'}")

    # --- SpikingJelly (conversion does not depend on T: simulate once for the largest T)
    x_cal, y_cal = pick_calibration(x_cal_all, y_cal_all, CALIB_SAMPLES, 0)  # adacal's own choice of 256
    for mode in cfg["sj_modes"]:
        rec = {"method": f"SpikingJelly {mode}", "mode": mode, "tag": "FAILED"}
        try:
            run = SpikingJellyRun(ann, x_cal, y_cal, mode)
            rec.update(seconds=run.seconds, first_layer_macs=run.first_layer_macs, note=run.note,
                       neuron_layers=sum(s[2] == "if" for s in run.sources),
                       maxpool_units=sum(s[2] == "maxpool" for s in run.sources),
                       sources=[{"node": s[0], "kind": s[2], "shape": list(s[3]),
                                 "fanout_mean": float(run.fanout[s[0]].mean())} for s in run.sources])
            sim = run.simulate(x, y, cfg["sj_T"])
            rec.update(sim_seconds=sim["sim_seconds"], sim_T=sim["sim_T"], by_T=sim["by_T"])
            log(f"[{name}] {rec['method']}: convert {run.seconds:.2f} s, simulate {sim['sim_T']} steps x {len(x)} "
                f"{sim['sim_seconds']:.1f} s; acc by T " + " ".join(f"{r['T']}:{100 * r['accuracy']:.1f}"
                                                                   for r in sim["by_T"]))
            del run
        except Exception as e:
            rec["error"] = one_line(e)
            log(f"[{name}] {rec['method']}: ERROR {rec['error']}")
        res["spikingjelly"].append(rec)

    # --- adacal
    for T in cfg["adacal_T"]:
        for phi in cfg["adacal_phi"]:
            r = run_adacal(paths, x, y, T, phi, neuron=cfg["neuron"])
            res["adacal"].append(r)
            log(f"[{name}] adacal T={T} φ={phi} {cfg['neuron']}: " + (f"ERROR {short(r['error'], 200)}" if "error" in r else
                f"acc {100 * r['accuracy']:.2f} %, convert {r['seconds']:.1f} s, evaluate {r['eval_seconds']:.1f} s"))
    if res["has_maxpool"]:
        if not maxpool_option():
            res["adacal_maxpool_note"] = "this adacal has no ConvertOptions.maxpool: realisations not run"
            log(f"[{name}] {res['adacal_maxpool_note']}")
        else:
            default = ConvertOptions().maxpool
            for mp in MAXPOOL_REALISATIONS:
                for T in cfg["maxpool_T"]:
                    same = next((r for r in res["adacal"] if r["T"] == T and r["phi"] == 4
                                 and r.get("maxpool") in (None, mp) and mp == default), None)
                    if same is not None:  # the main table's row is this realisation (the default): reuse it
                        r = dict(same, maxpool=mp, reused_from_main_table=True)
                        res["adacal_maxpool"].append(r)
                        continue
                    r = run_adacal(paths, x, y, T, 4, mp)
                    res["adacal_maxpool"].append(r)
                    log(f"[{name}] adacal maxpool={mp} T={T} φ=4: " + (
                        f"ERROR {short(r['error'], 200)}" if "error" in r else
                        f"acc {100 * r['accuracy']:.2f} %, convert {r['seconds']:.1f} s, "
                        f"evaluate {r['eval_seconds']:.1f} s"))
    res["seconds"] = now() - tm
    res["load_avg_end"] = os.getloadavg()
    return res


# --------------------------------------------------------------------------- report

HEADER = (f"  {'method':<28} {'T':>4} {'acc %':>6} {'Δ ANN':>6} {'spikes':>10} {'synops (M)':>10}"
          f" {'E (µJ)':>8} {'E/E_ANN':>7} {'conv s':>7}")


def _num(v: float, width: int) -> str:
    s = f"{v:.3f}" if v >= 1 else f"{v:.4g}"
    return f"{s:>{width}}"


def fmt_row(label: str, T, r: dict, ann_acc: float, e_ann: float) -> str:
    if "error" in r:
        tag = r.get("tag") or ("REFUSED" if r.get("refused", True) else "CRASH")
        return f"  {label:<28} {T!s:>4}  {tag}: {short(r['error'], 160)}"
    return (f"  {label:<28} {T!s:>4} {100 * r['accuracy']:6.2f} {100 * (r['accuracy'] - ann_acc):+6.2f}"
            f" {r['spikes_per_sample']:10.0f} {_num(r['synops_per_sample'] / 1e6, 10)}"
            f" {_num(r['energy_pj_per_sample'] / 1e6, 8)} {r['energy_pj_per_sample'] / e_ann:7.3f}"
            f" {r['seconds']:7.2f}")


def model_table(res: dict) -> str:
    t = res["training"]
    ann = res["ann_accuracy_onnxruntime"]
    lines = [f"### {res['model']}", "",
             f"ANN: onnxruntime {100 * ann:.2f} %, torch {100 * res['ann_accuracy_torch']:.2f} % on "
             f"{res['test_samples']} test samples; {res['ann_macs'] / 1e6:.3g} M MACs, E_ANN "
             f"{res['ann_energy_pj'] / 1e6:.4g} µJ; trained {t['epochs']} epochs in {t['train_seconds']:.0f} s "
             f"(test {100 * t['test_accuracy_torch']:.2f} % on all {t['test_samples']}); head change: "
             f"{res['head_change']}; init change: {t.get('init_change', 'none')}; MaxPool: "
             f"{'yes' if res['has_maxpool'] else 'no'}; model done in "
             f"{res['seconds']:.0f} s.", "", "```", HEADER]
    for r in res["adacal"]:
        mp = f" ({r['maxpool']})" if res["has_maxpool"] and r.get("maxpool") else ""
        nr = f" {r['neuron']}" if r.get("neuron", "burst") != "burst" else ""
        lines.append(fmt_row(f"adacal φ={r['phi']} light{nr}{mp}", r["T"], r, ann, res["ann_energy_pj"]))
    if res["adacal_maxpool"] or res.get("adacal_maxpool_note"):
        lines.append("  -- MaxPool realisations (φ=4)")
        if res.get("adacal_maxpool_note"):
            lines.append(f"  ({res['adacal_maxpool_note']})")
        for r in res["adacal_maxpool"]:
            lines.append(fmt_row(f"adacal maxpool={r['maxpool']}" + ("*" if r.get("reused_from_main_table") else ""),
                                 r["T"], r, ann, res["ann_energy_pj"]))
    if any(r.get("reused_from_main_table") for r in res["adacal_maxpool"]):
        lines.append("  (* the default realisation: the main table's row, not converted again)")
    lines.append("  --")
    for p in res["spikingjelly"]:
        if "error" in p:
            lines.append(fmt_row(p["method"], "-", p, ann, res["ann_energy_pj"]))
            continue
        for r in p["by_T"]:
            lines.append(fmt_row(p["method"], r["T"], dict(r, seconds=p["seconds"]), ann, res["ann_energy_pj"]))
    lines.append("```")
    ratios = conversion_ratios(res)
    if ratios:
        lines.append(ratios)
    return "\n".join(lines)


def conversion_ratios(res: dict) -> str:
    """Conversion wall time side by side: adacal (each accepted row) vs SpikingJelly."""
    ok = [r for r in res["adacal"] + res["adacal_maxpool"] if "error" not in r and not r.get("reused_from_main_table")]
    sj = [p for p in res["spikingjelly"] if "error" not in p]
    if not ok or not sj:
        return ""
    med = float(np.median([r["seconds"] for r in ok]))
    parts = [f"{p['method']} {p['seconds']:.2f} s" for p in sj]
    return (f"conversion time: adacal median {med:.2f} s over {len(ok)} accepted settings; "
            + ", ".join(parts) + "; ratio adacal / SpikingJelly "
            + ", ".join(f"{med / max(p['seconds'], 1e-9):.1f}x" for p in sj))


def summary_table(run: dict) -> str:
    """One line per model: ANN, adacal at T=4 φ=4 (or why not), SpikingJelly max at T=32 / its largest T."""
    lines = ["| model | ANN (onnxruntime) | adacal T=4 φ=4 | SpikingJelly max, T=32 | SpikingJelly max, largest T |",
             "|---|---|---|---|---|"]
    for name, res in run["results"].items():
        ann = f"{100 * res['ann_accuracy_onnxruntime']:.2f} %"
        a = next((r for r in res["adacal"] if r["T"] == 4 and r["phi"] == 4), None)
        if a is None:
            ada = "not run"
        elif "error" in a:
            ada = "refused" if a.get("refused", True) else "crashed"
        else:
            ada = f"{100 * a['accuracy']:.2f} %, {a['synops_per_sample'] / 1e6:.3g} M synops"
        sj = next((p for p in res["spikingjelly"] if p["mode"] == "max"), None)
        if sj is None:
            s32 = slast = "not run"
        elif "error" in sj:
            s32 = slast = "failed"
        else:
            r32 = next((r for r in sj["by_T"] if r["T"] == 32), None)
            rl = sj["by_T"][-1]
            s32 = "-" if r32 is None else f"{100 * r32['accuracy']:.2f} %, {r32['synops_per_sample'] / 1e6:.3g} M synops"
            slast = f"T={rl['T']}: {100 * rl['accuracy']:.2f} %, {rl['synops_per_sample'] / 1e6:.3g} M synops"
        lines.append(f"| {name} | {ann} | {ada} | {s32} | {slast} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

def parse_list(s: str, typ=int):
    return [typ(v) for v in s.replace(" ", "").split(",") if v]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(tv_models.ALL_MODELS),
                    help="comma-separated subset of " + ", ".join(tv_models.ALL_MODELS))
    ap.add_argument("--quick", action="store_true",
                    help="fewer settings: adacal T=2,4 φ=4, MaxPool realisations at T=2, SpikingJelly 'max' "
                         "at T=8,16,32, 100 test samples (each unless given explicitly)")
    ap.add_argument("--test-samples", type=int, default=None,
                    help="evaluate every method on this many test samples, the same number per class "
                         "(default: the whole test split, 1,000; --quick 100)")
    ap.add_argument("--sj-modes", default=None, help="SpikingJelly modes (comma list, e.g. 'max,99.9%%'; "
                    "default max; 'none' to skip)")
    ap.add_argument("--timesteps", default=None, help="adacal T values (default 1,2,4,8; --quick: 2,4)")
    ap.add_argument("--max-spikes", default=None, help="adacal φ values (default 4,8; --quick: 4)")
    ap.add_argument("--maxpool-timesteps", default=None,
                    help="T values of the MaxPool realisations table, φ=4 (default 1,2,4; --quick: 2; 'none' to skip)")
    ap.add_argument("--sj-timesteps", default=None,
                    help="SpikingJelly read-out T values (default 8,16,32,64,128; --quick: 8,16,32)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on this shared 2-core machine 2 threads were 3-40x slower)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "torchvision"),
                    help="directory of the trained models / data (bench/tv_models.py's cache)")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "torchvision.json"),
                    help="where the results go (default bench/results/torchvision.json)")
    ap.add_argument("--neuron", default="burst", choices=("burst", "memory"),
                    help="adacal's neurons in the T x φ table (default burst; memory: --neuron memory)")
    args = ap.parse_args(argv)

    models = parse_list(args.models, str)
    bad = [m for m in models if m not in tv_models.ALL_MODELS]
    if bad:
        ap.error(f"unknown model(s) {', '.join(bad)}; choose from {', '.join(tv_models.ALL_MODELS)}")
    cfg = dict(QUICK if args.quick else FULL, neuron=args.neuron)
    if args.test_samples is not None:
        cfg["test_samples"] = args.test_samples
    if args.sj_modes is not None:
        cfg["sj_modes"] = [] if args.sj_modes == "none" else parse_list(args.sj_modes, str)
    for opt, key in (("timesteps", "adacal_T"), ("max_spikes", "adacal_phi"), ("maxpool_timesteps", "maxpool_T"),
                     ("sj_timesteps", "sj_T")):
        v = getattr(args, opt)
        if v is not None:
            cfg[key] = [] if v == "none" else sorted(set(parse_list(v)))
    if any(t < 1 for k in ("adacal_T", "adacal_phi", "maxpool_T", "sj_T") for t in cfg[k]):
        ap.error("timesteps and max spikes must be positive integers")
    args.models_dir = Path(args.out)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    logging.getLogger().setLevel(logging.WARNING)

    run = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
           "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                       "platform": platform.platform(), "python": platform.python_version(),
                       "torch": torch.__version__, "numpy": np.__version__, "load_avg_start": os.getloadavg()},
           "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
           "settings": cfg, "models": models,
           "adacal_options": [f.name for f in dataclasses.fields(ConvertOptions)],
           "adacal_has_maxpool_option": maxpool_option(),
           "conventions": {
               "spikes": "sum over neurons and steps of spikes (adacal: a burst of k counts k)",
               "synops": "spikes x fan-out; adacal: its runtime_sim.energy count; SpikingJelly: the same convention "
                         "on its converted fx graph (weights 1, average pooling folded, up to the next IF neurons "
                         "or the output); spikes through a MaxPool counted at its output (pooled units passing a "
                         "spike x their fan-out)",
               "energy": "adacal: its summary (4.6 pJ x input-layer MACs x T + 0.9 pJ x synops); SpikingJelly: "
                         "0.9 pJ x synops + 4.6 pJ x first-layer MACs x T; ANN 4.6 pJ x MACs (torch Conv2d/Linear "
                         "modules)",
               "seconds": "conversion wall time (evaluation separate: eval_seconds / sim_seconds)",
               "calibration": f"{CALIB_SAMPLES} training samples (adacal's pick_calibration, seed 0) for both",
               "test": "a fixed stratified subset of the 1,000-sample test split (first N/10 per class)"},
           "results": {}}
    run.update(tv_models.bench_models.git_state())
    with contextlib.suppress(Exception):
        from importlib.metadata import version
        run["machine"]["spikingjelly"] = version("spikingjelly")
        run["machine"]["torchvision"] = version("torchvision")
        run["machine"]["onnxruntime"] = version("onnxruntime")
    t_start = now()
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(msg, flush=True)

    for name in models:
        res = run_model(name, cfg, args, log)
        run["results"][name] = res
        print()
        print(model_table(res))
        print(flush=True)
        run["seconds"] = now() - t_start
        out.write_text(json.dumps(run, indent=1, default=float))  # after every model
    run["machine"]["load_avg_end"] = os.getloadavg()
    run["seconds"] = now() - t_start
    out.write_text(json.dumps(run, indent=1, default=float))
    print(summary_table(run))
    print(f"\ntotal {run['seconds']:.0f} s ({len(models)} models); results in {out}")


if __name__ == "__main__":
    main()
