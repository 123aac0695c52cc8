"""Fold average pooling of spike values into the next conv/dense (exact).

Hardware has no pooling stage between neurons: pooling k x k (stride k, no
padding) followed by a conv is the same conv with every kernel tap spread over
a k x k block, weight / k², stride x k and padding x k (pooled zeros are k x k
blocks of zeros); pooling (or global pooling) followed by Flatten -> Dense is a
Dense over the un-pooled map.  Overlapping or padded pooling, or pooling that
drops a remainder row, is rejected with the node named.
"""
from dataclasses import replace

import numpy as np

from adacal import ir
from adacal.errors import UnsupportedError


def _pool_factor(g: ir.Graph, p: ir.Node) -> tuple[int, int]:
    c, h, w = g.node(p.inputs[0]).shape
    if isinstance(p.op, ir.GlobalAvgPool):
        return h, w
    op = p.op
    if op.kernel != op.stride or any(op.padding) or op.ceil_mode or h % op.kernel[0] or w % op.kernel[1]:
        raise UnsupportedError(
            f"AvgPool '{p.name}' (kernel {op.kernel}, stride {op.stride}, padding {op.padding}) on a {h}x{w} "
            "map cannot be folded exactly into the next layer; hardware lowering needs non-overlapping, "
            "unpadded pooling that tiles the map")
    return op.kernel


def _spread(weight: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """Each tap of the last two axes repeated over a kh x kw block, / (kh kw)."""
    return np.repeat(np.repeat(weight, kh, axis=-2), kw, axis=-1) / (kh * kw)


def fold_pooling(g: ir.Graph) -> ir.Graph:
    for name in g.names():
        p = g.get(name)
        if p is None or not isinstance(p.op, (ir.AvgPool, ir.GlobalAvgPool)):
            continue
        kh, kw = _pool_factor(g, p)
        nxt = g.sole_consumer(p.name)
        src_shape = g.node(p.inputs[0]).shape
        if nxt is not None and isinstance(nxt.op, ir.Conv2d) and nxt.op.dilation == (1, 1):
            op = nxt.op
            t, l, b, r = op.padding
            conv = replace(op, weight=_spread(op.weight.astype(np.float64), kh, kw).astype(np.float32),
                           stride=(op.stride[0] * kh, op.stride[1] * kw), padding=(t * kh, l * kw, b * kh, r * kw))
            g = g.replace_op(nxt.name, conv).bypass(p.name)
            continue
        flat = nxt if nxt is not None and isinstance(nxt.op, ir.Flatten) else None
        dense = g.sole_consumer(flat.name) if flat is not None else None
        if dense is not None and isinstance(dense.op, ir.Dense):
            c, ph, pw = p.shape
            w = dense.op.weight.astype(np.float64).reshape(-1, c, ph, pw)
            w = _spread(w, kh, kw).reshape(w.shape[0], -1)
            g = g.replace_op(dense.name, replace(dense.op, weight=w.astype(np.float32)))
            g = g.bypass(p.name)
            nodes = [replace(n, shape=(int(np.prod(src_shape)),)) if n.name == flat.name else n for n in g.nodes]
            g = g.with_nodes(nodes)
            continue
        raise UnsupportedError(f"{p.kind} '{p.name}' is not followed by a conv or a flatten+dense, so it cannot "
                               "be folded into synapses for hardware")
    return g
