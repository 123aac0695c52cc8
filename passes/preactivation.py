"""Pre-activation affine maps (DenseNet's and pre-activation ResNets'
BN -> ReLU after a Concat or a residual sum): a per-channel scale and shift
right before a ReLU that no conv/dense could absorb becomes a synapse of its
own — a depthwise 1x1 conv (a diagonal dense on features) — so the ReLU
becomes a population of burst neurons fed by it like any other
(docs/method.md, Pre-activation blocks).  Exact in the float IR.
"""
from __future__ import annotations

import numpy as np

from adacal import ir
from adacal.passes.fold_scalings import per_channel


def synapse_of(op: ir.Affine, shape: ir.Shape):
    """The conv/dense computing x * scale + shift per channel, or None when
    the scale or shift varies within a channel."""
    s, t = per_channel(op.scale, shape), per_channel(op.shift, shape)
    if s is None or t is None:
        return None
    if len(shape) == 1:
        return ir.Dense(np.diag(s).astype(np.float32), t.astype(np.float32))
    c = shape[0]
    return ir.Conv2d(s.reshape(c, 1, 1, 1).astype(np.float32), t.astype(np.float32), groups=c)


def affine_to_synapse(g: ir.Graph) -> ir.Graph:
    """Every Affine whose only reader is a ReLU and which does not read the
    graph input (input preprocessing stays analog) becomes a synapse."""
    for n in list(g.nodes):
        if not isinstance(n.op, ir.Affine) or n.inputs[0] == g.input.name:
            continue
        reader = g.sole_consumer(n.name)
        if reader is None or not isinstance(reader.op, ir.Relu) or len(n.shape) not in (1, 3):
            continue
        op = synapse_of(n.op, n.shape)
        if op is not None:
            g = g.replace_op(n.name, op)
    return g
