"""Conversion: cleaned-up ANN graph -> spiking graph (docs/method.md,
Conversion plan and Burst neurons).

Follows the conversion plan: every ReLU becomes a population of burst neurons
(threshold 1 until `thresholds` sets it), every Relay one of signed burst
neurons, every max pool over spike payloads a `SpikingMaxPool` with the chosen
realisation, dense layers without a ReLU fold into the next dense, and
anything the plan marks unsupported is rejected with the plan's reasons.  Everything else (conv/dense synapses, residual Add, pooling,
concat, flatten, the readout) stays as it is: its meaning is the same per step.
"""
from dataclasses import replace

import numpy as np

from adacal import ir
from adacal.errors import UnsupportedError
from adacal.passes.plan import ROUTING, conversion_plan
from adacal.runtime_sim.maxpool import REALISATIONS

#: --maxpool: the realisations of runtime_sim.maxpool, and `hoist` (running,
#: with a max pool over neurons fed by the analog input moved before them:
#: passes/maxpool_placement.py)
MAXPOOL_CHOICES = REALISATIONS + ("hoist",)
#: ConvertOptions.neuron: plain burst neurons, or memory neurons that may take spikes back (negative bursts)
NEURON_CHOICES = ("burst", "memory")


def _fold_dense_into_next(g: ir.Graph, name: str) -> ir.Graph:
    first = g.node(name)
    nxt = g.sole_consumer(name)
    while isinstance(nxt.op, ir.Flatten):  # a dense output is already flat
        g = g.bypass(nxt.name)
        nxt = g.sole_consumer(name)
    w1, b1 = first.op.weight.astype(np.float64), first.op.bias.astype(np.float64)
    w2, b2 = nxt.op.weight.astype(np.float64), nxt.op.bias.astype(np.float64)
    fused = ir.Dense((w2 @ w1).astype(np.float32), (w2 @ b1 + b2).astype(np.float32))
    g = g.replace_op(nxt.name, fused, inputs=first.inputs)
    return g.with_nodes(n for n in g.nodes if n.name != name)


def to_spiking(g: ir.Graph, max_spikes: int, maxpool: str = "running", neuron: str = "burst") -> ir.Graph:
    """Replace ReLUs by burst neurons with cap `max_spikes` (φ), Relays by
    signed ones, and max pools over payloads by the `maxpool` realisation
    (`hoist` must have been applied to g already; its other max pools run).
    neuron "memory": the ReLUs' neurons are memory neurons
    (ir.BurstNeuron.memory), except those a max pool over payloads reads (a
    running maximum cannot take a spike back)."""
    if max_spikes < 1:
        raise UnsupportedError(f"max spikes per step must be >= 1, got {max_spikes}")
    if maxpool not in MAXPOOL_CHOICES:
        raise UnsupportedError(f"unknown max-pool realisation '{maxpool}' (use {', '.join(MAXPOOL_CHOICES)})")
    if neuron not in NEURON_CHOICES:
        raise UnsupportedError(f"unknown neuron '{neuron}' (use {', '.join(NEURON_CHOICES)})")
    how = "running" if maxpool == "hoist" else maxpool
    plan = conversion_plan(g)
    problems = [f"{e.name} ({e.op}): {e.detail}" for e in plan if e.role == "unsupported"]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise UnsupportedError("the model cannot be converted exactly: " + "; ".join(problems[:3]) + more)
    for e in plan:
        if e.role == "linear" and e.op == "Dense":
            g = _fold_dense_into_next(g, e.name)
    pools = {e.name for e in plan if e.role == "max pool"}
    for n in g.nodes:
        if isinstance(n.op, (ir.Relu, ir.Relay)):
            c, signed = n.shape[0], isinstance(n.op, ir.Relay)
            memory = neuron == "memory" and not signed and not _reaches_pool(g, n.name, pools)
            g = g.replace_op(n.name, ir.BurstNeuron(np.ones(c, np.float32), int(max_spikes),
                                                    np.zeros(c, np.float32), signed=signed, memory=memory))
        elif n.name in pools:
            g = g.replace_op(n.name, ir.SpikingMaxPool(n.op, how))
    return g


#: ops that move payloads without synapses, through which a max pool may read a neuron layer
_MOVES = (ir.Concat, ir.Flatten, ir.Reshape) + ROUTING


def _reaches_pool(g: ir.Graph, name: str, pools: set[str]) -> bool:
    """Whether a max pool over payloads (one of `pools`) reads the neurons at
    `name`, directly or through ops that only move payloads (a Concat of
    branches, as in Inception and Fire modules)."""
    todo, seen = [name], set()
    while todo:
        for r in g.consumers(todo.pop()):
            if r.name in pools:
                return True
            if isinstance(r.op, _MOVES) and r.name not in seen:
                seen.add(r.name)
                todo.append(r.name)
    return False


def neuron_names(g: ir.Graph) -> list[str]:
    return [n.name for n in g.nodes if isinstance(n.op, ir.BurstNeuron)]


def set_neuron(g: ir.Graph, name: str, **changes) -> ir.Graph:
    """A copy of g with fields of one BurstNeuron replaced."""
    return g.replace_op(name, replace(g.node(name).op, **changes))
