"""Integer lowering for Loihi 2: float burst SNN -> integer network (int_ir).

Scales (method.md §1, integer form, generalised per channel):
- every payload edge has a real unit σ: one input payload is `scale` of the
  GradedInput, one spike of neuron channel c is θ[c];
- every neuron channel c gets a membrane scale m[c] = Θ[c] / θ[c] with an
  integer threshold Θ[c]: a synapse row into it is W[c, j]·σ_j·m[c], its
  bias b[c]·m[c], its start potential (θ/2 + v_init)·m[c];
- Θ[c] is as large as the synapse formats allow: Conv weights within
  ±127 (8 bits; Lava's Conv applies no exponent), Dense weights as even values
  within ±254 times 2^weight_exp (8-bit mixed-sign weights lose their LSB in
  Lava's PyDenseModelBitAcc), with one weight_exp per Dense chosen so Θ lands
  near 2^12 (bias and start-potential resolution) while |v| stays far below
  2^23 (24-bit neuron state);
- the readout has one scalar scale (class order must be preserved); its bias
  is added by the host: logits = Σ_t currents + T·bias.
Skip connections: an identity skip becomes a depthwise 1x1 IntConv (one
synapse per neuron, weight θ_src[c]·m[c]); every path into a neuron gets the
same latency through Delay nodes.  Pooling must have been folded first
(passes/fold_pooling.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from adacal import int_ir, ir
from adacal.errors import UnsupportedError

CONV_MAX = 127
DENSE_MAX = 254
TARGET_THRESHOLD = 2 ** 12
STATE_LIMIT = 2 ** 23
MAX_THRESHOLD = 2 ** 16  # channels with tiny weights would otherwise get huge thresholds


@dataclass(frozen=True)
class Loihi2Lowering:
    graph: ir.Graph  # integer network
    membrane_scale: dict[str, np.ndarray]  # neuron -> m[c] (integer units per float unit)
    payload_scale: dict[str, float | np.ndarray]  # node -> real value of one payload unit
    readout_scale: float  # readout currents per float logit unit
    readout_bias: np.ndarray  # int64, added by the host once per step
    timesteps: int
    depth: int  # latency of the readout (steps the hardware runs beyond T)
    notes: list[str] = field(default_factory=list)

    def logits(self, readout: np.ndarray) -> np.ndarray:
        """Float logits (N, K) from per-step readout currents (T, N, K)."""
        t = readout.shape[0]
        return (readout.sum(axis=0) + t * self.readout_bias) / (self.readout_scale * t)

    def step_logits(self, readout: np.ndarray) -> np.ndarray:
        """Float logits of every step (T, N, K) from readout currents (T, N, ...)."""
        r = readout.reshape(readout.shape[0], readout.shape[1], -1)
        return (r + self.readout_bias.reshape(1, 1, -1)) / self.readout_scale


def input_quantiser(x_cal: np.ndarray, bits: int = 8) -> int_ir.GradedInput:
    """8-bit graded input: unsigned [0, 255] for non-negative data, else ±127."""
    lo_val, hi_val = float(np.min(x_cal)), float(np.max(x_cal))
    if lo_val >= 0:
        top = 2 ** bits - 1
        return int_ir.GradedInput(max(hi_val, 1e-12) / top, 0, top)
    top = 2 ** (bits - 1) - 1
    return int_ir.GradedInput(max(abs(lo_val), abs(hi_val), 1e-12) / top, -top, top)


def _payload_scales(g: ir.Graph, inp: int_ir.GradedInput) -> dict[str, np.ndarray]:
    """Real value of one payload unit, broadcast to each payload node's shape."""
    sig = {g.input.name: np.full(g.input_shape, inp.scale)}
    for n in g.nodes[1:]:
        op = n.op
        if isinstance(op, ir.BurstNeuron):
            sig[n.name] = np.broadcast_to(op.threshold.reshape((-1,) + (1,) * (len(n.shape) - 1)), n.shape).astype(np.float64)
        elif isinstance(op, (ir.Flatten, ir.Reshape)):
            sig[n.name] = sig[n.inputs[0]].reshape(n.shape)
        elif isinstance(op, ir.Concat):
            sig[n.name] = np.concatenate([sig[i] for i in n.inputs], axis=op.axis)
    return sig


def _column_scale(sig: np.ndarray, op) -> np.ndarray:
    """σ per weight column: per input feature (dense) or input channel (conv)."""
    if isinstance(op, ir.Dense):
        return sig.reshape(-1)
    per_c = sig.reshape(sig.shape[0], -1)[:, 0]
    return per_c


def _scaled_weight(op, sig_cols: np.ndarray) -> np.ndarray:
    w = op.weight.astype(np.float64)
    if isinstance(op, ir.Dense):
        return w * sig_cols[None, :]
    c_out, c_in_g = w.shape[:2]
    idx = (np.arange(c_out)[:, None] // (c_out // op.groups)) * c_in_g + np.arange(c_in_g)[None, :]
    return w * sig_cols[idx][:, :, None, None]


def _synapses(g: ir.Graph, neuron: ir.Node) -> list[str]:
    """Names of the conv/dense nodes or payload skips feeding a neuron."""
    src = g.node(neuron.inputs[0])
    if isinstance(src.op, ir.Add):
        return list(src.inputs)
    if isinstance(src.op, ir.LINEAR_LAYERS):
        return [src.name]
    raise UnsupportedError(f"neuron '{neuron.name}' is fed by {src.kind} '{src.name}'; hardware lowering expects "
                           "a conv/dense (or a residual Add of them) right before each neuron")


def _round_even(a: np.ndarray) -> np.ndarray:
    return 2 * np.floor(a / 2 + 0.5)


def lower_loihi2(snn: ir.Graph, x_cal: np.ndarray, T: int) -> Loihi2Lowering:
    """Lower a pooling-folded float SNN to the Loihi 2 integer network."""
    inp = input_quantiser(x_cal)
    sig = _payload_scales(snn, inp)
    out = snn.node(snn.output)
    if not isinstance(out.op, ir.LINEAR_LAYERS):
        raise UnsupportedError(f"the network output '{out.name}' ({out.kind}) is not a conv/dense readout")

    # 1. membrane scales per neuron channel, from the weights of every synapse into it
    m_of: dict[str, np.ndarray] = {}
    exp_of: dict[str, int] = {}  # dense synapse -> weight_exp
    for n in snn.nodes:
        if not isinstance(n.op, ir.BurstNeuron):
            continue
        theta = n.op.threshold.astype(np.float64)
        limit = np.full(len(theta), np.inf)  # max m[c] the 8-bit weights allow (before exponent)
        dense_syn = []
        for s in _synapses(snn, n):
            sn = snn.node(s)
            if isinstance(sn.op, ir.LINEAR_LAYERS):
                w = np.abs(_scaled_weight(sn.op, _column_scale(sig[sn.inputs[0]], sn.op)))
                row_max = w.reshape(w.shape[0], -1).max(axis=1)
                cap = CONV_MAX if isinstance(sn.op, ir.Conv2d) else DENSE_MAX
                if isinstance(sn.op, ir.Dense):
                    dense_syn.append(s)
            else:  # identity skip: one synapse per neuron, weight σ_src[c]·m[c]
                row_max, cap = _column_scale(sig[s], ir.Conv2d), CONV_MAX
            limit = np.minimum(limit, cap / np.maximum(row_max, 1e-30))
        exp = 0
        if dense_syn and len(dense_syn) == len(_synapses(snn, n)):
            theta_at_limit = float(np.min(theta * limit))
            exp = int(np.clip(np.ceil(np.log2(TARGET_THRESHOLD / max(theta_at_limit, 1e-30))), 0, 16))
            for s in dense_syn:
                exp_of[s] = exp
        big_theta = np.clip(np.floor(theta * limit * 2.0 ** exp), 1, MAX_THRESHOLD)
        m_of[n.name] = big_theta / theta

    # 2. readout scale (scalar)
    w_out = np.abs(_scaled_weight(out.op, _column_scale(sig[out.inputs[0]], out.op)))
    cap = CONV_MAX if isinstance(out.op, ir.Conv2d) else DENSE_MAX
    out_exp = 0
    readout_m = cap / max(float(w_out.max()), 1e-30)
    if isinstance(out.op, ir.Dense):
        out_exp = 6
        exp_of[out.name] = out_exp
        readout_m *= 2.0 ** out_exp

    # 3. emit the integer graph with depths and delays
    depth = {snn.input.name: 0}
    nodes: list[ir.Node] = [ir.Node(snn.input.name, inp, (), snn.input_shape)]
    dest = {}
    for n in snn.nodes:
        if isinstance(n.op, ir.BurstNeuron):
            for s in _synapses(snn, n):
                dest[s] = n.name
    dest[out.name] = None

    def synapse_op(sn: ir.Node, m: np.ndarray, d: int):
        """Integer op of a float conv/dense whose rows are scaled by m."""
        w = _scaled_weight(sn.op, _column_scale(sig[sn.inputs[0]], sn.op))
        w = w * m.reshape((-1,) + (1,) * (w.ndim - 1))
        if isinstance(sn.op, ir.Dense):
            e = exp_of.get(sn.name, 0)
            wq = np.clip(_round_even(w / 2.0 ** e), -DENSE_MAX, DENSE_MAX).astype(np.int64)
            return int_ir.IntDense(wq, e, 8, 8, d)
        wq = np.clip(np.floor(w + 0.5), -CONV_MAX, CONV_MAX).astype(np.int64)
        op = sn.op
        return int_ir.IntConv(wq, op.stride, op.padding, op.dilation, op.groups, 8, d)

    for n in snn.nodes[1:]:
        op = n.op
        if isinstance(op, ir.BurstNeuron):
            m = m_of[n.name]
            syns = _synapses(snn, n)
            d = max(depth[snn.node(s).inputs[0]] if isinstance(snn.node(s).op, ir.LINEAR_LAYERS) else depth[s]
                    for s in syns) + 1
            currents = []
            bias = op.bias.astype(np.float64)
            for s in syns:
                sn = snn.node(s)
                src = sn.inputs[0] if isinstance(sn.op, ir.LINEAR_LAYERS) else s
                if depth[src] + 1 < d:  # balance the shorter path
                    delayed = f"{src}/delay->{n.name}"
                    nodes.append(ir.Node(delayed, int_ir.Delay(d - 1 - depth[src]), (src,), snn.node(src).shape))
                    src = delayed
                if isinstance(sn.op, ir.LINEAR_LAYERS):
                    nodes.append(ir.Node(s, synapse_op(sn, m, d), (src,), sn.shape))
                    bias = bias + sn.op.bias.astype(np.float64)
                    currents.append(s)
                else:
                    c = n.shape[0]
                    sigma_m = _column_scale(sig[s], ir.Conv2d) * m
                    if len(n.shape) == 1:  # a diagonal Dense: even 8-bit weights, as every Dense
                        w = np.clip(_round_even(sigma_m), -DENSE_MAX, DENSE_MAX).astype(np.int64)
                        skip_op = int_ir.IntDense(np.diag(w), 0, 8, 8, d)
                    else:
                        w = np.clip(np.floor(sigma_m + 0.5), -CONV_MAX, CONV_MAX).astype(np.int64)
                        skip_op = int_ir.IntConv(w.reshape(c, 1, 1, 1), groups=c, depth=d)
                    name = f"{s}/skip->{n.name}"
                    nodes.append(ir.Node(name, skip_op, (src,), n.shape))
                    currents.append(name)
            cur = currents[0]
            for k, other in enumerate(currents[1:]):
                add = snn.node(n.inputs[0]).name if k == len(currents) - 2 else f"{n.name}/sum{k}"
                nodes.append(ir.Node(add, ir.Add(), (cur, other), n.shape))
                cur = add
            theta_int = np.rint(op.threshold.astype(np.float64) * m).astype(np.int64)
            v0 = 0.5 * op.threshold.reshape((-1,) + (1,) * (len(n.shape) - 1)) + (0 if op.v_init is None else op.v_init)
            v0 = np.broadcast_to(v0 * m.reshape((-1,) + (1,) * (len(n.shape) - 1)), n.shape)
            neuron = int_ir.IntBurstNeuron(theta_int, np.rint(bias * m).astype(np.int64),
                                           np.floor(v0 + 0.5).astype(np.int64), int(op.max_spikes), d)
            bound = int(theta_int.max()) * (op.max_spikes + 2) + int(np.abs(np.rint(bias * m)).max())
            if bound >= STATE_LIMIT:
                raise UnsupportedError(f"neuron '{n.name}': integer state would reach {bound}, beyond the "
                                       f"24-bit limit {STATE_LIMIT}")
            nodes.append(ir.Node(n.name, neuron, (cur,), n.shape))
            depth[n.name] = d
        elif isinstance(op, (ir.Flatten, ir.Reshape, ir.Concat)):
            if isinstance(op, ir.Concat) and len({depth[i] for i in n.inputs}) > 1:
                raise UnsupportedError(f"Concat '{n.name}' joins paths of different latency; not supported yet")
            nodes.append(n)
            depth[n.name] = max(depth[i] for i in n.inputs)
        elif n.name == out.name:
            d = depth[n.inputs[0]] + 1
            nodes.append(ir.Node(n.name, synapse_op(n, np.full(n.shape[0], readout_m), d), n.inputs, n.shape))
            depth[n.name] = d
        elif isinstance(op, ir.LINEAR_LAYERS) or isinstance(op, ir.Add):
            continue  # emitted with the neuron they feed
        else:
            raise UnsupportedError(f"{n.kind} '{n.name}' cannot be lowered to Loihi 2 (fold pooling first)")
    order = {n.name: i for i, n in enumerate(nodes)}
    nodes.sort(key=lambda n: order[n.name])
    g = ir.Graph(tuple(_topological(nodes)), out.name)
    readout_bias = np.rint(out.op.bias.astype(np.float64) * readout_m).astype(np.int64)
    return Loihi2Lowering(g, m_of, {k: v for k, v in sig.items()}, float(readout_m), readout_bias, T,
                          depth[out.name])


def _topological(nodes: list[ir.Node]) -> list[ir.Node]:
    done, out = set(), []
    pending = list(nodes)
    while pending:
        rest = []
        for n in pending:
            if all(i in done for i in n.inputs):
                out.append(n)
                done.add(n.name)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise RuntimeError("integer graph has a cycle")
        pending = rest
    return out


def calibrate_int(low: Loihi2Lowering, acts: dict[str, np.ndarray], x: np.ndarray) -> Loihi2Lowering:
    """Integer-aware bias correction (method.md §4 through the bit-accurate
    simulator): per neuron channel, in order, the integer bias moves by
    −round(Δ·m[c]), Δ = mean(time-averaged integer SNN output) − mean(ANN
    output), so rounding and quantisation offsets are calibrated away."""
    from dataclasses import replace as dc_replace

    from adacal.runtime_sim.int_sim import run_int_neuron, simulate_int

    def hook(node: ir.Node, current: np.ndarray) -> int_ir.IntBurstNeuron:
        op = node.op
        m = low.membrane_scale[node.name]
        k, _ = run_int_neuron(op, current, low.timesteps)
        theta = (op.threshold / m).reshape((-1,) + (1,) * (k.ndim - 3))
        snn = k.mean(axis=0) * theta
        ann = np.asarray(acts[node.name], np.float64)
        axes = (0,) + tuple(range(2, snn.ndim))
        delta = snn.mean(axis=axes) - ann.mean(axis=axes)
        return dc_replace(op, bias=op.bias - np.rint(delta * m).astype(np.int64))

    _, g = simulate_int(low.graph, x, low.timesteps, neuron_hook=hook)
    return dc_replace(low, graph=g)
