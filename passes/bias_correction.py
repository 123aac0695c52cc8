"""Calibration without training (docs/method.md, Calibration).

light:    per output channel, Δ_c = mean(time-averaged SNN output) − mean(ANN
          output) over the calibration batch; bias ← bias − Δ.
advanced: light, then a per-neuron initial potential
          v_init += T·(mean ANN − mean SNN) (mean over the batch).
Layers are corrected in order inside one simulation: each layer is corrected
from the spikes its (already corrected) predecessors really send it.

`correct` holds all calibration samples in one batch; `correct_streamed` gives
the same corrections (to float rounding: its means are float64 sums over the
batches) with memory bounded by one batch: it moves every batch on by one
neuron layer at a time and keeps the batches' live values in a temporary
directory in between (docs/method.md, "Streamed calibration").
"""
from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from adacal import ir
from adacal.device import to_device
from adacal.runtime_sim.float_sim import run_neuron, run_segment, simulate

MODES = ("none", "light", "advanced")


def channel_sum(a: torch.Tensor) -> np.ndarray:
    """(N, C, ...) -> (C,) float64 sum over samples and positions.  Means are
    float64 sums divided by the count, in memory and streamed alike, so that
    the batch size changes them only in the last bits of float64."""
    return a.cpu().transpose(0, 1).reshape(a.shape[1], -1).double().sum(dim=1).numpy()


def neuron_sum(out: torch.Tensor) -> np.ndarray:
    """A neuron layer's output (T, N, C, ...) -> its time average summed
    over the samples, per neuron: float64 (C, ...)."""
    return out.cpu().mean(dim=0).double().sum(dim=0).numpy()


def with_bias_correction(op: ir.BurstNeuron, snn_mean: np.ndarray, ann_mean: np.ndarray) -> ir.BurstNeuron:
    """light: bias − (SNN channel mean − ANN channel mean)."""
    return replace(op, bias=(op.bias - (snn_mean - ann_mean)).astype(np.float32))


def with_potential_correction(op: ir.BurstNeuron, ann_sum: np.ndarray, snn_sum: np.ndarray, n: int,
                              T: int) -> ir.BurstNeuron:
    """advanced: start potential + T · (ANN − SNN) per-neuron means over n samples."""
    base = 0 if op.v_init is None else op.v_init
    return replace(op, v_init=(base + (ann_sum - snn_sum) / n * T).astype(np.float32))


def correct(snn: ir.Graph, acts: dict[str, np.ndarray], x: np.ndarray, T: int, mode: str = "light",
            progress=None) -> ir.Graph:
    """Bias (and for 'advanced' potential) correction of every neuron layer.

    acts[name]: the ANN's post-ReLU values at each neuron layer for x.
    progress: optional callable, called once per corrected layer.
    """
    if mode == "none":
        return snn

    def hook(node: ir.Node, current: torch.Tensor) -> ir.BurstNeuron:
        op = node.op
        ann = torch.from_numpy(np.asarray(acts[node.name], np.float32))
        count = ann.numel() // ann.shape[1]  # values per channel
        out, _ = run_neuron(op, current, T)
        op = with_bias_correction(op, channel_sum(out.mean(dim=0)) / count, channel_sum(ann) / count)
        if mode == "advanced":
            out, _ = run_neuron(op, current, T)
            op = with_potential_correction(op, ann.double().sum(dim=0).numpy(), neuron_sum(out), len(ann), T)
        if progress:
            progress()
        return op

    _, snn = simulate(snn, x, T, neuron_hook=hook)
    return snn


class _Spill:
    """The live values of each batch between two layers, as .npy files in a
    temporary directory (removed on exit)."""

    def __init__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="adacal-calibration-")
        self.path = Path(self._dir.name)
        self._names: dict[int, list[str]] = {}

    def save(self, b: int, values: dict) -> None:
        self._names[b] = list(values)
        for i, v in enumerate(values.values()):
            np.save(self.path / f"{b}-{i}.npy", v.cpu().numpy())

    def load(self, b: int) -> dict:
        return {name: to_device(torch.from_numpy(np.load(self.path / f"{b}-{i}.npy")))
                for i, name in enumerate(self._names[b])}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._dir.cleanup()


def correct_streamed(snn: ir.Graph, stats: dict, batches, T: int, mode: str = "light", progress=None) -> ir.Graph:
    """correct() over the calibration samples in batches.

    stats[name]: passes.ann_statistics.LayerStats of the ANN at each neuron
    layer (channel means; neuron means for 'advanced').  batches(): a fresh
    iterator of the calibration samples' float32 batches."""
    if mode == "none":
        return snn
    positions = [i for i, n in enumerate(snn.nodes) if isinstance(n.op, ir.BurstNeuron)]
    with _Spill() as spill:
        nb, at = 0, 1
        for j in positions:
            node = snn.nodes[j]
            op = node.op
            total = np.zeros(len(np.atleast_1d(op.bias)))
            source = enumerate(batches()) if at == 1 else ((b, None) for b in range(nb))
            for b, xb in source:
                values = spill.load(b) if xb is None else {snn.input.name: to_device(torch.from_numpy(xb))[None]}
                values = run_segment(snn, values, T, at, j)
                out, _ = run_neuron(op, values[node.inputs[0]], T)
                total += channel_sum(out.mean(dim=0))
                spill.save(b, values)
                nb = max(nb, b + 1)
            st = stats[node.name]
            op = with_bias_correction(op, total / st.values_per_channel, st.channel_mean)
            if mode == "advanced":
                snn_sum = 0.0
                for b in range(nb):
                    out, _ = run_neuron(op, spill.load(b)[node.inputs[0]], T)
                    snn_sum = snn_sum + neuron_sum(out)
                op = with_potential_correction(op, st.neuron_sum, snn_sum, st.samples, T)
            snn = snn.replace_op(node.name, op)
            at = j
            if progress:
                progress()
    return snn
