"""The float burst SNN as Xylo can take it: a feed-forward chain of hidden
layers (each an affine map unrolled into a dense matrix, then burst neurons)
and a linear readout.  Anything else is rejected here (UnsupportedError)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from adacal import ir
from adacal.errors import UnsupportedError

__all__ = ["LINEAR_OPS", "DenseLayer", "DenseReadout", "extract_chain"]

#: every op of a chain is unrolled into one dense matrix by running it on unit
#: vectors (_affine_map), so any exact linear map fits, data movement included
LINEAR_OPS = (ir.Dense, ir.Conv2d, ir.AvgPool, ir.GlobalAvgPool, ir.Flatten, ir.Reshape,
              ir.Affine, ir.BatchNorm, ir.Pad, ir.Identity, ir.Transpose, ir.Take, ir.ConvTranspose2d)


@dataclass(frozen=True, eq=False)
class DenseLayer:
    """One hidden layer: the affine map feeding it, as a dense matrix, and its
    burst neurons (per-channel values broadcast over positions)."""
    name: str
    weight: Optional[np.ndarray]  # (n, n_prev) float64 (None if too large to unroll)
    bias: np.ndarray  # (n,) dense + neuron bias per step
    threshold: np.ndarray  # (n,)
    v_init: np.ndarray  # (n,)
    max_spikes: int
    fanin_nnz: Optional[np.ndarray]  # (n_prev,) non-zero weights per source (= its fan-out)
    note: str = ""


@dataclass(frozen=True, eq=False)
class DenseReadout:
    """The linear map from the last hidden layer to the logits."""
    name: str
    weight: Optional[np.ndarray]  # (K, n_last)
    bias: np.ndarray  # (K,)
    n_classes: int


def _affine_map(ops: list, in_shape: tuple, max_entries: int = 4_000_000):
    """The affine map of a chain of linear ops: (A (out, in), b (out,),
    per-source non-zero counts (in,), out_shape).  A is None when it would
    exceed max_entries (only the counts are computed then)."""
    import torch

    from adacal.interpret import apply_op

    d_in = int(np.prod(in_shape))

    def run(x):
        for op in ops:
            x = apply_op(op, [x])
        return x

    with torch.no_grad():
        zero = run(torch.zeros((1,) + tuple(in_shape), dtype=torch.float64))
        out_shape = tuple(zero.shape[1:])
        b = zero.reshape(-1).numpy()
        d_out = b.size
        keep = d_in * d_out <= max_entries
        A = np.zeros((d_out, d_in)) if keep else None
        nnz = np.zeros(d_in, np.int64)
        chunk = max(1, min(d_in, 2_000_000 // max(d_out, 1)))
        for s in range(0, d_in, chunk):
            e = min(d_in, s + chunk)
            basis = torch.zeros((e - s, d_in), dtype=torch.float64)
            basis[torch.arange(e - s), torch.arange(s, e)] = 1.0
            cols = (run(basis.reshape((e - s,) + tuple(in_shape))).reshape(e - s, -1).numpy() - b)
            cols[np.abs(cols) < 1e-12] = 0.0
            nnz[s:e] = np.count_nonzero(cols, axis=1)
            if keep:
                A[:, s:e] = cols.T
    return A, b, nnz, out_shape


def _per_neuron(a, shape: tuple) -> np.ndarray:
    """A per-channel (axis 0) vector broadcast over the per-sample shape, flat."""
    a = np.asarray(a, np.float64)
    if a.size == int(np.prod(shape)):
        return a.reshape(-1)
    return np.broadcast_to(a.reshape((-1,) + (1,) * (len(shape) - 1)), shape).reshape(-1).copy()


def _check_chain(snn: ir.Graph) -> None:
    """UnsupportedError unless snn is Input -> [linear ops -> BurstNeuron]* ->
    linear ops, without branches."""
    nodes = snn.nodes
    if not isinstance(nodes[0].op, ir.Input):
        raise UnsupportedError("Xylo lowering: the graph does not start with its input")
    for i, n in enumerate(nodes[1:], 1):
        prev = nodes[i - 1].name
        if n.inputs != (prev,) or len(snn.consumers(prev)) != 1:
            raise UnsupportedError(
                f"Xylo lowering supports only a feed-forward chain Input -> [linear -> BurstNeuron]* -> "
                f"linear readout; node '{n.name}' ({n.kind}) reads {list(n.inputs)} and "
                f"'{prev}' feeds {len(snn.consumers(prev))} node(s) (branches, residual Add and "
                f"Concat cannot be placed)")
        if not isinstance(n.op, LINEAR_OPS + (ir.BurstNeuron,)):
            why = {ir.MaxPool: "a max pool has no Xylo form (its neurons sum weighted events); use AvgPool",
                   ir.SpikingMaxPool: "a max pool over spikes has no Xylo form (its neurons sum weighted "
                                      "events); use AvgPool",
                   ir.GlobalMaxPool: "a global max has no Xylo form; use a global average pool",
                   ir.Relu: "a ReLU that was not converted to burst neurons (run the conversion first)",
                   ir.Clip: "a Clip that is not a burst neuron"}.get(type(n.op), "not supported on Xylo")
            raise UnsupportedError(f"Xylo lowering: node '{n.name}' ({n.kind}): {why}")
        if isinstance(n.op, ir.BurstNeuron) and n.op.signed:
            raise UnsupportedError(f"Xylo lowering: node '{n.name}' (signed burst neurons): Xylo's spikes are "
                                   "unsigned, so a linear value carried by signed neurons cannot be placed")
        if isinstance(n.op, ir.BurstNeuron) and n.op.memory:
            raise UnsupportedError(f"Xylo lowering: node '{n.name}' (memory neurons): they take spikes back with "
                                   "negative bursts, and Xylo's spikes are unsigned; convert with neuron 'burst'")
    if snn.output != nodes[-1].name:
        raise UnsupportedError(f"Xylo lowering: the graph output '{snn.output}' is not the last node")


def _neuron_layer(node: ir.Node, ops: list, shape: tuple):
    """The DenseLayer of burst-neuron node fed by ops from shape (fanin_nnz
    still unset), the non-zero counts of its sources, and its output shape."""
    A, b, nnz, out_shape = _affine_map(ops, shape)
    op = node.op
    th = _per_neuron(op.threshold, out_shape)
    bias = b + _per_neuron(op.bias, out_shape)
    v0 = np.zeros_like(th) if op.v_init is None else _per_neuron(op.v_init, out_shape)
    note = ""
    if any(isinstance(o, ir.Conv2d) for o in ops):
        note = f"conv unrolled into a {th.size}x{int(np.prod(shape))} dense layer"
    return DenseLayer(node.name, A, bias, th, v0, int(op.max_spikes), None, note), nnz, out_shape


def extract_chain(snn: ir.Graph) -> tuple[list, DenseReadout]:
    """Split the graph into hidden layers (affine map + burst neurons) and the
    readout; reject anything that is not such a chain."""
    _check_chain(snn)
    nodes = snn.nodes
    layers, ops, shape = [], [], tuple(nodes[0].shape)
    for n in nodes[1:]:
        if isinstance(n.op, ir.BurstNeuron):
            layer, nnz, out_shape = _neuron_layer(n, ops, shape)
            if layers:
                layers[-1] = replace(layers[-1], fanin_nnz=nnz)
            layers.append(layer)
            ops, shape = [], out_shape
        else:
            ops.append(n.op)
    if not layers:
        raise UnsupportedError("Xylo lowering: the network has no burst-neuron layer (nothing spiking to place)")
    if not ops:
        raise UnsupportedError(f"Xylo lowering: the last neuron layer '{layers[-1].name}' is the graph output; "
                               f"a linear readout (Dense) must follow it")
    A, b, nnz, out_shape = _affine_map(ops, shape)
    layers[-1] = replace(layers[-1], fanin_nnz=nnz)
    return layers, DenseReadout(nodes[-1].name, A, b, int(np.prod(out_shape)))
