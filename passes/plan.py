"""The conversion plan: what each node of a cleaned-up graph becomes in the
burst-spiking network (docs/method.md, Conversion plan).  `adacal inspect`
prints it; the
conversion pass follows it and rejects what it marks unsupported.

Roles:
  input        the analog input (presented every step, direct encoding)
  spiking      conv/dense/transposed conv whose (pooled) output drives burst neurons
  synapse      conv on the skip path of a residual block (no neuron of its own)
  neuron       the ReLU that becomes the burst neurons of a spiking layer, or
               a Relay that becomes signed burst neurons (a linear value)
  residual     the Add whose sum is integrated by one population of neurons
  max pool     a max pool over spike payloads, realised over time (--maxpool)
  accumulator  the final conv/dense: a non-spiking readout averaged over T
  linear       pooling / flatten / reshape / concat / transpose / take: no
               neuron, folded or wired (transpose and take only move or copy
               values, so applied to spike payloads k*theta they are exact)
  unsupported  cannot be converted exactly (reason given)
  output head  a trailing Softmax / LogSoftmax the frontend dropped (the
               graph's output is the logits, which keep the argmax)
"""
from __future__ import annotations

from dataclasses import dataclass

from adacal import ir

#: Exact linear data movement the frontend produces (Transpose, Slice / Split /
#: edge or reflect Pad / nearest Resize as Take, ConvTranspose).
DATA_MOVEMENT = (ir.Transpose, ir.Take, ir.ConvTranspose2d)

#: payload routing: moves or copies values, so it commutes with a ReLU and
#: carries spike payloads exactly
ROUTING = (ir.Transpose, ir.Take)

PASS_THROUGH = (ir.AvgPool, ir.GlobalAvgPool, ir.Flatten, ir.Reshape) + ROUTING

#: the layers with weights whose output drives neurons (or the readout)
SYNAPSES = ir.LINEAR_LAYERS + (ir.ConvTranspose2d,)

MAXPOOLS = (ir.MaxPool, ir.GlobalMaxPool)
#: ops that become burst neurons
NEURON_OPS = (ir.Relu, ir.Relay)


@dataclass(frozen=True)
class PlanEntry:
    name: str
    op: str
    shape: ir.Shape
    params: int
    macs: int
    role: str
    detail: str = ""

    def as_dict(self) -> dict:
        return {"name": self.name, "op": self.op, "shape": list(self.shape), "params": self.params,
                "macs": self.macs, "role": self.role, "detail": self.detail}


def _follow(g: ir.Graph, name: str) -> tuple[ir.Node | None, list[str]]:
    """Follow sole consumers through linear pass-through ops; return the first
    other consumer (None at the graph output or a fan-out) and the path."""
    path = []
    while True:
        if g.is_output(name):
            return None, path
        cons = g.consumers(name)
        if len(cons) != 1:
            return (cons[0] if cons else None), path
        nxt = cons[0]
        if isinstance(nxt.op, PASS_THROUGH):
            path.append(nxt.name)
            name = nxt.name
            continue
        return nxt, path


def time_constant_values(g: ir.Graph) -> set[str]:
    """The values computed from the analog input with no neuron on the way
    (the same at every timestep)."""
    out = set()
    for n in g.nodes:
        if isinstance(n.op, ir.Input) or (
                not isinstance(n.op, NEURON_OPS + (ir.BurstNeuron,)) and all(i in out for i in n.inputs)):
            out.add(n.name)
    return out


def time_constant(g: ir.Graph, name: str) -> bool:
    return name in time_constant_values(g)


def payload_values(g: ir.Graph) -> set[str]:
    """The values that are spike payloads (or the analog input): neuron
    outputs moved, copied, concatenated or max-pooled, never weighted."""
    out = set()
    for n in g.nodes:
        if isinstance(n.op, NEURON_OPS + (ir.BurstNeuron, ir.Input)) or (
                isinstance(n.op, PASS_THROUGH + MAXPOOLS + (ir.Concat, ir.SpikingMaxPool))
                and all(i in out for i in n.inputs)):
            out.add(n.name)
    return out


def _hoisted_neurons(g: ir.Graph, pool: ir.Node) -> ir.Node | None:
    """The neurons a max pool of constant currents feeds directly, if any."""
    nxt = g.sole_consumer(pool.name)
    return nxt if nxt is not None and isinstance(nxt.op, ir.Relu) else None


def _layer_role(g: ir.Graph, n: ir.Node) -> tuple[str, str]:
    if len(g.consumers(n.name)) > 1:
        return "unsupported", "a conv/dense output read by several nodes without a ReLU in between"
    end, path = _follow(g, n.name)
    via = f" (through {', '.join(path)})" if path else ""
    if end is None:
        return "accumulator", f"non-spiking readout{via}, averaged over the timesteps"
    if isinstance(end.op, MAXPOOLS) and time_constant(g, n.name) and _hoisted_neurons(g, end) is not None:
        return "spiking", f"burst neurons at {_hoisted_neurons(g, end).name}{via}, through the max pool {end.name}"
    if isinstance(end.op, NEURON_OPS):
        signed = "signed " if isinstance(end.op, ir.Relay) else ""
        return "spiking", f"{signed}burst neurons at {end.name}{via}"
    if isinstance(end.op, ir.Add):
        after = g.consumers(end.name)
        if len(after) == 1 and isinstance(after[0].op, NEURON_OPS) and not g.is_output(end.name):
            first_layer = next((i for i in end.inputs if isinstance(g.node(i).op, SYNAPSES)), None)
            if len(end.inputs) > 2:  # a composed linear stream: its terms' synapses into one neuron layer
                role = "spiking" if n.name == first_layer and not path else "synapse"
                return role, f"one of {len(end.inputs)} synapses summed into the burst neurons at {after[0].name}{via}"
            if n.name == first_layer and not path:
                return "spiking", f"residual: burst neurons at {after[0].name} integrate this plus the skip input"
            return "synapse", f"skip path into the residual neurons at {after[0].name}{via}"
        return "unsupported", f"feeds Add '{end.name}' that is not followed by a ReLU"
    if isinstance(end.op, ir.Dense) and isinstance(n.op, ir.Dense) or (
            isinstance(end.op, ir.Dense) and path and all(isinstance(g.node(p).op, ir.Flatten) for p in path)):
        return "linear", f"no ReLU: folded into the next dense layer {end.name}"
    return "unsupported", (f"linear layer without a ReLU inside the network, followed by "
                           f"{end.kind} '{end.name}'; it cannot be folded exactly")


def _role(g: ir.Graph, n: ir.Node) -> tuple[str, str]:
    op = n.op
    if isinstance(op, ir.Input):
        return "input", "analog input, presented at every timestep"
    if isinstance(op, SYNAPSES):
        return _layer_role(g, n)
    if isinstance(op, NEURON_OPS):
        src = g.node(n.inputs[0])
        while isinstance(src.op, PASS_THROUGH) or isinstance(src.op, MAXPOOLS) and time_constant(g, src.name):
            src = g.node(src.inputs[0])
        what = "ReLU" if isinstance(op, ir.Relu) else "Relay"
        if not isinstance(src.op, SYNAPSES + (ir.Add,)):
            return "unsupported", f"{what} after {src.kind} '{src.name}', not after a conv/dense"
        if isinstance(op, ir.Relay):
            return "neuron", "signed burst neurons carrying a linear (unrectified) value"
        cap = f", capped at {op.cap:g} (threshold <= cap)" if op.cap is not None else ""
        return "neuron", f"burst integrate-and-fire neurons{cap}"
    if isinstance(op, ir.Add):
        after = g.consumers(n.name)
        if len(after) == 1 and isinstance(after[0].op, NEURON_OPS):
            return "residual", ("membrane integrates both inputs" if len(n.inputs) == 2
                                else f"membrane integrates all {len(n.inputs)} inputs")
        return "unsupported", "Add that is not followed by a ReLU"
    if isinstance(op, PASS_THROUGH) or isinstance(op, ir.Concat):
        what = "payload routing (moves/copies values)" if isinstance(op, ROUTING) else "no neuron"
        return "linear", f"{what}; folded into the next layer's synapses"
    if isinstance(op, MAXPOOLS + (ir.SpikingMaxPool,)):
        return _maxpool_role(g, n)
    if isinstance(op, ir.Affine):
        if n.inputs[0] == g.input.name:
            return "linear", "input preprocessing, applied to the analog input"
        return "unsupported", "constant scale/shift that cannot be folded exactly into a neighbouring conv/dense"
    if isinstance(op, ir.Clip):
        return "unsupported", f"Clip({op.lo}, {op.hi}) is not a ReLU form"
    if isinstance(op, ir.Pad):
        return "unsupported", "padding that cannot be folded into the following conv"
    return "unsupported", f"{n.kind} is not supported by the conversion"


def _maxpool_role(g: ir.Graph, n: ir.Node) -> tuple[str, str]:
    if time_constant(g, n.name):
        if _hoisted_neurons(g, n) is not None:
            return "linear", "max of constant currents, before the neurons (exact)"
        return "linear", "max of the analog input, presented at every timestep"
    if n.inputs[0] in payload_values(g):
        how = f" ({n.op.how})" if isinstance(n.op, ir.SpikingMaxPool) else ""
        src = g.node(n.inputs[0])
        hoist = ""
        if isinstance(src.op, ir.Relu) and src.inputs[0] in time_constant_values(g) and g.sole_consumer(src.name):
            hoist = f"; --maxpool hoist (the default) moves it before {src.name}, onto constant currents"
        return "max pool", f"max pool over spike payloads{how}, realised over time (--maxpool){hoist}"
    return "unsupported", ("a max pool of a value that changes in time but is not spike payloads "
                           "(a current without neurons after it) has no exact spiking form")


def conversion_plan(g: ir.Graph) -> list[PlanEntry]:
    """The plan for a cleaned-up graph (run `passes.cleanup` first)."""
    entries = []
    for n in g.nodes:
        role, detail = _role(g, n)
        entries.append(PlanEntry(n.name, n.kind, n.shape, ir.param_count(n.op), ir.macs(n),
                                 role, detail))
    head = getattr(g, "dropped_head", None)
    if head:
        name, _, op = head.rpartition(" (")
        entries.append(PlanEntry(name, op.rstrip(")"), g.output_shape, 0, 0, "output head",
                                 "dropped: keeps the argmax"))
    return entries
