"""Float burst-SNN simulator (torch, CPU, batched over samples).

Runs a spiking graph (an IR graph whose neurons are `BurstNeuron` nodes) for T
steps on a static input presented every step (direct encoding, docs/method.md, Burst neurons).

It evaluates the graph node by node with all T steps at once: a value is a
tensor (T', N, ...) with T' = T, or T' = 1 while it does not depend on time
(the input and everything linear computed from it, e.g. the first conv, is
computed once).  Linear ops run on the (T'·N) batch; only the neurons loop over
t.  This is exact for feed-forward graphs, which is all the IR expresses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from adacal import ir
from adacal.device import to_device
from adacal.interpret import apply_op
from adacal.walker import walk
from adacal.runtime_sim import maxpool
from adacal.runtime_sim.burst import burst_loop, counts

NeuronHook = Callable[[ir.Node, torch.Tensor], ir.BurstNeuron]


@dataclass
class SimResult:
    """What one simulation produced (numpy)."""
    outputs: np.ndarray  # (T, N, *out) per-step readout values
    spikes: dict[str, np.ndarray] = field(default_factory=dict)  # neuron layer -> (T, N) spikes (sum of k)
    events: dict[str, np.ndarray] = field(default_factory=dict)  # neuron layer -> (T, N) non-zero k
    synops: dict[str, np.ndarray] = field(default_factory=dict)  # spikes x fan-out (with fan-out maps)
    event_synops: dict[str, np.ndarray] = field(default_factory=dict)  # events x fan-out
    kept: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (N, ...) time-averaged value
    kept_steps: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (T, N, ...) if asked
    snapshots: dict[str, dict] = field(default_factory=dict)  # name -> live values before that node

    @property
    def timesteps(self) -> int:
        return self.outputs.shape[0]

    def mean_output(self, steps: int | None = None) -> np.ndarray:
        """Readout averaged over the first `steps` steps (all by default)."""
        return self.outputs[: steps or self.timesteps].mean(axis=0)


def neurons(g: ir.Graph) -> list[ir.Node]:
    return [n for n in g.nodes if isinstance(n.op, ir.BurstNeuron)]


def run_neuron(op: ir.BurstNeuron, current: torch.Tensor, T: int, fanout: torch.Tensor | None = None):
    """Burst IF dynamics for input current (T', N, ...).

    Returns (out, counts): out is (T, N, ...) = k * threshold; counts maps
    'spikes' (sum of k), 'events' (non-zero k) and, with a fan-out map (the
    per-neuron number of outgoing synapses), 'synops' (spikes x fan-out) and
    'event_synops' (events x fan-out) to (T, N) float64 arrays.
    """
    cur = current.cpu().numpy()
    shape = (-1,) + (1,) * (cur.ndim - 3)
    theta = np.asarray(op.threshold, np.float32).reshape(shape)
    drive = cur + np.asarray(op.bias, np.float32).reshape(shape)  # (T', N, ...) input + bias per step
    v = np.empty(cur.shape[1:], np.float32)
    v[...] = 0.5 * theta
    if op.v_init is not None:
        v += np.asarray(op.v_init, np.float32)
    k = burst_loop(drive, v, theta, op.max_spikes, T, op.signed, op.memory)
    stats = counts(k, fanout)
    k *= theta
    return torch.from_numpy(k).to(current.device), stats


def payload_units(g: ir.Graph) -> dict[str, torch.Tensor]:
    """The real value of one spike at every spiking max pool's input, (1, *shape):
    the neurons' thresholds carried through the routing ops before it."""
    units: dict[str, torch.Tensor] = {}
    for n in g.nodes:
        if isinstance(n.op, ir.BurstNeuron):
            th = torch.from_numpy(np.asarray(n.op.threshold, np.float32)).reshape((-1,) + (1,) * (len(n.shape) - 1))
            units[n.name] = th.expand(n.shape)[None]
        elif n.inputs and all(i in units for i in n.inputs) and not isinstance(n.op, (ir.Conv2d, ir.Dense, ir.Add)):
            units[n.name] = apply_op(n.op, [units[i] for i in n.inputs])
    return units


def run_maxpool(op: ir.SpikingMaxPool, payload: torch.Tensor, unit: torch.Tensor | None, T: int,
                fanout: np.ndarray | None = None):
    """A spiking max pool on payloads (T', N, C, H, W): (out, counts), counts
    in spikes of the input's neurons (empty when unit is None)."""
    x = payload.cpu().numpy()
    geo = maxpool.PoolGeometry.of(op.pool, x.shape[-2:])
    out = maxpool.run(x, geo, op.how)
    stats = {}
    if unit is not None:
        k = np.rint(out / maxpool.window_max(unit.numpy(), geo)).astype(np.float32)
        if k.shape[0] == 1:
            k = np.broadcast_to(k, (T,) + k.shape[1:])
        stats = counts(k, fanout)
    return torch.from_numpy(np.ascontiguousarray(out, np.float32)).to(payload.device), stats


def _apply(op, xs: list[torch.Tensor]) -> torch.Tensor:
    steps = max(x.shape[0] for x in xs)
    if isinstance(op, ir.Add):
        return sum(xs[1:], xs[0])
    xs = [x.expand((steps,) + tuple(x.shape[1:])) if x.shape[0] != steps else x for x in xs]
    n = xs[0].shape[1]
    y = apply_op(op, [x.reshape((steps * n,) + tuple(x.shape[2:])) for x in xs])
    return y.reshape((steps, n) + tuple(y.shape[1:]))


@torch.no_grad()
def _simulate_batch(g: ir.Graph, x: np.ndarray, T: int, keep: tuple[str, ...], keep_steps: tuple[str, ...],
                    hook: NeuronHook | None, new_ops: dict, fanout: dict, snapshot_at=(), resume=None) -> SimResult:
    res = SimResult(outputs=np.empty(0))
    units = payload_units(g) if any(isinstance(n.op, ir.SpikingMaxPool) for n in g.nodes) else {}
    start = 0
    values = {g.input.name: to_device(torch.from_numpy(np.ascontiguousarray(x, np.float32)))[None]}
    if resume is not None:
        start = g.names().index(resume[0])
        values = dict(resume[1])

    def run_node(node: ir.Node, ins: list[torch.Tensor]) -> torch.Tensor:
        if isinstance(node.op, ir.SpikingMaxPool):
            out, counts = run_maxpool(node.op, ins[0], units.get(node.inputs[0]), T, fanout.get(node.name))
            for key, arr in counts.items():
                getattr(res, key)[node.name] = arr
            return out
        if not isinstance(node.op, ir.BurstNeuron):
            return _apply(node.op, ins)
        op = new_ops.get(node.name, node.op)
        if hook is not None:
            op = new_ops[node.name] = hook(node, ins[0])
        out, counts = run_neuron(op, ins[0], T, fanout.get(node.name))
        for key, arr in counts.items():
            getattr(res, key)[node.name] = arr
        return out

    def before(node: ir.Node, live: dict) -> None:
        if node.name in snapshot_at:
            res.snapshots[node.name] = dict(live)

    def after(node: ir.Node, v: torch.Tensor) -> None:
        if node.name in keep:
            res.kept[node.name] = v.mean(dim=0).cpu().numpy()
        if node.name in keep_steps:
            res.kept_steps[node.name] = v.expand((T,) + tuple(v.shape[1:])).cpu().numpy().copy()

    out = walk(g, values, run_node, start=start, before=before, after=after)[g.output]
    res.outputs = out.expand((T,) + tuple(out.shape[1:])).cpu().numpy().copy()
    return res


@torch.no_grad()
def run_segment(g: ir.Graph, values: dict, T: int, start: int, stop: int) -> dict:
    """The live values before node `stop`, from a snapshot of those before
    node `start` (start 1: {input name: x[None]}), running nodes start ..
    stop - 1 with their ops in g.  The streamed calibration
    (passes.bias_correction.correct_streamed) moves each batch of samples on
    by one layer at a time with it."""
    def run_node(node: ir.Node, ins: list[torch.Tensor]) -> torch.Tensor:
        if isinstance(node.op, ir.SpikingMaxPool):
            return run_maxpool(node.op, ins[0], None, T)[0]
        if isinstance(node.op, ir.BurstNeuron):
            return run_neuron(node.op, ins[0], T)[0]
        return _apply(node.op, ins)

    return walk(g, values, run_node, start=start, stop=stop)


def concat_results(parts: list[SimResult]) -> SimResult:
    """The SimResult of consecutive batches of samples, in order."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return SimResult(
        outputs=np.concatenate([p.outputs for p in parts], axis=1),
        spikes={k: np.concatenate([p.spikes[k] for p in parts], axis=1) for k in first.spikes},
        events={k: np.concatenate([p.events[k] for p in parts], axis=1) for k in first.events},
        synops={k: np.concatenate([p.synops[k] for p in parts], axis=1) for k in first.synops},
        event_synops={k: np.concatenate([p.event_synops[k] for p in parts], axis=1) for k in first.event_synops},
        kept={k: np.concatenate([p.kept[k] for p in parts]) for k in first.kept},
        kept_steps={k: np.concatenate([p.kept_steps[k] for p in parts], axis=1) for k in first.kept_steps},
    )


def default_batch(T: int) -> int:
    return max(8, 2048 // max(T, 1))


def simulate(g: ir.Graph, x: np.ndarray, T: int, *, keep=(), keep_steps=(), batch_size: int | None = None,
             neuron_hook: NeuronHook | None = None, fanout: dict | None = None,
             snapshot_at=(), resume: tuple[str, dict] | None = None) -> tuple[SimResult, ir.Graph]:
    """Simulate spiking graph g for T steps on x (N, *input_shape).

    keep: node names whose time-averaged values are returned (N, ...);
    keep_steps: node names whose per-step values are returned (T, N, ...).
    fanout: neuron layer -> per-neuron outgoing synapse counts (see
    runtime_sim.energy.fanout_maps); with it the result has synops.
    neuron_hook(node, input_current) -> BurstNeuron is called once per neuron
    layer, in order, before it runs (calibration passes use it to correct a
    layer from what reaches it).
    snapshot_at: node names before which the live values are saved in
    result.snapshots; resume=(name, snapshot) restarts a simulation of the same
    x there (the searches re-run only the layers a trial changes); spike counts
    then cover only the layers run.
    The hook, snapshots and resume need all of x in one batch.
    Returns (result, graph with the ops the hook returned).
    """
    x = np.asarray(x, np.float32)
    bs = batch_size or default_batch(T)
    if neuron_hook is not None or snapshot_at or resume is not None:
        bs = max(len(x), 1)
    new_ops: dict[str, ir.BurstNeuron] = {}
    parts = [_simulate_batch(g, x[s:s + bs], T, tuple(keep), tuple(keep_steps), neuron_hook, new_ops, fanout or {},
                             tuple(snapshot_at), resume)
             for s in range(0, len(x), bs)]
    for name, op in new_ops.items():
        g = g.replace_op(name, op)
    return concat_results(parts), g
