"""Fold a zero Pad node into the convolution (or average pool) that reads it."""
from dataclasses import replace

from adacal import ir


def _add(a: ir.Pads, b: ir.Pads) -> ir.Pads:
    return tuple(x + y for x, y in zip(a, b))


def fold_pad(g: ir.Graph) -> ir.Graph:
    for name in g.names():
        n = g.node(name)
        if not isinstance(n.op, ir.Pad) or n.op.value != 0.0:
            continue
        c = g.sole_consumer(n.name)
        if c is None:
            continue
        if isinstance(c.op, ir.Conv2d):
            op = replace(c.op, padding=_add(c.op.padding, n.op.pads))
        elif isinstance(c.op, ir.AvgPool) and (c.op.count_include_pad or not any(c.op.padding)):
            # zeros padded before the pool are counted by the divisor
            op = replace(c.op, padding=_add(c.op.padding, n.op.pads), count_include_pad=True)
        else:
            continue
        g = g.replace_op(c.name, op).bypass(n.name)
    return g
