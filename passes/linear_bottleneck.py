"""Linear values inside the network (MobileNetV2's and MNASNet's linear
bottlenecks, DenseNet's conv outputs that are concatenated without a ReLU,
ShuffleNet's depthwise convs): a conv/dense or residual Add whose output no
ReLU rectifies (docs/method.md, Linear bottlenecks).

Two exact-in-float realisations, chosen per value:
- `compose`: a conv output read only by a pointwise conv (1x1, stride 1, no
  padding, one group) is folded into that reader's weights — the product of
  two linear maps, with no neurons in between (exact, also in time);
- otherwise a `Relay` marks it: the value is carried by a population of
  signed burst neurons (quantised like any neuron layer; their payloads are
  signed, which Loihi 2's graded spikes carry).
"""
from __future__ import annotations

import numpy as np

from adacal import ir

_PASS = (ir.Flatten, ir.Reshape, ir.Transpose, ir.Take, ir.AvgPool, ir.GlobalAvgPool)
_VALUES = ir.LINEAR_LAYERS + (ir.ConvTranspose2d, ir.Add)


def _end_of_chain(g: ir.Graph, name: str) -> str:
    """Follow sole readers through pass-through ops: the last node before a
    fan-out or a non-pass-through reader."""
    while not g.is_output(name):
        nxt = g.sole_consumer(name)
        if nxt is None or not isinstance(nxt.op, _PASS):
            return name
        name = nxt.name
    return name


def _rectified(g: ir.Graph, name: str) -> bool:
    """Whether the value at `name` reaches the readout or a neuron only
    through pass-through ops, a ReLU / Relay right after, or a Dense it folds
    into (what the conversion already handles)."""
    end = _end_of_chain(g, name)
    if g.is_output(end):
        return True
    readers = g.consumers(end)
    if len(readers) != 1:
        return False
    r = readers[0].op
    if isinstance(r, (ir.Relu, ir.Relay)):
        return True
    if isinstance(r, ir.Add):  # a residual sum: decided at the Add
        return True
    # a dense reader (possibly through a Flatten) folds the layer before it
    return isinstance(r, ir.Dense) and isinstance(g.node(name).op, ir.LINEAR_LAYERS)


def _pointwise(op) -> bool:
    return isinstance(op, ir.Conv2d) and op.weight.shape[2:] == (1, 1) and op.stride == (1, 1) \
        and not any(op.padding) and op.groups == 1


def _dense_weight(op: ir.Conv2d) -> np.ndarray:
    """A (grouped) conv's weight as (C_out, C_in, kH, kW) with zeros across groups."""
    w = op.weight.astype(np.float64)
    if op.groups == 1:
        return w
    c_out, c_in_g = w.shape[:2]
    full = np.zeros((c_out, c_in_g * op.groups) + w.shape[2:])
    per = c_out // op.groups
    for o in range(c_out):
        gi = o // per
        full[o, gi * c_in_g:(gi + 1) * c_in_g] = w[o]
    return full


def _compose(g: ir.Graph, first: ir.Node, reader: ir.Node) -> ir.Graph:
    """reader(first(x)) as one layer named reader, reading first's input."""
    wb, bb = reader.op.weight.astype(np.float64), reader.op.bias.astype(np.float64)
    ba = first.op.bias.astype(np.float64)
    m = wb.reshape(wb.shape[0], -1)  # (C_out_b, C_out_a)
    w = np.einsum("om,mikl->oikl", m, _dense_weight(first.op))
    op = ir.Conv2d(w.astype(np.float32), (m @ ba + bb).astype(np.float32), first.op.stride,
                   first.op.padding, first.op.dilation, 1)
    g = g.replace_op(reader.name, op, inputs=first.inputs)
    return g.with_nodes(n for n in g.nodes if n.name != first.name)


def _relay(g: ir.Graph, name: str) -> ir.Graph:
    """A Relay node after `name`, read by all of name's readers."""
    node = g.node(name)
    relay = ir.Node(f"{name}/relay", ir.Relay(), (name,), node.shape)
    nodes = []
    for n in g.nodes:
        nodes.append(n if name not in n.inputs else
                     ir.Node(n.name, n.op, tuple(relay.name if i == name else i for i in n.inputs), n.shape))
        if n.name == name:
            nodes.append(relay)
    return ir.Graph(tuple(nodes), relay.name if g.output == name else g.output, g.dropped_head)


def carry_linear_values(g: ir.Graph) -> ir.Graph:
    """Compose or relay every unrectified conv/dense/Add output (see module doc)."""
    changed = True
    while changed:
        changed = False
        for n in g.nodes:
            if not isinstance(n.op, _VALUES) or _rectified(g, n.name):
                continue
            reader = g.sole_consumer(n.name)
            if reader is not None and isinstance(n.op, ir.Conv2d) and _pointwise(reader.op):
                g = _compose(g, n, reader)
            else:
                # a sum is integrated by its neurons directly; a layer's value may be pooled first
                g = _relay(g, n.name if isinstance(n.op, ir.Add) else _end_of_chain(g, n.name))
            changed = True
            break
    return g
