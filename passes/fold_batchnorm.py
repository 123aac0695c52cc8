"""Fold inference BatchNorm into the conv/dense before it (docs/method.md,
Graph clean-up).

W' = W * gamma / sqrt(var + eps),  b' = beta + (b - mean) * gamma / sqrt(var + eps).
A BatchNorm with no conv/dense to fold into becomes a per-channel Affine,
which `fold_scalings` may fold further.
"""
import numpy as np

from adacal import ir
from adacal.passes.fold_scalings import per_channel_affine, scale_rows


def fold_batchnorm(g: ir.Graph) -> ir.Graph:
    for name in g.names():
        n = g.node(name)
        if not isinstance(n.op, ir.BatchNorm):
            continue
        scale, shift = (a.astype(np.float64) for a in n.op.scale_shift())
        src = g.node(n.inputs[0])
        if isinstance(src.op, ir.LINEAR_LAYERS) and g.sole_consumer(src.name) is not None:
            g = g.replace_op(src.name, scale_rows(src.op, scale, shift)).bypass(n.name)
        else:
            g = g.replace_op(n.name, per_channel_affine(scale, shift, n.shape))
    return g
