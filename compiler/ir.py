"""The adacal IR: a small graph of named nodes over frozen op dataclasses.

Tensors are numpy arrays.  Every shape stored in the IR is *per sample*: the
batch dimension is implicit and always first at run time.  A graph has exactly
one input node (op `Input`) first and one output; nodes are kept in
topological order, and a node's output value is named by the node's name.

Ops describe *what* a layer computes (like a Lava Process); how it runs lives
elsewhere (`adacal.interpret` for the float reference, runtime_sim for spikes).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Iterable

import numpy as np

Shape = tuple[int, ...]
Pads = tuple[int, int, int, int]  # top, left, bottom, right


def _op(cls):
    # eq=False: ops hold numpy arrays, identity comparison is the useful one.
    return dataclass(frozen=True, eq=False)(cls)


@_op
class Input:
    """The graph input (float features / image, per-sample shape on the node)."""


@_op
class Conv2d:
    weight: np.ndarray  # (C_out, C_in/groups, kH, kW), cross-correlation as in ONNX/PyTorch
    bias: np.ndarray  # (C_out,)
    stride: tuple[int, int] = (1, 1)
    padding: Pads = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1


@_op
class Dense:
    weight: np.ndarray  # (out_features, in_features)
    bias: np.ndarray  # (out_features,)


@_op
class BatchNorm:
    """Inference batch norm over axis 1 (channels / features)."""
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5

    def scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        scale = self.gamma / np.sqrt(self.var + self.eps)
        return scale, self.beta - self.mean * scale


@_op
class Affine:
    """Elementwise x * scale + shift with constant arrays broadcast against the
    per-sample shape (Mul/Div/Add/Sub by constants, or an unfolded BatchNorm)."""
    scale: np.ndarray
    shift: np.ndarray


@_op
class Relu:
    """max(x, 0), or min(max(x, 0), cap) for a capped ReLU such as ReLU6."""
    cap: float | None = None


@_op
class Clip:
    """A clip that is not (yet) recognised as a ReLU; None = unbounded."""
    lo: float | None = None
    hi: float | None = None


@_op
class Pad:
    """Constant padding of the spatial dims; folded into a following conv."""
    pads: Pads
    value: float = 0.0


@_op
class AvgPool:
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: Pads = (0, 0, 0, 0)
    count_include_pad: bool = False
    ceil_mode: bool = False


@_op
class GlobalAvgPool:
    """Mean over the spatial dims, keeping them as 1x1."""


@_op
class GlobalMaxPool:
    """Max over the spatial dims, keeping them as 1x1 (e.g. PointNet's max over
    the points, a ReduceMax over the length axis of a 1-D network)."""


@_op
class MaxPool:
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: Pads = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False


@_op
class Add:
    """Elementwise sum of its inputs: a residual connection (two), or the
    synapses of a composed linear stream into one neuron layer (any number)."""


@_op
class Concat:
    axis: int  # per-sample axis (ONNX axis - 1)


@_op
class Flatten:
    """(N, ...) -> (N, prod(...))."""


@_op
class Reshape:
    shape: Shape  # per-sample target shape


@_op
class Transpose:
    """Permutes the per-sample axes (the batch stays first): an exact linear map."""
    perm: tuple[int, ...]  # per-sample permutation (ONNX perm[1:] - 1)


@_op
class Take:
    """Selects entries along one per-sample axis by index (repeats allowed): an
    exact linear map.  Slice, Split, edge/reflect Pad and nearest Resize /
    Upsample become one Take per axis they touch."""
    axis: int  # per-sample axis
    indices: np.ndarray  # int64, each in range(input_shape[axis])


@_op
class ConvTranspose2d:
    """Transposed 2-D convolution as in ONNX ConvTranspose (exact linear map)."""
    weight: np.ndarray  # (C_in, C_out/groups, kH, kW)
    bias: np.ndarray  # (C_out,)
    stride: tuple[int, int] = (1, 1)
    padding: Pads = (0, 0, 0, 0)  # cropped from the full output: top, left, bottom, right
    output_padding: tuple[int, int] = (0, 0)  # zeros appended at the bottom / right before cropping
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1


@_op
class Identity:
    """Identity / inference Dropout; removed by `passes.drop_identity`."""


@_op
class BurstNeuron:
    """Burst integrate-and-fire neurons replacing a ReLU (docs/method.md, Burst neurons).

    Per step: V += I + bias;  k = clamp(floor(V / threshold), 0, max_spikes);
    output k * threshold;  V -= k * threshold.  V starts at
    0.5 * threshold + v_init (the half-quantum, plus the potential correction).
    threshold and bias are per channel (axis 0 of the per-sample shape);
    v_init is per neuron (the full per-sample shape) or None.
    """
    threshold: np.ndarray
    max_spikes: int
    bias: np.ndarray
    v_init: np.ndarray | None = None
    #: signed neurons (a Relay's): k = clamp(floor(V / threshold), -max_spikes, max_spikes)
    signed: bool = False
    #: memory neurons (ConvertOptions.neuron "memory"): a ReLU's neurons that may send negative
    #: bursts to take back spikes they sent earlier, never more than they have sent:
    #: k = clamp(floor(V / threshold), max(-sent, -max_spikes), max_spikes); sent += k
    memory: bool = False


@_op
class Relay:
    """An identity in the ANN that marks a linear (unrectified) value the
    spiking network must carry: a linear bottleneck's output read by several
    layers, or a residual sum with no ReLU after it.  It becomes a population
    of signed burst neurons (docs/method.md, Linear bottlenecks)."""


@_op
class SpikingMaxPool:
    """A MaxPool or GlobalMaxPool over spike payloads, realised over time as
    `how` (one of runtime_sim.maxpool.REALISATIONS; docs/method.md, Max
    pooling).  Its float meaning is `pool`'s."""
    pool: object  # the ir.MaxPool or ir.GlobalMaxPool it realises
    how: str = "running"


LINEAR_LAYERS = (Conv2d, Dense)


@dataclass(frozen=True, eq=False)
class Node:
    name: str
    op: object
    inputs: tuple[str, ...]
    shape: Shape  # per-sample output shape

    @property
    def kind(self) -> str:
        return type(self.op).__name__


@dataclass(frozen=True, eq=False)
class Graph:
    nodes: tuple[Node, ...]  # topological order, nodes[0] is the Input
    output: str
    #: The output head the frontend dropped ("name (Softmax)"): the graph's
    #: output is then the logits, which keep the argmax.  None if none was.
    dropped_head: str | None = None

    # ---- queries -------------------------------------------------------
    @property
    def input(self) -> Node:
        return self.nodes[0]

    @property
    def input_shape(self) -> Shape:
        return self.nodes[0].shape

    @property
    def output_shape(self) -> Shape:
        return self.node(self.output).shape

    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def get(self, name: str) -> Node | None:
        for n in self.nodes:
            if n.name == name:
                return n
        return None

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]

    def is_output(self, name: str) -> bool:
        return name == self.output

    def sole_consumer(self, name: str) -> Node | None:
        """The only node reading `name`, if there is exactly one and `name`
        is not also the graph output (so folding `name` away is safe)."""
        cons = self.consumers(name)
        return cons[0] if len(cons) == 1 and name != self.output else None

    # ---- edits (return new graphs) ---------------------------------------
    def with_nodes(self, nodes: Iterable[Node], output: str | None = None) -> "Graph":
        return Graph(tuple(nodes), self.output if output is None else output, self.dropped_head)

    def bypass(self, name: str) -> "Graph":
        """Remove a single-input node, wiring its consumers to its input."""
        node = self.node(name)
        src = node.inputs[0]
        nodes = [
            replace(n, inputs=tuple(src if i == name else i for i in n.inputs))
            for n in self.nodes if n.name != name
        ]
        return Graph(tuple(nodes), src if self.output == name else self.output, self.dropped_head)

    def replace_op(self, name: str, op, inputs: tuple[str, ...] | None = None) -> "Graph":
        nodes = [
            replace(n, op=op, inputs=n.inputs if inputs is None else inputs) if n.name == name else n
            for n in self.nodes
        ]
        return Graph(tuple(nodes), self.output, self.dropped_head)

    # ---- execution -----------------------------------------------------
    def run(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Float reference output for x of shape (N, *input_shape)."""
        from adacal.interpret import run_graph
        return run_graph(self, x, batch_size=batch_size)

    def activations(self, x: np.ndarray, names: Iterable[str], batch_size: int = 256) -> dict[str, np.ndarray]:
        """Float values of the named nodes for x (for calibration)."""
        from adacal.interpret import run_graph
        return run_graph(self, x, keep=tuple(names), batch_size=batch_size)

    # ---- printing ------------------------------------------------------
    def __str__(self) -> str:
        lines = [f"graph(input {self.input.name}: {_fmt_shape(self.input_shape)}) -> {self.output}"
                 + (f"  (dropped output head {self.dropped_head})" if self.dropped_head else "")]
        for n in self.nodes[1:]:
            args = ", ".join(f"%{i}" for i in n.inputs)
            lines.append(f"  %{n.name} = {describe_op(n.op)}({args}) -> {_fmt_shape(n.shape)}")
        return "\n".join(lines)

    __repr__ = __str__


def _fmt_shape(shape: Shape) -> str:
    return "(N, " + ", ".join(str(s) for s in shape) + ")"


def describe_op(op) -> str:
    """One-line description of an op: its kind and non-array attributes."""
    parts = []
    for f in fields(op):
        v = getattr(op, f.name)
        if isinstance(v, (np.ndarray, np.generic)):
            parts.append(f"{f.name}{list(np.shape(v))}")
        elif isinstance(v, bool):  # flags are shown when set (True == 1 would hide them)
            if v:
                parts.append(f.name)
        elif v not in (None, (1, 1), (0, 0, 0, 0), 1) or f.name in ("axis", "kernel"):
            parts.append(f"{f.name}={v}")
    name = type(op).__name__.lower()
    return f"{name}[{' '.join(parts)}]" if parts else name


def param_count(op) -> int:
    """Weights and biases (a Take's indices are wiring, not parameters)."""
    return int(sum(getattr(op, f.name).size for f in fields(op)
                   if isinstance(getattr(op, f.name), np.ndarray) and f.name != "indices"))


def macs(node: Node) -> int:
    """Multiply-accumulates per sample of a conv/dense/transposed conv node
    (0 for others; a transposed conv counts the products its pads crop too)."""
    op = node.op
    if isinstance(op, Conv2d):
        _, c_in_g, kh, kw = op.weight.shape
        return int(np.prod(node.shape)) * c_in_g * kh * kw
    if isinstance(op, Dense):
        return int(op.weight.size)
    if isinstance(op, ConvTranspose2d):  # every input value times its C_out/groups*kH*kW weights
        return int(op.weight.size) * int(np.prod(_conv_transpose_input_hw(op, node.shape[1:])))
    return 0


def _conv_transpose_input_hw(op: ConvTranspose2d, out_hw: Shape) -> tuple[int, int]:
    """The input height and width of a transposed conv with output (H, W)."""
    pads = ((op.padding[0], op.padding[2]), (op.padding[1], op.padding[3]))
    return tuple((o + a + b - d * (k - 1) - p - 1) // s + 1 for o, (a, b), d, k, p, s in zip(
        out_hw, pads, op.dilation, op.weight.shape[2:], op.output_padding, op.stride))
