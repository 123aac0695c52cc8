"""Where a max pool sits relative to the ReLU it meets (docs/method.md, Max
pooling).  Both moves are exact: a max commutes with any monotone
non-decreasing map applied elementwise, and a (capped) ReLU is one.

- `sink_maxpool` (part of clean-up): conv -> MaxPool -> ReLU becomes
  conv -> ReLU -> MaxPool, so every max pool reads neuron payloads;
- `hoist_maxpool` (the `hoist` realisation): conv -> ReLU -> MaxPool, where the
  conv reads the analog input (its current is constant in time), becomes
  conv -> MaxPool -> ReLU: the neurons then fire on the max of constant
  currents, exactly as the ANN, with a quarter (for 2x2) as many neurons.
"""
from __future__ import annotations

from dataclasses import replace

from adacal import ir
from adacal.passes.plan import MAXPOOLS, time_constant_values

def _swap(g: ir.Graph, first: ir.Node, second: ir.Node) -> ir.Graph:
    """first -> second (second the sole reader of first) becomes second' ->
    first' with the same names: second now reads first's input and first
    reads second; shapes follow."""
    from adacal.interpret import infer_shape
    src_shape = g.node(first.inputs[0]).shape
    new_second = replace(second, inputs=first.inputs, shape=infer_shape(second.op, [src_shape]))
    new_first = replace(first, inputs=(second.name,), shape=infer_shape(first.op, [new_second.shape]))
    nodes = []
    for n in g.nodes:
        if n.name == first.name:
            nodes.append(new_second)
        elif n.name == second.name:
            nodes.append(new_first)
        else:
            nodes.append(replace(n, inputs=tuple(first.name if i == second.name else i for i in n.inputs))
                         if second.name in n.inputs else n)
    # second's readers now read first (which has second's old role in the chain)
    output = first.name if g.output == second.name else g.output
    return ir.Graph(tuple(nodes), output, g.dropped_head)


def sink_maxpool(g: ir.Graph) -> ir.Graph:
    """MaxPool -> ReLU becomes ReLU -> MaxPool (exact)."""
    changed = True
    while changed:
        changed = False
        for n in g.nodes:
            if isinstance(n.op, MAXPOOLS):
                relu = g.sole_consumer(n.name)
                if relu is not None and isinstance(relu.op, ir.Relu):
                    g = _swap(g, n, relu)
                    changed = True
                    break
    return g


def hoist_maxpool(g: ir.Graph) -> ir.Graph:
    """ReLU -> MaxPool becomes MaxPool -> ReLU where the ReLU's input is
    constant in time (a conv/dense of the analog input) and the MaxPool is the
    ReLU's only reader."""
    changed = True
    while changed:
        changed = False
        for n in g.nodes:
            if isinstance(n.op, ir.Relu) and n.inputs[0] in time_constant_values(g):
                pool = g.sole_consumer(n.name)
                if pool is not None and isinstance(pool.op, MAXPOOLS):
                    g = _swap(g, n, pool)
                    changed = True
                    break
    return g
