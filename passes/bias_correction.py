"""Calibration without training (docs/method.md, Calibration).

light:    per output channel, Δ_c = mean(time-averaged SNN output) − mean(ANN
          output) over the calibration batch; bias ← bias − Δ.
advanced: light, then a per-neuron initial potential
          v_init += T·(mean ANN − mean SNN) (mean over the batch).
Layers are corrected in order inside one simulation: each layer is corrected
from the spikes its (already corrected) predecessors really send it.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from adacal import ir
from adacal.runtime_sim.float_sim import run_neuron, simulate

MODES = ("none", "light", "advanced")


def _channel_mean(a: torch.Tensor) -> np.ndarray:
    """(N, C, ...) -> (C,) mean over samples and positions."""
    return a.transpose(0, 1).reshape(a.shape[1], -1).mean(dim=1).double().numpy()


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
        out, _ = run_neuron(op, current, T)
        delta = _channel_mean(out.mean(dim=0)) - _channel_mean(ann)
        op = replace(op, bias=(op.bias - delta).astype(np.float32))
        if mode == "advanced":
            out, _ = run_neuron(op, current, T)
            gap = (ann - out.mean(dim=0)).mean(dim=0).numpy() * T
            base = 0 if op.v_init is None else op.v_init
            op = replace(op, v_init=(base + gap).astype(np.float32))
        if progress:
            progress()
        return op

    _, snn = simulate(snn, x, T, neuron_hook=hook)
    return snn
