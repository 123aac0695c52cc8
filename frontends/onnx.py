"""ONNX -> adacal IR.

Reads what torch's exporters emit for CNN/MLP classifiers.  Constant
sub-graphs (initializers, Constant nodes, shape arithmetic) are folded here;
every remaining node becomes one IR node.  Clean-up (BatchNorm folding, pad
folding, ReLU recognition, ...) is done by `adacal.passes`, not here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from adacal import ir
from adacal.errors import AdacalError, ModelFileError, UnsupportedError
from adacal.interpret import infer_shape

#: ONNX op types the frontend accepts (constant-only nodes of other types are
#: folded too, as long as onnx's reference evaluator can compute them).
SUPPORTED_OPS = (
    "Add", "AveragePool", "BatchNormalization", "Clip", "Concat", "Constant", "Conv",
    "Div", "Dropout", "Flatten", "Gemm", "GlobalAveragePool", "Identity", "MatMul",
    "MaxPool", "Mul", "Pad", "ReduceMean", "Relu", "Reshape", "Shape", "Squeeze", "Sub", "Unsqueeze",
)


def _supported_list() -> str:
    return ", ".join(SUPPORTED_OPS)


# ---------------------------------------------------------------------------
# reading the file
# ---------------------------------------------------------------------------
def read_model(model) -> tuple[onnx.ModelProto, str]:
    """Return (ModelProto, label for messages) from a path, bytes or ModelProto."""
    if isinstance(model, onnx.ModelProto):
        return model, "<ModelProto>"
    if isinstance(model, (bytes, bytearray)):
        label, data = "<bytes>", bytes(model)
    else:
        label = os.fspath(model)
        if not os.path.exists(label):
            raise ModelFileError(f"{label}: no such file")
        if os.path.isdir(label):
            raise ModelFileError(f"{label}: is a directory, not an ONNX file")
        try:
            with open(label, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ModelFileError(f"{label}: cannot read ({e.strerror})") from None
    if not data:
        raise ModelFileError(f"{label}: file is empty, not an ONNX model")
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as e:  # protobuf raises DecodeError and friends
        raise ModelFileError(f"{label}: not a valid ONNX model (protobuf decode failed: "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if not proto.graph.node and not proto.graph.input:
        raise ModelFileError(f"{label}: not an ONNX model (no graph in the file)")
    return proto, label


def _check(proto: onnx.ModelProto, label: str) -> onnx.ModelProto:
    try:
        onnx.checker.check_model(proto)
    except Exception as e:
        msg = str(e).strip().splitlines()
        raise ModelFileError(f"{label}: invalid ONNX model ({msg[0] if msg else type(e).__name__})") from None
    try:
        return onnx.shape_inference.infer_shapes(proto)
    except Exception:
        return proto  # shapes are recomputed from the IR anyway


# ---------------------------------------------------------------------------
# conversion state
# ---------------------------------------------------------------------------
@dataclass
class _State:
    label: str
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    # The same constants computed with another batch size: a value that differs
    # between the two depends on the (dynamic) batch size.  See _shape().
    alt: dict[str, np.ndarray] = field(default_factory=dict)
    act: dict[str, str] = field(default_factory=dict)  # ONNX tensor -> IR node name
    nodes: list[ir.Node] = field(default_factory=list)
    shapes: dict[str, ir.Shape] = field(default_factory=dict)
    static_batch: int | None = None
    names: set[str] = field(default_factory=set)

    def emit(self, name: str, op, inputs: tuple[str, ...], onnx_node) -> str:
        in_shapes = [self.shapes[i] for i in inputs]
        try:
            shape = infer_shape(op, in_shapes)
        except Exception as e:
            raise UnsupportedError(
                f"node '{name}' ({onnx_node.op_type}): cannot be applied to input shape(s) "
                f"{in_shapes}: {str(e).splitlines()[0]}") from None
        if any(d <= 0 for d in shape):
            raise UnsupportedError(f"node '{name}' ({onnx_node.op_type}): produces an empty "
                                   f"tensor of shape {shape}")
        self.nodes.append(ir.Node(name, op, inputs, shape))
        self.shapes[name] = shape
        return name


def _node_name(node, idx: int, used: set[str]) -> str:
    base = node.name or (node.output[0] if node.output and node.output[0] else f"{node.op_type}_{idx}")
    name, k = base, 1
    while name in used:
        k += 1
        name = f"{base}_{k}"
    used.add(name)
    return name


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _finite(arr: np.ndarray, what: str, label: str) -> np.ndarray:
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise AdacalError(f"{label}: {what} contains NaN or Inf values")
    return arr


# ---------------------------------------------------------------------------
# the graph input
# ---------------------------------------------------------------------------
def _graph_input(proto: onnx.ModelProto, st: _State) -> str:
    inits = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise UnsupportedError(f"{st.label}: the model has {len(inputs)} inputs "
                               f"({', '.join(i.name for i in inputs)}); adacal needs exactly one")
    inp = inputs[0]
    ttype = inp.type.tensor_type
    if not ttype.HasField("shape"):
        raise UnsupportedError(f"{st.label}: input '{inp.name}' has no declared shape")
    dims = list(ttype.shape.dim)
    if len(dims) < 2:
        raise UnsupportedError(f"{st.label}: input '{inp.name}' has rank {len(dims)}; "
                               "expected (batch, features...) ")
    if dims[0].HasField("dim_value") and dims[0].dim_value > 0:
        st.static_batch = dims[0].dim_value
    shape = []
    for axis, d in enumerate(dims[1:], start=1):
        if not d.HasField("dim_value") or d.dim_value <= 0:
            sym = d.dim_param or "?"
            raise UnsupportedError(
                f"{st.label}: input '{inp.name}' has a dynamic dimension '{sym}' at axis {axis}; "
                "only the batch dimension (axis 0) may be dynamic — re-export with a fixed input size")
        shape.append(int(d.dim_value))
    name = inp.name
    st.names.add(name)
    st.nodes.append(ir.Node(name, ir.Input(), (), tuple(shape)))
    st.shapes[name] = tuple(shape)
    st.act[inp.name] = name
    return name


# ---------------------------------------------------------------------------
# constant folding
# ---------------------------------------------------------------------------
def _const_node(node, st: _State) -> None:
    a = node.attribute[0] if node.attribute else None
    if a is None:
        raise UnsupportedError(f"node '{node.name}' (Constant): has no value")
    value = helper.get_attribute_value(a)
    if isinstance(value, onnx.TensorProto):
        arr = numpy_helper.to_array(value)
    elif a.name == "sparse_value":
        raise UnsupportedError(f"node '{node.name}' (Constant): sparse constants are not supported")
    else:
        arr = np.asarray(value)
    st.consts[node.output[0]] = st.alt[node.output[0]] = arr


def _fold_constant(node, st: _State) -> None:
    """Evaluate a node whose inputs are all constants with onnx's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    runs = []
    for table in (st.consts, st.alt):
        feeds = {i: table[i] for i in node.input if i}
        try:
            runs.append(ReferenceEvaluator(node).run(None, feeds))
        except Exception as e:
            raise UnsupportedError(
                f"node '{node.name}' ({node.op_type}): constant expression could not be evaluated "
                f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    for name, val, alt in zip(node.output, *runs):
        if name:
            st.consts[name], st.alt[name] = np.asarray(val), np.asarray(alt)


# ---------------------------------------------------------------------------
# per-op conversion (activation input)
# ---------------------------------------------------------------------------
def _pads4(p, name, op_type) -> ir.Pads:
    p = [int(v) for v in (p or [0, 0, 0, 0])]
    if len(p) != 4:
        raise UnsupportedError(f"node '{name}' ({op_type}): only 2-D spatial ops are supported "
                               f"(got pads {p})")
    return (p[0], p[1], p[2], p[3])  # ONNX [top, left, bottom, right]


def _auto_pad(attrs, in_hw, kernel, stride, dilation, name, op_type) -> ir.Pads:
    mode = attrs.get("auto_pad", b"NOTSET")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode in ("NOTSET", ""):
        return _pads4(attrs.get("pads"), name, op_type)
    if mode == "VALID":
        return (0, 0, 0, 0)
    pads = []
    for size, k, s, d in zip(in_hw, kernel, stride, dilation):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        small = total // 2
        pads.append((small, total - small) if mode == "SAME_UPPER" else (total - small, small))
    return (pads[0][0], pads[1][0], pads[0][1], pads[1][1])


def _pair(v, default=1) -> tuple[int, int]:
    if v is None:
        return (default, default)
    v = [int(x) for x in v]
    return (v[0], v[1]) if len(v) == 2 else (v[0], v[0])


class _Ctx:
    """What a converter sees of one ONNX node."""

    def __init__(self, node, name, st: _State):
        self.node, self.name, self.st = node, name, st
        self.attrs = _attrs(node)

    def fail(self, why: str):
        raise UnsupportedError(f"node '{self.name}' ({self.node.op_type}): {why}")

    def is_act(self, i: int) -> bool:
        return i < len(self.node.input) and self.node.input[i] in self.st.act

    def act(self, i: int) -> str:
        if not self.is_act(i):
            self.fail(f"input {i} must be a tensor computed from the model input")
        return self.st.act[self.node.input[i]]

    def const(self, i: int, what: str, optional: bool = False):
        if i >= len(self.node.input) or not self.node.input[i]:
            if optional:
                return None
            self.fail(f"missing {what}")
        n = self.node.input[i]
        if n not in self.st.consts:
            if optional and n not in self.st.act:
                return None
            self.fail(f"{what} must be a constant (initializer), not computed at run time")
        if batch_dependent(self.st, n):
            self.fail(f"{what} is computed from the batch size, which adacal does not support "
                      "(only as the first entry of a Reshape target)")
        return _finite(np.asarray(self.st.consts[n]), f"node '{self.name}' {what}", self.st.label)

    def shape(self, i: int = 0) -> ir.Shape:
        return self.st.shapes[self.act(i)]

    def emit(self, op, inputs=None) -> str:
        return self.st.emit(self.name, op, tuple(inputs) if inputs is not None else (self.act(0),), self.node)


def _conv(c: _Ctx):
    w = c.const(1, "weight").astype(np.float32)
    if w.ndim != 4:
        c.fail(f"only 2-D convolutions are supported (weight has rank {w.ndim})")
    b = c.const(2, "bias", optional=True)
    b = np.zeros(w.shape[0], np.float32) if b is None else b.astype(np.float32).reshape(-1)
    stride, dilation = _pair(c.attrs.get("strides")), _pair(c.attrs.get("dilations"))
    pads = _auto_pad(c.attrs, c.shape()[1:], w.shape[2:], stride, dilation, c.name, "Conv")
    return c.emit(ir.Conv2d(w, b, stride, pads, dilation, int(c.attrs.get("group", 1))))


def _gemm(c: _Ctx):
    a = c.attrs
    if c.is_act(1) or not c.is_act(0):
        c.fail("only Gemm(activation, constant weight) is supported")
    if int(a.get("transA", 0)):
        c.fail("transA=1 on the activation input is not supported (the batch must stay first)")
    if len(c.shape()) != 1:
        c.fail(f"expects a 2-D (batch, features) input, got per-sample shape {c.shape()}")
    b = c.const(1, "weight B").astype(np.float64)
    w = b if int(a.get("transB", 0)) else b.T
    w = w * float(a.get("alpha", 1.0))
    cb = c.const(2, "bias C", optional=True)
    bias = np.zeros(w.shape[0])
    if cb is not None:
        cb = cb.astype(np.float64)
        if cb.ndim == 2 and cb.shape[0] != 1:
            c.fail(f"bias C of shape {cb.shape} depends on the batch row")
        bias = np.broadcast_to(cb.reshape(-1) if cb.ndim else cb, (w.shape[0],)) * float(a.get("beta", 1.0))
    return c.emit(ir.Dense(w.astype(np.float32), np.asarray(bias, np.float32)))


def _matmul(c: _Ctx):
    if c.is_act(1) or not c.is_act(0):
        c.fail("only MatMul(activation, constant weight) is supported")
    if len(c.shape()) != 1:
        c.fail(f"expects a 2-D (batch, features) input, got per-sample shape {c.shape()}")
    w = c.const(1, "weight")
    if w.ndim != 2:
        c.fail(f"weight must be 2-D, got shape {w.shape}")
    return c.emit(ir.Dense(w.T.astype(np.float32), np.zeros(w.shape[1], np.float32)))


def _batchnorm(c: _Ctx):
    if int(c.attrs.get("training_mode", 0)):
        c.fail("training_mode=1; export the model in eval mode")
    vals = [c.const(i, what).astype(np.float32).reshape(-1)
            for i, what in enumerate(("scale", "bias", "mean", "var"), start=1)]
    return c.emit(ir.BatchNorm(*vals, eps=float(c.attrs.get("epsilon", 1e-5))))


def _clip(c: _Ctx):
    lo, hi = c.attrs.get("min"), c.attrs.get("max")
    v = c.const(1, "min", optional=True)
    lo = float(v) if v is not None else lo
    v = c.const(2, "max", optional=True)
    hi = float(v) if v is not None else hi
    return c.emit(ir.Clip(None if lo is None else float(lo), None if hi is None else float(hi)))


def _avgpool(c: _Ctx):
    k = _pair(c.attrs.get("kernel_shape"))
    s = _pair(c.attrs.get("strides"))
    if _pair(c.attrs.get("dilations")) != (1, 1):
        c.fail("dilated average pooling is not supported")
    pads = _auto_pad(c.attrs, c.shape()[1:], k, s, (1, 1), c.name, "AveragePool")
    return c.emit(ir.AvgPool(k, s, pads, bool(c.attrs.get("count_include_pad", 0)),
                             bool(c.attrs.get("ceil_mode", 0))))


def _maxpool(c: _Ctx):
    if len(c.node.output) > 1 and c.node.output[1]:
        c.fail("the Indices output is not supported")
    k = _pair(c.attrs.get("kernel_shape"))
    s, d = _pair(c.attrs.get("strides")), _pair(c.attrs.get("dilations"))
    pads = _auto_pad(c.attrs, c.shape()[1:], k, s, d, c.name, "MaxPool")
    return c.emit(ir.MaxPool(k, s, pads, d, bool(c.attrs.get("ceil_mode", 0))))


def _per_sample_const(c: _Ctx, arr: np.ndarray, shape: ir.Shape) -> np.ndarray:
    arr = arr.astype(np.float32)
    if arr.ndim == len(shape) + 1:
        if arr.shape[0] != 1:
            c.fail(f"constant of shape {arr.shape} varies along the batch dimension")
        arr = arr[0]
    try:
        if np.broadcast_shapes(arr.shape, shape) != tuple(shape):
            raise ValueError
    except ValueError:
        c.fail(f"constant of shape {arr.shape} does not broadcast to the activation {shape}")
    return arr


def _arith(c: _Ctx):
    op = c.node.op_type
    if c.is_act(0) and c.is_act(1):
        if op != "Add":
            c.fail(f"{op} of two activations is not linear; only Add (residual) is supported")
        a, b = c.act(0), c.act(1)
        if c.st.shapes[a] != c.st.shapes[b]:
            c.fail(f"adds tensors of different shapes {c.st.shapes[a]} and {c.st.shapes[b]}")
        return c.emit(ir.Add(), (a, b))
    first = c.is_act(0)
    x = 0 if first else 1
    shape = c.shape(x)
    k = _per_sample_const(c, c.const(1 - x, "constant operand"), shape)
    one, zero = np.ones((), np.float32), np.zeros((), np.float32)
    if op == "Add":
        scale, shift = one, k
    elif op == "Sub":
        scale, shift = (one, -k) if first else (-one, k)
    elif op == "Mul":
        scale, shift = k, zero
    else:  # Div
        if not first:
            c.fail("constant / activation is not linear")
        if np.any(k == 0):
            c.fail("division by a constant that contains zeros")
        scale, shift = (1.0 / k).astype(np.float32), zero
    return c.emit(ir.Affine(scale, shift), (c.act(x),))


def _concat(c: _Ctx):
    ins = tuple(c.act(i) for i in range(len(c.node.input)))
    rank = len(c.st.shapes[ins[0]]) + 1
    axis = int(c.attrs.get("axis", 1))
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        c.fail("concatenation along the batch dimension is not supported")
    return c.emit(ir.Concat(axis - 1), ins)


def _flatten(c: _Ctx):
    rank = len(c.shape()) + 1
    axis = int(c.attrs.get("axis", 1))
    axis = axis + rank if axis < 0 else axis
    if axis != 1:
        c.fail(f"Flatten(axis={axis}) mixes the batch dimension; only axis=1 is supported")
    return c.emit(ir.Flatten())


def _reshape_to(c: _Ctx, target: list[int], batch_from_shape: bool = False):
    shape = c.shape()
    size = int(np.prod(shape))
    if int(c.attrs.get("allowzero", 0)) and 0 in target[int(batch_from_shape):]:
        c.fail("allowzero=1 with a zero in the target shape is not supported")
    t = list(target)
    first = t[0]
    if first == -1:
        if -1 in t[1:]:
            c.fail(f"target shape {target} leaves the batch dimension ambiguous")
        rest = [shape[i - 1] if v == 0 and i - 1 < len(shape) else v for i, v in enumerate(t[1:], 1)]
        if int(np.prod(rest)) != size:
            c.fail(f"target shape {target} changes the batch dimension")
    elif first == 0 or (c.st.static_batch is not None and first == c.st.static_batch):
        rest = [shape[i - 1] if v == 0 and i - 1 < len(shape) else v for i, v in enumerate(t[1:], 1)]
        if rest.count(-1) > 1:
            c.fail(f"target shape {target} has more than one -1")
        if -1 in rest:
            known = int(np.prod([v for v in rest if v != -1]))
            if known == 0 or size % known:
                c.fail(f"target shape {target} does not fit {size} values per sample")
            rest[rest.index(-1)] = size // known
        if int(np.prod(rest)) != size:
            c.fail(f"target shape {target} does not fit {size} values per sample")
    else:
        c.fail(f"target shape {target} changes the batch dimension")
    rest = tuple(int(v) for v in rest)
    if len(rest) == 1:
        return c.emit(ir.Flatten())
    return c.emit(ir.Reshape(rest))


def _reshape(c: _Ctx):
    name = c.node.input[1] if len(c.node.input) > 1 else ""
    if name and batch_dependent(c.st, name):
        t, t_alt = c.st.consts[name].reshape(-1), c.st.alt[name].reshape(-1)
        if not (t[0] == _BATCH[0] and t_alt[0] == _BATCH[1] and np.array_equal(t[1:], t_alt[1:])):
            c.fail("the target shape uses the batch size other than as its first entry")
        return _reshape_to(c, [0] + [int(v) for v in t[1:]], batch_from_shape=True)
    return _reshape_to(c, [int(v) for v in c.const(1, "shape").reshape(-1)])


def _axes(c: _Ctx, rank: int):
    axes = c.attrs.get("axes")
    if axes is None and len(c.node.input) > 1 and c.node.input[1]:
        axes = c.const(1, "axes").reshape(-1).tolist()
    if axes is None:
        return None
    axes = [int(a) + rank if int(a) < 0 else int(a) for a in axes]
    if 0 in axes:
        c.fail("squeezing/unsqueezing the batch dimension is not supported")
    return axes


def _squeeze(c: _Ctx):
    shape = list(c.shape())
    axes = _axes(c, len(shape) + 1)
    if axes is None:
        axes = [i + 1 for i, d in enumerate(shape) if d == 1]
    if any(shape[a - 1] != 1 for a in axes):
        c.fail(f"cannot squeeze axes {axes} of per-sample shape {tuple(shape)}")
    new = [d for i, d in enumerate(shape, 1) if i not in axes]
    return _reshape_to(c, [0] + new)


def _unsqueeze(c: _Ctx):
    shape = list(c.shape())
    out_rank = len(shape) + 1 + len(c.attrs.get("axes") or c.const(1, "axes").reshape(-1).tolist())
    axes = sorted(_axes(c, out_rank))
    full = [0] + shape
    for a in axes:
        full.insert(a, 1)
    return _reshape_to(c, [0] + full[1:])


def _pad(c: _Ctx):
    mode = c.attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode != "constant":
        c.fail(f"mode '{mode}' is not supported (only constant padding)")
    pads = c.attrs.get("pads")
    if pads is None:
        pads = c.const(1, "pads").reshape(-1).tolist()
    value = c.const(2, "constant_value", optional=True)
    value = float(c.attrs.get("value", 0.0)) if value is None else float(np.asarray(value).reshape(-1)[0]) if np.asarray(value).size else 0.0
    rank = len(c.shape()) + 1
    axes = c.const(3, "axes", optional=True)
    full = [0] * (2 * rank)
    axes = list(range(rank)) if axes is None else [int(a) + rank if a < 0 else int(a) for a in axes.reshape(-1)]
    if len(pads) != 2 * len(axes):
        c.fail(f"pads {pads} do not match {len(axes)} axes")
    for j, a in enumerate(axes):
        full[a], full[a + rank] = int(pads[j]), int(pads[j + len(axes)])
    if rank != 4 or any(full[i] or full[i + rank] for i in (0, 1)):
        c.fail(f"only spatial padding of 4-D tensors is supported (pads {full})")
    if any(p < 0 for p in full):
        c.fail("negative pads (cropping) are not supported")
    return c.emit(ir.Pad((full[2], full[3], full[6], full[7]), value))


# Two stand-in batch sizes.  Shape of an activation is folded twice, once with
# each; whatever differs downstream depends on the batch size and is accepted
# only as the first entry of a Reshape target (the `x.view(x.size(0), -1)`
# idiom), anything else is refused rather than silently computed wrong.
_BATCH = (7, 11)


def batch_dependent(st: _State, name: str) -> bool:
    a, b = st.consts.get(name), st.alt.get(name)
    return a is not None and b is not None and (a.shape != b.shape or not np.array_equal(a, b))


def _shape(c: _Ctx):
    start, end = int(c.attrs.get("start", 0)), c.attrs.get("end")
    sl = slice(start, None if end is None else int(end))
    out = c.node.output[0]
    for table, b in ((c.st.consts, _BATCH[0]), (c.st.alt, _BATCH[1])):
        b = c.st.static_batch or b
        table[out] = np.array([b] + list(c.shape()), dtype=np.int64)[sl]
    return None


def _reduce_mean(c: _Ctx):
    rank = len(c.shape()) + 1
    axes = c.attrs.get("axes")
    if axes is None and len(c.node.input) > 1 and c.node.input[1]:
        axes = c.const(1, "axes").reshape(-1).tolist()
    axes = sorted(int(a) + rank if int(a) < 0 else int(a) for a in (axes or []))
    if rank != 4 or axes != [2, 3]:
        c.fail(f"only the spatial mean (axes [2, 3] of a 4-D tensor, i.e. global average pooling) "
               f"is supported, got axes {axes} of rank {rank}")
    pooled = c.emit(ir.GlobalAvgPool())
    if int(c.attrs.get("keepdims", 1)):
        return pooled
    return c.st.emit(c.name + "/flatten", ir.Flatten(), (pooled,), c.node)


_CONVERT = {
    "Conv": _conv, "Gemm": _gemm, "MatMul": _matmul, "BatchNormalization": _batchnorm,
    "Relu": lambda c: c.emit(ir.Relu()), "Clip": _clip,
    "AveragePool": _avgpool, "GlobalAveragePool": lambda c: c.emit(ir.GlobalAvgPool()),
    "MaxPool": _maxpool, "Add": _arith, "Sub": _arith, "Mul": _arith, "Div": _arith,
    "Concat": _concat, "Flatten": _flatten, "Reshape": _reshape, "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze, "Identity": lambda c: c.emit(ir.Identity()),
    "Dropout": lambda c: c.emit(ir.Identity()), "Pad": _pad, "Shape": _shape, "ReduceMean": _reduce_mean,
}


# ---------------------------------------------------------------------------
def load_onnx(model) -> ir.Graph:
    """Load an ONNX model (path, bytes or ModelProto) into an IR graph."""
    proto, label = read_model(model)
    proto = _check(proto, label)
    st = _State(label)
    for t in proto.graph.initializer:
        st.consts[t.name] = st.alt[t.name] = _finite(numpy_helper.to_array(t), f"initializer '{t.name}'", label)
    _graph_input(proto, st)
    for idx, node in enumerate(proto.graph.node):
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedError(f"node '{node.name or node.op_type}' ({node.domain}.{node.op_type}): "
                                   f"custom-domain ops are not supported; supported ops: {_supported_list()}")
        if node.op_type == "Constant":
            _const_node(node, st)
            continue
        has_act = any(i in st.act for i in node.input if i)
        if not has_act:
            _fold_constant(node, st)
            continue
        name = _node_name(node, idx, st.names)
        conv = _CONVERT.get(node.op_type)
        if conv is None:
            raise UnsupportedError(f"node '{name}' has op type {node.op_type}, which adacal does not "
                                   f"support; supported ops: {_supported_list()}")
        produced = conv(_Ctx(node, name, st))
        if produced is not None:
            st.act[node.output[0]] = produced
    outs = list(proto.graph.output)
    if len(outs) != 1:
        raise UnsupportedError(f"{label}: the model has {len(outs)} outputs; adacal needs exactly one")
    if outs[0].name not in st.act:
        raise UnsupportedError(f"{label}: output '{outs[0].name}' does not depend on the input")
    return ir.Graph(tuple(st.nodes), st.act[outs[0].name])
