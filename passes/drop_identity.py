"""Remove Identity / inference-Dropout nodes."""
from adacal import ir


def drop_identity(g: ir.Graph) -> ir.Graph:
    for name in g.names():
        n = g.node(name)
        if isinstance(n.op, ir.Identity):
            g = g.bypass(n.name)
    return g
