"""Calibration through the exact Xylo arithmetic: the float targets, then
each hidden layer's charge and the output biases corrected until the
bit-exact simulator's means match them (docs/xylo.md, "Calibration")."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adacal.backends.xylo.spec import XyloSpec
from adacal.errors import AdacalError
from adacal.runtime_sim import xylo_sim

__all__ = ["FloatReference", "float_reference", "calibrate_layers", "calibrate_readout"]

I16_MAX = 2 ** 15 - 1
I16_MIN = -(2 ** 15)


@dataclass(frozen=True, eq=False)
class FloatReference:
    """The float network on the calibration set."""
    outputs: np.ndarray  # the float SNN's readout per step
    spikes: list  # per layer (N, T, n) Xylo events implied by the float SNN
    targets: list  # per layer (n,) mean activation to reach (ANN, else float SNN)
    out_target: np.ndarray  # (K,) mean logit to reach


def float_reference(snn, ann, layers, x_cal: np.ndarray, T: int, event_gain: float) -> FloatReference:
    """Run the float SNN on x_cal; the calibration targets are the ANN's mean
    activations and logits when ``ann`` is given, else the float SNN's."""
    from adacal.runtime_sim.float_sim import simulate

    names = [l.name for l in layers]
    sim, _ = simulate(snn, x_cal, T, keep_steps=tuple(names))
    N = len(x_cal)
    spikes = []
    for l in layers:
        v = sim.kept_steps[l.name].reshape(T, N, -1)
        spikes.append(np.transpose(np.round(v / l.threshold * event_gain), (1, 0, 2)))
    if ann is not None:
        missing = [n for n in names if ann.get(n) is None]
        if missing:
            raise AdacalError(f"the ANN given to lower_xylo has no node {missing[0]!r} (the SNN's neuron layers "
                              f"must keep the ANN's ReLU names: pass conv.ann of the same conversion)")
        acts = ann.activations(x_cal, names)
        targets = [np.asarray(acts[n], np.float64).reshape(N, -1).mean(axis=0) for n in names]
        out_target = np.asarray(ann.run(x_cal), np.float64).reshape(N, -1).mean(axis=0)
    else:
        targets = [np.asarray(sim.kept_steps[n], np.float64).reshape(T, N, -1).mean(axis=(0, 1)) for n in names]
        out_target = sim.outputs.reshape(T, N, -1).mean(axis=(0, 1))
    return FloatReference(sim.outputs, spikes, targets, out_target)


def _move_exact(spec: XyloSpec, layer: int, lo: int, hi: int, charge: np.ndarray, unit_of: dict,
                T: int) -> XyloSpec:
    """Exact neurons: move the start potential (bias) by the charge; where it
    would drop below 1, lower the bias unit's weight instead."""
    s_rec = spec.weight_shift_rec
    b_int = spec.bias.astype(np.int64).copy()
    w_rec = spec.weights_rec.astype(np.int64).copy()
    h = b_int[lo:hi] + np.round(charge)
    for j in np.nonzero(h < 1)[0]:  # below the start-potential floor: lower the bias current
        row, cb = unit_of[(layer, j)]
        unit = cb * 2 ** s_rec * T
        k = int(np.ceil((1 - h[j]) / unit))
        new_w = max(-128, int(w_rec[row, lo + j, 0]) - k)
        h[j] += (int(w_rec[row, lo + j, 0]) - new_w) * unit
        w_rec[row, lo + j, 0] = new_w
    b_int[lo:hi] = np.clip(h, 1, I16_MAX)
    return spec.replace(bias=b_int, weights_rec=w_rec)


def _move_leaky(spec: XyloSpec, lo: int, hi: int, charge: np.ndarray, window: int) -> XyloSpec:
    """Leaky neurons: spread the charge over the window as bias current."""
    b_int = spec.bias.astype(np.int64).copy()
    b_int[lo:hi] = np.clip(np.round(b_int[lo:hi] + charge / window), I16_MIN, I16_MAX)
    return spec.replace(bias=b_int)


def calibrate_layers(spec: XyloSpec, enc_cal: np.ndarray, layers, ranges, windows, event_values, thresholds,
                     targets, T: int, iters: int, exact: bool, unit_of: dict, log=None):
    """Layer by layer in order: run the bit-exact simulator on the encoded
    calibration set, compare each neuron's time-averaged output (events in
    its window x event value / T) with its target, and move its charge by the
    difference, ``iters`` times.  Returns (spec, {layer: mean |delta| per
    iteration})."""
    history = {}
    for i, l in enumerate(layers):
        lo, hi = ranges[i]
        win, ev = windows[i], event_values[i]
        hist = []
        for it in range(iters + 1):
            res = xylo_sim.simulate(spec, enc_cal, record_isyn=False)
            e = res.spikes[:, :win, lo:hi].sum(axis=1).astype(np.float64)  # (N, n)
            delta = (e * ev).mean(axis=0) / T - targets[i]
            hist.append(float(np.abs(delta).mean()))
            if it == iters:
                break
            # charge (LSB over the window) that moves the mean by -delta; a
            # neuron silent on most samples reacts only on the others
            charge = -delta / ev * T * thresholds[i] / np.maximum((e > 0).mean(axis=0), 0.25)
            if exact:
                spec = _move_exact(spec, i, lo, hi, charge, unit_of, T)
            else:
                spec = _move_leaky(spec, lo, hi, charge, win)
        history[l.name] = hist
        if log:
            log(f"xylo calibration {l.name}: mean |delta| {hist[0]:.4g} -> {hist[-1]:.4g}")
    return spec, history


def calibrate_readout(spec: XyloSpec, enc_cal: np.ndarray, gain: float, T: int, out_target: np.ndarray,
                      bias_steps: int, rounds: int = 3):
    """Correct bias_out so that the mean output Vmem after the last step is
    G T times the mean target logit.  Returns (spec, mean |error| in float
    units per round)."""
    history = []
    for _ in range(rounds):
        res = xylo_sim.simulate(spec, enc_cal, record_isyn=False)
        got = res.vmem_out[:, -1, :].astype(np.float64).mean(axis=0)
        delta = got - gain * T * out_target
        history.append(float(np.abs(delta).mean() / (gain * T)))
        bo = np.clip(np.round(spec.bias_out.astype(np.int64) - delta / bias_steps), I16_MIN, I16_MAX)
        spec = spec.replace(bias_out=bo.astype(np.int64))
    return spec, history
