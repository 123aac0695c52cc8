"""The bit-accurate integer simulator (runtime_sim/int_sim.py) against a
deliberately simple scalar reference written here, and the vendor arithmetic
of runtime_sim/loihi2_arith.py on hand values.

The reference is plain Python: ints only, loops over samples, steps, nodes and
neurons, flat row-major lists for every value.  It implements the integer
semantics as int_ir and loihi2_arith document them (Lava lava-nc 0.10.0):

* GradedInput   p = clamp(floor(x / scale + 0.5), lo, hi) (x as float32)
* IntDense      W' = Lava's clip_weights(num_bits=8) by sign mode
                (mixed [-256, 255], excitatory [0, 255], inhibitory
                [-255, 0]) then truncate_weights(num_weight_bits) (drop
                8 - bits (+1 if mixed) LSBs with an arithmetic shift, on the
                magnitude for inhibitory matrices); a = Σ W'·p, then
                a << e or floor(a / 2^-e)
* IntConv       integer cross-correlation (zero padding top/left/bottom/right,
                stride, dilation, groups), wrapped to 24-bit two's complement
* IntBurstNeuron v += a + bias; k = clamp(floor(v / θ), 0, φ); v -= k·θ,
                v starts at v_init
* Add sums, Delay is the identity in lock-step, Flatten / Reshape keep the
  row-major order, Concat joins along a per-sample axis.

Every neuron's payload at every step and the readout at every step must be
equal, on random small networks (hypothesis, derandomised).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adacal import int_ir, ir
from adacal.backends.loihi2.compat import ensure_lava
from adacal.runtime_sim import loihi2_arith as arith
from adacal.runtime_sim.int_sim import simulate_int

PROPS = settings(derandomize=True, deadline=None, max_examples=100, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ===========================================================================
# scalar reference
# ===========================================================================
def ref_sign_mode(flat: list[int]) -> str:
    if min(flat) >= 0:
        return "excitatory"
    if max(flat) <= 0:
        return "inhibitory"
    return "mixed"


def ref_dense_weights(weight, num_weight_bits: int) -> list[list[int]]:
    rows = [[int(v) for v in row] for row in np.asarray(weight).tolist()]
    mode = ref_sign_mode([v for row in rows for v in row])
    lo = -256 if mode == "mixed" else 0
    drop = 8 - num_weight_bits + (1 if mode == "mixed" else 0)
    out = []
    for row in rows:
        new = []
        for v in row:
            if mode == "inhibitory":
                v = -v
            v = min(max(v, lo), 255)
            v = (v >> drop) << drop  # Python >> on ints is a floor shift
            new.append(-v if mode == "inhibitory" else v)
        out.append(new)
    return out


def ref_wrap24(a: int) -> int:
    a %= 1 << 24  # Python's % is non-negative for a positive modulus
    return a - (1 << 24) if a >= 1 << 23 else a


def _size(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def ref_conv(p: list[int], shape, op: int_ir.IntConv) -> list[int]:
    cin, h, w = shape
    wt = np.asarray(op.weight).tolist()
    cout, cg, kh, kw = np.asarray(op.weight).shape
    top, left, bottom, right = op.padding
    sh, sw = op.stride
    dh, dw = op.dilation
    ho = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    wo = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    og = cout // op.groups
    out = []
    for o in range(cout):
        g = o // og
        for oy in range(ho):
            for ox in range(wo):
                acc = 0
                for ci in range(cg):
                    c = g * cg + ci
                    for ky in range(kh):
                        y = oy * sh + ky * dh - top
                        if not 0 <= y < h:
                            continue
                        for kx in range(kw):
                            x = ox * sw + kx * dw - left
                            if 0 <= x < w:
                                acc += int(wt[o][ci][ky][kx]) * p[(c * h + y) * w + x]
                out.append(ref_wrap24(acc))
    return out


def ref_concat(vals: list[list[int]], shapes: list[tuple], axis: int) -> list[int]:
    outer = _size(shapes[0][:axis])
    out = []
    for o in range(outer):
        for v, s in zip(vals, shapes):
            block = _size(s[axis:])
            out.extend(v[o * block:(o + 1) * block])
    return out


def reference(g: ir.Graph, x: np.ndarray, T: int):
    """(payloads {neuron: (T, N, ...) int64}, readout (T, N, ...) int64)."""
    n_samples = len(x)
    neurons = [n for n in g.nodes if isinstance(n.op, int_ir.IntBurstNeuron)]
    payloads = {n.name: np.zeros((T, n_samples) + tuple(n.shape), np.int64) for n in neurons}
    readout = np.zeros((T, n_samples) + tuple(g.node(g.output).shape), np.int64)
    dense_w = {n.name: ref_dense_weights(n.op.weight, n.op.num_weight_bits)
               for n in g.nodes if isinstance(n.op, int_ir.IntDense)}
    shapes = {n.name: tuple(n.shape) for n in g.nodes}
    inp = g.input.op
    for s in range(n_samples):
        xs = [float(v) for v in np.asarray(x[s], np.float32).reshape(-1).tolist()]
        p_in = [min(max(math.floor(v / inp.scale + 0.5), inp.lo), inp.hi) for v in xs]
        state = {}
        for n in neurons:
            v0 = np.broadcast_to(np.asarray(n.op.v_init), n.shape).reshape(-1).tolist()
            state[n.name] = [int(v) for v in v0]
        for t in range(T):
            val = {g.input.name: p_in}
            for node in g.nodes[1:]:
                op = node.op
                ins = [val[i] for i in node.inputs]
                if isinstance(op, int_ir.IntDense):
                    w = dense_w[node.name]
                    e = op.weight_exp
                    out = []
                    for row in w:
                        acc = 0
                        for wi, pi in zip(row, ins[0]):
                            acc += wi * pi
                        out.append(acc << e if e >= 0 else acc >> -e)
                elif isinstance(op, int_ir.IntConv):
                    out = ref_conv(ins[0], shapes[node.inputs[0]], op)
                elif isinstance(op, int_ir.IntBurstNeuron):
                    v = state[node.name]
                    per_c = _size(node.shape[1:])
                    out = []
                    for i, a in enumerate(ins[0]):
                        c = i // per_c
                        theta = int(op.threshold[c])
                        v[i] += a + int(op.bias[c])
                        k = min(max(v[i] // theta, 0), op.max_spikes)
                        v[i] -= k * theta
                        out.append(k)
                    payloads[node.name][t, s] = np.array(out, np.int64).reshape(node.shape)
                elif isinstance(op, ir.Add):
                    out = [a + b for a, b in zip(ins[0], ins[1])]
                elif isinstance(op, (int_ir.Delay, ir.Flatten, ir.Reshape)):
                    out = list(ins[0])
                elif isinstance(op, ir.Concat):
                    out = ref_concat(ins, [shapes[i] for i in node.inputs], op.axis)
                else:
                    raise TypeError(type(op).__name__)
                assert len(out) == _size(node.shape), node.name
                val[node.name] = out
            readout[t, s] = np.array(val[g.output], np.int64).reshape(readout.shape[2:])
    return payloads, readout


def check(g: ir.Graph, x: np.ndarray, T: int, batch_size=None):
    res, g2 = simulate_int(g, x, T, record_payloads=True, batch_size=batch_size)
    assert g2 is g or all(a.op is b.op for a, b in zip(g.nodes, g2.nodes))
    payloads, readout = reference(g, x, T)
    assert set(res.payloads) == set(payloads)
    for name, want in payloads.items():
        got = res.payloads[name]
        assert got.dtype == np.int64 and got.shape == want.shape, name
        if not np.array_equal(got, want):
            t, s, *idx = np.argwhere(got != want)[0]
            raise AssertionError(f"payload of '{name}' differs first at step {t}, sample {s}, neuron {idx}: "
                                 f"simulate_int {got[(t, s, *idx)]} != reference {want[(t, s, *idx)]}")
    assert res.readout.dtype == np.int64 and res.readout.shape == readout.shape
    if not np.array_equal(res.readout, readout):
        t, s, *idx = np.argwhere(res.readout != readout)[0]
        raise AssertionError(f"readout differs first at step {t}, sample {s}, index {idx}: simulate_int "
                             f"{res.readout[(t, s, *idx)]} != reference {readout[(t, s, *idx)]}")
    return res, payloads


# ===========================================================================
# random network builders (numbers from a seeded numpy generator, structure
# from hypothesis)
# ===========================================================================
class Net:
    """Accumulates nodes with their per-sample shapes."""

    def __init__(self, rng: np.random.Generator, inp: int_ir.GradedInput, shape):
        self.rng = rng
        self.nodes = [ir.Node("x", inp, (), tuple(shape))]
        self.shape = {"x": tuple(shape)}
        self.bound = {"x": max(abs(inp.lo), abs(inp.hi))}  # max |payload|
        self.depth = {"x": 0}
        self.count = 0

    def add(self, prefix, op, inputs, shape) -> str:
        self.count += 1
        name = f"{prefix}{self.count}"
        self.nodes.append(ir.Node(name, op, tuple(inputs), tuple(shape)))
        self.shape[name] = tuple(shape)
        return name

    def graph(self, output: str) -> ir.Graph:
        return ir.Graph(tuple(self.nodes), output)

    # -- synapses -----------------------------------------------------------
    def weights(self, shape, mode: str, big: bool = False) -> np.ndarray:
        rng = self.rng
        # beyond 8 bits: Lava's clipping must show; big conv weights (2^11) with
        # 2^15 payloads wrap 24 bits but keep |sums| < 2^31 - 2^23 (see
        # test_conv_sum_beyond_int32_matches_lava_or_is_refused)
        top = 2 ** 11 if big else 300
        w = rng.integers(-top, top + 1, shape)
        w = np.where(rng.random(shape) < 0.7, np.rint(w * rng.random(shape) ** 2), w).astype(np.int64)
        if mode == "odd":
            w = w | 1
        elif mode == "excitatory":
            w = np.abs(w)
        elif mode == "inhibitory":
            w = -np.abs(w)
        elif mode == "zero":
            w = np.zeros(shape, np.int64)
        return w

    def dense(self, src, out, mode, weight_exp, bits=8) -> str:
        nin = _size(self.shape[src])
        op = int_ir.IntDense(self.weights((out, nin), mode), int(weight_exp), int(bits), 8, self.depth[src] + 1)
        name = self.add("dense", op, [src], (out,))
        self.depth[name] = self.depth[src] + 1
        return name

    def conv(self, src, cout, k, stride, pad, dil, groups, mode, big=False) -> str | None:
        cin, h, w = self.shape[src]
        kh, kw = k
        ho = (h + pad[0] + pad[2] - dil[0] * (kh - 1) - 1) // stride[0] + 1
        wo = (w + pad[1] + pad[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
        if ho < 1 or wo < 1 or cin % groups or cout % groups:
            return None
        wt = self.weights((cout, cin // groups, kh, kw), mode, big)
        op = int_ir.IntConv(wt, tuple(stride), tuple(pad), tuple(dil), groups, 8, self.depth[src] + 1)
        name = self.add("conv", op, [src], (cout, ho, wo))
        self.depth[name] = self.depth[src] + 1
        return name

    def drive_scale(self, currents: list[str]) -> float:
        """Typical |current| into a neuron fed by these synapses (for thresholds
        that give some activity)."""
        total = 0.0
        for s in currents:
            op = self.nodes[[n.name for n in self.nodes].index(s)].op
            src = self.nodes[[n.name for n in self.nodes].index(s)].inputs[0]
            if isinstance(op, int_ir.IntDense):
                w = np.asarray(ref_dense_weights(op.weight, op.num_weight_bits), np.float64) * 2.0 ** op.weight_exp
            else:
                w = np.asarray(op.weight, np.float64)
            rows = np.abs(w.reshape(w.shape[0], -1)).sum(axis=1)
            total += float(np.median(rows)) * 0.3 * max(self.bound.get(src, 1), 1)
        return max(total, 1.0)

    def neuron(self, src, currents, max_spikes, big_theta=False) -> str:
        rng = self.rng
        shape = self.shape[src]
        c = shape[0]
        if big_theta:
            theta = rng.integers(2 ** 12, 2 ** 16 + 1, c)
        else:
            scale = self.drive_scale(currents) / max_spikes
            theta = np.clip(np.rint(scale * 2.0 ** rng.uniform(-2, 2, c)), 1, 2 ** 16).astype(np.int64)
        theta[rng.random(c) < 0.1] = 1
        bias = np.rint(theta * rng.uniform(-1.5, 1.0, c)).astype(np.int64)
        vinit = np.rint(theta.reshape((-1,) + (1,) * (len(shape) - 1)) * rng.uniform(-1, 2, shape)).astype(np.int64)
        d = max(self.depth[s] for s in currents)
        op = int_ir.IntBurstNeuron(theta, bias, vinit, int(max_spikes), d)
        name = self.add("n", op, [src], shape)
        self.bound[name] = max_spikes
        self.depth[name] = d
        return name


def graded(rng, kind: str) -> int_ir.GradedInput:
    scale = float(rng.uniform(0.01, 2.0))
    if kind == "unsigned":
        return int_ir.GradedInput(scale, 0, 255)
    if kind == "signed":
        return int_ir.GradedInput(scale, -127, 127)
    return int_ir.GradedInput(scale, -(2 ** 15), 2 ** 15 - 1)  # large graded payloads


def inputs(rng, inp: int_ir.GradedInput, n: int, shape) -> np.ndarray:
    """Floats beyond the clamp range on both sides, and some exact half-steps."""
    lo, hi = inp.lo - 0.2 * (inp.hi - inp.lo) - 1, inp.hi + 0.2 * (inp.hi - inp.lo) + 1
    q = rng.uniform(lo, hi, (n,) + tuple(shape))
    half = rng.random(q.shape) < 0.15
    q[half] = np.floor(q[half]) + 0.5
    return (q * inp.scale).astype(np.float32)


seeds = st.integers(0, 2 ** 32 - 1)
modes = st.sampled_from(["mixed", "mixed", "odd", "excitatory", "inhibitory", "zero"])
spikes = st.integers(1, 15)
steps = st.integers(1, 12)
batches = st.sampled_from([None, None, 1, 2, 3])
exps = st.integers(-3, 3)
input_kinds = st.sampled_from(["unsigned", "signed", "large"])


# ===========================================================================
# property tests
# ===========================================================================
@PROPS
@given(seed=seeds, nin=st.integers(1, 10), widths=st.lists(st.integers(1, 10), min_size=0, max_size=3),
       layer_modes=st.lists(modes, min_size=4, max_size=4), layer_exps=st.lists(exps, min_size=4, max_size=4),
       bits=st.lists(st.sampled_from([8, 8, 8, 7, 6, 3]), min_size=4, max_size=4),
       phis=st.lists(spikes, min_size=3, max_size=3), big_theta=st.booleans(), T=steps,
       kind=input_kinds, readout=st.sampled_from(["dense", "neuron"]), n=st.integers(1, 4), bs=batches)
def test_dense_stack(seed, nin, widths, layer_modes, layer_exps, bits, phis, big_theta, T, kind, readout, n, bs):
    rng = np.random.default_rng(seed)
    inp = graded(rng, kind)
    net = Net(rng, inp, (nin,))
    src = "x"
    for i, width in enumerate(widths):
        d = net.dense(src, width, layer_modes[i], layer_exps[i], bits[i])
        src = net.neuron(d, [d], phis[i], big_theta and i == 0)
    out = net.dense(src, int(rng.integers(1, 6)), layer_modes[3], layer_exps[3], bits[3]) if readout == "dense" else src
    check(net.graph(out), inputs(rng, inp, n, (nin,)), T, bs)


def conv_params(draw, cin, cout_choices=(1, 2, 3, 4, 6)):
    cout = draw(st.sampled_from(cout_choices))
    groups = draw(st.sampled_from([g for g in (1, 2, 3) if cin % g == 0 and cout % g == 0]))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dil = draw(st.sampled_from([(1, 1), (1, 1), (2, 2), (1, 2)]))
    if draw(st.booleans()):
        p = draw(st.integers(0, 2))
        pad = (p, p, p, p)
    else:
        pad = tuple(draw(st.integers(0, 2)) for _ in range(4))
    return cout, k, stride, pad, dil, groups


@st.composite
def conv_nets(draw):
    seed = draw(seeds)
    rng = np.random.default_rng(seed)
    kind = draw(input_kinds)
    inp = graded(rng, kind)
    cin, h, w = draw(st.integers(1, 3)), draw(st.integers(3, 7)), draw(st.integers(3, 7))
    net = Net(rng, inp, (cin, h, w))
    src = "x"
    layers = draw(st.integers(1, 2))
    for i in range(layers):
        params = conv_params(draw, net.shape[src][0])
        big = draw(st.booleans()) if i == 0 or kind != "large" else False
        c = net.conv(src, *params, draw(modes), big=big)
        if c is None:  # output would be empty: fall back to a 1x1 conv
            c = net.conv(src, params[0], (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, draw(modes))
        src = net.neuron(c, [c], draw(spikes), draw(st.booleans()))
    ro = draw(st.sampled_from(["dense", "conv", "neuron"]))
    if ro == "dense":
        f = net.add("flat", ir.Flatten(), [src], (_size(net.shape[src]),))
        net.depth[f] = net.depth[src]
        out = net.dense(f, draw(st.integers(1, 5)), draw(modes), draw(exps))
    elif ro == "conv":
        out = net.conv(src, 2, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, draw(modes), big=True)
    else:
        out = src
    n = draw(st.integers(1, 3))
    return net.graph(out), inputs(rng, inp, n, (cin, h, w)), draw(steps), draw(batches)


@PROPS
@given(conv_nets())
def test_conv_nets(case):
    g, x, T, bs = case
    check(g, x, T, bs)


@settings(PROPS, max_examples=40)
@given(seed=seeds, cin=st.integers(1, 3), hw=st.integers(3, 6), k=st.integers(2, 3), T=st.integers(1, 6),
       phi=spikes, groups=st.sampled_from([1, 2]))
def test_conv_wraps_at_24_bits(seed, cin, hw, k, T, phi, groups):
    """Sums far beyond ±2^23 (weights up to 2^11, graded payloads up to 2^15,
    up to 27 taps; a second conv with weights up to 2^20 on spike payloads):
    the 24-bit two's-complement wrap, and the neuron after it.  Sums stay
    below 2^31 - 2^23, where Lava's int32 cast is exact."""
    rng = np.random.default_rng(seed)
    inp = graded(rng, "large")
    cout = 2 * groups
    cin = cin * groups
    net = Net(rng, inp, (cin, hw, hw))
    wt = rng.integers(-(2 ** 11), 2 ** 11 + 1, (cout, cin // groups, k, k))
    c1 = net.add("conv", int_ir.IntConv(wt, (1, 1), (1, 0, 1, 2), (1, 1), groups), ["x"],
                 (cout, hw + 2 - k + 1, hw + 2 - k + 1))
    net.depth[c1] = 1
    n1 = net.neuron(c1, [c1], phi, big_theta=True)
    w2 = rng.integers(-(2 ** 20), 2 ** 20 + 1, (3, cout, 2, 2))
    h2 = net.shape[n1][1] - 1
    c2 = net.add("conv", int_ir.IntConv(w2, (1, 1), (0, 0, 0, 0), (1, 1), 1), [n1], (3, h2, h2))
    x = inputs(rng, inp, 2, (cin, hw, hw))
    res, _ = check(net.graph(c2), x, T)
    assert np.abs(res.readout).max() < 2 ** 23
    # the first conv's true sums do leave the 24-bit range (so the wrap is exercised)
    import torch
    p = torch.from_numpy(inp.quantise(x).astype(np.float64))
    true = torch.nn.functional.conv2d(torch.nn.functional.pad(p, (0, 2, 1, 1)), torch.from_numpy(wt).double(),
                                      groups=groups)
    assert 2 ** 23 <= float(true.abs().max()) < 2 ** 31 - 2 ** 23


def test_conv_wrap_happens():
    """A hand-made case whose true sum is 2^23 + 5: it wraps to -2^23 + 5."""
    inp = int_ir.GradedInput(1.0, -(2 ** 15), 2 ** 15 - 1)
    w = np.array([[[[2 ** 8, 1]]]], np.int64)
    g = ir.Graph((ir.Node("x", inp, (), (1, 1, 2)),
                  ir.Node("c", int_ir.IntConv(w), ("x",), (1, 1, 1))), "c")
    x = np.array([[[[2 ** 15 - 1, 5 + 2 ** 8]]]], np.float32)  # 256·32767 + 261 = 2^23 + 5
    res, _ = simulate_int(g, x, 2, record_payloads=True)
    assert res.readout.reshape(-1).tolist() == [-(2 ** 23) + 5] * 2
    assert reference(g, x, 2)[1].reshape(-1).tolist() == [-(2 ** 23) + 5] * 2


def test_conv_sum_beyond_int32_matches_lava_or_is_refused():
    """Beyond |sum| >= 2^31 simulate_int must not silently differ from Lava.

    Lava 0.10.0's PyConvModelFixed computes the convolution in float64
    (lava/proc/conv/utils.py conv_scipy; TORCH_IS_AVAILABLE is hard-coded
    False) and casts it to int32 (`output.astype(weight.dtype)`) before
    signed_clamp(bits=24).  The int32 cast of a sum >= 2^31 is out of range
    (numpy: INT_MIN, "invalid value encountered in cast"), so Lava gives
    signed_clamp(-2^31) = 0 for the sum 2^31 + 5, while the exact integer
    wrapped to 24 bits is 5.  Regression test: simulate_int used to return 5
    (it only refused sums >= 2^53); since dbde145 it raises OverflowError for
    conv bounds >= 2^31 - 2^23."""
    import warnings

    ensure_lava()
    from lava.proc.conv import utils as lava_conv

    inp = int_ir.GradedInput(1.0, -(2 ** 15), 2 ** 15 - 1)
    w = np.array([[[[65536, 3]]]], np.int64)
    g = ir.Graph((ir.Node("x", inp, (), (1, 1, 2)), ir.Node("c", int_ir.IntConv(w), ("x",), (1, 1, 1))), "c")
    x = np.array([[[[32767, 21847]]]], np.float32)  # 65536·32767 + 3·21847 = 2^31 + 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # Lava's layout: input (X, Y, C), weight (out, X, Y, in), and a true
        # convolution (it flips the kernel), so the taps go in reversed
        out = lava_conv.conv(np.array([[[32767]], [[21847]]], np.int32),
                             np.array([[[[3]], [[65536]]]], np.int32), (2, 1), (1, 1), (0, 0), (1, 1), 1)
    lava_value = int(lava_conv.signed_clamp(out, bits=24).reshape(-1)[0])
    assert lava_value == 0  # not 5, the exact sum wrapped to 24 bits
    with pytest.raises(OverflowError, match=r"conv sums up to 2\.15e\+09 reach 2\^31: Lava's fixed-point Conv "
                                            r"casts them to int32"):
        simulate_int(g, x, 1)


@st.composite
def residual_nets(draw):
    seed = draw(seeds)
    rng = np.random.default_rng(seed)
    inp = graded(rng, draw(st.sampled_from(["unsigned", "signed"])))
    dense_block = draw(st.booleans())
    phi = [draw(spikes) for _ in range(3)]
    if dense_block:
        f = draw(st.integers(1, 8))
        net = Net(rng, inp, (f,))
        d0 = net.dense("x", f, draw(modes), draw(exps))
        n0 = net.neuron(d0, [d0], phi[0])
        d1 = net.dense(n0, f, draw(modes), draw(exps))
        n1 = net.neuron(d1, [d1], phi[1])
        main = net.dense(n1, f, draw(modes), draw(exps))
        skip_src = draw(st.sampled_from([n0, n0, "x"]))  # a skip from the input: time-constant current
        dl = net.add("delay", int_ir.Delay(net.depth[main] - 1 - net.depth[skip_src]), [skip_src], (f,))
        net.depth[dl] = net.depth[main] - 1
        skip_kind = draw(st.sampled_from(["diag", "dense"]))
        if skip_kind == "diag":
            wd = np.diag(rng.integers(0, 128, f))
            skip = net.add("skip", int_ir.IntDense(wd, int(draw(exps)), 8, 8, net.depth[main]), [dl], (f,))
        else:
            skip = net.dense(dl, f, draw(modes), draw(exps))
    else:
        c, hw = draw(st.integers(1, 3)), draw(st.integers(2, 5))
        net = Net(rng, inp, (c, hw, hw))
        c0 = net.conv("x", c, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, draw(modes))
        n0 = net.neuron(c0, [c0], phi[0])
        c1 = net.conv(n0, c, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, draw(modes))
        n1 = net.neuron(c1, [c1], phi[1])
        stride = draw(st.sampled_from([1, 2])) if hw > 2 else 1
        main = net.conv(n1, c, (3, 3), (stride, stride), (1, 1, 1, 1), (1, 1), 1, draw(modes))
        skip_src = draw(st.sampled_from([n0, n0, "x"]))
        dl = net.add("delay", int_ir.Delay(net.depth[main] - 1 - net.depth[skip_src]), [skip_src],
                     net.shape[skip_src])
        net.depth[dl] = net.depth[main] - 1
        if stride == 1 and draw(st.booleans()):  # identity skip: depthwise 1x1
            ws = rng.integers(0, 128, (c, 1, 1, 1))
            skip = net.add("skip", int_ir.IntConv(ws, groups=c, depth=net.depth[main]), [dl], net.shape[main])
        else:  # downsampling 1x1 conv
            skip = net.conv(dl, c, (1, 1), (stride, stride), (0, 0, 0, 0), (1, 1), 1, draw(modes))
    net.depth[skip] = net.depth[dl] + 1
    assert net.depth[skip] == net.depth[main]
    add = net.add("add", ir.Add(), [main, skip], net.shape[main])
    net.depth[add] = net.depth[main]
    n2 = net.neuron(add, [main, skip], phi[2])
    ro = draw(st.sampled_from(["dense", "add"]))
    if ro == "dense":
        src = n2
        if not dense_block:
            src = net.add("flat", ir.Flatten(), [n2], (_size(net.shape[n2]),))
            net.depth[src] = net.depth[n2]
        out = net.dense(src, 3, draw(modes), draw(exps))
    else:  # readout = the sum of two synapses from n2 and n1's delayed payload (an Add readout)
        out = add
    x = inputs(rng, inp, draw(st.integers(1, 3)), net.shape["x"])
    return net.graph(out), x, draw(steps), draw(batches)


@PROPS
@given(residual_nets())
def test_residual_nets(case):
    g, x, T, bs = case
    assert any(isinstance(n.op, int_ir.Delay) for n in g.nodes)
    check(g, x, T, bs)


@st.composite
def concat_reshape_nets(draw):
    seed = draw(seeds)
    rng = np.random.default_rng(seed)
    inp = graded(rng, draw(input_kinds))
    variant = draw(st.sampled_from(["channels", "spatial", "features", "reshape"]))
    if variant in ("channels", "spatial"):
        c, hw = draw(st.integers(1, 2)), draw(st.integers(3, 5))
        net = Net(rng, inp, (c, hw, hw))
        branches = []
        for _ in range(2):
            cv = net.conv("x", draw(st.integers(1, 3)) if variant == "channels" else 2, (3, 3), (1, 1),
                          (1, 1, 1, 1), (1, 1), 1, draw(modes))
            branches.append(net.neuron(cv, [cv], draw(spikes)))
        axis = 0 if variant == "channels" else draw(st.sampled_from([1, 2]))
        shp = list(net.shape[branches[0]])
        shp[axis] += net.shape[branches[1]][axis]
        cat = net.add("cat", ir.Concat(axis), branches, shp)
        net.depth[cat] = net.depth[branches[0]]
        net.bound[cat] = max(net.bound[b] for b in branches)
        cv = net.conv(cat, *conv_params(draw, shp[0]), draw(modes))
        if cv is None:
            cv = net.conv(cat, 2, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, draw(modes))
        n = net.neuron(cv, [cv], draw(spikes))
        flat = net.add("flat", ir.Flatten(), [n], (_size(net.shape[n]),))
        net.depth[flat] = net.depth[n]
        out = net.dense(flat, 3, draw(modes), draw(exps))
    elif variant == "features":
        f = draw(st.integers(1, 6))
        net = Net(rng, inp, (f,))
        d1 = net.dense("x", draw(st.integers(1, 6)), draw(modes), draw(exps))
        n1 = net.neuron(d1, [d1], draw(spikes))
        d2 = net.dense("x", draw(st.integers(1, 6)), draw(modes), draw(exps))
        n2 = net.neuron(d2, [d2], draw(spikes))
        parts = [n1, n2] if draw(st.booleans()) else [n2, n1]
        if draw(st.booleans()):  # the (time-constant) input joins the spiking features
            parts.insert(draw(st.integers(0, 2)), "x")
        cat = net.add("cat", ir.Concat(0), parts, (sum(net.shape[p][0] for p in parts),))
        net.depth[cat] = 1
        net.bound[cat] = max(net.bound[p] for p in parts)
        d3 = net.dense(cat, draw(st.integers(1, 6)), draw(modes), draw(exps))
        n3 = net.neuron(d3, [d3], draw(spikes))
        out = net.dense(n3, 2, draw(modes), draw(exps))
    else:  # dense neurons reshaped into a feature map, then a conv
        c, hw = draw(st.integers(1, 2)), draw(st.integers(2, 4))
        f = draw(st.integers(1, 8))
        net = Net(rng, inp, (f,))
        d1 = net.dense("x", c * hw * hw, draw(modes), draw(exps))
        n1 = net.neuron(d1, [d1], draw(spikes))
        r = net.add("reshape", ir.Reshape((c, hw, hw)), [n1], (c, hw, hw))
        net.depth[r], net.bound[r] = net.depth[n1], net.bound[n1]
        cv = net.conv(r, *conv_params(draw, c), draw(modes))
        if cv is None:
            cv = net.conv(r, 2, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, draw(modes))
        n2 = net.neuron(cv, [cv], draw(spikes))
        r2 = net.add("reshape", ir.Reshape((_size(net.shape[n2]),)), [n2], (_size(net.shape[n2]),))
        net.depth[r2], net.bound[r2] = net.depth[n2], net.bound[n2]
        out = net.dense(r2, 2, draw(modes), draw(exps))
    x = inputs(rng, inp, draw(st.integers(1, 3)), net.shape["x"])
    return net.graph(out), x, draw(steps), draw(batches)


@PROPS
@given(concat_reshape_nets())
def test_concat_reshape_nets(case):
    g, x, T, bs = case
    check(g, x, T, bs)


def test_reference_is_not_vacuous():
    """The generated networks do spike with graded payloads: across a few
    seeds, payloads take many values and readouts vary over time."""
    rng = np.random.default_rng(1)
    inp = graded(rng, "unsigned")
    net = Net(rng, inp, (6,))
    d = net.dense("x", 8, "mixed", 0)
    n = net.neuron(d, [d], 7)
    out = net.dense(n, 3, "odd", -1)
    g = net.graph(out)
    x = inputs(rng, inp, 4, (6,))
    res, payloads = check(g, x, 10)
    assert len(np.unique(payloads[n])) >= 4


# ===========================================================================
# vendor arithmetic on hand values
# ===========================================================================
def test_sign_mode():
    assert arith.sign_mode(np.array([0, 3])) == "excitatory"
    assert arith.sign_mode(np.zeros((2, 2))) == "excitatory"
    assert arith.sign_mode(np.array([0, -3])) == "inhibitory"
    assert arith.sign_mode(np.array([-1, 1])) == "mixed"


def test_dense_weights_hand_values():
    dw = arith.dense_weights
    # mixed, 8 bits: clip to [-256, 255], drop 1 LSB with a floor
    assert dw(np.array([[-7, 7, 3, -1, 1]])).tolist() == [[-8, 6, 2, -2, 0]]
    assert dw(np.array([[300, -300, 255, -256, -257]])).tolist() == [[254, -256, 254, -256, -256]]
    # excitatory: clip to [0, 255], no LSB lost at 8 bits
    assert dw(np.array([[300, 7, 0, 255]])).tolist() == [[255, 7, 0, 255]]
    # inhibitory: clip to [-255, 0]
    assert dw(np.array([[-300, -7, 0, -255]])).tolist() == [[-255, -7, 0, -255]]
    # fewer weight bits: excitatory floors, inhibitory truncates the magnitude
    assert dw(np.array([[255, 7, 3]]), 6).tolist() == [[252, 4, 0]]
    assert dw(np.array([[-255, -7, -3]]), 6).tolist() == [[-252, -4, 0]]
    assert dw(np.array([[-7, 7, 9]]), 6).tolist() == [[-8, 0, 8]]  # mixed at 6 bits drops 3 LSBs
    assert dw(np.zeros((2, 3), np.int64)).tolist() == [[0] * 3] * 2
    assert dw(np.array([[-7, 7]])).dtype == np.int64


def test_dense_weights_match_reference_and_lava():
    ensure_lava()
    from lava.utils import weightutils as lava

    rng = np.random.default_rng(0)
    for i in range(300):
        mode = ["mixed", "excitatory", "inhibitory"][i % 3]
        w = rng.integers(-400, 401, (3, 5))
        w = np.abs(w) if mode == "excitatory" else -np.abs(w) if mode == "inhibitory" else w
        bits = int(rng.integers(1, 9))
        got = arith.dense_weights(w, bits)
        assert got.tolist() == ref_dense_weights(w, bits), (w, bits)
        sm = lava.determine_sign_mode(w)
        want = lava.truncate_weights(lava.clip_weights(w, sm, num_bits=8), sm, bits)
        assert got.tolist() == want.tolist(), (w, bits)


def test_shift_sum_and_wrap_hand_values():
    a = np.array([5, -5, -1, 7, 0])
    assert arith.shift_sum(a, 2).tolist() == [20, -20, -4, 28, 0]
    assert arith.shift_sum(a, -1).tolist() == [2, -3, -1, 3, 0]  # floor
    assert arith.shift_sum(a, -3).tolist() == [0, -1, -1, 0, 0]
    assert arith.shift_sum(a, 0).tolist() == a.tolist()
    h = 2 ** 23
    v = np.array([h, h - 1, -h, -h - 1, 2 ** 24, 3 * 2 ** 24 + 5, -(2 ** 24) - 3, 0, 12345])
    assert arith.wrap(v).tolist() == [-h, h - 1, -h, h - 1, 0, 5, -3, 0, 12345]
    assert arith.wrap(v).tolist() == [ref_wrap24(int(a)) for a in v]
    ensure_lava()
    from lava.proc.conv.utils import signed_clamp

    big = np.random.default_rng(0).integers(-(2 ** 40), 2 ** 40, 1000)
    assert arith.wrap(big).tolist() == signed_clamp(big, 24).tolist()


def test_burst_step_hand_values():
    v = np.array([10, -3, 0, 5, 100], np.int64)
    k = arith.burst_step(v, np.array([7, 0, 8, -6, 0]), np.array([4, 4, 4, 4, 7]), 3)
    assert k.tolist() == [3, 0, 2, 0, 3]
    assert v.tolist() == [5, -3, 0, -1, 79]


def test_graded_input_rounds_half_up_and_clamps():
    q = int_ir.GradedInput(0.5, -3, 4)
    x = np.array([0.25, -0.25, 0.74, -0.76, 10.0, -10.0, 0.0, 1.25])
    assert q.quantise(x).tolist() == [1, 0, 1, -2, 4, -3, 0, 3]


def test_dense_exponent_floor_in_simulator():
    """weight_exp -2 on a negative sum floors (−5 >> 2 = −2); +3 multiplies."""
    inp = int_ir.GradedInput(1.0, -127, 127)
    for e, want in ((-2, [-2, 1]), (3, [-48, 48])):
        w = np.array([[-5, 0], [3, 4]], np.int64)  # mixed, 8 bits: −5 → −6, 3 → 2
        g = ir.Graph((ir.Node("x", inp, (), (2,)), ir.Node("d", int_ir.IntDense(w, e), ("x",), (2,))), "d")
        res, _ = simulate_int(g, np.array([[1.0, 1.0]], np.float32), 1)
        # W' · [1, 1] = [-6, 6]; -6 >> 2 = -2 (floor), 6 >> 2 = 1; ±6 << 3 = ±48
        assert res.readout[0, 0].tolist() == want
