"""Loihi 2 resource estimate for an integer network: neurons, stored weights,
connections, cores and chips, from the per-core averages of Intel's published
per-chip figures (docs/loihi2.md).  Conv weights are shared within a core
(a core stores the kernels of the output channels it hosts); dense weights
are stored per connection.
A max pool counts one unit (a programmable neuron) per output and one
connection per window entry, with no stored weights.
"""
from __future__ import annotations

import math

import numpy as np

from adacal import int_ir, ir
from adacal.errors import AdacalError

# Intel Labs, "Taking Neuromorphic Computing to the Next Level with Loihi 2" (technology brief,
# 2021): 128 cores, up to 1 million neurons and 120 million synapses per chip.  Intel's per-core
# memory map is not public, so the per-core averages serve as partitioning limits.
CORES_PER_CHIP = 128
NEURONS_PER_CORE = (1 << 20) // CORES_PER_CHIP  # 8,192 ("1 million" = 2^20 neurons / 128 cores)
SYNAPSES_PER_CORE = 120_000_000 // CORES_PER_CHIP  # 937,500


def _synapses_into(g: ir.Graph, neuron: ir.Node) -> list[ir.Node]:
    out, todo = [], [neuron.inputs[0]]
    while todo:
        n = g.node(todo.pop())
        if isinstance(n.op, (ir.Add, int_ir.IntMaxPool)):  # a max pool over currents: its synapses
            todo.extend(n.inputs)
        elif isinstance(n.op, (int_ir.IntConv, int_ir.IntDense)):
            out.append(n)
    return out


def _stored(n: ir.Node) -> tuple[int, int]:
    """(weights stored, connections) of a synapse node."""
    w = n.op.weight
    if isinstance(n.op, int_ir.IntConv):
        per_out = int(np.prod(w.shape[1:]))
        return int(w.size), int(np.prod(n.shape)) * per_out
    return int(w.size), int(w.size)


def _pool_layer(n: ir.Node) -> dict:
    units = int(np.prod(n.shape))
    return {"name": n.name, "neurons": units, "weights_stored": 0,
            "connections": units * int(np.prod(n.op.kernel)), "synaptic_memory_bytes": 0,
            "cores": max(math.ceil(units / NEURONS_PER_CORE), 1)}


def _cores(name: str, neurons: int, channels: int, dense_w: int, conv_w: int) -> int:
    """Cores for one layer: enough for its neurons, with its dense weights
    spread over them and its conv layers split by output channel (a core
    stores the kernels of the channels it hosts, so a conv layer is shared
    within a core, not across cores)."""
    per_channel = conv_w / max(channels, 1)
    if per_channel > SYNAPSES_PER_CORE:
        raise AdacalError(f"layer '{name}': the conv kernels of one output channel ({per_channel:,.0f} weights) "
                          f"exceed one Loihi 2 core's {SYNAPSES_PER_CORE:,} synapses; the layer cannot be "
                          "partitioned")
    cores = max(math.ceil(neurons / NEURONS_PER_CORE), 1)
    while dense_w / cores + per_channel * math.ceil(channels / min(cores, channels)) > SYNAPSES_PER_CORE:
        cores += 1
    return cores


def estimate(g: ir.Graph) -> dict:
    layers, total_cores = [], 0
    targets = [n for n in g.nodes if isinstance(n.op, (int_ir.IntBurstNeuron, int_ir.IntMaxPool))]
    for n in targets + [g.node(g.output)]:
        if isinstance(n.op, int_ir.IntMaxPool):
            layers.append(_pool_layer(n))
            total_cores += layers[-1]["cores"]
            continue
        syns = _synapses_into(g, n) if isinstance(n.op, int_ir.IntBurstNeuron) else [n]
        neurons = int(np.prod(n.shape)) if isinstance(n.op, int_ir.IntBurstNeuron) else 0
        stored = sum(_stored(s)[0] for s in syns)
        conns = sum(_stored(s)[1] for s in syns)
        dense_w = sum(_stored(s)[0] for s in syns if isinstance(s.op, int_ir.IntDense))
        cores = _cores(n.name, neurons, n.shape[0], dense_w, stored - dense_w)
        layers.append({"name": n.name, "neurons": neurons, "weights_stored": stored, "connections": conns,
                       "synaptic_memory_bytes": stored, "cores": cores})
        total_cores += cores
    return {"layers": layers, "neurons": sum(L["neurons"] for L in layers),
            "weights_stored": sum(L["weights_stored"] for L in layers),
            "connections": sum(L["connections"] for L in layers),
            "synaptic_memory_bytes": sum(L["synaptic_memory_bytes"] for L in layers),
            "cores": total_cores, "chips": math.ceil(total_cores / CORES_PER_CHIP),
            "limits": {"neurons_per_core": NEURONS_PER_CORE, "synapses_per_core": SYNAPSES_PER_CORE,
                       "cores_per_chip": CORES_PER_CHIP,
                       "source": "Intel Labs Loihi 2 technology brief (2021): 128 cores, 1M neurons, "
                                 "120M synapses per chip; per-core averages"}}
