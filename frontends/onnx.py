"""ONNX -> adacal IR.

Reads what torch's exporters emit for CNN/MLP classifiers.  Constant
sub-graphs (initializers, Constant nodes, shape arithmetic) are folded here;
every remaining node becomes one IR node.  Clean-up (BatchNorm folding, pad
folding, ReLU recognition, ...) is done by `adacal.passes`, not here.
"""
from __future__ import annotations

import math
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
    "MaxPool", "Mul", "Pad", "ReduceMean", "ReduceMax", "GlobalMaxPool", "Relu", "Reshape", "Shape", "Squeeze", "Sub", "Unsqueeze",
    "Sum", "Mean", "Transpose", "Slice", "Split", "Resize", "Upsample", "ConvTranspose",
    "Softmax (output head)", "LogSoftmax (output head)",
)


def _supported_list() -> str:
    return ", ".join(SUPPORTED_OPS)


#: The largest tensor adacal materialises (an initializer, a Constant, a folded
#: constant): 2**28 elements, 1 GiB of float32.  Larger declared sizes are refused
#: before anything is allocated.
MAX_TENSOR_ELEMENTS = 2 ** 28
#: The largest activation per sample (also a padded conv/pool input): 2**24
#: elements, 64 MiB of float32 per sample.
MAX_ACTIVATION_ELEMENTS = 2 ** 24

#: When False (the default) an unexpected exception while converting a node is
#: reported as a ModelFileError naming the file and node (the CLI's last
#: resort); the fuzz tests set it True so such bugs surface as crashes.
STRICT = False

# ONNX tensor element types adacal reads (numeric; bfloat16 is widened to float32)
_READABLE_TYPES = {
    onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
    onnx.TensorProto.INT8, onnx.TensorProto.INT16, onnx.TensorProto.INT32, onnx.TensorProto.INT64,
    onnx.TensorProto.UINT8, onnx.TensorProto.UINT16, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64,
    onnx.TensorProto.BOOL,
}
_FLOAT_INPUT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
                      onnx.TensorProto.BFLOAT16}


def _type_name(t: int) -> str:
    try:
        return onnx.TensorProto.DataType.Name(t)
    except ValueError:
        return f"unknown type {t}"


def _too_big(what: str, n: int, dims, limit: int, kind: str) -> UnsupportedError:
    return UnsupportedError(f"{what} has {n:,} elements (shape {list(dims)}), above adacal's limit of "
                            f"{limit:,} elements per {kind}")


def read_tensor(t: onnx.TensorProto, what: str, label: str) -> np.ndarray:
    """A TensorProto as a numpy array, validated before anything is allocated:
    stored in the file, a numeric type, non-negative dims within
    MAX_TENSOR_ELEMENTS, data matching the dims, finite values."""
    if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data):
        raise ModelFileError(f"{label}: {what} keeps its data in an external file; adacal reads "
                             "self-contained models only (save with onnx.save(model, path) without "
                             "save_as_external_data)")
    if t.data_type not in _READABLE_TYPES:
        raise UnsupportedError(f"{label}: {what} has data type {_type_name(t.data_type)}; adacal reads "
                               "numeric tensors only")
    if t.HasField("segment"):
        raise UnsupportedError(f"{label}: {what} is a segment of a larger tensor, which adacal does not read")
    dims = [int(d) for d in t.dims]
    if any(d < 0 for d in dims):
        raise ModelFileError(f"{label}: {what} has a negative dimension (shape {dims})")
    n = math.prod(dims)
    if n > MAX_TENSOR_ELEMENTS:
        raise _too_big(f"{label}: {what}", n, dims, MAX_TENSOR_ELEMENTS, "tensor")
    try:
        arr = numpy_helper.to_array(t)
    except (ValueError, TypeError) as e:  # data size / fields do not match the declared dims and type
        raise ModelFileError(f"{label}: {what}: the stored data does not match its shape {dims} and type "
                             f"{_type_name(t.data_type)} ({_first_line(e)})") from None
    if arr.dtype.kind not in "fiub":  # bfloat16 comes back as an ml_dtypes type
        arr = arr.astype(np.float32)
    return _finite(arr, what, label)


def _onnx_reason(e: BaseException) -> str:
    """The innermost sentence of an onnx checker / inference error."""
    msg = _first_line(e)
    for tag in ("[ShapeInferenceError] ", "[TypeInferenceError] ", "[ValidationError] "):
        if tag in msg:
            msg = msg.rsplit(tag, 1)[1].rstrip(")").strip()
    return msg


def _first_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return msg[0] if msg else type(e).__name__


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
        if not os.path.isfile(label):  # a FIFO or device would block or never end
            raise ModelFileError(f"{label}: is not a regular file")
        if os.path.getsize(label) >= 2 ** 31:
            raise ModelFileError(f"{label}: larger than 2 GiB, the most a self-contained ONNX file can hold "
                                 "(models that big keep their weights in external data, which adacal does not read)")
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


def _bad_name(v) -> str | None:
    if isinstance(v, bytes):  # protobuf hands back a string field that is not UTF-8 as bytes
        return "is not valid UTF-8"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in v):
        return "contains control characters"
    return None


def _check_names(proto: onnx.ModelProto, label: str) -> None:
    """Every name the frontend uses (in the IR and in messages) is printable text."""
    g = proto.graph
    items = ([("graph input", i.name) for i in g.input] + [("graph output", o.name) for o in g.output]
             + [("initializer", t.name) for t in g.initializer])
    for n in g.node:
        items += [("node name", n.name), ("op type", n.op_type), ("domain", n.domain)]
        items += [("node input", x) for x in n.input] + [("node output", x) for x in n.output]
        items += [("attribute", a.name) for a in n.attribute]
    for what, v in items:
        why = _bad_name(v)
        if why:
            raise ModelFileError(f"{label}: {what} {v!r} {why}")


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
    opsets: list = field(default_factory=list)
    ir_version: int = 8
    current: tuple[str, str] | None = None  # the node being converted (for messages)
    head: str | None = None  # output tensor of the trailing Softmax / LogSoftmax (onnx_opset.find_head)
    dropped_head: str | None = None  # "node (op)" once that head is dropped
    # 1-D networks (frontends/onnx_1d.py): IR nodes holding an ONNX (C, L) activation as (C, 1, L),
    # and the Reshape nodes emitted to lift / lower a node (keyed by the node they reshape)
    lifted: set[str] = field(default_factory=set)
    lift_cache: dict[str, str] = field(default_factory=dict)
    lower_cache: dict[str, str] = field(default_factory=dict)

    def emit(self, name: str, op, inputs: tuple[str, ...], onnx_node) -> str:
        in_shapes = [self.shapes[i] for i in inputs]
        where = f"node '{name}' ({onnx_node.op_type})"
        pads = getattr(op, "padding", None) or getattr(op, "pads", None)
        if pads and in_shapes and len(in_shapes[0]) == 3:
            c, h, w = in_shapes[0]
            padded = (c, h + pads[0] + pads[2], w + pads[1] + pads[3])
            if math.prod(padded) > MAX_ACTIVATION_ELEMENTS:
                raise _too_big(f"{where}: the padded input", math.prod(padded), padded,
                               MAX_ACTIVATION_ELEMENTS, "activation (per sample)")
        try:
            shape = infer_shape(op, in_shapes)
        except Exception as e:  # torch's shape checks on the meta device: any failure is a shape mismatch
            raise UnsupportedError(f"{where}: cannot be applied to input shape(s) {in_shapes}: "
                                   f"{_first_line(e)}") from None
        if any(d <= 0 for d in shape):
            raise UnsupportedError(f"{where}: produces an empty tensor of shape {shape}")
        if math.prod(shape) > MAX_ACTIVATION_ELEMENTS:
            raise _too_big(f"{where}: the output", math.prod(shape), shape, MAX_ACTIVATION_ELEMENTS,
                           "activation (per sample)")
        self.names.add(name)
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


def _attrs(node, where: str) -> dict:
    out = {}
    for a in node.attribute:
        try:
            out[a.name] = helper.get_attribute_value(a)
        except ValueError:  # an attribute of type UNDEFINED or an unknown type
            raise ModelFileError(f"{where}: attribute '{a.name}' has no valid type") from None
    return out


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
    if not inp.type.HasField("tensor_type"):
        raise UnsupportedError(f"{st.label}: input '{inp.name}' is not a tensor "
                               f"({inp.type.WhichOneof('value') or 'no type'})")
    ttype = inp.type.tensor_type
    if ttype.elem_type not in _FLOAT_INPUT_TYPES:
        raise UnsupportedError(f"{st.label}: input '{inp.name}' has element type {_type_name(ttype.elem_type)}; "
                               "adacal needs a float input")
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
    if math.prod(shape) > MAX_ACTIVATION_ELEMENTS:
        raise _too_big(f"{st.label}: input '{inp.name}'", math.prod(shape), shape, MAX_ACTIVATION_ELEMENTS,
                       "activation (per sample)")
    name = inp.name
    st.names.add(name)
    st.nodes.append(ir.Node(name, ir.Input(), (), tuple(shape)))
    st.shapes[name] = tuple(shape)
    st.act[inp.name] = name
    return name


# ---------------------------------------------------------------------------
# constant folding
# ---------------------------------------------------------------------------
def _where(node) -> str:
    return f"node '{node.name or (node.output[0] if node.output else '')}' ({node.op_type})"


def _const_node(node, st: _State) -> None:
    where = _where(node)
    if len(node.output) != 1 or not node.output[0]:
        raise ModelFileError(f"{st.label}: {where}: a Constant needs exactly one output")
    if len(node.attribute) != 1:
        raise ModelFileError(f"{st.label}: {where}: a Constant needs exactly one value attribute, "
                             f"got {len(node.attribute)}")
    a = node.attribute[0]
    A = onnx.AttributeProto
    if a.type == A.TENSOR:
        arr = read_tensor(a.t, f"{where} value", st.label)
    elif a.type in (A.FLOAT, A.FLOATS):
        arr = _finite(np.asarray(a.f if a.type == A.FLOAT else list(a.floats), np.float32), f"{where} value",
                      st.label)
    elif a.type in (A.INT, A.INTS):
        arr = np.asarray(a.i if a.type == A.INT else list(a.ints), np.int64)
    else:
        raise UnsupportedError(f"{where}: constants of attribute type {A.AttributeType.Name(a.type)} "
                               f"('{a.name}') are not supported")
    st.consts[node.output[0]] = st.alt[node.output[0]] = arr


# Ops whose result is never larger than (a small multiple of) their inputs
# together: folding them needs no size check.
_SIZE_BOUNDED = {
    "Identity", "Cast", "CastLike", "Shape", "Size", "Slice", "Squeeze", "Unsqueeze", "Reshape", "Flatten",
    "Transpose", "Neg", "Abs", "Sqrt", "Exp", "Log", "Floor", "Ceil", "Round", "Relu", "Sigmoid", "Tanh",
    "Not", "Sign", "Reciprocal", "Dropout", "Softmax", "Clip", "ReduceProd", "ReduceSum", "ReduceMean",
    "ReduceMax", "ReduceMin", "ArgMax", "ArgMin", "Split", "NonZero", "Compress", "Unique", "Concat",
    "GatherElements", "TopK", "CumSum", "IsNaN", "IsInf",
}
# Elementwise ops with numpy broadcasting: the result has the broadcast shape.
_BROADCASTING = {
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean", "Where", "Equal", "Less", "Greater",
    "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor",
    "PRelu",
}
_CONTROL_FLOW = {"Loop", "Scan", "If", "SequenceMap"}
_SMALL_FEED = 4096  # constant inputs up to this size are given to shape inference by value


def _check_fold_size(node, feeds: dict[str, np.ndarray], st: _State) -> None:
    """Refuse to fold a constant node whose result would exceed
    MAX_TENSOR_ELEMENTS, *before* the evaluator allocates it.  Elementwise ops
    give the broadcast shape; for any op that is not bounded by its inputs,
    onnx's shape inference on the single node (small inputs given by value, so
    that ConstantOfShape / Expand / Tile / Range / Pad / Resize / Gather sizes
    are known) gives the output shapes."""
    if node.op_type in _SIZE_BOUNDED:
        return
    if node.op_type in _BROADCASTING:
        try:
            shape = np.broadcast_shapes(*(a.shape for a in feeds.values()))
        except ValueError:
            return  # the evaluator reports the mismatch
        if math.prod(shape) > MAX_TENSOR_ELEMENTS:
            raise _too_big(f"{_where(node)}: constant result", math.prod(shape), shape, MAX_TENSOR_ELEMENTS,
                           "tensor")
        return
    inits, inputs = [], []
    for name, arr in feeds.items():
        if arr.size <= _SMALL_FEED:
            inits.append(numpy_helper.from_array(np.array(arr, order="C"), name))
        else:
            inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(arr.dtype),
                                                        list(arr.shape)))
    graph = helper.make_graph([node], "fold", inputs, [], initializer=inits)
    model = helper.make_model(graph, opset_imports=st.opsets)
    model.ir_version = max(st.ir_version, 4)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:  # onnx's inference rejects the node (InferenceError and friends)
        raise UnsupportedError(f"{_where(node)}: invalid constant expression ({_onnx_reason(e)})") from None
    shapes = {vi.name: vi.type.tensor_type.shape for vi in inferred.graph.value_info
              if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape")}
    for out in node.output:
        if not out:
            continue
        shape = shapes.get(out)
        dims = None if shape is None else [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]
        if dims is None or None in dims:
            raise UnsupportedError(f"{_where(node)}: constant expression whose result size cannot be determined "
                                   "before computing it (adacal folds constant sub-graphs with static shapes only)")
        n = math.prod(dims)
        if n > MAX_TENSOR_ELEMENTS:
            raise _too_big(f"{_where(node)}: constant result '{out}'", n, dims, MAX_TENSOR_ELEMENTS, "tensor")


def _opset_dict(st: _State) -> dict[str, int]:
    return {("" if o.domain == "ai.onnx" else o.domain): int(o.version) for o in st.opsets}


def _fold_constant(node, st: _State) -> None:
    """Evaluate a node whose inputs are all constants with onnx's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    where = _where(node)
    if node.op_type in _CONTROL_FLOW or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                                            for a in node.attribute):
        raise UnsupportedError(f"{where}: control flow (sub-graphs) is not supported")
    missing = [i for i in node.input if i and i not in st.consts]
    if missing:
        raise UnsupportedError(f"{where}: input '{missing[0]}' is not available (an output adacal does not "
                               "compute, e.g. a second output of a converted node)")
    _check_fold_size(node, {i: st.consts[i] for i in node.input if i}, st)
    if any(batch_dependent(st, i) for i in node.input if i):  # sizes may differ with the other stand-in batch
        _check_fold_size(node, {i: st.alt[i] for i in node.input if i}, st)
    runs = []
    for table in (st.consts, st.alt):
        feeds = {i: table[i] for i in node.input if i}
        try:
            runs.append(ReferenceEvaluator(node, opsets=_opset_dict(st)).run(None, feeds))
        except Exception as e:  # the evaluator's own validation: any failure means an invalid expression
            raise UnsupportedError(f"{where}: constant expression could not be evaluated ({_first_line(e)})") from None
    for name, val, alt in zip(node.output, *runs):
        if name:
            val, alt = np.asarray(val), np.asarray(alt)
            if val.dtype.kind not in "fiub" or alt.dtype.kind not in "fiub":
                raise UnsupportedError(f"{where}: constant expression gives a non-numeric tensor '{name}' "
                                       f"({val.dtype})")
            if max(val.size, alt.size) > MAX_TENSOR_ELEMENTS:
                raise _too_big(f"{where}: constant result '{name}'", max(val.size, alt.size), val.shape,
                               MAX_TENSOR_ELEMENTS, "tensor")
            st.consts[name], st.alt[name] = val, alt


# ---------------------------------------------------------------------------
# per-op conversion (activation input)
# ---------------------------------------------------------------------------
class _Ctx:
    """What a converter sees of one ONNX node."""

    def __init__(self, node, name, st: _State):
        self.node, self.name, self.st = node, name, st
        self.attrs = _attrs(node, f"{st.label}: node '{name}' ({node.op_type})")

    def fail(self, why: str):
        raise UnsupportedError(f"node '{self.name}' ({self.node.op_type}): {why}")

    # ---- attributes, validated ------------------------------------------
    def int_attr(self, key: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
        v = self.attrs.get(key, default)
        if isinstance(v, (bool, np.integer)):
            v = int(v)
        if not isinstance(v, int):
            self.fail(f"attribute {key} must be an integer, got {v!r}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.fail(f"attribute {key}={v} is out of range"
                      + (f" ({lo}..{hi})" if lo is not None and hi is not None else f" (must be >= {lo})"
                         if lo is not None else f" (must be <= {hi})"))
        return v

    def float_attr(self, key: str, default: float | None):
        v = self.attrs.get(key, default)
        if v is None:
            return None
        if isinstance(v, (int, np.integer, np.floating)) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, float) or not math.isfinite(v):
            self.fail(f"attribute {key} must be a finite number, got {v!r}")
        return v

    def ints_attr(self, key: str, default=None, length: int | None = None, lo: int | None = None,
                  hi: int | None = None):
        v = self.attrs.get(key)
        if v is None:
            return default
        if not isinstance(v, list) or not all(isinstance(x, int) for x in v):
            self.fail(f"attribute {key} must be a list of integers, got {v!r}")
        if length is not None and len(v) != length:
            self.fail(f"attribute {key}={v} must have {length} entries (only 2-D spatial ops are supported)")
        if lo is not None and any(x < lo for x in v):
            self.fail(f"attribute {key}={v} has entries below {lo}")
        if hi is not None and any(x > hi for x in v):
            self.fail(f"attribute {key}={v} has entries above adacal's limit of {hi:,}")
        return v

    def str_attr(self, key: str, default: str) -> str:
        v = self.attrs.get(key, default)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        if not isinstance(v, str):
            self.fail(f"attribute {key} must be a string, got {v!r}")
        return v

    # ---- inputs -----------------------------------------------------------
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
        arr = np.asarray(self.st.consts[n])
        if arr.dtype.kind not in "fiub":
            self.fail(f"{what} '{n}' has non-numeric type {arr.dtype}")
        return _finite(arr, f"node '{self.name}' {what}", self.st.label)

    def shape(self, i: int = 0) -> ir.Shape:
        return self.st.shapes[self.act(i)]

    def emit(self, op, inputs=None) -> str:
        return self.st.emit(self.name, op, tuple(inputs) if inputs is not None else (self.act(0),), self.node)


def _finite_op(c: _Ctx, what: str, *arrays) -> None:
    """Derived parameters (a folded scale, 1/k) must be finite too."""
    with np.errstate(all="ignore"):
        if not all(np.all(np.isfinite(a)) for a in arrays):
            c.fail(f"{what} overflows to Inf or NaN")


def _spatial(c: _Ctx, rank_needed: int = 3):
    shape = c.shape()
    if len(shape) != rank_needed:
        c.fail(f"expects a 4-D (batch, channels, height, width) input, got per-sample shape {shape}")
    return shape


#: Kernel sizes, strides, dilations and pads above this are nonsense (and overflow
#: torch's 32-bit CPU kernels): no activation dimension can be larger.
MAX_SPATIAL = MAX_ACTIVATION_ELEMENTS


def _pads(c: _Ctx) -> ir.Pads:
    p = c.ints_attr("pads", [0, 0, 0, 0], length=4, lo=0, hi=MAX_SPATIAL)
    return (p[0], p[1], p[2], p[3])  # ONNX [top, left, bottom, right]


def _pair(c: _Ctx, key: str, default: int = 1, required: bool = False) -> tuple[int, int]:
    if required and key not in c.attrs:
        c.fail(f"missing attribute {key}")
    v = c.ints_attr(key, [default, default], lo=1, hi=MAX_SPATIAL)
    if len(v) == 1:
        v = [v[0], v[0]]
    if len(v) != 2:
        c.fail(f"attribute {key}={v} must have 2 entries (only 2-D spatial ops are supported)")
    return (v[0], v[1])


def _auto_pad(c: _Ctx, in_hw, kernel, stride, dilation) -> ir.Pads:
    mode = c.str_attr("auto_pad", "NOTSET")
    if mode in ("NOTSET", ""):
        return _pads(c)
    if mode == "VALID":
        return (0, 0, 0, 0)
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        c.fail(f"unknown auto_pad '{mode}'")
    pads = []
    for size, k, s, d in zip(in_hw, kernel, stride, dilation):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        small = total // 2
        pads.append((small, total - small) if mode == "SAME_UPPER" else (total - small, small))
    return (pads[0][0], pads[1][0], pads[0][1], pads[1][1])


def _vector(c: _Ctx, arr: np.ndarray, n: int, what: str) -> np.ndarray:
    """A per-channel parameter: n values (or one, broadcast)."""
    arr = np.array(arr, np.float32).reshape(-1)  # a copy: tensors read from the file are read-only
    if arr.size == 1 and n != 1:
        return np.full(n, arr[0], np.float32)
    if arr.size != n:
        c.fail(f"{what} has {arr.size} values, expected {n}")
    return arr


def _conv(c: _Ctx):
    c_in, h, w_in = _spatial(c)
    w = c.const(1, "weight").astype(np.float32)
    if w.ndim != 4:
        c.fail(f"only 2-D convolutions are supported (weight has rank {w.ndim})")
    groups = c.int_attr("group", 1, lo=1)
    c_out = w.shape[0]
    if c_in % groups or c_out % groups or w.shape[1] * groups != c_in:
        c.fail(f"weight of shape {w.shape} with group={groups} does not fit {c_in} input channels")
    kernel = c.ints_attr("kernel_shape", None)
    if kernel is not None and list(kernel) != list(w.shape[2:]):
        c.fail(f"kernel_shape {kernel} does not match the weight's {list(w.shape[2:])}")
    b = c.const(2, "bias", optional=True)
    b = np.zeros(c_out, np.float32) if b is None else _vector(c, b, c_out, "bias")
    stride, dilation = _pair(c, "strides"), _pair(c, "dilations")
    pads = _auto_pad(c, (h, w_in), w.shape[2:], stride, dilation)
    return c.emit(ir.Conv2d(w, b, stride, pads, dilation, groups))


def _gemm(c: _Ctx):
    if c.is_act(1) or not c.is_act(0):
        c.fail("only Gemm(activation, constant weight) is supported")
    if c.int_attr("transA", 0, 0, 1):
        c.fail("transA=1 on the activation input is not supported (the batch must stay first)")
    if len(c.shape()) != 1:
        c.fail(f"expects a 2-D (batch, features) input, got per-sample shape {c.shape()}")
    b = c.const(1, "weight B").astype(np.float64)
    if b.ndim != 2:
        c.fail(f"weight B must be 2-D, got shape {b.shape}")
    w = b if c.int_attr("transB", 0, 0, 1) else b.T
    if w.shape[1] != c.shape()[0]:
        c.fail(f"weight B of shape {b.shape} does not fit {c.shape()[0]} input features")
    alpha, beta = c.float_attr("alpha", 1.0), c.float_attr("beta", 1.0)
    w = w * alpha
    cb = c.const(2, "bias C", optional=True)
    bias = np.zeros(w.shape[0])
    if cb is not None:
        cb = cb.astype(np.float64)
        if cb.ndim > 2 or (cb.ndim == 2 and cb.shape[0] != 1):
            c.fail(f"bias C of shape {cb.shape} depends on the batch row")
        bias = _vector(c, cb, w.shape[0], "bias C").astype(np.float64) * beta
    w, bias = w.astype(np.float32), np.asarray(bias, np.float32)
    _finite_op(c, "the weight times alpha / bias times beta", w, bias)
    return c.emit(ir.Dense(w, bias))


def _matmul(c: _Ctx):
    if c.is_act(1) and c.is_act(0):
        c.fail("MatMul of two activations (e.g. attention) is not linear; only MatMul(activation, "
               "constant weight) is supported")
    if c.is_act(1) or not c.is_act(0):
        c.fail("only MatMul(activation, constant weight) is supported")
    if len(c.shape()) != 1:
        c.fail(f"expects a 2-D (batch, features) input, got per-sample shape {c.shape()}")
    w = c.const(1, "weight")
    if w.ndim != 2:
        c.fail(f"weight must be 2-D, got shape {w.shape}")
    if w.shape[0] != c.shape()[0]:
        c.fail(f"weight of shape {w.shape} does not fit {c.shape()[0]} input features")
    return c.emit(ir.Dense(w.T.astype(np.float32), np.zeros(w.shape[1], np.float32)))


def _batchnorm(c: _Ctx):
    if c.int_attr("training_mode", 0):
        c.fail("training_mode=1; export the model in eval mode")
    if not c.int_attr("spatial", 1, 0, 1):
        c.fail("spatial=0 (per-activation statistics) is not supported")
    if len(c.node.output) > 1 and any(c.node.output[1:]):
        c.fail("the training outputs (running mean / variance) are not supported")
    shape = c.shape()
    channels = shape[0]
    vals = [_vector(c, c.const(i, what), channels, what)
            for i, what in enumerate(("scale", "bias", "mean", "var"), start=1)]
    op = ir.BatchNorm(*vals, eps=c.float_attr("epsilon", 1e-5))
    if np.any(op.var + op.eps <= 0):
        c.fail("var + epsilon must be > 0 for every channel")
    _finite_op(c, "the folded scale gamma / sqrt(var + epsilon)", *op.scale_shift())
    return c.emit(op)


def _scalar(c: _Ctx, i: int, what: str):
    v = c.const(i, what, optional=True)
    if v is None:
        return None
    if v.size != 1:
        c.fail(f"{what} must be a scalar, got shape {v.shape}")
    return float(v.reshape(-1)[0])


def _clip(c: _Ctx):
    lo, hi = c.float_attr("min", None), c.float_attr("max", None)
    v = _scalar(c, 1, "min")
    lo = v if v is not None else lo
    v = _scalar(c, 2, "max")
    hi = v if v is not None else hi
    return c.emit(ir.Clip(lo, hi))


def _avgpool(c: _Ctx):
    _, h, w = _spatial(c)
    k = _pair(c, "kernel_shape", required=True)
    s = _pair(c, "strides")
    if _pair(c, "dilations") != (1, 1):
        c.fail("dilated average pooling is not supported")
    pads = _auto_pad(c, (h, w), k, s, (1, 1))
    return c.emit(ir.AvgPool(k, s, pads, bool(c.int_attr("count_include_pad", 0, 0, 1)),
                             bool(c.int_attr("ceil_mode", 0, 0, 1))))


def _maxpool(c: _Ctx):
    _, h, w = _spatial(c)
    if len(c.node.output) > 1 and c.node.output[1]:
        c.fail("the Indices output is not supported")
    if c.int_attr("storage_order", 0, 0, 1):
        c.fail("storage_order=1 is not supported")
    k = _pair(c, "kernel_shape", required=True)
    s, d = _pair(c, "strides"), _pair(c, "dilations")
    pads = _auto_pad(c, (h, w), k, s, d)
    return c.emit(ir.MaxPool(k, s, pads, d, bool(c.int_attr("ceil_mode", 0, 0, 1))))


def _per_sample_const(c: _Ctx, arr: np.ndarray, shape: ir.Shape) -> np.ndarray:
    arr = arr.astype(np.float32)
    if arr.ndim == len(shape) + 1:
        if arr.shape[0] != 1:
            c.fail(f"constant of shape {arr.shape} varies along the batch dimension")
        arr = arr[0]
    if arr.ndim > len(shape):
        c.fail(f"constant of shape {arr.shape} has a higher rank than the activation")
    try:
        ok = np.broadcast_shapes(arr.shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        c.fail(f"constant of shape {arr.shape} does not broadcast to the activation {shape}")
    return arr


def _arith(c: _Ctx):
    op = c.node.op_type
    if len(c.node.input) != 2:
        c.fail(f"expects 2 inputs, got {len(c.node.input)}")
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
        with np.errstate(over="ignore"):
            scale, shift = (1.0 / k).astype(np.float32), zero
        _finite_op(c, "1 / the divisor", scale)
    return c.emit(ir.Affine(scale, shift), (c.act(x),))


def _axis(c: _Ctx, key: str, default: int, rank: int) -> int:
    a = c.int_attr(key, default, -rank, rank - 1)
    return a + rank if a < 0 else a


def _concat(c: _Ctx):
    if not c.node.input:
        c.fail("has no inputs")
    ins = tuple(c.act(i) for i in range(len(c.node.input)))
    rank = len(c.st.shapes[ins[0]]) + 1
    axis = _axis(c, "axis", 1, rank)
    if axis == 0:
        c.fail("concatenation along the batch dimension is not supported")
    return c.emit(ir.Concat(axis - 1), ins)


def _flatten(c: _Ctx):
    rank = len(c.shape()) + 1
    axis = _axis(c, "axis", 1, rank + 1)
    if axis != 1:
        c.fail(f"Flatten(axis={axis}) mixes the batch dimension; only axis=1 is supported")
    return c.emit(ir.Flatten())


def _reshape_to(c: _Ctx, target: list[int], batch_from_shape: bool = False):
    shape = c.shape()
    size = math.prod(shape)
    if not target:
        c.fail("the target shape is empty (a scalar): the batch dimension would be lost")
    if any(v < -1 for v in target):
        c.fail(f"target shape {target} has a negative entry other than -1")
    if c.int_attr("allowzero", 0) and 0 in target[int(batch_from_shape):]:
        c.fail("allowzero=1 with a zero in the target shape is not supported")
    t = list(target)
    first = t[0]
    if first == -1:
        if -1 in t[1:]:
            c.fail(f"target shape {target} leaves the batch dimension ambiguous")
        rest = [shape[i - 1] if v == 0 and i - 1 < len(shape) else v for i, v in enumerate(t[1:], 1)]
        if math.prod(rest) != size:
            c.fail(f"target shape {target} changes the batch dimension")
    elif first == 0 or (c.st.static_batch is not None and first == c.st.static_batch):
        rest = [shape[i - 1] if v == 0 and i - 1 < len(shape) else v for i, v in enumerate(t[1:], 1)]
        if rest.count(-1) > 1:
            c.fail(f"target shape {target} has more than one -1")
        if -1 in rest:
            known = math.prod(v for v in rest if v != -1)
            if known == 0 or size % known:
                c.fail(f"target shape {target} does not fit {size} values per sample")
            rest[rest.index(-1)] = size // known
        if math.prod(rest) != size:
            c.fail(f"target shape {target} does not fit {size} values per sample")
    else:
        c.fail(f"target shape {target} changes the batch dimension")
    rest = tuple(int(v) for v in rest)
    if len(rest) == 1:
        return c.emit(ir.Flatten())
    return c.emit(ir.Reshape(rest))


def _int_list(c: _Ctx, arr: np.ndarray, what: str) -> list[int]:
    if arr.dtype.kind not in "iub":
        c.fail(f"{what} must be integers, got {arr.dtype}")
    return [int(v) for v in arr.reshape(-1)]


def _reshape(c: _Ctx):
    name = c.node.input[1] if len(c.node.input) > 1 else ""
    if name and batch_dependent(c.st, name):
        t, t_alt = c.st.consts[name].reshape(-1), c.st.alt[name].reshape(-1)
        if not (t.size and t.shape == t_alt.shape and t[0] == _BATCH[0] and t_alt[0] == _BATCH[1]
                and np.array_equal(t[1:], t_alt[1:])):
            c.fail("the target shape uses the batch size other than as its first entry")
        return _reshape_to(c, [0] + _int_list(c, t[1:], "the target shape"), batch_from_shape=True)
    return _reshape_to(c, _int_list(c, c.const(1, "shape"), "the target shape"))


def axes_given(c: _Ctx) -> list[int] | None:
    """A Squeeze / Unsqueeze / Reduce* node's axes: the attribute (older
    opsets) or the constant second input; None when neither is given."""
    if c.attrs.get("axes") is not None:
        return c.ints_attr("axes")
    if len(c.node.input) > 1 and c.node.input[1]:
        return _int_list(c, c.const(1, "axes"), "axes")
    return None


def _axes(c: _Ctx, rank: int):
    axes = axes_given(c)
    if axes is None:
        return None
    if any(not -rank <= a < rank for a in axes):
        c.fail(f"axes {axes} are out of range for rank {rank}")
    axes = [a + rank if a < 0 else a for a in axes]
    if len(set(axes)) != len(axes):
        c.fail(f"axes {axes} repeat an axis")
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
    if "axes" in c.attrs:
        n_axes = len(c.ints_attr("axes"))
    else:
        n_axes = len(_int_list(c, c.const(1, "axes"), "axes"))
    axes = _axes(c, len(shape) + 1 + n_axes)
    full = [0] + shape
    for a in sorted(axes):
        full.insert(a, 1)
    return _reshape_to(c, [0] + full[1:])


def _pad(c: _Ctx):
    mode = c.str_attr("mode", "constant")
    if mode != "constant":
        c.fail(f"mode '{mode}' is not supported (only constant padding)")
    pads = c.ints_attr("pads")
    if pads is None:
        pads = _int_list(c, c.const(1, "pads"), "pads")
    value = c.const(2, "constant_value", optional=True)
    if value is None:
        value = c.float_attr("value", 0.0)
    elif value.size > 1:
        c.fail(f"constant_value must be a scalar, got shape {value.shape}")
    else:
        value = float(value.reshape(-1)[0]) if value.size else 0.0
    rank = len(c.shape()) + 1
    axes = c.const(3, "axes", optional=True)
    full = [0] * (2 * rank)
    axes = list(range(rank)) if axes is None else _int_list(c, axes, "axes")
    if any(not -rank <= a < rank for a in axes):
        c.fail(f"axes {axes} are out of range for rank {rank}")
    axes = [a + rank if a < 0 else a for a in axes]
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


def _shape(c: _Ctx, shape: ir.Shape | None = None):
    start, end = c.int_attr("start", 0), c.attrs.get("end")
    if end is not None:
        end = c.int_attr("end", 0)
    sl = slice(start, end)
    out = c.node.output[0]
    for table, b in ((c.st.consts, _BATCH[0]), (c.st.alt, _BATCH[1])):
        b = c.st.static_batch or b
        table[out] = np.array([b] + list(c.shape() if shape is None else shape), dtype=np.int64)[sl]
    return None


def _reduce_mean(c: _Ctx):
    rank = len(c.shape()) + 1
    axes = axes_given(c)
    axes = sorted(a + rank if a < 0 else a for a in (axes or []))
    if rank != 4 or axes != [2, 3]:
        c.fail(f"only the spatial mean (axes [2, 3] of a 4-D tensor, i.e. global average pooling) "
               f"is supported, got axes {axes} of rank {rank}")
    pooled = c.emit(ir.GlobalAvgPool())
    if c.int_attr("keepdims", 1, 0, 1):
        return pooled
    return c.st.emit(_node_name_for(c.st, c.name + "/flatten"), ir.Flatten(), (pooled,), c.node)


def _global_avgpool(c: _Ctx):
    _spatial(c)
    return c.emit(ir.GlobalAvgPool())


def _node_name_for(st: _State, base: str) -> str:
    name, k = base, 1
    while name in st.names:
        k += 1
        name = f"{base}_{k}"
    return name


_CONVERT = {
    "Conv": _conv, "Gemm": _gemm, "MatMul": _matmul, "BatchNormalization": _batchnorm,
    "Relu": lambda c: c.emit(ir.Relu()), "Clip": _clip,
    "AveragePool": _avgpool, "GlobalAveragePool": _global_avgpool,
    "MaxPool": _maxpool, "Add": _arith, "Sub": _arith, "Mul": _arith, "Div": _arith,
    "Concat": _concat, "Flatten": _flatten, "Reshape": _reshape, "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze, "Identity": lambda c: c.emit(ir.Identity()),
    "Dropout": lambda c: c.emit(ir.Identity()), "Pad": _pad, "Shape": _shape, "ReduceMean": _reduce_mean,
}

from adacal.frontends import onnx_1d, onnx_ops, onnx_opset  # noqa: E402  (they use the helpers above)

_CONVERT.update(onnx_ops.CONVERT)
_CONVERT.update(onnx_1d.CONVERT)


# ---------------------------------------------------------------------------
def load_onnx(model) -> ir.Graph:
    """Load an ONNX model (path, bytes or ModelProto) into an IR graph.

    Every problem with the model is raised as an AdacalError (ModelFileError
    for a broken file, UnsupportedError for what adacal cannot convert) that
    names the file and the node, initializer or limit at fault.
    """
    proto, label = read_model(model)
    proto = _check(proto, label)
    _check_names(proto, label)
    proto, note = onnx_opset.upgrade(proto)
    st = _State(label)
    st.opsets = list(proto.opset_import)
    st.ir_version = proto.ir_version
    st.head = onnx_opset.find_head(proto.graph)
    try:
        return _convert(proto, st)
    except UnsupportedError as e:
        if note is None:
            raise
        raise UnsupportedError(f"{_first_line(e)} ({note})") from None
    except (ValueError, TypeError, IndexError, KeyError, ArithmeticError, AttributeError, RuntimeError) as e:
        # Last resort: every cause found so far is validated above with its own
        # message; an unforeseen one still becomes one clear line, not a traceback.
        if STRICT:
            raise
        at = f" at node '{st.current[0]}' ({st.current[1]})" if st.current else ""
        raise ModelFileError(f"{label}: malformed model{at}: {type(e).__name__}: {_first_line(e)}") from None


def _convert(proto: onnx.ModelProto, st: _State) -> ir.Graph:
    label = st.label
    for t in proto.graph.initializer:
        st.current = (t.name, "initializer")
        st.consts[t.name] = st.alt[t.name] = read_tensor(t, f"initializer '{t.name}'", label)
    st.current = None
    _graph_input(proto, st)
    for idx, node in enumerate(proto.graph.node):
        st.current = (node.name or (node.output[0] if node.output else f"#{idx}"), node.op_type)
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
        st.current = (name, node.op_type)
        conv = _CONVERT.get(node.op_type)
        if conv is None:
            raise UnsupportedError(f"node '{name}' has op type {node.op_type}, which adacal does not "
                                   f"support; supported ops: {_supported_list()}")
        if not node.output or not node.output[0]:
            raise ModelFileError(f"{label}: node '{name}' ({node.op_type}) has no output")
        saved = onnx_1d.lower_inputs(node, st)
        produced = conv(_Ctx(node, name, st))
        onnx_1d.after(node, st, produced, saved)
        if produced is not None:
            st.act[node.output[0]] = produced
    st.current = None
    outs = list(proto.graph.output)
    if len(outs) != 1:
        raise UnsupportedError(f"{label}: the model has {len(outs)} outputs; adacal needs exactly one")
    if outs[0].name not in st.act:
        raise UnsupportedError(f"{label}: output '{outs[0].name}' does not depend on the input")
    out = onnx_1d.lower_output(st, st.act[outs[0].name], proto.graph.node[-1] if proto.graph.node else None)
    return ir.Graph(tuple(st.nodes), out, st.dropped_head)
