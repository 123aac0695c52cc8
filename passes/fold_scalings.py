"""Fold constant scalings (Affine: Mul/Div/Add/Sub by constants) into the
neighbouring conv/dense where that is exact:

- after a conv/dense:  per-output-channel scale/shift -> rows of W and b;
- before a dense (also through a Flatten): per-feature scale/shift -> columns;
- before a conv: per-input-channel scale, and a shift only if the conv does not
  pad (zero padding of a shifted input is not a shifted padding);
- two Affines in a row merge; an identity Affine disappears.
What cannot be folded exactly stays an Affine node (the plan reports it).
"""
from dataclasses import replace

import numpy as np

from adacal import ir


def per_channel(arr: np.ndarray, shape: ir.Shape) -> np.ndarray | None:
    """The per-channel (axis 0 of the per-sample shape) vector of a constant
    broadcast to `shape`, or None if it varies within a channel."""
    full = np.broadcast_to(np.asarray(arr, np.float64), shape)
    if len(shape) == 1:
        return full.copy()
    first = full.reshape(shape[0], -1)[:, :1]
    if not np.all(full.reshape(shape[0], -1) == first):
        return None
    return first.reshape(-1).copy()


def per_channel_affine(scale: np.ndarray, shift: np.ndarray, shape: ir.Shape) -> ir.Affine:
    """An Affine that applies per-channel vectors to a tensor of `shape`."""
    bshape = (-1,) + (1,) * (len(shape) - 1)
    return ir.Affine(scale.reshape(bshape).astype(np.float32), shift.reshape(bshape).astype(np.float32))


def scale_rows(op, scale: np.ndarray, shift: np.ndarray):
    """(W x + b) * scale + shift as a new conv/dense (per output channel)."""
    w = op.weight.astype(np.float64)
    w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    b = op.bias.astype(np.float64) * scale + shift
    return replace(op, weight=w.astype(np.float32), bias=b.astype(np.float32))


def _scale_columns(op, scale: np.ndarray, shift: np.ndarray):
    """W (x * scale + shift) + b as a new conv/dense (per input channel/feature)."""
    w = op.weight.astype(np.float64)
    if isinstance(op, ir.Dense):
        b = op.bias.astype(np.float64) + w @ shift
        w = w * scale[None, :]
    else:
        c_out, c_in_g = w.shape[:2]
        # input channel seen by W[o, j] is (o // (c_out/groups)) * c_in_g + j
        idx = (np.arange(c_out)[:, None] // (c_out // op.groups)) * c_in_g + np.arange(c_in_g)[None, :]
        b = op.bias.astype(np.float64) + (w.sum(axis=(2, 3)) * shift[idx]).sum(axis=1)
        w = w * scale[idx][:, :, None, None]
    return replace(op, weight=w.astype(np.float32), bias=b.astype(np.float32))


def _fold_after(g: ir.Graph, n: ir.Node) -> ir.Graph | None:
    src = g.node(n.inputs[0])
    if not isinstance(src.op, ir.LINEAR_LAYERS) or g.sole_consumer(src.name) is None:
        return None
    s, t = per_channel(n.op.scale, n.shape), per_channel(n.op.shift, n.shape)
    if s is None or t is None:
        return None
    return g.replace_op(src.name, scale_rows(src.op, s, t)).bypass(n.name)


def _fold_before(g: ir.Graph, n: ir.Node) -> ir.Graph | None:
    nxt = g.sole_consumer(n.name)
    if nxt is None:
        return None
    through = None
    if isinstance(nxt.op, ir.Flatten) and g.sole_consumer(nxt.name) is not None:
        through, nxt = nxt, g.sole_consumer(nxt.name)
    if isinstance(nxt.op, ir.Dense):
        shape = (int(np.prod(n.shape)),)
        s = np.broadcast_to(n.op.scale, n.shape).reshape(shape).astype(np.float64)
        t = np.broadcast_to(n.op.shift, n.shape).reshape(shape).astype(np.float64)
    elif isinstance(nxt.op, ir.Conv2d) and through is None:
        s, t = per_channel(n.op.scale, n.shape), per_channel(n.op.shift, n.shape)
        if s is None or t is None or (any(nxt.op.padding) and np.any(t != 0)):
            return None
    else:
        return None
    return g.replace_op(nxt.name, _scale_columns(nxt.op, s, t)).bypass(n.name)


def _merge_pair(g: ir.Graph, n: ir.Node) -> ir.Graph | None:
    src = g.node(n.inputs[0])
    if not isinstance(src.op, ir.Affine) or g.sole_consumer(src.name) is None:
        return None
    s1, t1 = src.op.scale.astype(np.float64), src.op.shift.astype(np.float64)
    s2, t2 = n.op.scale.astype(np.float64), n.op.shift.astype(np.float64)
    merged = ir.Affine((s1 * s2).astype(np.float32), (t1 * s2 + t2).astype(np.float32))
    return g.replace_op(src.name, merged).bypass(n.name)


def fold_scalings(g: ir.Graph) -> ir.Graph:
    changed = True
    while changed:
        changed = False
        for name in g.names():
            n = g.get(name)
            if n is None or not isinstance(n.op, ir.Affine):
                continue
            if np.all(n.op.scale == 1) and np.all(n.op.shift == 0):
                new = g.bypass(name)
            else:
                new = _merge_pair(g, n) or _fold_after(g, n) or _fold_before(g, n)
            if new is not None:
                g, changed = new, True
                break
    return g
