"""Integer ops: the network a chip runs, after lowering (backends/loihi2/lower.py).

An integer network is an `ir.Graph` whose nodes use these ops plus the
payload-routing ops of ir (Flatten, Reshape, Concat) and `ir.Add`, which here
sums synaptic currents arriving at one neuron population (an InPort with
several OutPorts connected, in Lava's terms).  Values on edges are integers:
payloads (spike counts k, or the quantised input) out of neurons / the input /
max pools over payloads, currents out of synapses (and out of a max pool over
currents, between a synapse and its neurons).

Timing: every synapse (IntDense, IntConv) adds one step of latency on Loihi 2;
neurons and max pools receive and send in the same step.  `depth` on each
synapse/neuron/max pool records at which step its first input arrives,
and `Delay` ops on skip paths make every path into a neuron equally long.  The
integer simulator runs all layers in lock-step (the same spikes, without the
shift), which is equal to the hardware run shifted by each layer's depth once
the delays are balanced.
"""
from __future__ import annotations

import numpy as np

from adacal.ir import Pads, _op


@_op
class GradedInput:
    """The analog input as graded payloads: p = clamp(round(x / scale), lo, hi)."""
    scale: float
    lo: int
    hi: int

    def quantise(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.floor(np.asarray(x, np.float64) / self.scale + 0.5), self.lo, self.hi).astype(np.int64)


@_op
class IntDense:
    """Lava Dense (PyDenseModelBitAcc): a = (W' · s) << weight_exp (>> -weight_exp,
    floor), where W' is `weight` as Lava stores it (see runtime_sim.loihi2_arith)."""
    weight: np.ndarray  # (out, in) int
    weight_exp: int = 0
    num_weight_bits: int = 8
    num_message_bits: int = 8
    depth: int = 1


@_op
class IntConv:
    """Lava Conv (PyConvModelFixed): integer cross-correlation, result wrapped
    to 24 bits; no weight exponent, no weight clipping in Lava's model (adacal
    keeps weights within 8 bits anyway, as the chip needs)."""
    weight: np.ndarray  # (C_out, C_in/groups, kH, kW) int, PyTorch layout
    stride: tuple[int, int] = (1, 1)
    padding: Pads = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    num_message_bits: int = 8
    depth: int = 1


@_op
class IntBurstNeuron:
    """adacal's BurstIF neuron in integer form (per step, all int):
    v += a_in + bias;  k = clamp(floor(v / threshold), lo, max_spikes);
    v -= k * threshold;  sends k as a graded payload.  v starts at v_init.
    lo = 0, or -max_spikes for a signed neuron (a linear, unrectified value:
    ir.BurstNeuron.signed), or max(-sent, -max_spikes) for a memory neuron
    (ir.BurstNeuron.memory; sent: its spikes so far, k summed)."""
    threshold: np.ndarray  # (C,) int > 0, per channel
    bias: np.ndarray  # (C,) int
    v_init: np.ndarray  # per-sample shape, int
    max_spikes: int
    depth: int = 1
    signed: bool = False
    memory: bool = False


@_op
class IntMaxPool:
    """A max pool over integer payloads (ir.SpikingMaxPool) or over synaptic
    currents (a max pool hoisted between a synapse and its neurons), realised
    over time as `how` (runtime_sim.maxpool: "step", "gated", "running").
    The geometry is runtime_sim.maxpool.PoolGeometry's (PoolGeometry.of(op,
    ...) reads it from these fields); a global max pool is one window
    covering the map.  It receives and sends in the same step: `depth` is
    its input's latency."""
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: Pads = (0, 0, 0, 0)  # top, left, bottom, right
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False
    how: str = "running"
    depth: int = 0


@_op
class Delay:
    """Delays payloads by `steps` hardware steps (skip-path balancing); in the
    lock-step simulation it is the identity (see the module docstring)."""
    steps: int


#: real-valued scales that map integer quantities back to the float network,
#: recorded per node by the lowering (see backends/loihi2/lower.py)
ScaleTable = dict[str, np.ndarray]
