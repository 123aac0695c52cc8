"""Linear values inside the network (MobileNetV2's and MNASNet's linear
bottlenecks, DenseNet's conv outputs that are concatenated without a ReLU,
ShuffleNet's depthwise convs): a conv/dense or residual Add whose output no
ReLU rectifies (docs/method.md, Linear bottlenecks).

Two exact-in-float realisations, chosen per value:
- `compose`: a value read only by pointwise convs (1x1, stride 1, no
  padding, one group) and residual Adds is folded into those readers'
  weights.  The value is a sum of terms — convs over spiking sources, and
  spiking sources themselves, gathered through the Adds of a linear residual
  stream (MobileNetV2's) — and a pointwise reader R becomes the sum of R∘P
  over its conv terms P (the product of two linear maps) and R over its
  source terms: one Add of synapses into R's neurons, with no neurons in
  between (exact, also in time; more synapses).  Values and Adds nobody
  reads any more are dropped.
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


def _composed(first: ir.Node, reader: ir.Conv2d, bias: bool) -> ir.Conv2d:
    """reader(first(x)) as one conv over first's input (reader pointwise);
    without reader's own bias unless `bias`."""
    wb = reader.weight.astype(np.float64)
    m = wb.reshape(wb.shape[0], -1)  # (C_out_b, C_out_a)
    w = np.einsum("om,mikl->oikl", m, _dense_weight(first.op))
    b = m @ first.op.bias.astype(np.float64) + (reader.bias.astype(np.float64) if bias else 0.0)
    return ir.Conv2d(w.astype(np.float32), b.astype(np.float32), first.op.stride, first.op.padding,
                     first.op.dilation, 1)


def _terms(g: ir.Graph, name: str) -> list[str] | None:
    """The nodes whose values sum to `name`'s: a conv, or a spiking source
    (anything but an unrectified linear value), or the terms of an Add's
    inputs; None if the sum has another linear value in it."""
    op = g.node(name).op
    if isinstance(op, ir.Add):
        out = []
        for i in g.node(name).inputs:
            t = _terms(g, i)
            if t is None:
                return None
            out += t
        return out
    if isinstance(op, ir.Conv2d) or not isinstance(op, _VALUES):
        return [name]
    return None


def _composable(g: ir.Graph, name: str) -> bool:
    """Whether `name` is read only by pointwise convs (at least one) and
    Adds, and is a sum of distinct terms (a term counted twice, as in
    Add(a, a), is left to a Relay)."""
    readers = g.consumers(name)
    if g.is_output(name) or not any(_pointwise(r.op) for r in readers) \
            or not all(_pointwise(r.op) or isinstance(r.op, ir.Add) for r in readers):
        return False
    terms = _terms(g, name)
    return terms is not None and len(set(terms)) == len(terms)


def _compose(g: ir.Graph, name: str) -> ir.Graph:
    """Every pointwise reader R of `name` as the sum of R over name's terms
    (see the module doc); the first term carries R's bias."""
    terms = _terms(g, name)
    readers = {r.name for r in g.consumers(name) if _pointwise(r.op)}
    nodes = []
    for n in g.nodes:
        if n.name not in readers:
            nodes.append(n)
            continue
        parts = []
        for k, t in enumerate(terms):
            tn = g.node(t)
            if isinstance(tn.op, ir.Conv2d):
                op, src = _composed(tn, n.op, bias=k == 0), tn.inputs[0]
            else:
                op, src = ir.Conv2d(n.op.weight, n.op.bias if k == 0 else np.zeros_like(n.op.bias), n.op.stride,
                                    n.op.padding, n.op.dilation, 1), t
            parts.append(ir.Node(n.name if len(terms) == 1 else f"{n.name}/{t}", op, (src,), n.shape))
        nodes += parts
        if len(parts) > 1:
            nodes.append(ir.Node(n.name, ir.Add(), tuple(p.name for p in parts), n.shape))
    return _prune(g.with_nodes(nodes))


def _prune(g: ir.Graph) -> ir.Graph:
    """g without the nodes whose values reach nothing (the output, every
    node's inputs)."""
    live = {g.output}
    for n in reversed(g.nodes):
        if n.name in live:
            live.update(n.inputs)
    return g.with_nodes(n for n in g.nodes if n.name in live or isinstance(n.op, ir.Input))


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
            if _composable(g, n.name):
                g = _compose(g, n.name)
            else:
                # a sum is integrated by its neurons directly; a layer's value may be pooled first
                g = _relay(g, n.name if isinstance(n.op, ir.Add) else _end_of_chain(g, n.name))
            changed = True
            break
    return g
