"""Recognise ReLU forms: Clip(0, inf) -> Relu, Clip(0, c) -> capped Relu (ReLU6)."""
from adacal import ir


def recognise_relu(g: ir.Graph) -> ir.Graph:
    for name in g.names():
        n = g.node(name)
        if isinstance(n.op, ir.Clip) and n.op.lo == 0.0 and (n.op.hi is None or n.op.hi > 0):
            cap = None if n.op.hi is None or n.op.hi == float("inf") else float(n.op.hi)
            g = g.replace_op(n.name, ir.Relu(cap))
    return g
