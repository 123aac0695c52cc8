"""The plan of the Lava process graph for an integer network: pure numpy, no
Lava import.

``plan_lava(g)`` walks the integer graph (adacal.int_ir) once and returns a
``LavaPlan``: the payload populations (graph input, neuron layers and max
pools over payloads) with their Lava latency and layout, the synapse
processes (one per synapse node, split per Concat part), the max pools over
currents (between a Conv and its neurons), the readout, and the
identity-relay chains that delay payloads for Conv readers.  lava_run.py builds and runs it.  How the integer
ops map onto Lava processes, the timing and the layouts are described in
docs/loihi2.md ("Running on Lava").
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from adacal import int_ir, ir
from adacal.backends.loihi2 import lava_arith as la
from adacal.runtime_sim.maxpool import REALISATIONS, PoolGeometry

__all__ = ["plan_lava", "LavaPlan"]

I32 = 2 ** 31  # Dense sums and InPort sums are int32, wrapping (lava/proc/dense/models.py)
CONV_INT32_EXACT = 2 ** 31 - 2 ** 23  # Conv casts to int32 before its 24-bit wrap (lava/proc/conv/utils.py)
RELAY_MAX = 2 ** 23  # an identity relay Conv wraps its output to 24 bits (lava/proc/conv/models.py)
MAX_DENSE_DELAY = 63  # Loihi 2 synaptic delays are 6 bits (lava/proc/dense/models.py)
READOUT = "__readout__"  # target name of the readout sink


# ---------------------------------------------------------------------------
# the plan's parts
# ---------------------------------------------------------------------------
@dataclass
class _Pop:
    """A payload population: the graph input, one neuron layer or one max
    pool over payloads."""
    name: str
    shape: tuple  # PyTorch per-sample shape
    latency: int
    max_abs: int  # largest |payload|
    is_input: bool = False
    fixed: bool = False  # layout forced by a Conv (or max pool) writing into it
    lava_shape: tuple | None = None
    lava_index: np.ndarray | None = None  # PyTorch-shaped: Lava flat index
    requested_by: str | None = None
    pool_src: str | None = None  # a max pool's: the population it reads
    pool_request: tuple | None = None  # (lava_shape, lava_index) it needs of pool_src
    pool_node: str | None = None  # a max pool's: the IntMaxPool node it is (a channel part of)

    def to_lava(self, a: np.ndarray) -> np.ndarray:
        """(..., *shape) PyTorch layout -> (..., *lava_shape)."""
        a = np.asarray(a)
        lead = a.shape[: a.ndim - len(self.shape)]
        n = int(np.prod(self.shape))
        out = np.empty(lead + (n,), a.dtype)
        out[..., self.lava_index.ravel()] = a.reshape(lead + (n,))
        return out.reshape(lead + self.lava_shape)

    def from_lava(self, a: np.ndarray) -> np.ndarray:
        """(..., *lava_shape) -> (..., *shape)."""
        a = np.asarray(a)
        lead = a.shape[: a.ndim - len(self.lava_shape)]
        n = int(np.prod(self.shape))
        return a.reshape(lead + (n,))[..., self.lava_index.ravel()].reshape(lead + self.shape)

    def same_layout(self, other: "_Pop") -> bool:
        return self.lava_shape == other.lava_shape and np.array_equal(self.lava_index, other.lava_index)


@dataclass
class _Route:
    """A payload value on an edge: per element, which population (src), which
    element of it (PyTorch flat index) and how many steps of Delay."""
    src: np.ndarray
    idx: np.ndarray
    dly: np.ndarray


@dataclass
class _Part:
    """One Lava synapse process: the part of a synapse node reading one
    (population, delay)."""
    node: str
    kind: str  # "dense" | "conv"
    src: str
    delay: int
    weight: np.ndarray  # PyTorch-layout sub-weight (dense: (out, n_src) in src Lava order)
    params: dict = field(default_factory=dict)


@dataclass
class _Synapse:
    node: ir.Node
    parts: list
    latency: int
    targets: list = field(default_factory=list)  # neuron names and/or READOUT
    out_layout: tuple | None = None  # (lava_shape, lava_index) of what it writes
    bound: int = 0  # worst-case |current| it sends (for the int32 checks)


@dataclass
class _CurrentPool:
    """A max pool over synaptic currents, between Conv synapses and the
    neurons they feed: the Convs' a_out into its s_in, its s_out into the
    neurons' a_in.  It sends in the step it receives."""
    node: ir.Node
    terms: list  # the synapses summed into its s_in
    latency: int
    in_pop: _Pop  # shape and (W, H, C) layout of its input
    targets: list = field(default_factory=list)
    bound: int = 0  # worst-case |current| it sends


@dataclass
class LavaPlan:
    """What run_lava builds: populations, synapse parts, latencies, layouts."""
    pops: dict
    synapses: dict
    neurons: list  # neuron node names, graph order
    readout: list  # synapse names summed into the readout
    readout_pop: _Pop  # layout/shape/latency holder of the readout
    relays: dict  # population -> number of relay stages needed
    max_latency: int
    pools: list = field(default_factory=list)  # max pools over payloads (populations), graph order
    #: IntMaxPool node over payloads -> its populations (one per population it reads, in channel order)
    pool_parts: dict = field(default_factory=dict)
    current_pools: dict = field(default_factory=dict)  # max pools over currents: name -> _CurrentPool

    @property
    def latency(self) -> dict:
        out = {n: p.latency for n, p in self.pops.items()}
        out.update({n: s.latency for n, s in self.synapses.items()})
        out.update({n: c.latency for n, c in self.current_pools.items()})
        return out


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------
def default_layout(shape: tuple):
    """(lava_shape, lava_index): (W, H, C) for a (C, H, W) feature map, else flat."""
    n = int(np.prod(shape))
    if len(shape) == 3:
        c, h, w = shape
        return (w, h, c), np.arange(n).reshape(w, h, c).transpose(2, 1, 0).copy()
    return (n,), np.arange(n).reshape(shape)


def as_int(a, what, name) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind == "f" and not np.array_equal(a, np.round(a)):
        raise ValueError(f"{name}: {what} must be integers")
    return a.astype(np.int64)


def _check(strict: bool, ok: bool, msg: str) -> None:
    if ok:
        return
    if strict:
        raise ValueError(msg + " (pass strict=False to run anyway)")
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


# ---------------------------------------------------------------------------
# synapses: one Lava process per (population, delay) part
# ---------------------------------------------------------------------------
def _synapse_latency(name: str, r: _Route, pop_ids: list, pops: dict) -> int:
    keys = sorted({(int(s), int(d)) for s, d in zip(r.src.ravel(), r.dly.ravel())})
    lats = {pops[pop_ids[s]].latency + d for s, d in keys}
    if len(lats) != 1:
        raise ValueError(f"{name}: its input parts arrive at different steps "
                         f"{ {pop_ids[s] + f'+{d}': pops[pop_ids[s]].latency + d for s, d in keys} } "
                         "(unbalanced Concat: add Delay ops)")
    return lats.pop() + 1


def _occurrences(src: np.ndarray, dly: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Per input element: how often its (population, delay, element) came
    before.  An element read twice (the same population twice in a Concat)
    goes to a second Lava Dense: adding the two weights would change Lava's
    clipping / truncation of them (lava/proc/dense/models.py)."""
    occ = np.zeros(len(idx), np.int64)
    seen: dict = {}
    for j in range(len(idx)):
        key = (src[j], dly[j], idx[j])
        occ[j] = seen.get(key, 0)
        seen[key] = occ[j] + 1
    return occ


def _plan_dense(node: ir.Node, r: _Route, pop_ids: list, pops: dict, strict: bool) -> tuple[list, int]:
    op, name = node.op, node.name
    w = as_int(op.weight, "weight", name)
    if w.ndim != 2 or w.shape[1] != r.src.size:
        raise ValueError(f"{name}: weight {w.shape} does not match input size {r.src.size}")
    mode = la.sign_mode(w)
    weff = la.lava_dense_weights(w, int(op.num_weight_bits))
    e = int(op.weight_exp)
    src, idx, dly = r.src.ravel(), r.idx.ravel(), r.dly.ravel()
    occ = _occurrences(src, dly, idx)
    parts, part_sums = [], []
    for s_, d, o in sorted({(int(a), int(b), int(c)) for a, b, c in zip(src, dly, occ)}):
        if d > MAX_DENSE_DELAY:  # PyDelayDenseModelBitAcc (lava/proc/dense/models.py)
            raise ValueError(f"{name}: a Delay of {d} steps before a Dense exceeds Loihi 2's 63")
        j = np.nonzero((src == s_) & (dly == d) & (occ == o))[0]
        parts.append(_Part(name, "dense", pop_ids[s_], d, w[:, j],
                           dict(cols=idx[j], weight_exp=e, num_weight_bits=int(op.num_weight_bits),
                                num_message_bits=int(op.num_message_bits), sign_mode=mode)))
        pb = int(np.abs(weff[:, j]).sum(axis=1).max(initial=0)) * pops[pop_ids[s_]].max_abs
        part_sums.append(pb)
        _check(False, pb < I32, f"{name}: W.s may exceed int32 (bound {pb}); Lava's Dense wraps")
        if e > 0:
            _check(False, (pb << e) < I32, f"{name}: (W.s) << {e} may exceed int32; Lava's Dense wraps")
    if len(parts) > 1 and e < 0:  # each Dense shifts its own sum (lava/proc/dense/models.py)
        _check(strict, False, f"{name}: split over {len(parts)} Concat parts with weight_exp={e} < 0: "
               "Lava floors each part's sum separately")
    return parts, sum(pb << e if e > 0 else (pb >> -e) + 1 for pb in part_sums)


def _conv_blocks(name: str, r: _Route, pop_ids: list, pops: dict) -> list[tuple]:
    """(population id, delay, first channel, end channel) of every channel
    block; each block must be one whole population (Concat along channels)."""
    cin, h, wd = r.src.shape
    blocks = []
    c = 0
    while c < cin:
        s_, d = int(r.src[c, 0, 0]), int(r.dly[c, 0, 0])
        pop = pops[pop_ids[s_]]
        n_pop = int(np.prod(pop.shape))
        cp = n_pop // (h * wd)
        blk = slice(c, c + cp)
        if (cp * h * wd != n_pop or c + cp > cin or not (r.src[blk] == s_).all() or not (r.dly[blk] == d).all()
                or len(np.unique(r.idx[blk])) != n_pop):
            raise ValueError(f"{name}: a Conv (or max-pool) input must be whole populations concatenated along "
                             f"channels; channel {c} ({pop_ids[s_]}, delay {d}) does not start one")
        blocks.append((s_, d, c, c + cp))
        c += cp
    return blocks


def _ungrouped(w: np.ndarray, groups: int, cin: int) -> np.ndarray:
    """A dense (groups=1) weight with zeros outside the groups (to split it per part)."""
    cout, cg = w.shape[0], w.shape[1]
    full = np.zeros((cout, cin) + w.shape[2:], np.int64)
    og = cout // groups
    for o in range(cout):
        gi = o // og
        full[o, gi * cg:(gi + 1) * cg] = w[o]
    return full


def _plan_conv(node: ir.Node, r: _Route, pop_ids: list, pops: dict) -> tuple[list, int]:
    op, name = node.op, node.name
    w = as_int(op.weight, "weight", name)
    groups = int(op.groups)
    cin = r.src.shape[0] if r.src.ndim == 3 else -1
    if r.src.ndim != 3 or w.ndim != 4 or w.shape[1] * groups != cin:
        raise ValueError(f"{name}: weight {w.shape} (groups={groups}) does not match input {r.src.shape}")
    stride, pad, dil = la.conv_params_to_lava(op.stride, op.padding, op.dilation, name)
    _, h, wd = r.src.shape
    blocks = _conv_blocks(name, r, pop_ids, pops)
    split = len(blocks) > 1
    if split and groups > 1:
        w_split, g_split = _ungrouped(w, groups, cin), 1
    else:
        w_split, g_split = w, groups
    parts, bound = [], 0
    for s_, d, c0, c1 in blocks:
        pop = pops[pop_ids[s_]]
        block = r.idx[c0:c1]
        req_shape, dflt = default_layout((c1 - c0, h, wd))
        req_index = np.empty(block.size, np.int64)
        req_index[block.ravel()] = dflt.ravel()
        wp = w_split[:, c0:c1] if split else w_split
        parts.append(_Part(name, "conv", pop_ids[s_], d, wp,
                           dict(groups=g_split, stride=stride, padding=pad,
                                dilation=dil, num_message_bits=int(op.num_message_bits),
                                request=(req_shape, req_index.reshape(pop.shape)))))
        pb = int(np.abs(wp).reshape(wp.shape[0], -1).sum(axis=1).max(initial=0)) * pop.max_abs
        _check(False, pb < CONV_INT32_EXACT,
               f"{name}: the convolution may exceed int32 before Lava's 24-bit wrap (bound {pb})")
        if split:
            _check(False, pb < 2 ** 23,
                   f"{name}: split over Concat parts and a part may exceed 24 bits (bound {pb}); "
                   "Lava wraps each part separately")
        bound += min(pb, 2 ** 23)
    return parts, bound


def _plan_synapse(node: ir.Node, r: _Route, pop_ids: list, pops: dict, strict: bool) -> _Synapse:
    latency = _synapse_latency(node.name, r, pop_ids, pops)
    if isinstance(node.op, int_ir.IntDense):
        parts, bound = _plan_dense(node, r, pop_ids, pops, strict)
    else:
        parts, bound = _plan_conv(node, r, pop_ids, pops)
    return _Synapse(node, parts, latency, bound=bound)


# ---------------------------------------------------------------------------
# stage 1: walk the graph (routes, populations, synapses, neurons)
# ---------------------------------------------------------------------------
class _Walk:
    """The graph walk: routes of payload values, populations, synapses."""

    def __init__(self, g: ir.Graph, check_depth: bool, strict: bool):
        if not g.nodes or not isinstance(g.nodes[0].op, int_ir.GradedInput):
            raise ValueError("integer graph: nodes[0] must be the GradedInput")
        self.check_depth, self.strict = check_depth, strict
        self.nodes = {n.name: n for n in g.nodes}
        inp = g.nodes[0]
        op0 = inp.op
        self.pops: dict[str, _Pop] = {
            inp.name: _Pop(inp.name, tuple(inp.shape), 0, max(abs(int(op0.lo)), abs(int(op0.hi))), is_input=True)
        }
        self.pop_ids = [inp.name]
        self.routes: dict[str, _Route] = {
            inp.name: _Route(np.zeros(inp.shape, np.int64), np.arange(int(np.prod(inp.shape))).reshape(inp.shape),
                             np.zeros(inp.shape, np.int64))}
        self.synapses: dict[str, _Synapse] = {}
        self.neurons: list[str] = []
        self.pools: list[str] = []
        self.pool_parts: dict[str, list[str]] = {}
        self.current_pools: dict[str, _CurrentPool] = {}

    def current(self, name: str):
        """The synapse or max pool over currents sending current `name`."""
        return self.current_pools[name] if name in self.current_pools else self.synapses[name]

    def route_of(self, name: str, user: str) -> _Route:
        if name in self.routes:
            return self.routes[name]
        raise ValueError(f"{user}: input {name!r} is not a payload (input, neuron, max pool, Delay, "
                         "Flatten, Reshape or Concat)")

    def new_pop_route(self, name: str, shape: tuple | None = None) -> _Route:
        """Register population `name` (of the node's shape unless given) and
        its route: every element from it, in order, without delay."""
        pid = len(self.pop_ids)
        self.pop_ids.append(name)
        shape = tuple(self.nodes[name].shape) if shape is None else tuple(shape)
        n = int(np.prod(shape))
        self.routes[name] = _Route(np.full(shape, pid), np.arange(n).reshape(shape), np.zeros(shape, np.int64))
        return self.routes[name]

    def synapse_terms(self, name: str, user: str, pools: bool = False) -> list[str]:
        """The synapses (and, with pools=True, max pools over currents) whose
        currents arrive summed as `name`."""
        node = self.nodes.get(name)
        if node is None:
            raise ValueError(f"{user}: unknown input {name!r}")
        if isinstance(node.op, (int_ir.IntDense, int_ir.IntConv)):
            return [name]
        if pools and name in self.current_pools:
            return [name]
        if isinstance(node.op, ir.Add):
            return [t for i in node.inputs for t in self.synapse_terms(i, user, pools)]
        raise ValueError(f"{user}: input {name!r} ({node.kind}) is not a synaptic current "
                         "(IntDense, IntConv" + (", a MaxPool of them" if pools else "") + " or an Add of them)")

    def visit(self, node: ir.Node) -> None:
        op, name = node.op, node.name
        if isinstance(op, (ir.Flatten, ir.Reshape, int_ir.Delay)):
            self.reroute(node)
        elif isinstance(op, ir.Concat):
            self.concat(node)
        elif isinstance(op, (int_ir.IntDense, int_ir.IntConv)):
            self.synapse(node)
        elif isinstance(op, ir.Add):
            for i in node.inputs:
                self.synapse_terms(i, name)  # validates
        elif isinstance(op, int_ir.IntBurstNeuron):
            self.neuron(node)
        elif isinstance(op, int_ir.IntMaxPool):
            self.max_pool(node)
        elif isinstance(op, int_ir.GradedInput):
            raise ValueError(f"{name}: only nodes[0] may be a GradedInput")
        else:
            raise ValueError(f"{name}: op {node.kind} is not an integer (Lava) op")

    def reroute(self, node: ir.Node) -> None:
        """Flatten, Reshape or Delay: no process, the route changes."""
        op, name, shape = node.op, node.name, tuple(node.shape)
        if len(node.inputs) != 1:
            raise ValueError(f"{name}: {node.kind} takes one input")
        r = self.route_of(node.inputs[0], name)
        if isinstance(op, int_ir.Delay):
            if int(op.steps) < 0:
                raise ValueError(f"{name}: negative Delay")
            self.routes[name] = _Route(r.src, r.idx, r.dly + int(op.steps))
        else:
            try:
                self.routes[name] = _Route(r.src.reshape(shape), r.idx.reshape(shape), r.dly.reshape(shape))
            except ValueError:
                raise ValueError(f"{name}: cannot reshape {r.src.shape} to {shape}") from None

    def concat(self, node: ir.Node) -> None:
        rs = [self.route_of(i, node.name) for i in node.inputs]
        ax = node.op.axis
        route = _Route(*(np.concatenate([getattr(r, f) for r in rs], axis=ax) for f in ("src", "idx", "dly")))
        self.routes[node.name] = route
        if route.src.shape != tuple(node.shape):
            raise ValueError(f"{node.name}: concat gives {route.src.shape}, node says {tuple(node.shape)}")

    def synapse(self, node: ir.Node) -> None:
        name = node.name
        if len(node.inputs) != 1:
            raise ValueError(f"{name}: a synapse takes one payload input")
        if int(node.op.num_message_bits) <= 0:
            raise ValueError(f"{name}: num_message_bits must be > 0 (graded payloads; "
                             "Lava treats 0 as binary spikes)")
        r = self.route_of(node.inputs[0], name)
        self.synapses[name] = _plan_synapse(node, r, self.pop_ids, self.pops, self.strict)

    def arrival(self, name: str, terms: list[str], depth: int) -> int:
        """The one Lava step the currents `terms` arrive at (checked against depth)."""
        lats = {self.current(t).latency for t in terms}
        if len(lats) != 1:
            raise ValueError(f"{name}: unbalanced inputs, synapse latencies "
                             f"{ {t: self.current(t).latency for t in terms} } (add Delay ops)")
        lat = lats.pop()
        if self.check_depth and int(depth) != lat:
            raise ValueError(f"{name}: depth={depth} but its inputs arrive after {lat} Lava steps")
        return lat

    def neuron(self, node: ir.Node) -> None:
        op, name, shape = node.op, node.name, tuple(node.shape)
        if len(node.inputs) != 1:
            raise ValueError(f"{name}: a neuron takes one (current) input")
        terms = self.synapse_terms(node.inputs[0], name, pools=True)
        lat = self.arrival(name, terms, op.depth)
        for t in terms:
            src = self.current(t)
            if tuple(src.node.shape) != shape:
                raise ValueError(f"{name}: shape {shape} but synapse {t} gives {src.node.shape}")
            src.targets.append(name)
        th = as_int(op.threshold, "threshold", name)
        if th.size and th.min() <= 0:
            raise ValueError(f"{name}: thresholds must be > 0")
        self.pops[name] = _Pop(name, shape, lat, int(op.max_spikes))
        self.neurons.append(name)
        self.new_pop_route(name)
        if any(isinstance(self.current(t).node.op, (int_ir.IntConv, int_ir.IntMaxPool)) for t in terms):
            self.pops[name].fixed = True
        # int32 headroom of the InPort sum
        bound = sum(self.current(t).bound for t in terms)
        _check(False, bound < I32, f"{name}: the summed input current may exceed int32 "
               f"(bound {bound}); Lava's InPort sum would wrap")

    def max_pool(self, node: ir.Node) -> None:
        """A max pool over payloads (a population of its own) or over the
        currents of Conv synapses (between them and their neurons)."""
        op, name = node.op, node.name
        if len(node.inputs) != 1:
            raise ValueError(f"{name}: a max pool takes one input")
        if op.how not in REALISATIONS:
            raise ValueError(f"{name}: unknown max-pool realisation {op.how!r}")
        in_shape = tuple(self.nodes[node.inputs[0]].shape)
        geo = PoolGeometry.of(op, in_shape[1:])
        if len(in_shape) != 3 or len(node.shape) != 3 or \
                tuple(node.shape) != (in_shape[0],) + geo.out_size(in_shape[1:]):
            raise ValueError(f"{name}: a max pool of {geo} over {in_shape} does not give {tuple(node.shape)}")
        if node.inputs[0] in self.routes:
            self.payload_pool(node, self.routes[node.inputs[0]])
        else:
            self.current_pool(node)

    def payload_pool(self, node: ir.Node, r: _Route) -> None:
        """One MaxPool process per population the pool reads (a channel Concat
        of populations is pooled part by part: a max pool is per channel),
        each reading its whole population, without a Delay, in the (W, H, C)
        order of the part's shape; each is a population of its own, and the
        node's payload is their channel Concat."""
        name = node.name
        if r.dly.any():
            raise ValueError(f"{name}: a max pool cannot read its input through a Delay")
        blocks = _conv_blocks(name, r, self.pop_ids, self.pops)
        lats = {self.pops[self.pop_ids[s_]].latency for s_, _, _, _ in blocks}
        if len(lats) != 1:
            raise ValueError(f"{name}: its input parts arrive at different steps (unbalanced Concat)")
        lat = lats.pop()
        if self.check_depth and int(node.op.depth) != lat:
            raise ValueError(f"{name}: depth={node.op.depth} but its input arrives after {lat} Lava steps")
        _, h, w = r.src.shape
        out_hw = tuple(node.shape[1:])
        routes = []
        for s_, _, c0, c1 in blocks:
            src = self.pops[self.pop_ids[s_]]
            part = name if len(blocks) == 1 else f"{name}[{c0}:{c1}]"
            req_shape, dflt = default_layout((c1 - c0, h, w))
            req_index = np.empty(int(np.prod(src.shape)), np.int64)
            req_index[r.idx[c0:c1].ravel()] = dflt.ravel()
            self.pops[part] = _Pop(part, (c1 - c0,) + out_hw, lat, src.max_abs, fixed=True, pool_src=src.name,
                                   pool_request=(req_shape, req_index.reshape(src.shape)), pool_node=name)
            self.pools.append(part)
            routes.append(self.new_pop_route(part, (c1 - c0,) + out_hw))
        self.pool_parts[name] = [p.name for p in self.pops.values() if p.pool_node == name]
        self.routes[name] = _Route(*(np.concatenate([getattr(rt, f) for rt in routes], axis=0)
                                     for f in ("src", "idx", "dly")))

    def current_pool(self, node: ir.Node) -> None:
        name = node.name
        terms = self.synapse_terms(node.inputs[0], name)
        for t in terms:
            if not isinstance(self.synapses[t].node.op, int_ir.IntConv):
                raise ValueError(f"{name}: a max pool over currents reads Conv synapses only, not {t}")
            self.synapses[t].targets.append(name)
        lat = self.arrival(name, terms, node.op.depth)
        in_shape = tuple(self.nodes[node.inputs[0]].shape)
        in_pop = _Pop(f"{name}.s_in", in_shape, lat, 0, fixed=True)
        in_pop.lava_shape, in_pop.lava_index = default_layout(in_shape)
        bound = sum(self.synapses[t].bound for t in terms)
        _check(False, bound < I32, f"{name}: the summed input current may exceed int32 "
               f"(bound {bound}); Lava's InPort sum would wrap")
        self.current_pools[name] = _CurrentPool(node, terms, lat, in_pop, bound=bound)


# ---------------------------------------------------------------------------
# stages 2-5: readout, layouts, Dense columns, outputs, relays
# ---------------------------------------------------------------------------
def _plan_readout(g: ir.Graph, walk: _Walk) -> tuple[list[str], _Pop]:
    readout = walk.synapse_terms(g.output, "graph output")
    synapses = walk.synapses
    lats = {synapses[t].latency for t in readout}
    if len(lats) != 1:
        raise ValueError(f"graph output {g.output}: unbalanced readout terms")
    out_shape = tuple(walk.nodes[g.output].shape)
    readout_pop = _Pop(READOUT, out_shape, lats.pop(), 0)
    readout_pop.fixed = any(isinstance(synapses[t].node.op, int_ir.IntConv) for t in readout)
    for t in readout:
        synapses[t].targets.append(READOUT)
    return readout, readout_pop


def _request(pop: _Pop, req_shape: tuple, req_index: np.ndarray, by: str) -> None:
    """A reader (Conv, max pool) needs population pop in this Lava layout."""
    if pop.lava_shape is None:
        pop.lava_shape, pop.lava_index, pop.requested_by = req_shape, req_index, by
    elif pop.lava_shape != req_shape or not np.array_equal(pop.lava_index, req_index):
        raise ValueError(f"{by}: needs population {pop.name} in Lava layout {req_shape} "
                         f"but {pop.requested_by} needs {pop.lava_shape} (layout conflict)")


def _assign_layouts(pops: dict, synapses: dict, readout_pop: _Pop) -> None:
    """Conv and max-pool writers fix the default layout, Conv and max-pool
    readers request one, the rest is flat."""
    for pop in list(pops.values()) + [readout_pop]:
        if pop.fixed:
            pop.lava_shape, pop.lava_index = default_layout(pop.shape)
            pop.requested_by = "a max pool writing it" if pop.pool_src else "a Conv writing into it"
    for pop in list(pops.values()):
        if pop.pool_src is not None:
            _request(pops[pop.pool_src], *pop.pool_request, pop.name)
    for syn in synapses.values():
        for part in syn.parts:
            if part.kind != "conv":
                continue
            _request(pops[part.src], *part.params.pop("request"), syn.node.name)
    for pop in list(pops.values()) + [readout_pop]:
        if pop.lava_shape is None:  # no Conv writes or reads it: flat, no virtual ports
            n = int(np.prod(pop.shape))
            pop.lava_shape, pop.lava_index = (n,), np.arange(n).reshape(pop.shape)


def _dense_columns_in_lava_order(pops: dict, synapses: dict) -> None:
    for syn in synapses.values():
        for part in syn.parts:
            if part.kind == "dense":
                cols = part.params.pop("cols")  # PyTorch flat indices in the source
                w = np.zeros((part.weight.shape[0], int(np.prod(pops[part.src].shape))), np.int64)
                w[:, pops[part.src].lava_index.ravel()[cols]] = part.weight
                part.weight = w


def _output_layouts(pops: dict, synapses: dict, readout_pop: _Pop, current_pools: dict) -> None:
    """Every target of a synapse must share its layout."""
    def target(t):
        return readout_pop if t == READOUT else current_pools[t].in_pop if t in current_pools else pops[t]

    for cp in current_pools.values():  # its (W, H, C) output into neurons of the default layout
        exp_shape, exp_index = default_layout(tuple(cp.node.shape))
        for t in cp.targets:
            if pops[t].lava_shape != exp_shape or not np.array_equal(pops[t].lava_index, exp_index):
                raise ValueError(f"{cp.node.name}: max pool output layout mismatch with {t}")
    for syn in synapses.values():
        layouts = [target(t) for t in syn.targets]
        for tgt in layouts[1:]:
            if not tgt.same_layout(layouts[0]):
                raise ValueError(f"{syn.node.name}: feeds populations with different Lava layouts")
        if layouts:
            syn.out_layout = (layouts[0].lava_shape, layouts[0].lava_index)
            if isinstance(syn.node.op, int_ir.IntConv):
                exp_shape, exp_index = default_layout(tuple(syn.node.shape))
                if syn.out_layout[0] != exp_shape or not np.array_equal(syn.out_layout[1], exp_index):
                    raise ValueError(f"{syn.node.name}: Conv output layout mismatch")


def _relays(pops: dict, synapses: dict) -> dict[str, int]:
    """Relay stages per population: the longest Delay a Conv reads it through."""
    relays: dict[str, int] = {}
    for syn in synapses.values():
        for part in syn.parts:
            if part.kind == "conv" and part.delay > 0:
                relays[part.src] = max(relays.get(part.src, 0), part.delay)
                _check(False, pops[part.src].max_abs < RELAY_MAX,
                       f"{syn.node.name}: payload of {part.src} too large for an identity relay Conv")
    return relays


def plan_lava(g: ir.Graph, *, check_depth: bool = True, strict: bool = True) -> LavaPlan:
    """Analyse g (integer ops) into the Lava process graph run_lava builds."""
    walk = _Walk(g, check_depth, strict)
    for node in g.nodes[1:]:
        walk.visit(node)
    pops, synapses = walk.pops, walk.synapses
    readout, readout_pop = _plan_readout(g, walk)
    _assign_layouts(pops, synapses, readout_pop)
    _dense_columns_in_lava_order(pops, synapses)
    _output_layouts(pops, synapses, readout_pop, walk.current_pools)
    relays = _relays(pops, synapses)
    max_lat = max([p.latency for p in pops.values()] + [readout_pop.latency])
    return LavaPlan(pops, synapses, walk.neurons, readout, readout_pop, relays, max_lat, walk.pools,
                    walk.pool_parts, walk.current_pools)
