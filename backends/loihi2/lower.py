"""Integer lowering for Loihi 2: float burst SNN -> integer network (int_ir).

``lower_loihi2`` runs four stages: the 8-bit input quantiser, membrane scales
per neuron channel (from the weight formats), the readout scale, and the
emission of the integer graph with depths and Delay nodes.  ``calibrate_int``
then corrects the integer biases through the bit-accurate simulator.  Average
pooling must have been folded first (passes/fold_pooling.py); max pools over
spikes (ir.SpikingMaxPool) and max pools hoisted between a synapse and its
neurons become IntMaxPool nodes.  The design (scales, formats, latency
balancing, max pooling) is described in docs/loihi2.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from adacal import int_ir, ir
from adacal.errors import UnsupportedError
from adacal.runtime_sim.maxpool import PoolGeometry

CONV_MAX = 127  # Lava's Conv applies no exponent: 8-bit weights
DENSE_MAX = 254  # even 8-bit mixed-sign weights survive PyDenseModelBitAcc's LSB drop
TARGET_THRESHOLD = 2 ** 12  # aimed-at integer threshold of an all-Dense neuron (resolution)
STATE_LIMIT = 2 ** 23  # 24-bit neuron state
MAX_THRESHOLD = 2 ** 16  # channels with tiny weights would otherwise get huge thresholds
READOUT_DENSE_EXP = 6  # weight_exp of a Dense readout


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


# ---------------------------------------------------------------------------
# scales of payloads and weight columns
# ---------------------------------------------------------------------------
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
        elif isinstance(op, ir.SpikingMaxPool):
            sig[n.name] = _pooled_scale(n, sig[n.inputs[0]])
        elif isinstance(op, CURRENT_POOLS) and not _is_current_pool(g, n):
            raise _stray_pool(n)
    return sig


def _pooled_scale(n: ir.Node, s_in: np.ndarray) -> np.ndarray:
    """A max pool's payload units: its input's, one per channel.  A max of
    payloads in different units would not be the max of the values."""
    if s_in.ndim != 3 or len(n.shape) != 3:
        raise UnsupportedError(f"max pool '{n.name}' reads a payload of shape {s_in.shape}; Loihi 2 lowering "
                               "expects a (C, H, W) feature map")
    per_c = s_in.reshape(s_in.shape[0], -1)
    if not np.all(per_c == per_c[:, :1]):
        raise UnsupportedError(f"max pool '{n.name}': the payload units of its input vary within a channel, "
                               "so the max of the payloads is not the max of the values")
    return np.broadcast_to(per_c[:, 0].reshape(-1, 1, 1), n.shape).astype(np.float64)


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


CURRENT_POOLS = (ir.MaxPool, ir.GlobalMaxPool)


def _feed(g: ir.Graph, neuron: ir.Node) -> tuple[ir.Node, ir.Node | None]:
    """(the conv/dense or Add whose current drives a neuron, the max pool
    hoisted between them or None)."""
    src = g.node(neuron.inputs[0])
    if isinstance(src.op, CURRENT_POOLS):
        return g.node(src.inputs[0]), src
    return src, None


def _synapses(g: ir.Graph, neuron: ir.Node) -> list[str]:
    """Names of the conv/dense nodes or payload skips feeding a neuron
    (through a max pool hoisted before it, if there is one)."""
    src, pool = _feed(g, neuron)
    if isinstance(src.op, ir.Add):
        return list(src.inputs)
    if isinstance(src.op, ir.LINEAR_LAYERS):
        return [src.name]
    via = f" through {pool.kind} '{pool.name}'" if pool is not None else ""
    raise UnsupportedError(f"neuron '{neuron.name}' is fed by {src.kind} '{src.name}'{via}; hardware lowering "
                           "expects a conv/dense (or a residual Add of them) right before each neuron")


def _is_current_pool(g: ir.Graph, n: ir.Node) -> bool:
    """A (hoisted) max pool between a synapse (or a residual Add) and the
    neurons it feeds: it pools currents."""
    cons = g.consumers(n.name)
    return (isinstance(n.op, CURRENT_POOLS) and n.name != g.output and len(cons) == 1
            and isinstance(cons[0].op, ir.BurstNeuron)
            and isinstance(g.node(n.inputs[0]).op, ir.LINEAR_LAYERS + (ir.Add,)))


def _stray_pool(n: ir.Node) -> UnsupportedError:
    return UnsupportedError(f"{n.kind} '{n.name}' cannot be lowered to Loihi 2: a max pool must pool spikes "
                            "(SpikingMaxPool) or sit between a synapse and the one neuron layer it feeds")


def _int_pool(pool, in_shape: tuple, how: str, depth: int) -> int_ir.IntMaxPool:
    """IntMaxPool of an ir.MaxPool / ir.GlobalMaxPool over a (C, H, W) input."""
    geo = PoolGeometry.of(pool, tuple(in_shape[1:]))
    return int_ir.IntMaxPool(tuple(geo.kernel), tuple(geo.stride), tuple(geo.padding), tuple(geo.dilation),
                             bool(geo.ceil_mode), how, depth)


def _round_even(a: np.ndarray) -> np.ndarray:
    return 2 * np.floor(a / 2 + 0.5)


def _per_channel(a: np.ndarray, shape: tuple) -> np.ndarray:
    """(C,) -> broadcastable against a (C, ...) per-sample shape."""
    return a.reshape((-1,) + (1,) * (len(shape) - 1))


# ---------------------------------------------------------------------------
# stage 1: membrane scales; stage 2: readout scale
# ---------------------------------------------------------------------------
def _row_limit(snn: ir.Graph, sig: dict, s: str) -> tuple[np.ndarray, bool]:
    """Largest m[c] the 8-bit weights of synapse s allow (before any exponent),
    and whether s is a Dense."""
    sn = snn.node(s)
    if isinstance(sn.op, ir.LINEAR_LAYERS):
        w = np.abs(_scaled_weight(sn.op, _column_scale(sig[sn.inputs[0]], sn.op)))
        row_max = w.reshape(w.shape[0], -1).max(axis=1)
        cap = CONV_MAX if isinstance(sn.op, ir.Conv2d) else DENSE_MAX
        is_dense = isinstance(sn.op, ir.Dense)
    else:  # identity skip: one synapse per neuron, weight σ_src[c]·m[c]
        row_max, cap, is_dense = _column_scale(sig[s], ir.Conv2d), CONV_MAX, False
    return cap / np.maximum(row_max, 1e-30), is_dense


def _neuron_scale(snn: ir.Graph, sig: dict, n: ir.Node, exp_of: dict) -> np.ndarray:
    """m[c] = Θ[c] / θ[c] of one neuron; records the weight_exp of its Dense
    synapses in exp_of when every synapse into it is a Dense."""
    theta = n.op.threshold.astype(np.float64)
    limit = np.full(len(theta), np.inf)  # max m[c] the 8-bit weights allow (before exponent)
    dense_syn = []
    for s in _synapses(snn, n):
        row_limit, is_dense = _row_limit(snn, sig, s)
        if is_dense:
            dense_syn.append(s)
        limit = np.minimum(limit, row_limit)
    exp = 0
    if dense_syn and len(dense_syn) == len(_synapses(snn, n)):
        theta_at_limit = float(np.min(theta * limit))
        exp = int(np.clip(np.ceil(np.log2(TARGET_THRESHOLD / max(theta_at_limit, 1e-30))), 0, 16))
        for s in dense_syn:
            exp_of[s] = exp
    big_theta = np.clip(np.floor(theta * limit * 2.0 ** exp), 1, MAX_THRESHOLD)
    return big_theta / theta


def _membrane_scales(snn: ir.Graph, sig: dict) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Membrane scale per neuron channel and weight_exp per Dense synapse."""
    m_of: dict[str, np.ndarray] = {}
    exp_of: dict[str, int] = {}  # dense synapse -> weight_exp
    for n in snn.nodes:
        if isinstance(n.op, ir.BurstNeuron):
            m_of[n.name] = _neuron_scale(snn, sig, n, exp_of)
    return m_of, exp_of


def _readout_scale(out: ir.Node, sig: dict, exp_of: dict) -> float:
    """The readout's scalar scale (class order must be preserved); a Dense
    readout gets weight_exp READOUT_DENSE_EXP, recorded in exp_of."""
    w_out = np.abs(_scaled_weight(out.op, _column_scale(sig[out.inputs[0]], out.op)))
    cap = CONV_MAX if isinstance(out.op, ir.Conv2d) else DENSE_MAX
    readout_m = cap / max(float(w_out.max()), 1e-30)
    if isinstance(out.op, ir.Dense):
        exp_of[out.name] = READOUT_DENSE_EXP
        readout_m *= 2.0 ** READOUT_DENSE_EXP
    return readout_m


# ---------------------------------------------------------------------------
# stage 3: the integer graph with depths and delays
# ---------------------------------------------------------------------------
@dataclass
class _Emitter:
    """Emits integer nodes in order; depth[x] = latency of payload x."""
    snn: ir.Graph
    sig: dict
    m_of: dict
    exp_of: dict
    nodes: list = field(default_factory=list)
    depth: dict = field(default_factory=dict)

    def synapse_op(self, sn: ir.Node, m: np.ndarray, d: int):
        """Integer op of a float conv/dense whose rows are scaled by m."""
        w = _scaled_weight(sn.op, _column_scale(self.sig[sn.inputs[0]], sn.op))
        w = w * m.reshape((-1,) + (1,) * (w.ndim - 1))
        if isinstance(sn.op, ir.Dense):
            e = self.exp_of.get(sn.name, 0)
            wq = np.clip(_round_even(w / 2.0 ** e), -DENSE_MAX, DENSE_MAX).astype(np.int64)
            return int_ir.IntDense(wq, e, 8, 8, d)
        wq = np.clip(np.floor(w + 0.5), -CONV_MAX, CONV_MAX).astype(np.int64)
        op = sn.op
        return int_ir.IntConv(wq, op.stride, op.padding, op.dilation, op.groups, 8, d)

    def skip_op(self, s: str, n: ir.Node, m: np.ndarray, d: int):
        """One synapse per neuron for an identity skip of payload s: weight σ·m."""
        c = n.shape[0]
        sigma_m = _column_scale(self.sig[s], ir.Conv2d) * m
        if len(n.shape) == 1:  # a diagonal Dense: even 8-bit weights, as every Dense
            w = np.clip(_round_even(sigma_m), -DENSE_MAX, DENSE_MAX).astype(np.int64)
            return int_ir.IntDense(np.diag(w), 0, 8, 8, d)
        w = np.clip(np.floor(sigma_m + 0.5), -CONV_MAX, CONV_MAX).astype(np.int64)
        return int_ir.IntConv(w.reshape(c, 1, 1, 1), groups=c, depth=d)

    def source(self, s: str) -> str:
        """The payload a synapse (or identity skip) s reads."""
        sn = self.snn.node(s)
        return sn.inputs[0] if isinstance(sn.op, ir.LINEAR_LAYERS) else s

    def balanced(self, src: str, n: ir.Node, d: int) -> str:
        """src, or a Delay of it so that its synapse into n delivers at step d."""
        if self.depth[src] + 1 < d:  # balance the shorter path
            delayed = f"{src}/delay->{n.name}"
            self.nodes.append(ir.Node(delayed, int_ir.Delay(d - 1 - self.depth[src]), (src,),
                                      self.snn.node(src).shape))
            return delayed
        return src

    def currents(self, n: ir.Node, m: np.ndarray, d: int) -> tuple[list[str], np.ndarray]:
        """Emit every synapse into neuron n; returns their names and the summed float bias."""
        currents = []
        bias = n.op.bias.astype(np.float64)
        for s in _synapses(self.snn, n):
            sn = self.snn.node(s)
            src = self.balanced(self.source(s), n, d)
            if isinstance(sn.op, ir.LINEAR_LAYERS):
                self.nodes.append(ir.Node(s, self.synapse_op(sn, m, d), (src,), sn.shape))
                bias = bias + sn.op.bias.astype(np.float64)
                currents.append(s)
            else:
                name = f"{s}/skip->{n.name}"
                self.nodes.append(ir.Node(name, self.skip_op(s, n, m, d), (src,), n.shape))
                currents.append(name)
        return currents, bias

    def sum_currents(self, n: ir.Node, feed: ir.Node, currents: list[str]) -> str:
        """Chain of Adds over the currents; the last keeps the float Add's name."""
        cur = currents[0]
        for k, other in enumerate(currents[1:]):
            add = feed.name if k == len(currents) - 2 else f"{n.name}/sum{k}"
            self.nodes.append(ir.Node(add, ir.Add(), (cur, other), feed.shape))
            cur = add
        return cur

    def neuron(self, n: ir.Node) -> None:
        op, m = n.op, self.m_of[n.name]
        d = max(self.depth[self.source(s)] for s in _synapses(self.snn, n)) + 1
        currents, bias = self.currents(n, m, d)
        feed, pool = _feed(self.snn, n)
        cur = self.sum_currents(n, feed, currents)
        if pool is not None:
            # a max pool hoisted before the neurons pools their integer currents
            # ("step": exact on the constant currents of an input-driven conv);
            # the per-channel bias is added after the max, which is exact
            self.nodes.append(ir.Node(pool.name, _int_pool(pool.op, feed.shape, "step", d), (cur,), pool.shape))
            cur = pool.name
        theta_int = np.rint(op.threshold.astype(np.float64) * m).astype(np.int64)
        v0 = 0.5 * _per_channel(op.threshold, n.shape) + (0 if op.v_init is None else op.v_init)
        v0 = np.broadcast_to(v0 * _per_channel(m, n.shape), n.shape)
        neuron = int_ir.IntBurstNeuron(theta_int, np.rint(bias * m).astype(np.int64),
                                       np.floor(v0 + 0.5).astype(np.int64), int(op.max_spikes), d,
                                       bool(op.signed), bool(op.memory))
        bound = int(theta_int.max()) * (op.max_spikes + 2) + int(np.abs(np.rint(bias * m)).max())
        if bound >= STATE_LIMIT:
            raise UnsupportedError(f"neuron '{n.name}': integer state would reach {bound}, beyond the "
                                   f"24-bit limit {STATE_LIMIT}")
        self.nodes.append(ir.Node(n.name, neuron, (cur,), n.shape))
        self.depth[n.name] = d

    def check_pool_input(self, name: str, pool: ir.Node) -> None:
        """A max pool reads populations concatenated along channels (Lava runs
        one max-pool process per population, a max pool being per channel); a
        spatial Concat would put one window over several populations."""
        node = self.snn.node(name)
        if not isinstance(node.op, ir.Concat):
            return
        if node.op.axis != 0:
            raise UnsupportedError(f"max pool '{pool.name}' reads Concat '{name}' along axis {node.op.axis}: its "
                                   "windows would span several populations; Loihi 2 lowering pools populations "
                                   "concatenated along channels only")
        for i in node.inputs:
            self.check_pool_input(i, pool)

    def payload_pool(self, n: ir.Node) -> None:
        """A max pool over payloads; it sends in the step it receives, so its
        depth is its input's."""
        src = n.inputs[0]
        self.check_pool_input(src, n)
        d = self.depth[src]
        self.nodes.append(ir.Node(n.name, _int_pool(n.op.pool, self.snn.node(src).shape, n.op.how, d), (src,),
                                  n.shape))
        self.depth[n.name] = d

    def routing(self, n: ir.Node) -> None:
        if isinstance(n.op, ir.Concat) and len({self.depth[i] for i in n.inputs}) > 1:
            raise UnsupportedError(f"Concat '{n.name}' joins paths of different latency; not supported yet")
        self.nodes.append(n)
        self.depth[n.name] = max(self.depth[i] for i in n.inputs)

    def readout(self, n: ir.Node, readout_m: float) -> None:
        d = self.depth[n.inputs[0]] + 1
        self.nodes.append(ir.Node(n.name, self.synapse_op(n, np.full(n.shape[0], readout_m), d), n.inputs, n.shape))
        self.depth[n.name] = d


def _emit(snn: ir.Graph, inp: int_ir.GradedInput, em: _Emitter, readout_m: float) -> list[ir.Node]:
    """Every node of the integer graph, in emission order."""
    em.depth[snn.input.name] = 0
    em.nodes.append(ir.Node(snn.input.name, inp, (), snn.input_shape))
    for n in snn.nodes[1:]:
        op = n.op
        if isinstance(op, ir.BurstNeuron):
            em.neuron(n)
        elif isinstance(op, (ir.Flatten, ir.Reshape, ir.Concat)):
            em.routing(n)
        elif isinstance(op, ir.SpikingMaxPool):
            em.payload_pool(n)
        elif n.name == snn.output:
            em.readout(n, readout_m)
        elif isinstance(op, ir.LINEAR_LAYERS) or isinstance(op, ir.Add) or _is_current_pool(snn, n):
            continue  # emitted with the neuron they feed
        elif isinstance(op, CURRENT_POOLS):
            raise _stray_pool(n)
        else:
            raise UnsupportedError(f"{n.kind} '{n.name}' cannot be lowered to Loihi 2 (fold pooling first)")
    order = {n.name: i for i, n in enumerate(em.nodes)}
    return sorted(em.nodes, key=lambda n: order[n.name])


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


def lower_loihi2(snn: ir.Graph, x_cal: np.ndarray, T: int) -> Loihi2Lowering:
    """Lower a pooling-folded float SNN to the Loihi 2 integer network."""
    inp = input_quantiser(x_cal)
    sig = _payload_scales(snn, inp)
    out = snn.node(snn.output)
    if not isinstance(out.op, ir.LINEAR_LAYERS):
        raise UnsupportedError(f"the network output '{out.name}' ({out.kind}) is not a conv/dense readout")
    m_of, exp_of = _membrane_scales(snn, sig)
    readout_m = _readout_scale(out, sig, exp_of)
    em = _Emitter(snn, sig, m_of, exp_of)
    nodes = _emit(snn, inp, em, readout_m)
    g = ir.Graph(tuple(_topological(nodes)), out.name)
    readout_bias = np.rint(out.op.bias.astype(np.float64) * readout_m).astype(np.int64)
    return Loihi2Lowering(g, m_of, {k: v for k, v in sig.items()}, float(readout_m), readout_bias, T,
                          em.depth[out.name])


# ---------------------------------------------------------------------------
# integer-aware calibration
# ---------------------------------------------------------------------------
def calibrate_int(low: Loihi2Lowering, acts: dict[str, np.ndarray], x: np.ndarray) -> Loihi2Lowering:
    """Integer-aware bias correction through the bit-accurate simulator: per
    neuron channel, layer by layer in order, the integer bias moves by
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
