"""Run an integer network (adacal.int_ir) on Lava's bit-accurate CPU models.

``run_lava(g, x, T)`` builds one Lava process graph for the integer graph g,
runs every sample of x through it back to back under
``Loihi2SimCfg(select_tag='fixed_pt')`` and returns the payloads of every
neuron layer and the readout currents in lock-step time (see int_ir).

Process graph
-------------
* graph input  -> ``lava.proc.io.source.RingBuffer`` (fixed_pt: int32); it
  sends data[..., (t - 1) % buffer] at Lava step t (source.py line 43);
* IntBurstNeuron -> ``BurstIF`` (backends/loihi2/burst_if);
* IntDense -> ``lava.proc.dense.Dense`` (PyDenseModelBitAcc), or
  ``DelayDense`` when its input payload went through a Delay;
* IntConv -> ``lava.proc.conv.Conv`` (PyConvModelFixed);
* ir.Add -> several synapse OutPorts connected to one neuron InPort (Lava
  sums them: magma/core/model/py/ports.py lines 333-351);
* Flatten / Reshape / Concat -> no process: the consuming synapse's weights
  are permuted (and split per Concat part, one synapse process per part,
  all feeding the same InPort);
* Delay(d) -> a Dense consumer becomes a DelayDense with delays = d (Loihi 2
  synaptic delay; proc/dense/models.py lines 293-352); a Conv consumer reads
  the payload through a chain of d identity relays (depthwise 1x1 Conv,
  weight 1, one step each; exact while |payload| < 2**23);
* every neuron layer and the readout -> ``lava.proc.io.sink.RingBuffer``
  (it stores a_in at column (t - 1) % buffer, sink.py line 52).

Timing (checked by tests/test_loihi2_lava.py)
--------------------------------------------
Lava step t of the source carries the lock-step input of step t.  Every
Dense/Conv (and every relay) sends at step t + 1 what it received at step t
(dense/models.py line 96, conv/models.py line 38); a DelayDense with delay d
at step t + 1 + d.  A neuron receives and sends in the same step.  So with
L(x) the number of synapse steps (plus delays) from the input to x, a neuron
sends at Lava step t + L what the lock-step model sends at step t, and the
readout synapse delivers at Lava step t + L(readout) the current of lock-step
t.  L of a neuron must be the same on all its input paths (that is what the
Delay ops are for); it equals the neuron's ``depth``.  During its first L
steps a BurstIF is held at v = v_init and sends 0 (its input has not arrived;
integrating the bias there would break the correspondence).

Consequently a Delay is the IDENTITY in lock-step time: it only balances
Lava latencies (a neuron of latency L at lock-step t = Lava step t + L gets,
through a synapse after Delay(d), what its source of latency L - 1 - d sent
at Lava step t + L - 1 - d, i.e. at the source's own lock-step t).

Samples run back to back, P = T + max L Lava steps each, in ONE run of one
compiled network: the source holds all samples; the neurons repeat their
hold at the start of every period (BurstIF ``period``), so whatever the
one-step synapse buffers (and delay lines) still carry from the previous
sample arrives while the receiving neuron is held, and v restarts at v_init.
(Var.set / Var.get move one element per message in Lava 0.10, so resetting
state between runs is slower than this.)

Layouts
-------
Our per-sample arrays are PyTorch (C, H, W) / (F,) C-order; a Lava feature
map is (X, Y, Z) = (W, H, C).  Each payload population (input or neuron
layer) has a Lava shape and a permutation ``lava_index`` (PyTorch-shaped
array: the Lava C-order flat index of each element).  Feature maps written
by a Conv use (W, H, C); a population read by a Conv takes the layout that
Conv needs (also through a Reshape, e.g. a Dense layer's neurons reshaped to
(C, H, W)); everything else (and the input, unless a Conv reads it) is flat.
Neuron parameters are per neuron, so any permutation is free.  Dense weight columns and
rows are permuted accordingly (a Dense reading a (W, H, C) population -- e.g.
after a Flatten of conv payloads -- gets its columns in (W, H, C) order and a
flatten() virtual port; a Dense writing into a (W, H, C) population gets a
reshape() virtual port).  Conv weights are converted by
lava_arith.conv_weight_to_lava (flipped: Lava convolves).

Differences from the integer model that Lava cannot avoid:
* a synapse split over Concat parts is several Lava processes: a Dense with
  weight_exp < 0 floors each part's sum separately -- a systematic
  difference: ValueError (strict=True, the default) or a RuntimeWarning;
* a split Conv wraps each part to 24 bits separately; Dense sums and neuron
  input sums are int32 in Lava (no saturation: they wrap at 2**31); Conv casts
  its float64 result to int32 before the 24-bit wrap (exact only while
  |sum| < 2**31 - 2**23); an identity relay wraps at 2**23.  These only
  matter if the values get there: checked with worst-case bounds (sum of
  |weights| x max payload), RuntimeWarning when a bound is exceeded.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from adacal import ir
from adacal import int_ir
from adacal.backends.loihi2 import lava_arith as la

__all__ = ["run_lava", "plan_lava", "LavaPlan"]

_I32 = 2 ** 31
_CONV_INT32_EXACT = 2 ** 31 - 2 ** 23  # Lava wraps in int32 after an int32 cast
_RELAY_MAX = 2 ** 23  # an identity relay Conv wraps its output to 24 bits


# ---------------------------------------------------------------------------
# plan: pure numpy, no Lava
# ---------------------------------------------------------------------------
@dataclass
class _Pop:
    """A payload population: the graph input or one neuron layer."""
    name: str
    shape: tuple  # PyTorch per-sample shape
    latency: int
    max_abs: int  # largest |payload|
    is_input: bool = False
    fixed: bool = False  # layout forced by a Conv writing into it
    lava_shape: tuple | None = None
    lava_index: np.ndarray | None = None  # PyTorch-shaped: Lava flat index
    requested_by: str | None = None

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
    targets: list = field(default_factory=list)  # neuron names and/or "__readout__"
    out_layout: tuple | None = None  # (lava_shape, lava_index) of what it writes
    bound: int = 0  # worst-case |current| it sends (for the int32 checks)


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

    @property
    def latency(self) -> dict:
        out = {n: p.latency for n, p in self.pops.items()}
        out.update({n: s.latency for n, s in self.synapses.items()})
        return out


def _default_layout(shape: tuple):
    n = int(np.prod(shape))
    if len(shape) == 3:
        c, h, w = shape
        return (w, h, c), np.arange(n).reshape(w, h, c).transpose(2, 1, 0).copy()
    return (n,), np.arange(n).reshape(shape)


def _per_channel(a, shape, what, name) -> np.ndarray:
    a = np.asarray(a)
    if a.size == 1:
        return np.full(shape, int(a.ravel()[0]), np.int64)
    if a.shape == tuple(shape):
        return a.astype(np.int64)
    if a.ndim == 1 and a.shape[0] == shape[0]:
        return np.broadcast_to(a.astype(np.int64).reshape((-1,) + (1,) * (len(shape) - 1)), shape).copy()
    raise ValueError(f"{name}: {what} of shape {a.shape} is neither per channel nor per neuron for {shape}")


def _as_int(a, what, name) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind == "f" and not np.array_equal(a, np.round(a)):
        raise ValueError(f"{name}: {what} must be integers")
    return a.astype(np.int64)


def plan_lava(g: ir.Graph, *, check_depth: bool = True, strict: bool = True) -> LavaPlan:
    """Analyse g (integer ops) into the Lava process graph run_lava builds."""
    if not g.nodes or not isinstance(g.nodes[0].op, int_ir.GradedInput):
        raise ValueError("integer graph: nodes[0] must be the GradedInput")
    nodes = {n.name: n for n in g.nodes}
    inp = g.nodes[0]
    op0 = inp.op
    pops: dict[str, _Pop] = {
        inp.name: _Pop(inp.name, tuple(inp.shape), 0, max(abs(int(op0.lo)), abs(int(op0.hi))), is_input=True)
    }
    pop_ids = [inp.name]
    routes: dict[str, _Route] = {}
    synapses: dict[str, _Synapse] = {}
    neurons: list[str] = []

    def route_of(name: str, user: str) -> _Route:
        if name in routes:
            return routes[name]
        raise ValueError(f"{user}: input {name!r} is not a payload (input, neuron, Delay, "
                         "Flatten, Reshape or Concat)")

    def new_pop_route(name):
        pid = len(pop_ids)
        pop_ids.append(name)
        shape = tuple(nodes[name].shape)
        n = int(np.prod(shape))
        routes[name] = _Route(np.full(shape, pid), np.arange(n).reshape(shape), np.zeros(shape, np.int64))

    routes[inp.name] = _Route(np.zeros(inp.shape, np.int64), np.arange(int(np.prod(inp.shape))).reshape(inp.shape),
                              np.zeros(inp.shape, np.int64))

    def synapse_terms(name: str, user: str) -> list[str]:
        node = nodes.get(name)
        if node is None:
            raise ValueError(f"{user}: unknown input {name!r}")
        if isinstance(node.op, (int_ir.IntDense, int_ir.IntConv)):
            return [name]
        if isinstance(node.op, ir.Add):
            return [t for i in node.inputs for t in synapse_terms(i, user)]
        raise ValueError(f"{user}: input {name!r} ({node.kind}) is not a synaptic current "
                         "(IntDense, IntConv or an Add of them)")

    for node in g.nodes[1:]:
        op, name = node.op, node.name
        shape = tuple(node.shape)
        if isinstance(op, (ir.Flatten, ir.Reshape, int_ir.Delay)):
            if len(node.inputs) != 1:
                raise ValueError(f"{name}: {node.kind} takes one input")
            r = route_of(node.inputs[0], name)
            if isinstance(op, int_ir.Delay):
                if int(op.steps) < 0:
                    raise ValueError(f"{name}: negative Delay")
                routes[name] = _Route(r.src, r.idx, r.dly + int(op.steps))
            else:
                try:
                    routes[name] = _Route(r.src.reshape(shape), r.idx.reshape(shape), r.dly.reshape(shape))
                except ValueError:
                    raise ValueError(f"{name}: cannot reshape {r.src.shape} to {shape}") from None
        elif isinstance(op, ir.Concat):
            rs = [route_of(i, name) for i in node.inputs]
            ax = op.axis
            routes[name] = _Route(*(np.concatenate([getattr(r, f) for r in rs], axis=ax)
                                    for f in ("src", "idx", "dly")))
            if routes[name].src.shape != shape:
                raise ValueError(f"{name}: concat gives {routes[name].src.shape}, node says {shape}")
        elif isinstance(op, (int_ir.IntDense, int_ir.IntConv)):
            if len(node.inputs) != 1:
                raise ValueError(f"{name}: a synapse takes one payload input")
            if int(op.num_message_bits) <= 0:
                raise ValueError(f"{name}: num_message_bits must be > 0 (graded payloads; "
                                 "Lava treats 0 as binary spikes)")
            r = route_of(node.inputs[0], name)
            synapses[name] = _plan_synapse(node, r, pop_ids, pops, strict)
        elif isinstance(op, ir.Add):
            for i in node.inputs:
                synapse_terms(i, name)  # validates
        elif isinstance(op, int_ir.IntBurstNeuron):
            if len(node.inputs) != 1:
                raise ValueError(f"{name}: a neuron takes one (current) input")
            terms = synapse_terms(node.inputs[0], name)
            lats = {synapses[t].latency for t in terms}
            if len(lats) != 1:
                raise ValueError(f"{name}: unbalanced inputs, synapse latencies "
                                 f"{ {t: synapses[t].latency for t in terms} } (add Delay ops)")
            lat = lats.pop()
            if check_depth and int(op.depth) != lat:
                raise ValueError(f"{name}: depth={op.depth} but its inputs arrive after {lat} Lava steps")
            for t in terms:
                if tuple(synapses[t].node.shape) != shape:
                    raise ValueError(f"{name}: shape {shape} but synapse {t} gives {synapses[t].node.shape}")
                synapses[t].targets.append(name)
            th = _as_int(op.threshold, "threshold", name)
            if th.size and th.min() <= 0:
                raise ValueError(f"{name}: thresholds must be > 0")
            pops[name] = _Pop(name, shape, lat, int(op.max_spikes))
            neurons.append(name)
            new_pop_route(name)
            if any(isinstance(synapses[t].node.op, int_ir.IntConv) for t in terms):
                pops[name].fixed = True
            # int32 headroom of the InPort sum
            bound = sum(synapses[t].bound for t in terms)
            _check(False, bound < _I32, f"{name}: the summed input current may exceed int32 "
                   f"(bound {bound}); Lava's InPort sum would wrap")
        elif isinstance(op, int_ir.GradedInput):
            raise ValueError(f"{name}: only nodes[0] may be a GradedInput")
        else:
            raise ValueError(f"{name}: op {node.kind} is not an integer (Lava) op")

    readout = synapse_terms(g.output, "graph output")
    lats = {synapses[t].latency for t in readout}
    if len(lats) != 1:
        raise ValueError(f"graph output {g.output}: unbalanced readout terms")
    out_shape = tuple(nodes[g.output].shape)
    readout_pop = _Pop("__readout__", out_shape, lats.pop(), 0)
    readout_pop.fixed = any(isinstance(synapses[t].node.op, int_ir.IntConv) for t in readout)
    for t in readout:
        synapses[t].targets.append("__readout__")

    # ---- layouts: Conv readers request one, Conv writers fix the default ----
    for pop in list(pops.values()) + [readout_pop]:
        if pop.fixed:
            pop.lava_shape, pop.lava_index = _default_layout(pop.shape)
            pop.requested_by = "a Conv writing into it"
    for syn in synapses.values():
        for part in syn.parts:
            if part.kind != "conv":
                continue
            pop = pops[part.src]
            req_shape, req_index = part.params.pop("request")
            if pop.lava_shape is None:
                pop.lava_shape, pop.lava_index, pop.requested_by = req_shape, req_index, syn.node.name
            elif pop.lava_shape != req_shape or not np.array_equal(pop.lava_index, req_index):
                raise ValueError(
                    f"{syn.node.name}: needs population {part.src} in Lava layout {req_shape} "
                    f"but {pop.requested_by} needs {pop.lava_shape} (layout conflict)")
    for pop in list(pops.values()) + [readout_pop]:
        if pop.lava_shape is None:  # no Conv writes or reads it: flat, no virtual ports
            n = int(np.prod(pop.shape))
            pop.lava_shape, pop.lava_index = (n,), np.arange(n).reshape(pop.shape)
    # Dense columns in the source population's Lava order
    for syn in synapses.values():
        for part in syn.parts:
            if part.kind == "dense":
                cols = part.params.pop("cols")  # PyTorch flat indices in the source
                w = np.zeros((part.weight.shape[0], int(np.prod(pops[part.src].shape))), np.int64)
                w[:, pops[part.src].lava_index.ravel()[cols]] = part.weight
                part.weight = w
    # outputs: every target of a synapse must share its layout
    for syn in synapses.values():
        layouts = [(readout_pop if t == "__readout__" else pops[t]) for t in syn.targets]
        for tgt in layouts[1:]:
            if tgt.lava_shape != layouts[0].lava_shape or not np.array_equal(tgt.lava_index, layouts[0].lava_index):
                raise ValueError(f"{syn.node.name}: feeds populations with different Lava layouts")
        if layouts:
            syn.out_layout = (layouts[0].lava_shape, layouts[0].lava_index)
            if isinstance(syn.node.op, int_ir.IntConv):
                exp_shape, exp_index = _default_layout(tuple(syn.node.shape))
                if syn.out_layout[0] != exp_shape or not np.array_equal(syn.out_layout[1], exp_index):
                    raise ValueError(f"{syn.node.name}: Conv output layout mismatch")

    relays: dict[str, int] = {}
    for syn in synapses.values():
        for part in syn.parts:
            if part.kind == "conv" and part.delay > 0:
                relays[part.src] = max(relays.get(part.src, 0), part.delay)
                _check(False, pops[part.src].max_abs < _RELAY_MAX,
                       f"{syn.node.name}: payload of {part.src} too large for an identity relay Conv")
    max_lat = max([p.latency for p in pops.values()] + [readout_pop.latency])
    return LavaPlan(pops, synapses, neurons, readout, readout_pop, relays, max_lat)


def _check(strict: bool, ok: bool, msg: str) -> None:
    if ok:
        return
    if strict:
        raise ValueError(msg + " (pass strict=False to run anyway)")
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


def _plan_synapse(node: ir.Node, r: _Route, pop_ids: list, pops: dict, strict: bool) -> _Synapse:
    op, name = node.op, node.name
    keys = sorted({(int(s), int(d)) for s, d in zip(r.src.ravel(), r.dly.ravel())})
    lats = {pops[pop_ids[s]].latency + d for s, d in keys}
    if len(lats) != 1:
        raise ValueError(f"{name}: its input parts arrive at different steps "
                         f"{ {pop_ids[s] + f'+{d}': pops[pop_ids[s]].latency + d for s, d in keys} } "
                         "(unbalanced Concat: add Delay ops)")
    latency = lats.pop() + 1
    parts = []
    bound = 0
    if isinstance(op, int_ir.IntDense):
        w = _as_int(op.weight, "weight", name)
        if w.ndim != 2 or w.shape[1] != r.src.size:
            raise ValueError(f"{name}: weight {w.shape} does not match input size {r.src.size}")
        mode = la.sign_mode(w)
        weff = la.lava_dense_weights(w, int(op.num_weight_bits))
        e = int(op.weight_exp)
        src, idx, dly = r.src.ravel(), r.idx.ravel(), r.dly.ravel()
        # a population element read twice (the same population twice in a
        # Concat) goes to a second Lava Dense: adding the two weights would
        # change Lava's clipping / truncation of them
        occ = np.zeros(len(idx), np.int64)
        seen: dict = {}
        for j in range(len(idx)):
            key = (src[j], dly[j], idx[j])
            occ[j] = seen.get(key, 0)
            seen[key] = occ[j] + 1
        part_sums = []
        for s_, d, o in sorted({(int(a), int(b), int(c)) for a, b, c in zip(src, dly, occ)}):
            if d > 63:  # PyDelayDenseModelBitAcc: Loihi 2 delays are 6 bits (dense/models.py lines 330-334)
                raise ValueError(f"{name}: a Delay of {d} steps before a Dense exceeds Loihi 2's 63")
            j = np.nonzero((src == s_) & (dly == d) & (occ == o))[0]
            p = _Part(name, "dense", pop_ids[s_], d, w[:, j],
                      dict(cols=idx[j], weight_exp=e, num_weight_bits=int(op.num_weight_bits),
                           num_message_bits=int(op.num_message_bits), sign_mode=mode))
            parts.append(p)
            pb = int(np.abs(weff[:, j]).sum(axis=1).max(initial=0)) * pops[pop_ids[s_]].max_abs
            part_sums.append(pb)
            _check(False, pb < _I32, f"{name}: W.s may exceed int32 (bound {pb}); Lava's Dense wraps")
            if e > 0:
                _check(False, (pb << e) < _I32, f"{name}: (W.s) << {e} may exceed int32; Lava's Dense wraps")
        if len(parts) > 1 and e < 0:
            _check(strict, False, f"{name}: split over {len(parts)} Concat parts with weight_exp={e} < 0: "
                   "Lava floors each part's sum separately")
        bound = sum(pb << e if e > 0 else (pb >> -e) + 1 for pb in part_sums)
    else:
        w = _as_int(op.weight, "weight", name)
        groups = int(op.groups)
        cin = r.src.shape[0] if r.src.ndim == 3 else -1
        if r.src.ndim != 3 or w.ndim != 4 or w.shape[1] * groups != cin:
            raise ValueError(f"{name}: weight {w.shape} (groups={groups}) does not match input {r.src.shape}")
        stride, pad, dil = la.conv_params_to_lava(op.stride, op.padding, op.dilation, name)
        _, h, wd = r.src.shape
        # channel blocks, each one whole population (in a Concat along channels)
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
                raise ValueError(f"{name}: a Conv input must be whole populations concatenated along channels; "
                                 f"channel {c} ({pop_ids[s_]}, delay {d}) does not start one")
            blocks.append((s_, d, c, c + cp))
            c += cp
        split = len(blocks) > 1
        if split and groups > 1:
            # a dense (groups=1) weight with zeros outside the groups, split per part
            cout, cg = w.shape[0], w.shape[1]
            full = np.zeros((cout, cin) + w.shape[2:], np.int64)
            og = cout // groups
            for o in range(cout):
                gi = o // og
                full[o, gi * cg:(gi + 1) * cg] = w[o]
            w_split, g_split = full, 1
        else:
            w_split, g_split = w, groups
        for s_, d, c0, c1 in blocks:
            pop = pops[pop_ids[s_]]
            block = r.idx[c0:c1]
            req_shape, dflt = _default_layout((c1 - c0, h, wd))
            req_index = np.empty(block.size, np.int64)
            req_index[block.ravel()] = dflt.ravel()
            wp = w_split[:, c0:c1] if split else w_split
            parts.append(_Part(name, "conv", pop_ids[s_], d, wp,
                               dict(groups=g_split, stride=stride, padding=pad,
                                    dilation=dil, num_message_bits=int(op.num_message_bits),
                                    request=(req_shape, req_index.reshape(pop.shape)))))
            pb = int(np.abs(wp).reshape(wp.shape[0], -1).sum(axis=1).max(initial=0)) * pop.max_abs
            _check(False, pb < _CONV_INT32_EXACT,
                   f"{name}: the convolution may exceed int32 before Lava's 24-bit wrap (bound {pb})")
            if split:
                _check(False, pb < 2 ** 23,
                       f"{name}: split over Concat parts and a part may exceed 24 bits (bound {pb}); "
                       "Lava wraps each part separately")
            bound += min(pb, 2 ** 23)
    return _Synapse(node, parts, latency, bound=bound)


# ---------------------------------------------------------------------------
# build and run
# ---------------------------------------------------------------------------
def _sign_mode_enum(mode: str):
    from lava.utils.weightutils import SignMode
    return {la.MIXED: SignMode.MIXED, la.EXCITATORY: SignMode.EXCITATORY,
            la.INHIBITORY: SignMode.INHIBITORY}[mode]


#: run_lava with a progress callback: at most this many Lava runs
PROGRESS_CHUNKS = 20


def run_lava(g: ir.Graph, x: np.ndarray, T: int, *, record: bool = True,
             check_depth: bool = True, strict: bool = True, progress=None) -> dict:
    """Run the integer graph g on Lava (Loihi2SimCfg(select_tag='fixed_pt')).

    x: float array (N, *input_shape), quantised with nodes[0]'s GradedInput;
    the payload is presented at lock-step steps 1..T.  Returns
    ``{"payloads": {neuron: int64 (T, N, *shape)}, "readout": int64
    (T, N, *out_shape), "seconds": total wall time, "timing": {...},
    "latency": {node: Lava latency}, "period": Lava steps per sample,
    "lava_steps": total steps, "processes": number of Lava processes}``,
    all in lock-step time (Lava step t + latency -> step t).
    record=False skips the per-neuron sinks (payloads is then empty; reading
    a sink costs one Lava message per element and step, the dominant cost
    for feature maps).  check_depth: each neuron's ``depth`` must equal its
    Lava latency.  strict: refuse (ValueError) a Dense split over Concat
    parts with weight_exp < 0 instead of warning (see the module doc).
    progress: optional callable ``progress(n)``; given, the run is split into
    at most PROGRESS_CHUNKS consecutive runs of whole samples (the same steps,
    so the same results) and progress(k) is called after each with its k
    samples.
    Raises ValueError, naming the node, for what Lava cannot express
    (asymmetric Conv padding, unbalanced paths, a Conv reading anything but
    whole populations concatenated along channels, ...).
    """
    t_start = time.perf_counter()
    T = int(T)
    if T < 1:
        raise ValueError("T must be >= 1")
    plan = plan_lava(g, check_depth=check_depth, strict=strict)
    x = np.asarray(x)
    in_shape = tuple(g.nodes[0].shape)
    if x.shape[1:] != in_shape:
        raise ValueError(f"x has per-sample shape {x.shape[1:]}, the graph input is {in_shape}")
    n_samples = x.shape[0]
    payload_in = g.nodes[0].op.quantise(x)
    P = T + plan.max_latency
    steps = n_samples * P

    from adacal.backends.loihi2.compat import ensure_lava, lava_fixed_pt_run_config
    ensure_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from adacal.backends.loihi2.burst_if.process import BurstIF

    nodes = {n.name: n for n in g.nodes}
    pin = plan.pops[g.nodes[0].name]
    if np.abs(payload_in).max(initial=0) >= _I32:
        raise ValueError("input payload exceeds int32")
    data = np.zeros(pin.lava_shape + (steps,), np.int64)
    lav = pin.to_lava(payload_in)  # (N, *lava_shape)
    for i in range(n_samples):
        data[..., i * P:i * P + T] = lav[i][..., None]
    procs = {pin.name: Source(data=data.astype(np.int32))}
    n_procs = 1
    for name in plan.neurons:
        pop, op = plan.pops[name], nodes[name].op
        th = _per_channel(_as_int(op.threshold, "threshold", name), pop.shape, "threshold", name)
        bias = _per_channel(_as_int(op.bias, "bias", name), pop.shape, "bias", name)
        v0 = np.zeros(pop.shape, np.int64) if op.v_init is None else \
            _per_channel(_as_int(op.v_init, "v_init", name), pop.shape, "v_init", name)
        procs[name] = BurstIF(shape=pop.lava_shape, threshold=pop.to_lava(th), bias=pop.to_lava(bias),
                              v_init=pop.to_lava(v0), max_spikes=int(op.max_spikes),
                              hold=pop.latency, period=P, name=name)
        n_procs += 1

    def out_port(pop_name, flat: bool):
        port = procs[pop_name].s_out
        return port.flatten() if flat and len(plan.pops[pop_name].lava_shape) != 1 else port

    # identity relay chains (payload delay for Conv readers)
    relay_out: dict[tuple, object] = {}
    for pname, stages in plan.relays.items():
        pop = plan.pops[pname]
        if len(pop.lava_shape) != 3:
            raise ValueError(f"relay for {pname}: not a feature map")  # cannot happen: Conv readers
        c = pop.lava_shape[2]
        prev = procs[pname].s_out
        for k in range(1, stages + 1):
            rel = Conv(weight=np.ones((c, 1, 1, 1), np.int32), input_shape=pop.lava_shape, groups=c,
                       num_message_bits=8, name=f"{pname}/relay{k}")
            n_procs += 1
            prev.connect(rel.s_in)
            prev = rel.a_out
            relay_out[(pname, k)] = prev

    sink_out = Sink(shape=plan.readout_pop.lava_shape, buffer=steps)
    n_procs += 1
    for sname, syn in plan.synapses.items():
        if not syn.targets:
            continue  # feeds nothing (dead branch): not built
        lava_parts = []
        for part in syn.parts:
            pr = part.params
            if part.kind == "dense":
                out_shape, out_index = syn.out_layout
                w = np.zeros_like(part.weight)
                w[out_index.ravel(), :] = part.weight
                kw = dict(weights=w.astype(np.int32), weight_exp=pr["weight_exp"],
                          num_weight_bits=pr["num_weight_bits"], num_message_bits=pr["num_message_bits"],
                          sign_mode=_sign_mode_enum(pr["sign_mode"]), name=f"{sname}/{part.src}")
                proc = DelayDense(delays=int(part.delay), **kw) if part.delay > 0 else Dense(**kw)
                out_port(part.src, flat=True).connect(proc.s_in)
                a_out = proc.a_out if len(out_shape) == 1 else proc.a_out.reshape(out_shape)
            else:
                lw = la.conv_weight_to_lava(part.weight).astype(np.int32)
                proc = Conv(weight=lw, input_shape=plan.pops[part.src].lava_shape, padding=pr["padding"],
                            stride=pr["stride"], dilation=pr["dilation"], groups=pr["groups"],
                            num_message_bits=pr["num_message_bits"], name=f"{sname}/{part.src}")
                src_port = procs[part.src].s_out if part.delay == 0 else relay_out[(part.src, part.delay)]
                src_port.connect(proc.s_in)
                a_out = proc.a_out
            n_procs += 1
            lava_parts.append(a_out)
        for tgt in syn.targets:
            for a_out in lava_parts:
                a_out.connect(sink_out.a_in if tgt == "__readout__" else procs[tgt].a_in)

    sinks = {}
    if record:
        for name in plan.neurons:
            sinks[name] = Sink(shape=plan.pops[name].lava_shape, buffer=steps)
            procs[name].s_out.connect(sinks[name].a_in)
            n_procs += 1

    t_built = time.perf_counter()
    got = {}
    try:
        if progress is None:
            sink_out.run(condition=RunSteps(num_steps=steps), run_cfg=lava_fixed_pt_run_config())
        else:
            cfg, per = lava_fixed_pt_run_config(), -(-n_samples // PROGRESS_CHUNKS)
            for s0 in range(0, n_samples, per):
                k = min(per, n_samples - s0)
                sink_out.run(condition=RunSteps(num_steps=k * P), run_cfg=cfg)
                progress(k)
        t_ran = time.perf_counter()
        got["__readout__"] = sink_out.data.get()
        for name, s in sinks.items():
            got[name] = s.data.get()
    finally:
        sink_out.stop()
    t_read = time.perf_counter()

    def lockstep(raw, pop):
        raw = np.rint(np.asarray(raw)).astype(np.int64)  # sinks return float64 (exact ints)
        raw = np.moveaxis(raw, -1, 0).reshape((n_samples, P) + pop.lava_shape)
        cols = raw[:, pop.latency:pop.latency + T]  # Lava step latency + t -> column latency + t - 1
        return np.swapaxes(pop.from_lava(cols), 0, 1)  # (T, N, *shape)

    payloads = {name: lockstep(got[name], plan.pops[name]) for name in sinks}
    readout = lockstep(got["__readout__"], plan.readout_pop)
    t_end = time.perf_counter()
    return {
        "payloads": payloads,
        "readout": readout,
        "seconds": t_end - t_start,
        "timing": {"plan_build": t_built - t_start, "run": t_ran - t_built,
                   "read": t_read - t_ran, "total": t_end - t_start},
        "latency": plan.latency | {"__readout__": plan.readout_pop.latency},
        "period": P,
        "lava_steps": steps,
        "processes": n_procs,
    }
