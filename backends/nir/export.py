"""Export the float burst SNN (an adacal IR graph after conversion and
calibration) as a NIR graph (https://neuroir.org, package `nir` 1.0.x).

    g = to_nir(conv.snn, timesteps)        # nir.NIRGraph
    write_nir(conv, "out/network.nir")     # nir.write (HDF5)

What the exported graph computes: the network `runtime_sim/float_sim.py`
simulates, step by step, t = 1..T, with dt = one step and every edge
instantaneous (all nodes update within the step, in topological order):

- the input is the same analog sample at every step (direct encoding);
- several edges into one node sum (NIR's convention); that is how residual
  Adds are exported: the conv path and the skip path both end at the IF node;
- `IF` nodes are adacal burst neurons, with r = 1 and v_threshold = θ
  (per channel, broadcast to the population shape).  Per step
      v += Σ inputs;  k = clamp(floor(v / θ), 0, φ);  v -= k·θ
  and the node emits the graded spike count k ∈ {0..φ} (NIR's IF emits
  z ∈ {0, 1} and fires on v > θ: this is its multi-spike generalisation; with
  φ = 1 it differs from NIR's IF only at v = θ exactly).  v has no lower
  bound.  v(0) = θ/2 + v_init (the half-quantum plus the potential
  correction); NIR has no initial state, so it is in the node metadata
  ("initial_potential").  φ is metadata "max_spikes";
- a spike of channel c stands for the value k·θ[c] (docs/method.md, Burst neurons): θ is
  folded into the columns of every synapse that reads the spikes (Conv2d /
  Affine weights × θ of their input channel), so downstream currents are the
  float simulator's exactly (up to float32 rounding of the scaled weights);
- the neuron's bias (the calibrated per-channel bias, added every step) is
  folded into the bias of the conv/dense that drives the neuron (through
  unpadded pooling and flatten; where that is not exact, into a 1×1 carrier,
  below); NIR's IF has no bias.  Node metadata "bias" keeps the value and
  "bias_folded_into" names the node that adds it;
- AvgPool / GlobalAvgPool become SumPool2d with the 1/(kh·kw) folded into the
  synapses on either side (NIR's AvgPool2d takes no metadata and sinabs reads
  only SumPool2d);
- the readout is the last Affine/Conv2d: not spiking, its per-step output is
  the graph Output; the prediction is the mean (or sum) over the T steps
  (graph metadata "readout").

Node mapping (adacal IR -> NIR):
    Input                  Input (per-sample shape)
    Conv2d                 Conv2d (symmetric padding only), weight × θ_in
    Dense                  Affine, weight × θ_in
    BurstNeuron            IF(r=1, v_threshold=θ) + metadata
    AvgPool/GlobalAvgPool  SumPool2d (1/k² folded into the neighbouring synapses)
    Flatten / flat Reshape Flatten(start_dim=0)
    Add                    edges: every input of the Add ends at the same node
    Concat (channels)      no NIR node: each part keeps its own source, the
                           consumer conv/dense is split into one node per part
                           (weight columns of that part) whose outputs sum
    Affine on the input    Affine(diag(scale), shift) for 1-D inputs; a pure
                           scale of an image is folded into the first conv
    graph output           Output
Where a scaled or channel-embedded signal must reach a neuron or the Output
directly (an identity skip, a concat feeding the readout) a diagonal 1×1
Conv2d (groups=1: sinabs cannot import grouped convs) or a diagonal Affine
carries the scale.

Reading it elsewhere: a NIR reader that implements IF as NIR defines it gets
a different neuron.  sinabs 3.1.3 (`sinabs.from_nir`) builds IAFSqueeze
with MultiSpike (k = floor(v/θ) for v > 0, no cap), MembraneSubtract,
min_v_mem = -θ and v(0) = 0; set per IF node spike_fn =
MaxSpike(max_spikes), min_v_mem = None and v_mem(0) = initial_potential and
it reproduces every spike count of the float simulator (tests/test_nir.py).
Without the cap, counts differ where v/θ > φ; without the start potential,
everywhere early on; the -θ floor matters where v < -θ.  sinabs cannot run
graphs with fan-in (residual Adds, concats feeding a conv): nirtorch 2.0.2's
loader executes nodes depth-first and drops inputs not computed yet.

Refused with an AdacalError naming the node: asymmetric conv/pool padding,
padded average pooling that excludes the padding from the count, ceil-mode
pooling that adds a window, Concat along a non-channel axis, a non-flat
Reshape, an input Affine on a multi-dimensional input, and anything else
NIR 1.0 has no node for.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

from adacal import ir
from adacal.errors import AdacalError

FORMAT = "adacal-burst-snn"
FORMAT_VERSION = 1

SPIKE_RULE = ("per step: v += sum of inputs; k = clamp(floor(v / v_threshold), 0, max_spikes); "
              "v -= k * v_threshold; output k (graded spike count, 0..max_spikes); v unbounded below; "
              "v(0) = initial_potential = v_threshold / 2 + v_init; the lower clamp is -max_spikes instead of "
              "0 where signed is true, and max(-sent, -max_spikes) where memory is true (sent: the neuron's k "
              "summed so far)")

GRAPH_NOTES = {
    "time": "discrete, dt = 1 step; edges are instantaneous: every node updates in the same step, in "
            "topological order; run T = timesteps steps per sample, membrane reset between samples",
    "input_encoding": "direct: the same analog input sample is presented at every one of the T steps",
    "edges": "several edges into one node sum (residual Add)",
    "neuron": "IF nodes are burst integrate-and-fire neurons: " + SPIKE_RULE,
    "half_quantum": "each IF node starts at v(0) = v_threshold / 2 + v_init (node metadata "
                    "'initial_potential'): NIR has no initial state",
    "spike_value": "a spike count k of an IF node stands for k * threshold; the threshold is already folded "
                   "into the weights of every synapse reading it",
    "bias": "neuron biases (added every step) are folded into the bias of the synapse driving the neuron "
            "(node metadata 'bias', 'bias_folded_into')",
    "readout": "the Output is the non-spiking readout (the last Affine/Conv2d) per step; the network's output "
               "is its mean over the T steps (prediction = argmax of the sum)",
}


# ----------------------------------------------------------------------
# signals
# ----------------------------------------------------------------------
@dataclass
class _Term:
    """One NIR signal contributing to an IR value: value[offset:offset+C]
    += scale * signal (scale per element of the signal)."""
    src: str
    scale: np.ndarray
    offset: int = 0


def _per_channel(a: np.ndarray) -> np.ndarray | None:
    """Axis-0 vector of `a` if it is constant over the other axes."""
    a = np.asarray(a, np.float64)
    if a.ndim <= 1:
        return a.reshape(-1)
    flat = a.reshape(a.shape[0], -1)
    return flat[:, 0].copy() if np.all(flat == flat[:, :1]) else None


def _bcast(vec: np.ndarray, shape) -> np.ndarray:
    """A per-channel vector broadcast to a per-sample shape (float64 copy)."""
    v = np.asarray(vec, np.float64).reshape((-1,) + (1,) * (len(shape) - 1))
    return np.broadcast_to(v, tuple(shape)).copy()


def _sym(pads: ir.Pads, what: str) -> tuple[int, int]:
    top, left, bottom, right = (int(p) for p in pads)
    if top != bottom or left != right:
        raise AdacalError(f"{what} pads asymmetrically (top, left, bottom, right = {top}, {left}, {bottom}, "
                          f"{right}); NIR 1.0 has symmetric padding only")
    return top, left


def _pool_out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


class _Exporter:
    def __init__(self, g: ir.Graph):
        import nir
        self.nir, self.g = nir, g
        self.nodes: dict = {}
        self.edges: list[tuple[str, str]] = []
        self.shape: dict[str, tuple] = {}  # NIR node -> per-sample output shape
        self.origin: dict[str, str] = {}  # NIR node -> IR node it was made for
        self.values: dict[str, list[_Term]] = {}
        self._used: set[str] = set()

    # ---- graph building ---------------------------------------------------
    def _name(self, base: str) -> str:
        name = re.sub(r"[^0-9A-Za-z_]", "_", base).strip("_") or "node"
        if name[0].isdigit():
            name = "n_" + name
        out, i = name, 1
        while out in self._used:
            i += 1
            out = f"{name}_{i}"
        self._used.add(out)
        return out

    def add(self, base: str, node, inputs: list[str], origin: str, shape) -> str:
        name = self._name(base)
        self.nodes[name] = node
        self.edges += [(s, name) for s in inputs]
        self.shape[name] = tuple(int(d) for d in shape)
        self.origin[name] = origin
        return name

    def _in(self, name: str) -> list[str]:
        return [a for a, b in self.edges if b == name]

    def _out_degree(self, name: str) -> int:
        return sum(1 for a, _ in self.edges if a == name)

    # ---- per IR op ----------------------------------------------------------
    def run(self) -> None:
        g, nir = self.g, self.nir
        x = g.input
        src = self.add("input", nir.Input(input_type=np.array(x.shape)), [], x.name, x.shape)
        self.values[x.name] = [_Term(src, np.ones(x.shape))]
        for n in g.nodes[1:]:
            fn = getattr(self, "_" + type(n.op).__name__.lower(), None)
            if fn is None:
                raise AdacalError(f"node '{n.name}' ({n.kind}) has no NIR 1.0 equivalent; "
                                  "it cannot be exported with --emit-nir")
            self.values[n.name] = fn(n, [self.values[i] for i in n.inputs])
        out = g.node(g.output)
        srcs = self._settle(self.values[out.name], out.shape, None, "output")
        self.add("output", nir.Output(output_type=np.array(out.shape)), srcs, out.name, out.shape)

    def _conv2d(self, n: ir.Node, ins) -> list[_Term]:
        op, terms = n.op, ins[0]
        ph, pw = _sym(op.padding, f"Conv '{n.name}'")
        in_shape = self.g.node(n.inputs[0]).shape
        if op.groups != 1 and (len(terms) != 1 or terms[0].offset or self.shape[terms[0].src] != in_shape):
            raise AdacalError(f"grouped Conv '{n.name}' reads a concatenation; it cannot be split for NIR")
        w = op.weight.astype(np.float64)
        out = []
        for i, t in enumerate(terms):
            s = _per_channel(t.scale)
            if s is None:
                raise AdacalError(f"Conv '{n.name}' reads a signal whose scale varies within a channel; "
                                  "it cannot be folded into the NIR weights")
            c = self.shape[t.src][0]
            if op.groups == 1:
                wi = w[:, t.offset:t.offset + c] * s[None, :, None, None]
            else:  # input channel seen by W[o, j] (as passes/fold_scalings.py)
                c_out, c_in_g = w.shape[:2]
                idx = (np.arange(c_out)[:, None] // (c_out // op.groups)) * c_in_g + np.arange(c_in_g)[None, :]
                wi = w * s[idx][:, :, None, None]
            b = op.bias if i == 0 else np.zeros_like(op.bias)
            node = self.nir.Conv2d(input_shape=tuple(int(d) for d in self.shape[t.src][1:]),
                                   weight=wi.astype(np.float32), stride=tuple(int(v) for v in op.stride),
                                   padding=(ph, pw), dilation=tuple(int(v) for v in op.dilation),
                                   groups=int(op.groups), bias=np.asarray(b, np.float32).copy())
            if tuple(int(d) for d in node.output_type["output"]) != tuple(n.shape):
                raise AdacalError(f"Conv '{n.name}': NIR's output shape {list(node.output_type['output'])} "
                                  f"differs from adacal's {list(n.shape)}")
            name = self.add(n.name if i == 0 else f"{n.name}_part{i}", node, [t.src], n.name, n.shape)
            out.append(_Term(name, np.ones(n.shape)))
        return out

    def _dense(self, n: ir.Node, ins) -> list[_Term]:
        op, out = n.op, []
        w = op.weight.astype(np.float64)
        for i, t in enumerate(ins[0]):
            if len(self.shape[t.src]) != 1:
                raise AdacalError(f"Dense '{n.name}' reads a {len(self.shape[t.src])}-D signal; flatten first")
            f = self.shape[t.src][0]
            wi = w[:, t.offset:t.offset + f] * t.scale.reshape(1, -1)
            b = op.bias if i == 0 else np.zeros_like(op.bias)
            node = self.nir.Affine(weight=wi.astype(np.float32), bias=np.asarray(b, np.float32).copy())
            name = self.add(n.name if i == 0 else f"{n.name}_part{i}", node, [t.src], n.name, n.shape)
            out.append(_Term(name, np.ones(n.shape)))
        return out

    def _sumpool(self, n: ir.Node, terms, kernel, stride, pad) -> list[_Term]:
        out = []
        for t in terms:
            c, h, w = self.shape[t.src]
            s = _per_channel(t.scale)
            if s is None:
                raise AdacalError(f"{n.kind} '{n.name}' pools a signal whose scale varies within a channel")
            shape = (c, _pool_out(h, kernel[0], stride[0], pad[0]), _pool_out(w, kernel[1], stride[1], pad[1]))
            if shape[1:] != tuple(n.shape[1:]):
                raise AdacalError(f"{n.kind} '{n.name}': output {list(n.shape[1:])} is not the floor-mode size "
                                  f"{list(shape[1:])} NIR's SumPool2d gives (ceil_mode?)")
            node = self.nir.SumPool2d(kernel_size=np.array(kernel), stride=np.array(stride), padding=np.array(pad),
                                      metadata={"adacal_node": n.name, "adacal_op": n.kind,
                                                "note": "average pooling: the 1/(kh*kw) is folded into the "
                                                        "neighbouring synapses"})
            name = self.add(n.name if not out else f"{n.name}_part{len(out)}", node, [t.src], n.name, shape)
            out.append(_Term(name, _bcast(s / (kernel[0] * kernel[1]), shape), t.offset))
        return out

    def _avgpool(self, n: ir.Node, ins) -> list[_Term]:
        op = n.op
        pad = _sym(op.padding, f"AvgPool '{n.name}'")
        if any(pad) and not op.count_include_pad:
            raise AdacalError(f"AvgPool '{n.name}' is padded and excludes the padding from the average; "
                              "NIR's SumPool2d cannot express the varying divisor")
        return self._sumpool(n, ins[0], tuple(op.kernel), tuple(op.stride), pad)

    def _globalavgpool(self, n: ir.Node, ins) -> list[_Term]:
        _, h, w = self.g.node(n.inputs[0]).shape
        return self._sumpool(n, ins[0], (h, w), (h, w), (0, 0))

    def _flatten(self, n: ir.Node, ins) -> list[_Term]:
        out = []
        for t in ins[0]:
            shape = self.shape[t.src]
            if len(shape) == 1:
                out.append(t)
                continue
            size = int(np.prod(shape))
            node = self.nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1,
                                    metadata={"adacal_node": n.name})
            name = self.add(n.name if not out else f"{n.name}_part{len(out)}", node, [t.src], n.name, (size,))
            out.append(_Term(name, t.scale.reshape(-1), t.offset * int(np.prod(shape[1:]))))
        return out

    def _reshape(self, n: ir.Node, ins) -> list[_Term]:
        src = self.g.node(n.inputs[0]).shape
        if tuple(n.shape) == tuple(src):
            return ins[0]
        if tuple(n.shape) == (int(np.prod(src)),):
            return self._flatten(n, ins)
        raise AdacalError(f"Reshape '{n.name}' to {list(n.shape)} is not a flatten; NIR 1.0 has no reshape node")

    def _add(self, n: ir.Node, ins) -> list[_Term]:
        return [t for terms in ins for t in terms]

    def _concat(self, n: ir.Node, ins) -> list[_Term]:
        if n.op.axis != 0:
            raise AdacalError(f"Concat '{n.name}' along axis {n.op.axis + 1} (not channels) cannot be exported: "
                              "NIR 1.0 has no concatenation node")
        out, off = [], 0
        for name, terms in zip(n.inputs, ins):
            out += [_Term(t.src, t.scale, t.offset + off) for t in terms]
            off += self.g.node(name).shape[0]
        return out

    def _affine(self, n: ir.Node, ins) -> list[_Term]:
        shape = n.shape
        scale = np.broadcast_to(np.asarray(n.op.scale, np.float64), shape)
        shift = np.broadcast_to(np.asarray(n.op.shift, np.float64), shape)
        terms = ins[0]
        if not np.any(shift) and all(t.offset == 0 for t in terms) and len(terms) == 1:
            return [_Term(terms[0].src, terms[0].scale * scale)]
        if len(shape) != 1 or len(terms) != 1 or terms[0].offset:
            raise AdacalError(f"Affine '{n.name}' (a constant scale/shift of a {len(shape)}-D input) has no NIR 1.0 "
                              "equivalent; apply it to the data before the network")
        w = np.diag(scale.reshape(-1) * terms[0].scale.reshape(-1))
        node = self.nir.Affine(weight=w.astype(np.float32), bias=shift.reshape(-1).astype(np.float32),
                               metadata={"adacal_node": n.name, "note": "input preprocessing (elementwise)"})
        return [_Term(self.add(n.name, node, [terms[0].src], n.name, shape), np.ones(shape))]

    def _burstneuron(self, n: ir.Node, ins) -> list[_Term]:
        op, shape = n.op, tuple(n.shape)
        theta = _bcast(op.threshold, shape)
        v_init = np.zeros(shape) if op.v_init is None else np.broadcast_to(np.asarray(op.v_init, np.float64), shape)
        bias = np.asarray(op.bias, np.float64).reshape(-1)
        folded: list[str] = []
        srcs = self._settle(ins[0], shape, bias if np.any(bias) else None, n.name, folded)
        meta = {"adacal_node": n.name, "adacal_op": "BurstNeuron", "max_spikes": np.int64(op.max_spikes),
                "threshold": np.asarray(op.threshold, np.float32).reshape(-1).copy(),
                "bias": bias.astype(np.float32), "bias_folded_into": folded[0] if folded else "",
                "v_init": v_init.astype(np.float32), "half_quantum": np.float64(0.5),
                "initial_potential": (0.5 * theta + v_init).astype(np.float32), "spike_rule": SPIKE_RULE,
                "signed": bool(op.signed), "memory": bool(op.memory)}
        node = self.nir.IF(r=np.ones(shape, np.float32), v_threshold=theta.astype(np.float32), metadata=meta)
        return [_Term(self.add(n.name, node, srcs, n.name, shape), theta)]

    # ---- making signals plain (scale 1, full shape) -------------------------
    def _settle(self, terms: list[_Term], shape, bias, target: str, folded: list | None = None) -> list[str]:
        """NIR sources whose plain sum is the value `terms` (+ per-channel bias):
        scales and the bias fold back into the synapse that produced a term
        when that synapse feeds only this path, otherwise a 1x1 conv / diagonal
        Affine carries them."""
        shape = tuple(shape)
        srcs = []
        for t in terms:
            b = None if bias is None else _bcast(bias, shape)
            full = t.offset == 0 and self.shape[t.src] == shape
            if full and b is None and np.all(t.scale == 1):
                srcs.append(t.src)
                continue
            where = self._fold_back(t, b) if full else None
            if where is None:
                where = self._carrier(t, shape, b, target)
                srcs.append(where)
            else:
                srcs.append(t.src)
            if b is not None:
                bias = None
                if folded is not None:
                    folded.append(where)
        return srcs

    def _fold_back(self, t: _Term, b: np.ndarray | None) -> str | None:
        """Multiply the scale into (and add b to) the Conv2d/Affine at the root
        of t's chain of SumPool2d/Flatten nodes, if every node on the chain
        serves only this path.  Returns that node's name or None."""
        nir = self.nir
        cur, scale, add = t.src, t.scale, b
        first = True
        while True:
            if self._out_degree(cur) != (0 if first else 1) or self.g.sole_consumer(self.origin[cur]) is None:
                return None
            node = self.nodes[cur]
            if isinstance(node, (nir.Conv2d, nir.Affine)):
                s = _per_channel(scale)
                a = None if add is None else _per_channel(add)
                if s is None or (add is not None and a is None):
                    return None
                w = node.weight.astype(np.float64)
                node.weight = (w * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
                bias = node.bias.astype(np.float64) * s + (0 if a is None else a)
                node.bias = bias.astype(np.float32)
                return cur
            ins = self._in(cur)
            if len(ins) != 1:
                return None
            if isinstance(node, nir.SumPool2d):
                s = _per_channel(scale)
                a = None if add is None else _per_channel(add)
                if s is None or (add is not None and (a is None or np.any(node.padding))):
                    return None
                k = float(np.prod(node.kernel_size))
                scale = _bcast(s, self.shape[ins[0]])
                add = None if a is None else _bcast(a / k, self.shape[ins[0]])
            elif isinstance(node, nir.Flatten):
                scale = scale.reshape(self.shape[ins[0]])
                add = None if add is None else add.reshape(self.shape[ins[0]])
            else:
                return None
            cur, first = ins[0], False

    def _carrier(self, t: _Term, shape, b, target: str) -> str:
        """A 1x1 Conv2d (C-D maps) or Affine (vectors) that places t at its
        channel offset of `shape` with its scale, plus bias b."""
        nir = self.nir
        sshape = self.shape[t.src]
        bias = np.zeros(shape[0]) if b is None else _per_channel(b)
        if len(shape) == 3:
            s = _per_channel(t.scale)
            if s is None:
                raise AdacalError(f"a signal into '{target}' has a scale that varies within a channel")
            # a diagonal (or channel-embedding) 1x1 conv, groups=1: sinabs 3.1.3's
            # from_nir builds nn.Conv2d(in_channels=weight.shape[1], groups=groups),
            # which rejects depthwise weights (sinabs/nir.py, _import_sinabs_module)
            c = sshape[0]
            w = np.zeros((shape[0], c, 1, 1))
            w[t.offset + np.arange(c), np.arange(c), 0, 0] = s
            node = nir.Conv2d(input_shape=tuple(int(d) for d in sshape[1:]), weight=w.astype(np.float32),
                              stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
                              bias=bias.astype(np.float32))
        elif len(shape) == 1:
            f = sshape[0]
            w = np.zeros((shape[0], f))
            w[t.offset + np.arange(f), np.arange(f)] = t.scale.reshape(-1)
            node = nir.Affine(weight=w.astype(np.float32), bias=bias.astype(np.float32),
                              metadata={"adacal_note": f"carries {t.src} into {target}"})
        else:
            raise AdacalError(f"a {len(shape)}-D signal into '{target}' cannot be carried in NIR 1.0")
        return self.add(f"{t.src}_to_{target}", node, [t.src], self.origin[t.src], shape)


def to_nir(snn: ir.Graph, timesteps: int, metadata: dict | None = None):
    """The float burst SNN `snn` as a nir.NIRGraph (see the module docstring
    for the semantics).  Raises AdacalError for what NIR 1.0 cannot hold."""
    import nir

    from adacal import __version__
    ex = _Exporter(snn)
    ex.run()
    meta = {"format": FORMAT, "format_version": np.int64(FORMAT_VERSION), "producer": f"adacal {__version__}",
            "nir_version": nir.version, "timesteps": np.int64(timesteps), **GRAPH_NOTES,
            "adacal_nodes": json.dumps(ex.origin)}
    meta.update(metadata or {})
    return nir.NIRGraph(nodes=ex.nodes, edges=ex.edges, metadata=meta)


def conversion_metadata(conv) -> dict:
    """What the conversion chose, for the graph metadata (JSON strings)."""
    meta = {"options": json.dumps(conv.options.recorded())}
    if conv.exit_policy is not None:
        meta["exit_policy"] = json.dumps(conv.exit_policy.as_dict())
    return meta


def nir_writer(conv):
    """Build the NIR graph of a Conversion now (so export errors surface before
    anything is written) and return a callable(path) that writes it."""
    import nir
    graph = to_nir(conv.snn, conv.options.timesteps, conversion_metadata(conv))
    return lambda path: nir.write(str(path), graph)


def write_nir(conv, path) -> None:
    """Write the converted float burst SNN of `conv` to `path` (NIR HDF5)."""
    nir_writer(conv)(path)
