"""The Lava backend (backends/loihi2: lava_arith, burst_if, lava_plan, lava_run) against
an independent integer reference, on real multi-process Lava runs
(Loihi2SimCfg(select_tag='fixed_pt'), lava-nc 0.10.0).

* vendor arithmetic: lava_dense_weights against Lava's own weightutils
  (clip_weights + truncate_weights, as proc/dense/models.py lines 82-91 call
  them), the conv layout conversion and 24-bit wrap against
  lava/proc/conv/utils.py, the latency of Dense / DelayDense / BurstIF;
* run_lava on 60 seeded random integer networks (dense stacks, convs with
  stride / symmetric padding / dilation / groups, residual blocks with a Delay
  on the skip (Conv skip -> relay chain, Dense skip -> DelayDense), channel and
  feature concats, Reshape into a Conv, a Conv readout, an Add readout,
  mixed-sign odd weights, excitatory / inhibitory matrices, num_weight_bits < 8,
  weight_exp in -3..3, a Conv wrapping at 24 bits, max_spikes 1..7, biases
  and v_init): every neuron layer's payload at every step and the readout
  equal `reference` below, a plain lock-step model written here;
* the same networks through adacal.runtime_sim.int_sim.simulate_int.
"""
from __future__ import annotations

import functools
import time

import numpy as np
import pytest

from adacal import int_ir, ir
from adacal.backends.loihi2 import lava_arith as la
from adacal.backends.loihi2.compat import ensure_lava, lava_fixed_pt_run_config
from adacal.backends.loihi2.lava_plan import plan_lava
from adacal.backends.loihi2.lava_run import run_lava


# ===========================================================================
# independent lock-step reference of the integer semantics
# ===========================================================================
def vendor_dense_weights(w: np.ndarray, num_weight_bits: int) -> np.ndarray:
    """What PyDenseModelBitAcc multiplies with, from Lava's own functions."""
    ensure_lava()
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    mode = determine_sign_mode(w)
    return truncate_weights(clip_weights(w, mode, num_bits=8), mode, num_weight_bits).astype(np.int64)


def ref_conv(x: np.ndarray, w: np.ndarray, stride, pad, dil, groups) -> np.ndarray:
    """Cross-correlation of one (C, H, W) sample, element loops over outputs."""
    cin, h, wd = x.shape
    cout, cg, kh, kw = w.shape
    top, left, bottom, right = pad
    ho = (h + top + bottom - dil[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wd + left + right - dil[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((cout, ho, wo), np.int64)
    og = cout // groups
    for o in range(cout):
        g = o // og
        xs = x[g * cg:(g + 1) * cg]
        for oy in range(ho):
            for ox in range(wo):
                acc = 0
                for i in range(kh):
                    iy = oy * stride[0] - top + i * dil[0]
                    if not 0 <= iy < h:
                        continue
                    for j in range(kw):
                        ix = ox * stride[1] - left + j * dil[1]
                        if 0 <= ix < wd:
                            acc += int(np.dot(w[o, :, i, j], xs[:, iy, ix]))
                out[o, oy, ox] = acc
    return out


def wrap24(a):
    return ((np.asarray(a, np.int64) + 2 ** 23) % 2 ** 24) - 2 ** 23


def reference(g: ir.Graph, x: np.ndarray, T: int, split_floor: dict | None = None,
              literal_delay: bool = False):
    """Lock-step integer semantics: {neuron: (T, N, ...)}, readout (T, N, ...).

    Delay is the IDENTITY in lock-step time: a Delay(d) balances Lava
    latencies (d extra Lava steps on the shorter path), and lock-step time is
    Lava time shifted by each layer's latency, which already includes the d
    steps.  (A neuron of latency L at lock-step t = Lava step t + L receives
    the payload its source (latency L - 1 - d) sent at Lava step t + L - 1 - d,
    i.e. at the source's lock-step t.)

    Deliberately different variants, to show that they are NOT what Lava does:
    literal_delay delays payloads d lock-steps; split_floor = {dense node:
    [column index arrays]} floors each part's sum separately."""
    op0 = g.nodes[0].op
    x = np.asarray(x, np.float64)
    p_in = np.clip(np.floor(x / op0.scale + 0.5), op0.lo, op0.hi).astype(np.int64)
    n_samples = x.shape[0]
    pay = {n.name: np.zeros((T, n_samples) + tuple(n.shape), np.int64)
           for n in g.nodes if isinstance(n.op, int_ir.IntBurstNeuron)}
    out = np.zeros((T, n_samples) + tuple(g.node(g.output).shape), np.int64)
    weff = {n.name: vendor_dense_weights(np.asarray(n.op.weight, np.int64), n.op.num_weight_bits)
            for n in g.nodes if isinstance(n.op, int_ir.IntDense)}
    for s in range(n_samples):
        hist: dict[str, list] = {}
        v = {n.name: np.broadcast_to(np.asarray(n.op.v_init, np.int64), n.shape).copy()
             for n in g.nodes if isinstance(n.op, int_ir.IntBurstNeuron)}
        for t in range(T):
            val = {}
            for n in g.nodes:
                op = n.op
                if isinstance(op, int_ir.GradedInput):
                    val[n.name] = p_in[s]
                elif isinstance(op, (ir.Flatten, ir.Reshape)):
                    val[n.name] = val[n.inputs[0]].reshape(n.shape)
                elif isinstance(op, ir.Concat):
                    val[n.name] = np.concatenate([val[i] for i in n.inputs], axis=op.axis)
                elif isinstance(op, int_ir.Delay):
                    if literal_delay:
                        h = hist[n.inputs[0]]
                        val[n.name] = h[t - op.steps] if t - op.steps >= 0 else np.zeros(n.shape, np.int64)
                    else:
                        val[n.name] = val[n.inputs[0]]
                elif isinstance(op, int_ir.IntDense):
                    sv = val[n.inputs[0]].reshape(-1)
                    e = op.weight_exp
                    shift = (lambda a: a << e) if e >= 0 else (lambda a: a >> -e)
                    if split_floor and n.name in split_floor:
                        val[n.name] = sum(shift(weff[n.name][:, c] @ sv[c]) for c in split_floor[n.name])
                    else:
                        val[n.name] = shift(weff[n.name] @ sv)
                elif isinstance(op, int_ir.IntConv):
                    val[n.name] = wrap24(ref_conv(val[n.inputs[0]], np.asarray(op.weight, np.int64), op.stride,
                                                  op.padding, op.dilation, op.groups))
                elif isinstance(op, ir.Add):
                    val[n.name] = sum(val[i] for i in n.inputs)
                elif isinstance(op, int_ir.IntBurstNeuron):
                    shp = (-1,) + (1,) * (len(n.shape) - 1)
                    th = np.asarray(op.threshold, np.int64).reshape(shp)
                    vv = v[n.name] + val[n.inputs[0]] + np.asarray(op.bias, np.int64).reshape(shp)
                    k = np.minimum(np.maximum(vv // th, 0), op.max_spikes)
                    v[n.name] = vv - k * th
                    val[n.name] = k
                    pay[n.name][t, s] = k
                else:
                    raise AssertionError(n.kind)
                hist.setdefault(n.name, []).append(val[n.name])
            out[t, s] = val[g.output]
    return pay, out


# ===========================================================================
# random integer networks
# ===========================================================================
class Net:
    """Builds an integer graph node by node, tracking depth and shapes, and
    picks thresholds from a reference run so that every layer spikes."""

    def __init__(self, rng, input_shape, lo=-8, hi=24, scale=0.1):
        self.rng = rng
        self.nodes = [ir.Node("x", int_ir.GradedInput(scale, lo, hi), (), tuple(input_shape))]
        self.depth = {"x": 0}
        self.maxp = {"x": max(abs(lo), hi)}
        self.count = 0

    def _add(self, prefix, op, inputs, shape, depth):
        self.count += 1
        name = f"{prefix}{self.count}"
        self.nodes.append(ir.Node(name, op, tuple(inputs), tuple(int(s) for s in shape)))
        self.depth[name] = depth
        return name

    def shape(self, name):
        return next(n.shape for n in self.nodes if n.name == name)

    def weights(self, shape, kind=None, lo=-40, hi=40):
        rng = self.rng
        kind = kind or rng.choice(["mixed", "mixed", "mixed", "exc", "inh"])
        w = rng.integers(lo, hi + 1, shape)
        w[rng.random(shape) < 0.2] = 0
        if kind == "exc":
            w = np.abs(w)
        elif kind == "inh":
            w = -np.abs(w)
        flat = w.reshape(-1)
        if kind == "mixed" and flat.size >= 2:
            flat[0], flat[1] = abs(flat[0]) | 1, -(abs(flat[1]) | 1)  # odd, both signs
        return w

    def dense(self, src, n_out, weight_exp=None, nwb=None, kind=None):
        rng = self.rng
        n_in = int(np.prod(self.shape(src)))
        e = int(rng.integers(-3, 4)) if weight_exp is None else weight_exp
        nwb = int(rng.choice([8, 8, 8, 7, 6])) if nwb is None else nwb
        w = self.weights((n_out, n_in), kind)
        d = self.depth[src] + 1  # a Delay node's depth includes its steps
        op = int_ir.IntDense(w, e, nwb, 8, d)
        return self._add("dense", op, [src], (n_out,), d)

    def conv(self, src, cout, k=3, stride=1, pad=1, dil=1, groups=1, w=None):
        cin, h, wd = self.shape(src)
        if w is None:
            w = self.weights((cout, cin // groups, k, k))
        kh, kw = w.shape[2:]
        st, dl = (stride, stride) if np.isscalar(stride) else stride, (dil, dil) if np.isscalar(dil) else dil
        pd = (pad,) * 4 if np.isscalar(pad) else pad
        ho = (h + pd[0] + pd[2] - dl[0] * (kh - 1) - 1) // st[0] + 1
        wo = (wd + pd[1] + pd[3] - dl[1] * (kw - 1) - 1) // st[1] + 1
        d = self.depth[src] + 1
        op = int_ir.IntConv(w, tuple(st), tuple(pd), tuple(dl), groups, 8, d)
        return self._add("conv", op, [src], (w.shape[0], ho, wo), d)

    def delay(self, src, steps):
        name = self._add("delay", int_ir.Delay(steps), [src], self.shape(src), self.depth[src] + steps)
        self.maxp[name] = self.maxp[src]
        return name

    def route(self, op, inputs, shape):
        name = self._add(type(op).__name__.lower(), op, inputs, shape, max(self.depth[i] for i in inputs))
        self.maxp[name] = max(self.maxp[i] for i in inputs)
        return name

    def flatten(self, src):
        return self.route(ir.Flatten(), [src], (int(np.prod(self.shape(src))),))

    def reshape(self, src, shape):
        return self.route(ir.Reshape(tuple(shape)), [src], shape)

    def concat(self, srcs, axis=0):
        shapes = [self.shape(s) for s in srcs]
        shape = list(shapes[0])
        shape[axis] = sum(s[axis] for s in shapes)
        return self.route(ir.Concat(axis), srcs, shape)

    def add(self, *terms):
        return self._add("add", ir.Add(), list(terms), self.shape(terms[0]), self.depth[terms[0]])

    def neuron(self, src, x, T, max_spikes=None):
        """A burst neuron on current `src`; thresholds from the reference
        current distribution (so that it spikes, sometimes at the cap)."""
        rng = self.rng
        shape = self.shape(src)
        c = shape[0]
        ms = int(rng.integers(1, 8)) if max_spikes is None else max_spikes
        # probe the current with a throw-away graph ending at src
        g = ir.Graph(tuple(self.nodes), src)
        _, cur = reference(g, x, T)
        axes = tuple(i for i in range(cur.ndim) if i != 2)
        scale = np.maximum(np.percentile(np.abs(cur), 80, axis=axes), 1)
        th = np.maximum(1, (scale * rng.uniform(0.15, 0.8, c))).astype(np.int64)
        bias = (rng.integers(-1, 2, c) * rng.integers(0, 3, c) * th // 4).astype(np.int64)
        v0 = rng.integers(-1, 2, shape) * rng.integers(0, int(th.max()) + 1, shape) // 2
        op = int_ir.IntBurstNeuron(th, bias, v0.astype(np.int64), ms, self.depth[src])
        name = self._add("neuron", op, [src], shape, self.depth[src])
        self.maxp[name] = ms
        return name

    def graph(self, out):
        return ir.Graph(tuple(self.nodes), out)


def _inputs(rng, shape, n):
    return rng.normal(0.6, 1.2, size=(n,) + tuple(shape))


def net_dense_stack(rng, T, n):
    f = int(rng.integers(3, 12))
    net = Net(rng, (f,))
    x = _inputs(rng, (f,), n)
    h = "x"
    for _ in range(int(rng.integers(1, 4))):
        h = net.neuron(net.dense(h, int(rng.integers(2, 10))), x, T)
    return net.graph(net.dense(h, int(rng.integers(1, 5)))), x


def net_conv(rng, T, n):
    cin, hh, ww = int(rng.integers(1, 5)), int(rng.integers(5, 8)), int(rng.integers(5, 8))
    net = Net(rng, (cin, hh, ww))
    x = _inputs(rng, (cin, hh, ww), n)
    h = "x"
    for layer in range(int(rng.integers(1, 3))):
        c = net.shape(h)[0]
        groups = int(rng.choice([g for g in (1, 2, 3, 4) if c % g == 0]))
        cout = groups * int(rng.integers(1, 3))
        k = int(rng.choice([1, 2, 3]))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if k > 1 and rng.random() < 0.5 else (1, 1)
        p_h, p_w = int(rng.integers(0, k)), int(rng.integers(0, k))
        h = net.neuron(net.conv(h, cout, k, stride, (p_h, p_w, p_h, p_w), dil, groups), x, T)
    if rng.random() < 0.3:  # a Conv readout
        return net.graph(net.conv(h, 2, k=1, pad=0)), x
    return net.graph(net.dense(net.flatten(h), int(rng.integers(1, 5)))), x


def net_residual(rng, T, n):
    """x -> c1 -> n1 -> c2 -> n2 -> c3 (+ skip: Delay(1) of n1 -> 1x1 conv) -> n3 -> flatten -> dense."""
    cin, hw = int(rng.integers(1, 3)), int(rng.integers(4, 7))
    net = Net(rng, (cin, hw, hw))
    x = _inputs(rng, (cin, hw, hw), n)
    c = int(rng.integers(2, 4))
    n1 = net.neuron(net.conv("x", c), x, T)
    n2 = net.neuron(net.conv(n1, c), x, T)
    main = net.conv(n2, c)
    if rng.random() < 0.5:  # identity skip (weights 2: even, survives any sign mode)
        ws = np.zeros((c, c, 1, 1), np.int64)
        ws[np.arange(c), np.arange(c)] = int(rng.choice([1, 2, 4]))
    else:
        ws = None
    skip = net.conv(net.delay(n1, 1), c, k=1, pad=0, w=ws)
    n3 = net.neuron(net.add(main, skip), x, T)
    return net.graph(net.dense(net.flatten(n3), int(rng.integers(1, 4)))), x


def net_residual_dense(rng, T, n):
    """Dense residual: the skip synapse reads a Delay -> DelayDense on Lava; a
    2-step delay from the input, plus an Add readout."""
    f = int(rng.integers(3, 9))
    net = Net(rng, (f,))
    x = _inputs(rng, (f,), n)
    m = int(rng.integers(2, 8))
    n1 = net.neuron(net.dense("x", m), x, T)
    n2 = net.neuron(net.dense(n1, m), x, T)
    n3 = net.neuron(net.add(net.dense(n2, m), net.dense(net.delay("x", 2), m)), x, T)
    r1 = net.dense(n3, 3, weight_exp=int(rng.integers(0, 3)))
    r2 = net.dense(net.delay(n2, 1), 3, weight_exp=int(rng.integers(0, 3)))
    return net.graph(net.add(r1, r2)), x


def net_concat(rng, T, n):
    """Channel concat into a Conv (weights split per part, some parts through
    a Delay, sometimes one population twice), then a concat of flattened
    payloads (one of them a spatial concat; b2 read twice) into the readout."""
    cin, hw = int(rng.integers(1, 3)), int(rng.integers(4, 7))
    net = Net(rng, (cin, hw, hw))
    x = _inputs(rng, (cin, hw, hw), n)
    cb = int(rng.integers(1, 3))
    a = net.neuron(net.conv("x", int(rng.integers(1, 3))), x, T)
    b = net.neuron(net.conv("x", cb, k=1, pad=0), x, T)
    b2 = net.neuron(net.conv(b, cb), x, T)  # depth 2
    parts = [net.delay(a, 1), b2, net.delay(b, 1)] + ([b2] if rng.random() < 0.5 else [])  # b2 twice
    cat = net.concat(parts, axis=0)
    c = net.neuron(net.conv(cat, int(rng.integers(1, 4))), x, T)  # depth 3
    wide = net.concat([b2, net.delay(b, 1)], axis=int(rng.integers(1, 3)))  # a spatial concat, depth 2
    feats = net.concat([net.flatten(c), net.delay(net.flatten(b2), 1), net.delay(net.flatten(wide), 1)], axis=0)
    return net.graph(net.dense(feats, int(rng.integers(1, 4)), weight_exp=int(rng.integers(0, 3)))), x


def net_reshape(rng, T, n):
    """Dense -> neurons (F,) -> Reshape (C, H, W) -> Conv: the flat population
    takes the Lava layout the Conv needs; the Dense rows are permuted."""
    f = int(rng.integers(3, 8))
    net = Net(rng, (f,))
    x = _inputs(rng, (f,), n)
    c, hh, ww = int(rng.integers(1, 3)), int(rng.integers(3, 5)), int(rng.integers(3, 5))
    h = net.neuron(net.dense("x", c * hh * ww), x, T)
    r = net.reshape(h, (c, hh, ww))
    h2 = net.neuron(net.conv(r, int(rng.integers(1, 3))), x, T)
    if rng.random() < 0.5:
        return net.graph(net.conv(h2, 2, k=2, pad=0)), x
    return net.graph(net.dense(net.flatten(h2), 2)), x


def net_wrap(rng, T, n):
    """A Conv whose sums exceed 24 bits (Lava wraps them), feeding neurons."""
    net = Net(rng, (3, 4, 4), lo=-3000, hi=3000, scale=1.0)
    x = rng.uniform(-500, 3000, size=(n, 3, 4, 4))
    w = rng.choice([255, 254, 253, -256], p=[0.4, 0.3, 0.2, 0.1], size=(4, 3, 3, 3))
    cv = net.conv("x", 4, w=w)
    h = net.neuron(cv, x, T)
    return net.graph(net.dense(net.flatten(h), 3)), x


BUILDERS = [
    ("dense", net_dense_stack, 12),
    ("conv", net_conv, 14),
    ("residual", net_residual, 8),
    ("residual_dense", net_residual_dense, 8),
    ("concat", net_concat, 8),
    ("reshape", net_reshape, 6),
    ("wrap", net_wrap, 4),
]
CASES = [(kind, i) for kind, _, count in BUILDERS for i in range(count)]


@functools.lru_cache(maxsize=None)
def case(kind: str, i: int):
    builder = next(b for k, b, _ in BUILDERS if k == kind)
    rng = np.random.default_rng([sum(map(ord, kind)), i])
    T = int(rng.integers(3, 7))
    n = int(rng.integers(2, 4))
    g, x = builder(rng, T, n)
    return g, x, T


@functools.lru_cache(maxsize=None)
def lava_result(kind: str, i: int):
    g, x, T = case(kind, i)
    return run_lava(g, x, T)


@functools.lru_cache(maxsize=None)
def reference_result(kind: str, i: int):
    g, x, T = case(kind, i)
    return reference(g, x, T)


@pytest.mark.parametrize("kind,i", CASES, ids=[f"{k}{i}" for k, i in CASES])
def test_run_lava_matches_reference(kind, i):
    g, x, T = case(kind, i)
    res = lava_result(kind, i)
    pay, out = reference_result(kind, i)
    assert set(res["payloads"]) == set(pay)
    for name, ref in pay.items():
        got = res["payloads"][name]
        assert got.shape == ref.shape and got.dtype == np.int64, name
        np.testing.assert_array_equal(got, ref, err_msg=f"payload of {name}")
    assert res["readout"].shape == out.shape
    np.testing.assert_array_equal(res["readout"], out, err_msg="readout")
    # the latency convention: neuron depth = Lava latency
    for n in g.nodes:
        if isinstance(n.op, int_ir.IntBurstNeuron):
            assert res["latency"][n.name] == n.op.depth


def test_random_networks_exercise_the_semantics():
    """The random networks are not trivial: every layer spikes, caps are hit,
    the vendor weight rules and the 24-bit wrap matter."""
    spiking = capped = total = 0
    odd_mixed = lsb_matters = wrapped = neg_exp = pos_exp = 0
    for kind, i in CASES:
        g, x, T = case(kind, i)
        pay, out = reference_result(kind, i)
        for n in g.nodes:
            if isinstance(n.op, int_ir.IntBurstNeuron):
                total += 1
                spiking += pay[n.name].any()
                capped += (pay[n.name] == n.op.max_spikes).any()
            if isinstance(n.op, int_ir.IntDense):
                w = np.asarray(n.op.weight)
                odd_mixed += la.sign_mode(w) == "mixed" and bool((w % 2).any())
                lsb_matters += not np.array_equal(la.lava_dense_weights(w, n.op.num_weight_bits), w)
                neg_exp += n.op.weight_exp < 0
                pos_exp += n.op.weight_exp > 0
        if kind == "wrap":
            g2 = ir.Graph(g.nodes, next(n.name for n in g.nodes if isinstance(n.op, int_ir.IntConv)))
            _, cur = reference(g2, x, T)
            raw = np.stack([ref_conv(p, np.asarray(g2.node(g2.output).op.weight), (1, 1), (1, 1, 1, 1), (1, 1), 1)
                            for p in np.clip(np.floor(x + 0.5), -3000, 3000).astype(np.int64)])
            wrapped += bool((np.abs(raw) >= 2 ** 23).any())
    assert spiking >= 0.8 * total, (spiking, total)  # all-inhibitory inputs may stay silent
    assert capped >= 0.3 * total, (capped, total)
    assert odd_mixed >= 10 and lsb_matters >= 10 and neg_exp >= 5 and pos_exp >= 5
    assert wrapped >= 3
    # and the Lava realisation covers every mechanism
    feats = dict.fromkeys(["groups", "stride", "dilation", "padding", "conv_readout", "add_readout", "split",
                           "delaydense", "relay", "reshape_layout"], 0)
    for kind, i in CASES:
        g, x, T = case(kind, i)
        plan = plan_lava(g)
        for n in g.nodes:
            if isinstance(n.op, int_ir.IntConv):
                feats["groups"] += n.op.groups > 1
                feats["stride"] += max(n.op.stride) > 1
                feats["dilation"] += max(n.op.dilation) > 1
                feats["padding"] += max(n.op.padding) > 0
        feats["conv_readout"] += isinstance(g.node(g.output).op, int_ir.IntConv)
        feats["add_readout"] += isinstance(g.node(g.output).op, ir.Add)
        feats["split"] += sum(len(s.parts) > 1 for s in plan.synapses.values())
        feats["delaydense"] += sum(p.kind == "dense" and p.delay > 0 for s in plan.synapses.values() for p in s.parts)
        feats["relay"] += sum(plan.relays.values())
        feats["reshape_layout"] += sum(len(p.shape) == 1 and len(p.lava_shape) == 3 for p in plan.pops.values())
    assert min(feats.values()) >= 3, feats


def test_delay_is_identity_in_lockstep_time():
    """Lava realises Delay(d) as d extra steps on the shorter path; shifted back
    by each layer's latency that is NO delay in lock-step time.  Delaying the
    payload d lock-steps (the literal reading) disagrees with Lava."""
    differ = 0
    for kind, i in CASES:
        if kind not in ("residual", "residual_dense", "concat"):
            continue
        g, x, T = case(kind, i)
        res = lava_result(kind, i)
        pay, out = reference(g, x, T, literal_delay=True)
        differ += not (np.array_equal(res["readout"], out)
                       and all(np.array_equal(res["payloads"][k], v) for k, v in pay.items()))
    assert differ >= 20


def test_int_sim_matches_lava():
    """adacal.runtime_sim.int_sim.simulate_int == run_lava on the same networks."""
    from adacal.runtime_sim.int_sim import simulate_int

    for kind, i in CASES:
        g, x, T = case(kind, i)
        res = lava_result(kind, i)
        sim = simulate_int(g, x, T, record_payloads=True)
        sim = sim[0] if isinstance(sim, tuple) else sim  # (IntResult, graph) in the current API
        for name, got in res["payloads"].items():
            np.testing.assert_array_equal(np.asarray(sim.payloads[name]), got, err_msg=f"{kind}{i}: {name}")
        np.testing.assert_array_equal(np.asarray(sim.readout), res["readout"], err_msg=f"{kind}{i}: readout")


# ===========================================================================
# vendor arithmetic and conventions
# ===========================================================================
def test_lava_dense_weights_equals_vendor():
    ensure_lava()
    from lava.utils.weightutils import SignMode, clip_weights, truncate_weights

    rng = np.random.default_rng(7)
    names = {SignMode.MIXED: "mixed", SignMode.EXCITATORY: "excitatory", SignMode.INHIBITORY: "inhibitory"}
    for trial in range(300):
        w = rng.integers(-300, 300, size=(int(rng.integers(1, 6)), int(rng.integers(1, 6))))
        if trial % 3 == 1:
            w = np.abs(w)
        elif trial % 3 == 2:
            w = -np.abs(w)
        for nwb in range(1, 9):
            np.testing.assert_array_equal(la.lava_dense_weights(w, nwb), vendor_dense_weights(w, nwb))
            mode = SignMode(int(rng.integers(1, 4)))  # an explicit sign_mode proc param
            if mode == SignMode.MIXED or nwb < 8:
                want = truncate_weights(clip_weights(w, mode, num_bits=8), mode, nwb)
                np.testing.assert_array_equal(la.lava_dense_weights(w, nwb, names[mode]), want)
    # the documented cases
    np.testing.assert_array_equal(la.lava_dense_weights(np.array([[7, -7, 300, -300, 6]])),
                                  [[6, -8, 254, -256, 6]])
    np.testing.assert_array_equal(la.lava_dense_weights(np.array([[7, 3, 300]])), [[7, 3, 255]])
    np.testing.assert_array_equal(la.lava_dense_weights(np.array([[-7, -3, -300]])), [[-7, -3, -255]])
    np.testing.assert_array_equal(la.lava_dense_weights(np.array([[-7, -3, 0]]), 7), [[-6, -2, 0]])
    assert la.sign_mode(np.zeros((2, 2))) == "excitatory"


def test_dense_shift_and_wrap():
    ensure_lava()
    from lava.proc.conv.utils import signed_clamp

    a = np.array([-9, -8, -7, -1, 0, 1, 7, 8, 9])
    np.testing.assert_array_equal(la.dense_shift(a, -2), np.floor(a / 4).astype(int))
    np.testing.assert_array_equal(la.dense_shift(a, 3), a * 8)
    np.testing.assert_array_equal(la.dense_shift(a, 0), a)
    v = np.array([0, 2 ** 23 - 1, 2 ** 23, -2 ** 23, -2 ** 23 - 1, 2 ** 24 + 5, -(2 ** 30), 2 ** 31 - 2 ** 23 - 1],
                 dtype=np.int64)
    np.testing.assert_array_equal(la.wrap_signed(v), signed_clamp(v.astype(np.int32), 24))
    np.testing.assert_array_equal(la.wrap_signed(v), wrap24(v))


def test_conv_layout_matches_vendor_conv():
    """PyTorch cross-correlation (C, H, W) == Lava's conv on (W, H, C) with
    conv_weight_to_lava / conv_params_to_lava, including stride, padding,
    dilation, groups (lava/proc/conv/utils.py conv, the fixed_pt path)."""
    ensure_lava()
    import torch
    from lava.proc.conv import utils

    rng = np.random.default_rng(3)
    tried = 0
    while tried < 80:
        g = int(rng.choice([1, 2, 3]))
        cin, cout = g * int(rng.integers(1, 3)), g * int(rng.integers(1, 3))
        kh, kw = (int(k) for k in rng.integers(1, 4, 2))
        h, w = (int(k) for k in rng.integers(3, 8, 2))
        st, dl, pd = tuple(rng.integers(1, 3, 2)), tuple(rng.integers(1, 3, 2)), tuple(rng.integers(0, 3, 2))
        if h + 2 * pd[0] - dl[0] * (kh - 1) - 1 < 0 or w + 2 * pd[1] - dl[1] * (kw - 1) - 1 < 0:
            continue
        tried += 1
        wt = rng.integers(-128, 128, (cout, cin // g, kh, kw))
        x = rng.integers(-5, 60, (cin, h, w))
        pads = (pd[0], pd[1], pd[0], pd[1])
        want = ref_conv(x, wt, st, pads, dl, g)
        tw = torch.nn.functional.conv2d(torch.tensor(x[None], dtype=torch.float64),
                                        torch.tensor(wt, dtype=torch.float64), stride=st, padding=pd,
                                        dilation=dl, groups=g)[0].numpy()
        np.testing.assert_array_equal(want, tw)
        s, p, d = la.conv_params_to_lava(st, pads, dl)
        lw = la.conv_weight_to_lava(wt).astype(np.int32)
        assert lw.shape == (cout, kw, kh, cin // g)
        got = utils.conv(la.chw_to_whc(x).astype(np.int32), lw, lw.shape[1:3], s, p, d, g)
        np.testing.assert_array_equal(la.whc_to_chw(got), want)
        np.testing.assert_array_equal(la.lava_conv_reference(x, wt, st, pads, dl, g, None), want)
        np.testing.assert_array_equal(la.conv_weight_from_lava(lw), wt)
    # Lava's kernel is a TRUE convolution: without the flip the result differs
    wt = np.arange(9).reshape(1, 1, 3, 3)
    x = np.arange(16).reshape(1, 4, 4)
    plain = utils.conv(la.chw_to_whc(x).astype(np.int32), wt.transpose(0, 3, 2, 1).astype(np.int32),
                       (3, 3), (1, 1), (0, 0), (1, 1), 1)
    assert not np.array_equal(la.whc_to_chw(plain), ref_conv(x, wt, (1, 1), (0,) * 4, (1, 1), 1))


def test_asymmetric_padding_is_rejected():
    with pytest.raises(ValueError, match="convX: asymmetric padding"):
        la.conv_params_to_lava((1, 1), (0, 0, 1, 1), (1, 1), "convX")
    rng = np.random.default_rng(0)
    net = Net(rng, (1, 5, 5))
    x = _inputs(rng, (1, 5, 5), 1)
    cv = net.conv("x", 2, k=2, pad=(0, 0, 1, 1))
    h = net.neuron(cv, x, 3)
    g = net.graph(net.dense(net.flatten(h), 2))
    with pytest.raises(ValueError, match=f"{cv}: asymmetric padding"):
        plan_lava(g)


def test_plan_rejects_unbalanced_and_wrong_depth():
    rng = np.random.default_rng(1)
    net = Net(rng, (4,))
    x = _inputs(rng, (4,), 1)
    n1 = net.neuron(net.dense("x", 3), x, 3)
    skip = net.dense("x", 3)  # depth 1, no Delay
    main = net.dense(n1, 3)  # depth 2
    bad = ir.Node("nbad", int_ir.IntBurstNeuron(np.ones(3, int), np.zeros(3, int), np.zeros(3, int), 2, 2),
                  (net.add(main, skip),), (3,))
    g = ir.Graph(tuple(net.nodes) + (bad,), "nbad")
    with pytest.raises(ValueError, match="nbad: unbalanced inputs"):
        plan_lava(g)
    net2 = Net(rng, (4,))
    d = net2.dense("x", 3)
    wrong = ir.Node("nw", int_ir.IntBurstNeuron(np.ones(3, int), np.zeros(3, int), np.zeros(3, int), 2, 5),
                    (d,), (3,))
    readout = ir.Node("ro", int_ir.IntDense(np.ones((1, 3), int), 0, 8, 8, 2), ("nw",), (1,))
    g2 = ir.Graph(tuple(net2.nodes) + (wrong, readout), "ro")
    with pytest.raises(ValueError, match="nw: depth=5"):
        plan_lava(g2)
    assert plan_lava(g2, check_depth=False).latency["nw"] == 1
    g3 = ir.Graph(tuple(net2.nodes) + (wrong,), "nw")
    with pytest.raises(ValueError, match="graph output: input 'nw'.*not a synaptic current"):
        plan_lava(g3, check_depth=False)


def test_split_dense_with_negative_exponent():
    """A Dense reading a Concat is one Lava Dense per part: with weight_exp < 0
    Lava floors each part's sum separately.  strict (default) refuses; with
    strict=False the run shows exactly that per-part flooring."""
    rng = np.random.default_rng(11)
    net = Net(rng, (5,))
    x = _inputs(rng, (5,), 3)
    T = 4
    a = net.neuron(net.dense("x", 4), x, T, max_spikes=5)
    b = net.neuron(net.dense("x", 3), x, T, max_spikes=5)
    cat = net.concat([a, b])
    w = np.array([[3, -5, 7, 1, -3, 5, 1], [2, 6, 2, 2, 2, 6, 2]])  # mixed, odd -> truncated too
    out = net._add("dense", int_ir.IntDense(w, -2, 8, 8, 2), [cat], (2,), 2)
    g = net.graph(out)
    with pytest.raises(ValueError, match="floors each part"):
        plan_lava(g)
    with pytest.warns(RuntimeWarning, match="floors each part"):
        res = run_lava(g, x, T, strict=False)
    pay, want_whole = reference(g, x, T)
    _, want_split = reference(g, x, T, split_floor={out: [np.arange(4), np.arange(4, 7)]})
    np.testing.assert_array_equal(res["readout"], want_split)
    assert not np.array_equal(want_split, want_whole)  # the case matters
    for name in pay:
        np.testing.assert_array_equal(res["payloads"][name], pay[name])


def test_latency_convention_raw_lava():
    """Source -> Dense -> BurstIF(hold=1) -> sink and -> DelayDense(2): the
    neuron sends at Lava step t + 1 what the lock-step model sends at t, a
    DelayDense with delays=d delivers d + 1 steps after its input."""
    ensure_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from adacal.backends.loihi2.burst_if.process import BurstIF

    steps = 8
    x = np.zeros((3, steps), np.int32)
    x[:, 0], x[:, 1] = [1, 2, 3], [10, 20, 30]
    th, bias, ms = np.array([1, 2, 3]), np.array([0, 1, 0]), 5
    src = Source(data=x)
    dense = Dense(weights=np.eye(3, dtype=int), num_message_bits=8)
    delayed = DelayDense(weights=np.eye(3, dtype=int), delays=2, num_message_bits=8)
    neu = BurstIF(shape=(3,), threshold=th, bias=bias, v_init=[0, 1, 2], max_spikes=ms, hold=1)
    s_dense, s_delay, s_neu = (Sink(shape=(3,), buffer=steps) for _ in range(3))
    src.s_out.connect(dense.s_in)
    src.s_out.connect(delayed.s_in)
    dense.a_out.connect(s_dense.a_in)
    dense.a_out.connect(neu.a_in)
    delayed.a_out.connect(s_delay.a_in)
    neu.s_out.connect(s_neu.a_in)
    try:
        src.run(condition=RunSteps(num_steps=steps), run_cfg=lava_fixed_pt_run_config())
        got_dense, got_delay, got_neu = (s.data.get().astype(int) for s in (s_dense, s_delay, s_neu))
    finally:
        src.stop()
    np.testing.assert_array_equal(got_dense[:, 1:], x[:, :-1])  # one step
    np.testing.assert_array_equal(got_dense[:, 0], 0)
    np.testing.assert_array_equal(got_delay[:, 3:], x[:, :-3])  # delays=2: three steps
    # lock-step neuron on the source data, shifted by one step
    v = np.array([0, 1, 2])
    want = np.zeros((3, steps), int)
    for t in range(steps - 1):
        v = v + x[:, t] + bias
        k = np.clip(v // th, 0, ms)
        v = v - k * th
        want[:, t + 1] = k
    np.testing.assert_array_equal(got_neu, want)
    assert got_neu[:, 0].sum() == 0 and want.sum() > 0


def test_runtime_per_network():
    """Report (and bound) the Lava cost per random network: one fresh run
    (build, run, read every sink) of the first network of every kind."""
    times = []
    for kind, _, _ in BUILDERS:
        g, x, T = case(kind, 0)
        t0 = time.perf_counter()
        res = run_lava(g, x, T)
        times.append(time.perf_counter() - t0)
        assert 0 < res["seconds"] <= times[-1]
    print(f"\nrun_lava: {len(times)} networks, mean {np.mean(times):.2f} s, max {np.max(times):.2f} s")
    assert np.mean(times) < 10
