"""Energy accounting (docs/method.md, Energy).

Conventions, named wherever a number is reported:
- spikes: Σ k over neurons and steps (a burst of k counts k);
- events: number of non-zero k (one graded message on Loihi 2);
- synops: spikes × fan-out (the paper's convention; also Xylo, which delivers a
  burst of k as k additions); graded_synops: events × fan-out (Loihi 2);
- fan-out of a neuron: its outgoing synapses up to the next neurons or the
  readout, with pooling folded into the next layer's weights the way hardware
  realises it (exact for non-overlapping pooling, an upper bound otherwise);
  payload routing is followed value by value: through a Take that copies a
  value each copy counts (a dropped value reaches nothing), through a
  Transpose the fan-out is unchanged; a transposed conv contributes its
  outgoing weights that land inside the (cropped) output;
- a max pool over spikes is a stage of its own: a spike reaching it counts one
  synop per window it belongs to, and what the pool sends on counts as spikes
  (in its inputs' units) × the pool's own fan-out;
- E_ANN = 4.6 pJ × MACs; E_SNN = 4.6 pJ × MACs of the layers reading the analog
  input, once per timestep (the input is presented every step) + 0.9 pJ ×
  synops (45 nm figures used by the paper).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from adacal import int_ir, ir
from adacal.interpret import _pad, apply_op

E_MAC_PJ = 4.6
E_AC_PJ = 0.9

#: what the burst-cap and threshold-ratio searches price (--search-cost):
#: "spikes" counts a burst of k as k (the paper, Xylo); "events" counts it
#: as one graded message (Loihi 2), so the ratio search prices events × fan-out
SEARCH_COSTS = ("spikes", "events")
#: the simulator's (SimResult's) synops table under each price
SYNOPS_TABLE = {"spikes": "synops", "events": "event_synops"}


NEURONS = (ir.BurstNeuron, int_ir.IntBurstNeuron)
#: stages that receive spikes and send spikes of their own (max pools over spikes)
MAXPOOL_STAGES = (ir.SpikingMaxPool, int_ir.IntMaxPool)


def _emits(g: ir.Graph, n: ir.Node) -> bool:
    """Neurons, and max pools over spikes (an integer max pool hoisted onto a
    synapse's currents sends no spikes of its own)."""
    if isinstance(n.op, int_ir.IntMaxPool):
        return not isinstance(g.node(n.inputs[0]).op, (int_ir.IntConv, int_ir.IntDense, ir.Add))
    return isinstance(n.op, NEURONS + MAXPOOL_STAGES)


def _window_count(op, x: torch.Tensor) -> torch.Tensor:
    """Σ over each max-pool window of x (padding counts nothing)."""
    from adacal.runtime_sim.maxpool import PoolGeometry
    pool = getattr(op, "pool", op)
    h, w = x.shape[-2:]
    geo = PoolGeometry.of(pool, (h, w))
    ho, wo = geo.out_size((h, w))
    top, left = geo.padding[:2]
    bottom = max((ho - 1) * geo.stride[0] + geo.dilation[0] * (geo.kernel[0] - 1) + 1 - top - h, 0)
    right = max((wo - 1) * geo.stride[1] + geo.dilation[1] * (geo.kernel[1] - 1) + 1 - left - w, 0)
    c = x.shape[1]
    ones = torch.ones((c, 1) + tuple(geo.kernel), dtype=x.dtype)
    return F.conv2d(F.pad(x, (left, right, top, bottom)), ones, None, geo.stride, 0, geo.dilation, c)


def _count_op(op, xs: list[torch.Tensor]) -> torch.Tensor:
    """The op with every weight 1 and no bias: sums count connections.
    Works on float and on integer (lowered) networks."""
    x = xs[0]
    if isinstance(op, (ir.Conv2d, int_ir.IntConv)):
        w = torch.ones(op.weight.shape, dtype=x.dtype)
        return F.conv2d(_pad(x, op.padding), w, None, op.stride, 0, op.dilation, op.groups)
    if isinstance(op, (ir.Dense, int_ir.IntDense)):
        return x.sum(dim=1, keepdim=True).expand(x.shape[0], op.weight.shape[0])
    if isinstance(op, int_ir.Delay):
        return x
    if isinstance(op, ir.ConvTranspose2d):
        return apply_op(replace(op, weight=np.ones(op.weight.shape, np.float32),
                                bias=np.zeros(op.bias.shape, np.float32)), xs)
    if isinstance(op, ir.AvgPool):
        return apply_op(op, xs) * float(np.prod(op.kernel))
    if isinstance(op, ir.GlobalAvgPool):
        return x.sum(dim=(2, 3), keepdim=True)
    return apply_op(op, xs)


def _fanout(g: ir.Graph, start: ir.Node) -> np.ndarray:
    z = torch.zeros((1,) + start.shape, dtype=torch.float64, requires_grad=True)
    values = {start.name: z}
    total = torch.zeros((), dtype=torch.float64)
    after = False
    for node in g.nodes:
        if node is start:
            after = True
            continue
        if not after or not any(i in values for i in node.inputs):
            continue
        xs = [values.get(i, torch.zeros((1,) + g.node(i).shape, dtype=torch.float64)) for i in node.inputs]
        if isinstance(node.op, NEURONS):  # the next neurons: count what reaches them
            total = total + xs[0].sum()
            continue
        if isinstance(node.op, MAXPOOL_STAGES):  # a max pool: one delivery per window holding the spike
            total = total + _window_count(node.op, xs[0]).sum()
            continue
        values[node.name] = _count_op(node.op, xs)
        if node.name == g.output:
            total = total + values[node.name].sum()
    if total.requires_grad:
        total.backward()
        return z.grad[0].numpy().astype(np.float32)
    return np.zeros(start.shape, np.float32)


def fanout_maps(g: ir.Graph) -> dict[str, np.ndarray]:
    """Per-neuron fan-out (per-sample shape) of every neuron layer (and of
    every max pool over spikes, which sends spikes of its own)."""
    return {n.name: _fanout(g, n) for n in g.nodes if _emits(g, n)}


def input_layers(g: ir.Graph) -> list[str]:
    """Conv/dense layers whose input comes from the analog input without a neuron in between."""
    analog = {g.input.name}
    names = []
    for n in g.nodes[1:]:
        if any(i in analog for i in n.inputs) and not isinstance(n.op, ir.BurstNeuron):
            analog.add(n.name)
            if isinstance(n.op, ir.LINEAR_LAYERS + (ir.ConvTranspose2d,)):
                names.append(n.name)
    return names


def ann_macs(g: ir.Graph) -> int:
    return int(sum(ir.macs(n) for n in g.nodes))


def input_macs(g: ir.Graph) -> int:
    return int(sum(ir.macs(g.node(n)) for n in input_layers(g)))
