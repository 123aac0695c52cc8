"""Bit-accurate integer simulator of lowered Loihi 2 networks (compiler/int_ir.py).

One engine, batched over samples and vectorised over neurons, running all
layers in lock-step (the hardware run is the same spikes shifted by each
layer's depth, see int_ir).  Like the float simulator it evaluates one node
for all T steps at once; only the neurons loop over t.  Max pools
(IntMaxPool) run runtime_sim/maxpool.py's realisations on the integer arrays.

Exactness: every value is an integer, held in float arrays only where the
float type represents it exactly: payloads (k ≤ 255) in float32; a synapse's
sums in float32 if its bound max_row Σ|w| · max|payload| < 2^24, else float64
(exact below 2^53, always the case for 8-bit weights); neuron state in
float64.  Power-of-two exponents and floors stay exact in floating point.
The vendor's arithmetic (weight clipping/truncation, exponent shift, 24-bit
wrap) is runtime_sim/loihi2_arith.py's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from adacal import int_ir, ir
from adacal.device import to_device
from adacal.runtime_sim import loihi2_arith as arith
from adacal.runtime_sim import maxpool
from adacal.runtime_sim.burst import burst_loop, counts
from adacal.walker import walk

NeuronHook = Callable[[ir.Node, np.ndarray], int_ir.IntBurstNeuron]


@dataclass
class IntResult:
    readout: np.ndarray  # (T, N, *out) int64 per-step currents into the readout
    #: neuron or max pool over payloads -> (T, N, ...) int64 k (recorded with record_payloads)
    payloads: dict[str, np.ndarray] = field(default_factory=dict)
    #: neuron or max pool over spikes -> (T, N) Σ|k|; events, synops, event_synops likewise
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    events: dict[str, np.ndarray] = field(default_factory=dict)  # neuron -> (T, N) #(k>0)
    synops: dict[str, np.ndarray] = field(default_factory=dict)  # neuron -> (T, N) Σ k·fan-out
    event_synops: dict[str, np.ndarray] = field(default_factory=dict)


def _sum_bound(weight: np.ndarray, max_in: float) -> float:
    w = np.abs(np.asarray(weight, np.float64)).reshape(weight.shape[0], -1)
    bound = float(w.sum(axis=1).max(initial=0)) * max(float(max_in), 1.0)
    if bound >= 2 ** 53:
        raise OverflowError(f"synaptic sums up to {bound:.3g} cannot be computed exactly")
    return bound


def _exact_dtype(bound: float) -> torch.dtype:
    return torch.float32 if bound < 2 ** 24 else torch.float64


def _as(p: np.ndarray, dt: torch.dtype) -> torch.Tensor:
    """p as dt on the current device (adacal.device; exact sums either way)."""
    return to_device(torch.from_numpy(p), dt)


def _dense(op: int_ir.IntDense, p: np.ndarray, max_in: float) -> tuple[np.ndarray, float]:
    w = arith.dense_weights(op.weight, op.num_weight_bits)
    bound = _sum_bound(w, max_in)
    dt = _exact_dtype(bound)
    x = _as(p.reshape(-1, p.shape[-1]), dt)
    a = x @ torch.from_numpy(w.T.astype(np.float64)).to(device=x.device, dtype=dt)
    a = a.cpu().numpy().reshape(p.shape[:-1] + (w.shape[0],))
    e = op.weight_exp
    return (a * 2.0 ** e if e >= 0 else np.floor(a / 2.0 ** -e)), bound * 2.0 ** e


#: Lava's PyConvModelFixed casts its float64 result to int32 before the 24-bit
#: wrap (lava/proc/conv/utils.py conv -> models.py clamp_precision), so only sums
#: below this are defined the same way there; larger ones are refused.
CONV_INT32_EXACT = 2 ** 31 - 2 ** 23


def _conv(op: int_ir.IntConv, p: np.ndarray, max_in: float) -> tuple[np.ndarray, float]:
    w = np.asarray(op.weight, np.float64)
    bound = _sum_bound(w, max_in)
    if bound >= CONV_INT32_EXACT:
        raise OverflowError(f"conv sums up to {bound:.3g} reach 2^31: Lava's fixed-point Conv casts them to int32 "
                            "before its 24-bit wrap, which is not a defined integer result")
    dt = _exact_dtype(bound)
    lead = p.shape[:2]
    x = _as(p.reshape((-1,) + p.shape[2:]), dt)
    top, left, bottom, right = op.padding
    if any(op.padding):
        x = F.pad(x, (left, right, top, bottom))
    a = F.conv2d(x, torch.from_numpy(w).to(device=x.device, dtype=dt), None, op.stride, 0, op.dilation,
                 op.groups).cpu().numpy()
    if bound >= 2 ** (arith.WRAP_BITS_CONV - 1):  # may leave the 24-bit range: wrap as Lava does
        a = arith.wrap(np.rint(a).astype(np.int64)).astype(np.float64)
        bound = 2.0 ** (arith.WRAP_BITS_CONV - 1)
    return a.reshape(lead + a.shape[1:]), bound


def run_int_neuron(op: int_ir.IntBurstNeuron, current: np.ndarray, T: int, fanout: np.ndarray | None = None):
    """current (T', N, ...) integer-valued -> (payloads (T, N, ...) as exact
    float32 integers, counts).

    Runs loihi2_arith.burst_step's integer arithmetic in float64, which is
    exact here and several times faster than int64 division: every value is an
    integer below 2^53 in magnitude, so sums are exact; v/θ is correctly
    rounded, and for an integer v that is not a multiple of θ (θ ≤ 2^16) it
    stays at least 1/θ below the next integer — far more than float64's
    resolution at the |v/θ| ≤ max_spikes + 1 where the clamp does not decide.
    """
    shape = (-1,) + (1,) * (current.ndim - 3)
    theta = np.asarray(op.threshold, np.float64).reshape(shape)
    drive = current + np.asarray(op.bias, np.float64).reshape(shape)  # float64, exact integers
    v = np.broadcast_to(np.asarray(op.v_init, np.float64), current.shape[1:]).copy()
    k = burst_loop(drive, v, theta, op.max_spikes, T, bool(op.signed), bool(op.memory))
    return k.astype(np.float32), counts(k, fanout)


def run_int_maxpool(op: int_ir.IntMaxPool, x: np.ndarray) -> np.ndarray:
    """Payloads or currents x (T', N, C, H, W), exact integers in a float
    array -> the pooled values, by runtime_sim.maxpool (the one place its
    arithmetic lives; the Lava process calls its Stream).  Exact: a max picks
    one of the integers, `running` sums them in float64 (cumsum below 2^53)
    and its differences M(t) - M(t-1) are integers no larger in magnitude
    than the input bound."""
    geo = maxpool.PoolGeometry.of(op, x.shape[-2:])
    return maxpool.run(x, geo, op.how)


def _route(op, xs: list[np.ndarray]) -> np.ndarray:
    steps = max(x.shape[0] for x in xs)
    if isinstance(op, ir.Add):
        return sum(xs[1:], xs[0])
    if isinstance(op, (int_ir.Delay, ir.Identity)):
        return xs[0]  # lock-step: delays only balance hardware latency
    if isinstance(op, ir.Concat):
        xs = [np.broadcast_to(x, (steps,) + x.shape[1:]) for x in xs]
        return np.concatenate(xs, axis=op.axis + 2)
    if isinstance(op, ir.Flatten):
        return xs[0].reshape(xs[0].shape[:2] + (-1,))
    if isinstance(op, ir.Reshape):
        return xs[0].reshape(xs[0].shape[:2] + tuple(op.shape))
    raise TypeError(f"integer simulator: unsupported op {type(op).__name__}")


def simulate_int(g: ir.Graph, x: np.ndarray, T: int, *, fanout: dict | None = None, batch_size: int | None = None,
                 record_payloads: bool = False, neuron_hook: NeuronHook | None = None) -> tuple[IntResult, ir.Graph]:
    """Run the integer network on float input x (N, *input_shape) for T steps.

    The input node's GradedInput quantises x.  neuron_hook(node, current) ->
    IntBurstNeuron may replace a neuron op before it runs (integer-aware
    calibration); it needs one batch.  Returns (result, graph with hook ops).
    """
    x = np.asarray(x, np.float32)
    bs = len(x) if neuron_hook is not None else (batch_size or max(8, 2048 // max(T, 1)))
    parts, new_ops = [], {}
    for s in range(0, len(x), bs):
        parts.append(_run_batch(g, x[s:s + bs], T, fanout or {}, record_payloads, neuron_hook, new_ops))
    for name, op in new_ops.items():
        g = g.replace_op(name, op)
    if len(parts) == 1:
        return parts[0], g
    first = parts[0]
    cat = (lambda d, axis=1: {k: np.concatenate([p.__dict__[d][k] for p in parts], axis=axis)
                              for k in first.__dict__[d]})
    res = IntResult(np.concatenate([p.readout for p in parts], axis=1), cat("payloads"), cat("spikes"),
                    cat("events"), cat("synops"), cat("event_synops"))
    return res, g


def _run_batch(g, x, T, fanout, record, hook, new_ops) -> IntResult:
    inp = g.input.op
    bound = {g.input.name: max(abs(inp.lo), abs(inp.hi))}  # max |payload| per edge
    res = IntResult(readout=np.empty(0))
    # what a payload edge carries: "input" (graded input), "spikes" or "mixed" (a Concat of
    # both); currents are not listed
    kind = {g.input.name: "input"} | {n.name: "spikes" for n in g.nodes if isinstance(n.op, int_ir.IntBurstNeuron)}

    def run_node(node: ir.Node, ins: list[np.ndarray]) -> np.ndarray:
        op = node.op
        if isinstance(op, int_ir.IntBurstNeuron):
            op = new_ops.get(node.name, op)
            if hook is not None:
                op = new_ops[node.name] = hook(node, ins[0])
            k, stats = run_int_neuron(op, ins[0], T, fanout.get(node.name))
            bound[node.name] = op.max_spikes
            for key, arr in stats.items():
                getattr(res, key)[node.name] = arr
            if record:
                res.payloads[node.name] = k.astype(np.int64)
            return k
        if isinstance(op, (int_ir.IntDense, int_ir.IntConv)):
            value, bound[node.name] = (_dense if isinstance(op, int_ir.IntDense) else _conv)(
                op, ins[0], bound[node.inputs[0]])
            return value
        if isinstance(op, int_ir.IntMaxPool):
            p = run_int_maxpool(op, ins[0])
            bound[node.name] = bound[node.inputs[0]]  # a max (or a running max's step) of the inputs
            src = kind.get(node.inputs[0])
            if src is not None:  # over payloads (else over currents, between a synapse and its neurons)
                kind[node.name] = src
                pay = np.broadcast_to(p, (T,) + p.shape[1:])
                if src == "spikes":  # pooled spikes are sent on like a neuron layer's: counted as such
                    for key, arr in counts(pay, fanout.get(node.name)).items():
                        getattr(res, key)[node.name] = arr
                if record:
                    res.payloads[node.name] = pay.astype(np.int64)
            return p
        if isinstance(op, (ir.Flatten, ir.Reshape, ir.Concat, int_ir.Delay, ir.Identity)):
            srcs = {kind.get(i) for i in node.inputs}
            if None not in srcs:
                kind[node.name] = srcs.pop() if len(srcs) == 1 else "mixed"
        ins = [v if v.dtype == np.float64 or not isinstance(op, ir.Add) else v.astype(np.float64) for v in ins]
        bound[node.name] = (sum if isinstance(op, ir.Add) else max)(bound.get(s, 0) for s in node.inputs)
        return _route(op, ins)

    values = {g.input.name: inp.quantise(x)[None].astype(np.float32)}
    out = walk(g, values, run_node)[g.output]
    res.readout = np.rint(np.broadcast_to(out, (T,) + out.shape[1:])).astype(np.int64)
    return res
