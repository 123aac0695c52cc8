"""Fuzzing the ONNX frontend: mutated models load, or are refused with an AdacalError.

Valid seed models (a CNN with BatchNorm and average pooling, the same CNN
exported at opset 9, a temporal CNN (Conv1d + BatchNorm1d + AvgPool1d +
global average pool), a PointNet-style net (Conv1d, MaxPool1d, a ReduceMax
over the points), an MLP with BatchNorm1d, a residual block with MaxPool and the Shape/Gather/Concat/Reshape
flatten idiom, and the hand-made graph of tests/onnx_fixtures.py) are mutated

* at the protobuf level: op types, attribute values / types / presence, node
  inputs and outputs (dropped, duplicated, renamed, swapped), node order,
  initializers (dims, data types, raw_data length, values including NaN/Inf
  and huge integers, dropped / duplicated / renamed, external data), graph
  inputs and outputs (dims zero / negative / huge / symbolic, rank, element
  type), value_info, opset and IR versions, node domains;
* at the byte level: bit flips, overwritten / inserted / deleted / duplicated
  ranges, truncation, splices of two seed models.

Each mutated model goes through what `adacal inspect` runs (`load_onnx`, the
clean-up passes and the conversion plan: `inspect_model`), the conversion to
burst neurons when the plan says it is convertible, and a float run of the
loaded graph on two samples.  Every step must either succeed or raise the
project's own `AdacalError`; anything else is a frontend bug.

CI runs 2 x 1000 deterministic cases (derandomize=True); bench/bench_fuzz.py
runs the same mutators for longer with a seeded `random.Random`.
"""
from __future__ import annotations

import functools
import math
import os
import random
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))

from adacal.errors import AdacalError, ModelFileError, UnsupportedError  # noqa: E402

# ---------------------------------------------------------------------------
# seed models
# ---------------------------------------------------------------------------


def _residual_model() -> onnx.ModelProto:
    """(N,2,6,6) -> Conv+Relu -> MaxPool (k2, s1, pads 0011) -> Conv+BN -> Add(skip) -> Relu
    -> GlobalAveragePool -> Reshape(Concat(Gather(Shape(x), 0), [-1])) -> Gemm -> (N,3)."""
    rng = np.random.default_rng(3)
    f32 = np.float32

    def init(name, arr):
        return numpy_helper.from_array(np.asarray(arr), name)

    inits = [
        init("c1_w", (0.4 * rng.standard_normal((4, 2, 3, 3))).astype(f32)),
        init("c1_b", (0.1 * rng.standard_normal(4)).astype(f32)),
        init("c2_w", (0.3 * rng.standard_normal((4, 4, 3, 3))).astype(f32)),
        init("c2_b", np.zeros(4, f32)),
        init("bn_scale", (0.5 + rng.random(4)).astype(f32)),
        init("bn_bias", (0.1 * rng.standard_normal(4)).astype(f32)),
        init("bn_mean", (0.1 * rng.standard_normal(4)).astype(f32)),
        init("bn_var", (0.5 + rng.random(4)).astype(f32)),
        init("zero", np.array(0, np.int64)),
        init("zero_axes", np.array([0], np.int64)),
        init("minus_one", np.array([-1], np.int64)),
        init("fc_w", (0.5 * rng.standard_normal((3, 4))).astype(f32)),
        init("fc_b", (0.1 * rng.standard_normal(3)).astype(f32)),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "c1_w", "c1_b"], ["c1"], name="conv1", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[1, 1],
                         pads=[0, 0, 1, 1]),
        helper.make_node("Conv", ["p1", "c2_w", "c2_b"], ["c2"], name="conv2", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c2", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["bn2"],
                         name="bn2", epsilon=1e-5),
        helper.make_node("Add", ["bn2", "p1"], ["sum"], name="residual_add"),
        helper.make_node("Relu", ["sum"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Shape", ["gap"], ["gap_shape"], name="shape"),
        helper.make_node("Gather", ["gap_shape", "zero"], ["batch"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["batch", "zero_axes"], ["batch1"], name="unsqueeze"),
        helper.make_node("Concat", ["batch1", "minus_one"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["gap", "target"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["output"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "residual",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 2, 6, 6])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="adacal-fuzz")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


@functools.lru_cache(maxsize=1)
def seed_models() -> dict[str, bytes]:
    """name -> serialized valid ONNX model (built once per process)."""
    import onnx_fixtures as fx
    import torch

    torch.set_num_threads(1)
    out = {}
    with tempfile.TemporaryDirectory() as d:
        fx.export_onnx(fx.small_cnn(0), fx._example(fx.SMALL_CNN_INPUT), Path(d) / "cnn.onnx",
                       do_constant_folding=False)
        out["cnn"] = (Path(d) / "cnn.onnx").read_bytes()
        fx.export_onnx(fx.small_cnn(0), fx._example(fx.SMALL_CNN_INPUT), Path(d) / "cnn9.onnx",
                       do_constant_folding=False, opset=9)
        out["cnn_opset9"] = (Path(d) / "cnn9.onnx").read_bytes()
        fx.export_onnx(fx.temporal_cnn(0), fx._example(fx.TEMPORAL_INPUT), Path(d) / "tcn.onnx",
                       do_constant_folding=False)
        out["conv1d"] = (Path(d) / "tcn.onnx").read_bytes()
        fx.export_onnx(fx.pointnet_1d(0), fx._example(fx.POINTNET_INPUT), Path(d) / "pointnet.onnx",
                       do_constant_folding=False)
        out["pointnet"] = (Path(d) / "pointnet.onnx").read_bytes()
        out["mlp"] = fx.build("mlp@nocf", d).read_bytes()
    out["residual"] = _residual_model().SerializeToString()
    out["handmade"] = fx.handmade_model(0).SerializeToString()
    return out


# ---------------------------------------------------------------------------
# choosers: the same mutators are driven by hypothesis (CI) or random (bench)
# ---------------------------------------------------------------------------


class RandomChooser:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def bytes(self, n: int) -> bytes:
        return bytes(self.rng.getrandbits(8) for _ in range(n))


class HypothesisChooser:
    def __init__(self, data):
        from hypothesis import strategies as st
        self.data, self.st = data, st

    def int(self, lo: int, hi: int) -> int:
        return self.data.draw(self.st.integers(lo, hi))

    def bytes(self, n: int) -> bytes:
        return self.data.draw(self.st.binary(min_size=n, max_size=n))


def _pick(ch, seq):
    seq = list(seq)
    return seq[ch.int(0, len(seq) - 1)]


INTERESTING_INTS = (0, 1, -1, 2, 3, 4, 7, 8, 17, -2, -7, 255, 2 ** 16, 2 ** 31 - 1, -2 ** 31, 2 ** 32,
                    10 ** 6, 10 ** 9, 10 ** 12, 2 ** 62, -10 ** 12, 2 ** 63 - 1, -2 ** 63)
INTERESTING_FLOATS = (0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-30, 1e30, -1e30, 3.4e38, float("nan"), float("inf"),
                      float("-inf"), 1e-45, 6.0)
INTERESTING_DIMS = (0, 1, 2, 3, 4, 5, 7, 8, 16, -1, -2, 10 ** 6, 10 ** 9, 10 ** 12, 2 ** 40, 2 ** 62, 2 ** 63 - 1)
INTERESTING_STRINGS = (b"", b"NOTSET", b"SAME_UPPER", b"SAME_LOWER", b"VALID", b"constant", b"reflect", b"edge",
                       b"wrap", b"garbage", b"\xff\xfe", b"N")
OP_TYPES = (
    "Add", "AveragePool", "BatchNormalization", "Clip", "Concat", "Constant", "Conv", "Div", "Dropout", "Flatten",
    "Gemm", "GlobalAveragePool", "Identity", "MatMul", "MaxPool", "Mul", "Pad", "ReduceMean", "Relu", "Reshape",
    "Shape", "Squeeze", "Sub", "Unsqueeze",
    # unsupported, or only foldable when constant; several allocate by value
    "Sin", "LSTM", "Transpose", "Gather", "Cast", "ConstantOfShape", "Expand", "Tile", "Range", "Slice", "Softmax",
    "ConvTranspose", "Resize", "OneHot", "Loop", "If", "Sum", "Max", "Where", "Equal", "Neg", "Sqrt", "Pow",
    "Einsum", "TopK", "NonZero", "Size", "EyeLike", "RandomNormal", "Upsample", "Split", "LeakyRelu",
    "GlobalMaxPool", "LpPool", "Foo", "",
)
# ops that take the same inputs (an op_type swap within a group mostly passes onnx's checker)
SWAP_GROUPS = (
    ("Relu", "Identity", "Sigmoid", "Neg", "Abs", "Dropout", "Softmax", "Flatten", "LeakyRelu", "Sqrt"),
    ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Equal", "PRelu", "MatMul"),
    ("Conv", "ConvTranspose"),
    ("Gemm", "Conv", "ConvTranspose"),
    ("AveragePool", "MaxPool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "Relu", "Identity"),
    ("GlobalAveragePool", "GlobalMaxPool", "Relu", "Identity", "Flatten"),
    ("Reshape", "Expand", "Tile", "Squeeze", "Unsqueeze", "Add", "Mul"),
    ("Unsqueeze", "Squeeze", "Reshape", "Expand", "Tile"),
    ("Gather", "GatherElements", "Unsqueeze", "Squeeze", "Expand", "Tile", "Reshape"),
    ("Shape", "Size", "Identity", "NonZero", "ConstantOfShape", "Range"),
    ("Concat", "Sum", "Max", "Mean"),
    ("Pad", "Reshape", "Tile", "Expand", "Resize"),
    ("Clip", "Identity", "Relu"),
    ("BatchNormalization", "InstanceNormalization", "LayerNormalization"),
)
ATTR_NAMES = ("kernel_shape", "strides", "pads", "dilations", "group", "axis", "axes", "transA", "transB", "alpha",
              "beta", "epsilon", "auto_pad", "ceil_mode", "count_include_pad", "allowzero", "keepdims", "mode",
              "start", "end", "training_mode", "value", "to", "perm", "min", "max", "storage_order", "momentum",
              "noop_with_empty_axes", "shape", "sparse_value", "value_ints", "value_float")
DTYPES = tuple(range(0, 24)) + (99,)
NUMPY_DTYPES = (np.float32, np.float32, np.float32, np.float64, np.float16, np.int64, np.int32, np.int8,
                np.uint8, np.bool_)


# ---------------------------------------------------------------------------
# protobuf mutators (each returns a short description)
# ---------------------------------------------------------------------------


def _tensor_names(m: onnx.ModelProto) -> list[str]:
    g = m.graph
    names = [i.name for i in g.input] + [t.name for t in g.initializer]
    for n in g.node:
        names += list(n.output)
    return names or ["x"]


def _random_dims(ch) -> list[int]:
    rank = ch.int(0, 5)
    return [_pick(ch, INTERESTING_DIMS) if ch.int(0, 2) == 0 else ch.int(1, 6) for _ in range(rank)]


def _random_array(ch, max_elems: int = 64) -> np.ndarray:
    rank = ch.int(0, 4)
    shape = []
    for _ in range(rank):
        shape.append(ch.int(0, 5) if ch.int(0, 4) else 1)
    while shape and int(np.prod(shape)) > max_elems:
        shape[ch.int(0, len(shape) - 1)] = 1
    dtype = _pick(ch, NUMPY_DTYPES)
    n = int(np.prod(shape)) if shape else 1
    seed = ch.int(0, 2 ** 16)
    r = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        arr = r.standard_normal(n)
    elif np.dtype(dtype).kind == "b":
        arr = r.integers(0, 2, n)
    else:
        arr = r.integers(-3, 9, n)
    return arr.astype(dtype).reshape(shape)


def _mutate_tensor(ch, t: onnx.TensorProto) -> str:
    """Mutate one TensorProto (an initializer or a Constant's value) in place."""
    k = ch.int(0, 8)
    if k == 0:
        old = list(t.dims)
        del t.dims[:]
        t.dims.extend(_random_dims(ch))
        return f"dims {old}->{list(t.dims)}"
    if k == 1:
        old, t.data_type = t.data_type, _pick(ch, DTYPES)
        return f"data_type {old}->{t.data_type}"
    if k == 2:
        if t.raw_data:
            n = len(t.raw_data)
            cut = ch.int(0, n + 8)
            t.raw_data = t.raw_data[:cut] if cut <= n else t.raw_data + b"\x00" * (cut - n)
            return f"raw_data len {n}->{len(t.raw_data)}"
        if t.float_data:
            del t.float_data[ch.int(0, len(t.float_data) - 1)]
            return "float_data shortened"
        if t.int64_data:
            t.int64_data.append(_pick(ch, INTERESTING_INTS))
            return "int64_data lengthened"
        t.raw_data = ch.bytes(ch.int(0, 9))
        return "raw_data added"
    if k in (3, 4):  # a value: NaN/Inf/huge into float tensors, interesting ints into integer ones
        try:
            arr = numpy_helper.to_array(t).copy()
        except Exception:
            return "value (unreadable tensor left alone)"
        if arr.size == 0 or arr.dtype.kind not in "fiu":
            return "value (empty / non-numeric left alone)"
        i = ch.int(0, arr.size - 1)
        flat = arr.reshape(-1)
        if arr.dtype.kind == "f":
            v = _pick(ch, INTERESTING_FLOATS)
            with np.errstate(over="ignore"):
                flat[i] = v
        else:
            v = _pick(ch, INTERESTING_INTS)
            info = np.iinfo(arr.dtype)
            flat[i] = min(max(v, info.min), info.max)
        t.CopyFrom(numpy_helper.from_array(flat.reshape(arr.shape), t.name))
        return f"value[{i}]={v}"
    if k == 5:  # consistent, differently shaped random data
        arr = _random_array(ch)
        t.CopyFrom(numpy_helper.from_array(arr, t.name))
        return f"replaced by {arr.dtype}{list(arr.shape)}"
    if k == 6:  # external data
        t.data_location = TensorProto.EXTERNAL
        del t.external_data[:]
        loc = _pick(ch, ("weights.bin", "/etc/hostname", "../../../etc/passwd", ""))
        e = t.external_data.add()
        e.key, e.value = "location", loc
        if ch.int(0, 1):
            e = t.external_data.add()
            e.key, e.value = "length", str(_pick(ch, (0, 4, 10 ** 12)))
        t.raw_data = b""
        return f"external data at {loc!r}"
    if k == 7:  # move the data between fields
        try:
            arr = numpy_helper.to_array(t)
        except Exception:
            return "fields (unreadable tensor left alone)"
        if arr.dtype == np.float32 and t.raw_data:
            t.raw_data = b""
            t.float_data.extend(arr.reshape(-1).tolist()[: max(0, arr.size - ch.int(0, 1))])
            return "raw_data -> float_data"
        t.string_data.append(b"abc")
        return "string_data added"
    # segment / name
    t.name = _pick(ch, ("", t.name + "_x", "input", "output"))
    return f"tensor renamed to {t.name!r}"


def _mutate_attribute(ch, node: onnx.NodeProto) -> str:
    k = ch.int(0, 4)
    if k == 0 or not node.attribute:  # add one
        name = _pick(ch, ATTR_NAMES)
        value = _random_attr_value(ch)
        for a in list(node.attribute):
            if a.name == name and ch.int(0, 1):
                node.attribute.remove(a)
        node.attribute.append(_make_attribute(name, value))
        return f"{node.name}: add attr {name}={value!r}"[:200]
    a = node.attribute[ch.int(0, len(node.attribute) - 1)]
    if k == 1:
        node.attribute.remove(a)
        return f"{node.name}: drop attr {a.name}"
    if k == 2:  # new value of another type
        value = _random_attr_value(ch)
        a.CopyFrom(_make_attribute(a.name, value))
        return f"{node.name}: attr {a.name} -> {value!r}"[:200]
    if k == 3:  # same type, interesting value
        if a.type == onnx.AttributeProto.INT:
            a.i = _pick(ch, INTERESTING_INTS)
        elif a.type == onnx.AttributeProto.FLOAT:
            a.f = _pick(ch, INTERESTING_FLOATS)
        elif a.type == onnx.AttributeProto.INTS:
            vals = list(a.ints)
            op = ch.int(0, 2)
            if op == 0 and vals:
                vals[ch.int(0, len(vals) - 1)] = _pick(ch, INTERESTING_INTS)
            elif op == 1 and vals:
                vals.pop(ch.int(0, len(vals) - 1))
            else:
                vals.append(_pick(ch, INTERESTING_INTS))
            del a.ints[:]
            a.ints.extend(vals)
        elif a.type == onnx.AttributeProto.FLOATS:
            a.floats.append(_pick(ch, INTERESTING_FLOATS))
        elif a.type == onnx.AttributeProto.STRING:
            a.s = _pick(ch, INTERESTING_STRINGS)
        elif a.type == onnx.AttributeProto.TENSOR:
            return f"{node.name}: attr {a.name} tensor " + _mutate_tensor(ch, a.t)
        return f"{node.name}: attr {a.name} value changed"
    # the type field alone (the value fields stay)
    a.type = _pick(ch, (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11))
    return f"{node.name}: attr {a.name} type field -> {a.type}"


def _make_attribute(name, value):
    if isinstance(value, list) and not value:
        return helper.make_attribute(name, value, attr_type=onnx.AttributeProto.INTS)
    return helper.make_attribute(name, value)


def _random_attr_value(ch):
    k = ch.int(0, 6)
    if k == 0:
        return _pick(ch, INTERESTING_INTS)
    if k == 1:
        return _pick(ch, INTERESTING_FLOATS)
    if k == 2:
        return [_pick(ch, INTERESTING_INTS) if ch.int(0, 2) == 0 else ch.int(0, 3) for _ in range(ch.int(0, 9))]
    if k == 3:
        return _pick(ch, INTERESTING_STRINGS)
    if k == 4:
        return [_pick(ch, INTERESTING_FLOATS) for _ in range(ch.int(1, 4))]
    if k == 5:
        return numpy_helper.from_array(_random_array(ch), "v")
    return [b"a", b"b"]


def _mutate_node_io(ch, node: onnx.NodeProto, names: list[str], outputs: bool) -> str:
    field = node.output if outputs else node.input
    which = "output" if outputs else "input"
    k = ch.int(0, 5)
    vals = list(field)
    if k == 0 and vals:
        i = ch.int(0, len(vals) - 1)
        vals.pop(i)
        desc = f"drop {which} {i}"
    elif k == 1 and vals:
        i = ch.int(0, len(vals) - 1)
        vals.insert(i, vals[i])
        desc = f"duplicate {which} {i}"
    elif k == 2 and vals:
        i = ch.int(0, len(vals) - 1)
        vals[i] = _pick(ch, names)
        desc = f"{which} {i} -> existing {vals[i]!r}"
    elif k == 3 and vals:
        i = ch.int(0, len(vals) - 1)
        vals[i] = _pick(ch, ("", "nonexistent", vals[i] + "_renamed"))
        desc = f"{which} {i} -> {vals[i]!r}"
    elif k == 4 and len(vals) > 1:
        i, j = ch.int(0, len(vals) - 1), ch.int(0, len(vals) - 1)
        vals[i], vals[j] = vals[j], vals[i]
        desc = f"swap {which}s {i},{j}"
    else:
        vals.append(_pick(ch, names + [""]))
        desc = f"append {which} {vals[-1]!r}"
    del field[:]
    field.extend(vals)
    return f"{node.name}: {desc}"


def _mutate_value_info(ch, vi: onnx.ValueInfoProto, what: str) -> str:
    tt = vi.type.tensor_type
    k = ch.int(0, 6)
    dims = tt.shape.dim
    if k == 0 and len(dims):
        d = dims[ch.int(0, len(dims) - 1)]
        v = _pick(ch, INTERESTING_DIMS)
        d.dim_value = v
        return f"{what} {vi.name}: a dim -> {v}"
    if k == 1 and len(dims):
        d = dims[ch.int(0, len(dims) - 1)]
        d.dim_param = _pick(ch, ("N", "", "H", "batch"))
        return f"{what} {vi.name}: a dim -> param {d.dim_param!r}"
    if k == 2:
        if len(dims) and ch.int(0, 1):
            del dims[ch.int(0, len(dims) - 1)]
            return f"{what} {vi.name}: rank -1"
        dims.add().dim_value = ch.int(1, 4)
        return f"{what} {vi.name}: rank +1"
    if k == 3:
        tt.elem_type = _pick(ch, DTYPES)
        return f"{what} {vi.name}: elem_type -> {tt.elem_type}"
    if k == 4:
        tt.ClearField("shape")
        return f"{what} {vi.name}: no shape"
    if k == 5:
        vi.type.ClearField("tensor_type")
        if ch.int(0, 1):
            vi.type.sequence_type.elem_type.tensor_type.elem_type = TensorProto.FLOAT
        return f"{what} {vi.name}: not a tensor type"
    vi.name = _pick(ch, ("", vi.name + "_x", "output", "input"))
    return f"{what}: renamed to {vi.name!r}"


def mutate_proto(ch, m: onnx.ModelProto) -> str:
    """One protobuf-level mutation of m (in place)."""
    g = m.graph
    k = ch.int(0, 17)
    nodes = list(g.node)
    if k == 0 and nodes:
        n = _pick(ch, nodes)
        old = n.op_type
        if ch.int(0, 1):
            n.op_type = _pick(ch, OP_TYPES)
            return f"{n.name}: op_type {old}->{n.op_type}"
        # an op of the same arity, keeping only the attributes its schema has
        group = next((g for g in SWAP_GROUPS if old in g), OP_TYPES)
        n.op_type = _pick(ch, group)
        try:
            allowed = set(onnx.defs.get_schema(n.op_type, 17).attributes)
        except Exception:
            allowed = set()
        for a in list(n.attribute):
            if a.name not in allowed:
                n.attribute.remove(a)
        return f"{n.name}: op_type {old}->{n.op_type} (schema attributes kept)"
    if k in (1, 2) and nodes:
        return _mutate_attribute(ch, _pick(ch, nodes))
    if k in (3, 4) and nodes:
        return _mutate_node_io(ch, _pick(ch, nodes), _tensor_names(m), outputs=(k == 4))
    if k in (5, 6, 7) and g.initializer:
        t = g.initializer[ch.int(0, len(g.initializer) - 1)]
        return f"initializer {t.name}: " + _mutate_tensor(ch, t)
    if k == 8 and g.initializer:
        i = ch.int(0, len(g.initializer) - 1)
        op = ch.int(0, 3)
        name = g.initializer[i].name
        if op == 0:
            del g.initializer[i]
            return f"drop initializer {name}"
        if op == 1:
            g.initializer.add().CopyFrom(g.initializer[i])
            return f"duplicate initializer {name}"
        if op == 2:
            g.initializer[i].name = _pick(ch, _tensor_names(m))
            return f"initializer {name} renamed to {g.initializer[i].name}"
        vi = g.input.add()
        vi.CopyFrom(helper.make_tensor_value_info(name, g.initializer[i].data_type or 1,
                                                  list(g.initializer[i].dims)))
        return f"initializer {name} also a graph input"
    if k in (9, 10) and g.input:
        op = ch.int(0, 5)
        i = ch.int(0, len(g.input) - 1)
        if op == 0:
            name = g.input[i].name
            del g.input[i]
            return f"drop graph input {name}"
        if op == 1:
            g.input.add().CopyFrom(g.input[i])
            return "duplicate graph input"
        if op == 2:
            g.input.add().CopyFrom(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1, 4]))
            return "extra graph input"
        return _mutate_value_info(ch, g.input[i], "graph input")
    if k == 11 and g.output:
        op = ch.int(0, 4)
        i = ch.int(0, len(g.output) - 1)
        if op == 0:
            del g.output[i]
            return "drop graph output"
        if op == 1:
            g.output.add().CopyFrom(g.output[i])
            return "duplicate graph output"
        if op == 2:
            g.output[i].name = _pick(ch, _tensor_names(m))
            return f"graph output -> {g.output[i].name}"
        return _mutate_value_info(ch, g.output[i], "graph output")
    if k == 12:
        if g.value_info and ch.int(0, 1):
            vi = g.value_info[ch.int(0, len(g.value_info) - 1)]
            return _mutate_value_info(ch, vi, "value_info")
        name = _pick(ch, _tensor_names(m))
        g.value_info.add().CopyFrom(helper.make_tensor_value_info(name, _pick(ch, (1, 1, 7, 11, 0)),
                                                                  _random_dims(ch)))
        return f"value_info added for {name}"
    if k == 13:
        op = ch.int(0, 3)
        if op == 0 and m.opset_import:
            m.opset_import[0].version = _pick(ch, (1, 5, 6, 7, 9, 10, 11, 12, 13, 14, 17, 18, 19, 21, 22, 23, 0,
                                                   -1, 1000))
            return f"opset -> {m.opset_import[0].version}"
        if op == 1:
            del m.opset_import[:]
            return "no opset_import"
        if op == 2:
            m.opset_import.add().CopyFrom(helper.make_opsetid(_pick(ch, ("", "com.microsoft", "x")),
                                                              ch.int(1, 20)))
            return "extra opset_import"
        m.ir_version = _pick(ch, (0, 1, 3, 4, 7, 8, 9, 10, 11, 100))
        return f"ir_version -> {m.ir_version}"
    if k == 14 and nodes:
        n = _pick(ch, nodes)
        n.domain = _pick(ch, ("com.microsoft", "custom", "ai.onnx.ml", "ai.onnx", ""))
        return f"{n.name}: domain -> {n.domain!r}"
    if k == 15 and nodes:
        op = ch.int(0, 3)
        i = ch.int(0, len(nodes) - 1)
        if op == 0:
            del g.node[i]
            return f"delete node {nodes[i].name}"
        if op == 1:
            g.node.insert(ch.int(0, len(nodes)), nodes[i])
            return f"duplicate node {nodes[i].name}"
        if op == 2:
            j = ch.int(0, len(nodes) - 1)
            a, b = onnx.NodeProto(), onnx.NodeProto()
            a.CopyFrom(g.node[i])
            b.CopyFrom(g.node[j])
            g.node[i].CopyFrom(b)
            g.node[j].CopyFrom(a)
            return f"swap nodes {i},{j}"
        g.node[i].name = _pick(ch, ("", nodes[0].name, "input", "output"))
        return f"node {i} renamed to {g.node[i].name!r}"
    if k == 16 and g.initializer:  # an initializer becomes a Constant node (maybe mutated)
        i = ch.int(0, len(g.initializer) - 1)
        t = onnx.TensorProto()
        t.CopyFrom(g.initializer[i])
        del g.initializer[i]
        d = _mutate_tensor(ch, t) if ch.int(0, 1) else "as is"
        attr = _pick(ch, ("value", "value", "value_float", "value_ints", "sparse_value", "value_string"))
        if attr == "value":
            node = helper.make_node("Constant", [], [t.name], name=f"const_{t.name}", value=t)
        elif attr == "value_float":
            node = helper.make_node("Constant", [], [t.name], name=f"const_{t.name}",
                                    value_float=_pick(ch, INTERESTING_FLOATS))
        elif attr == "value_ints":
            node = helper.make_node("Constant", [], [t.name], name=f"const_{t.name}",
                                    value_ints=[_pick(ch, INTERESTING_INTS) for _ in range(ch.int(1, 4))])
        elif attr == "value_string":
            node = helper.make_node("Constant", [], [t.name], name=f"const_{t.name}", value_string=b"abc")
        else:
            node = helper.make_node("Constant", [], [t.name], name=f"const_{t.name}", value=t)
            node.attribute[0].name = "sparse_value"
        g.node.insert(ch.int(0, min(len(nodes), 2)), node)
        return f"initializer {t.name} -> Constant {attr} ({d})"
    # a consistent weight replaced by random data of another shape (reaches the converters)
    if g.initializer:
        t = g.initializer[ch.int(0, len(g.initializer) - 1)]
        try:
            arr = numpy_helper.to_array(t)
        except Exception:  # an earlier mutation broke it
            arr = None
        if arr is None or arr.dtype.kind not in "fiub" or ch.int(0, 1):
            arr = _random_array(ch)
        else:  # nearly the same shape: one dim off by one, or one added / dropped
            shape = list(arr.shape)
            op = ch.int(0, 2)
            if op == 0 and shape:
                j = ch.int(0, len(shape) - 1)
                shape[j] = max(0, shape[j] + _pick(ch, (-1, 1)))
            elif op == 1 and shape:
                shape.pop(ch.int(0, len(shape) - 1))
            else:
                shape.insert(ch.int(0, len(shape)), ch.int(1, 2))
            n = math.prod(shape)
            flat = np.resize(arr.reshape(-1), n) if arr.size else np.zeros(n, arr.dtype)
            arr = flat.reshape(shape)
        t.CopyFrom(numpy_helper.from_array(arr, t.name))
        return f"initializer {t.name} -> {arr.dtype}{list(arr.shape)}"
    return "no-op"


# ---------------------------------------------------------------------------
# byte-level mutators
# ---------------------------------------------------------------------------


def mutate_bytes(ch, data: bytes, other: bytes) -> tuple[bytes, str]:
    b = bytearray(data)
    k = ch.int(0, 6)
    n = len(b)
    if n == 0:
        return bytes(ch.bytes(ch.int(1, 16))), "random bytes"
    if k == 0:
        flips = ch.int(1, 8)
        for _ in range(flips):
            i = ch.int(0, n - 1)
            b[i] ^= 1 << ch.int(0, 7)
        return bytes(b), f"{flips} bit flips"
    if k == 1:
        i = ch.int(0, n - 1)
        chunk = ch.bytes(ch.int(1, 8))
        b[i:i + len(chunk)] = chunk
        return bytes(b), f"overwrite at {i}"
    if k == 2:
        i = ch.int(0, n)
        b[i:i] = ch.bytes(ch.int(1, 16))
        return bytes(b), f"insert at {i}"
    if k == 3:
        i = ch.int(0, n - 1)
        j = min(n, i + ch.int(1, 64))
        del b[i:j]
        return bytes(b), f"delete {i}:{j}"
    if k == 4:
        i = ch.int(0, n)
        return bytes(b[:i]), f"truncate at {i}"
    if k == 5:
        i = ch.int(0, n - 1)
        j = min(n, i + ch.int(1, 128))
        at = ch.int(0, n)
        b[at:at] = b[i:j]
        return bytes(b), f"duplicate {i}:{j} at {at}"
    i, j = ch.int(0, n), ch.int(0, len(other))
    return bytes(b[:i]) + other[j:], f"splice at {i}/{j}"


# ---------------------------------------------------------------------------
# one case
# ---------------------------------------------------------------------------


def make_case(ch, level: str) -> tuple[bytes, list[str]]:
    """Pick a seed and mutate it; level is 'proto', 'bytes' or 'both'."""
    seeds = seed_models()
    names = sorted(seeds)
    seed = _pick(ch, names)
    desc = [f"seed {seed}"]
    data = seeds[seed]
    if level in ("proto", "both"):
        m = onnx.ModelProto()
        m.ParseFromString(data)
        for _ in range(ch.int(1, 3)):
            desc.append(mutate_proto(ch, m))
        data = m.SerializeToString()
    if level in ("bytes", "both"):
        for _ in range(ch.int(1, 3) if level == "bytes" else 1):
            data, d = mutate_bytes(ch, data, seeds[_pick(ch, names)])
            desc.append(d)
    return data, desc


_X_CACHE: dict = {}


def run_case(data: bytes) -> str:
    """Everything `adacal inspect` does, plus conversion and a float run.

    Returns 'accepted' or 'rejected'; any exception other than AdacalError
    propagates (a bug)."""
    from adacal.frontends import onnx as frontend
    from adacal.frontends.onnx import load_onnx
    from adacal.passes import cleanup
    from adacal.passes.to_spiking import to_spiking
    from adacal.report import inspect_model

    # strict: the frontend's last-resort guard (unexpected exception ->
    # ModelFileError) is off, so a bug it would hide fails the test
    strict, frontend.STRICT = getattr(frontend, "STRICT", False), True
    try:
        g = load_onnx(data)
        info = inspect_model(data)
        g = cleanup(g)
        if int(np.prod(g.input_shape)) <= 4096 and all(int(np.prod(n.shape)) <= 65536 for n in g.nodes):
            x = np.random.default_rng(0).standard_normal((2, *g.input_shape)).astype(np.float32)
            y = g.run(x)
            assert y.shape == (2, *g.output_shape), (y.shape, g.output_shape)
        if info["convertible"]:
            to_spiking(g, 4)
    except AdacalError as e:
        msg = str(e)
        assert msg and "\n" not in msg.strip(), f"error message is not one line: {msg!r}"
        return "rejected"
    finally:
        frontend.STRICT = strict
    return "accepted"


# ---------------------------------------------------------------------------
# the CI fuzz tests
# ---------------------------------------------------------------------------

try:
    from hypothesis import HealthCheck, event, given, note, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:
    _SETTINGS = settings(max_examples=1000, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck), print_blob=False)

    @_SETTINGS
    @given(st.data())
    def test_fuzz_protobuf_fields(data):
        payload, desc = make_case(HypothesisChooser(data), "proto")
        note(" | ".join(desc))
        event(run_case(payload))

    @_SETTINGS
    @given(st.data())
    def test_fuzz_raw_bytes(data):
        ch = HypothesisChooser(data)
        payload, desc = make_case(ch, _pick(ch, ("bytes", "bytes", "both")))
        note(" | ".join(desc))
        event(run_case(payload))


def test_the_mutants_reach_the_converters():
    """The fuzzer is only useful if mutants get past onnx's checker: of 300
    seeded protobuf-level cases, some are accepted and many are refused by
    adacal's own validation (a message naming a node or initializer)."""
    from adacal.frontends.onnx import load_onnx

    outcomes = {"accepted": 0, "checker": 0, "adacal": 0}
    for case in range(300):
        payload, _ = make_case(RandomChooser(random.Random(f"reach:{case}")), "proto")
        try:
            load_onnx(payload)
            outcomes["accepted"] += 1
        except AdacalError as e:
            outcomes["checker" if "invalid ONNX model" in str(e) else "adacal"] += 1
    assert outcomes["accepted"] >= 15 and outcomes["adacal"] >= 30, outcomes


def test_seed_models_are_accepted():
    """The unmutated seeds load, inspect and run (the fuzzer starts from valid models)."""
    for name, data in seed_models().items():
        assert run_case(data) == "accepted", name


# ---------------------------------------------------------------------------
# regression tests: one per bug class the fuzzer found, and the size limits
# ---------------------------------------------------------------------------


def _load_error(model: onnx.ModelProto, *mentions: str, kind=AdacalError) -> str:
    from adacal.frontends import onnx as frontend
    from adacal.report import inspect_model

    data = model.SerializeToString()
    strict, frontend.STRICT = frontend.STRICT, True
    try:
        with pytest.raises(kind) as info:
            inspect_model(data)
    finally:
        frontend.STRICT = strict
    msg = str(info.value)
    assert "\n" not in msg.strip(), msg
    for m in mentions:
        assert m.lower() in msg.lower(), f"{m!r} not in: {msg}"
    return msg


def _residual() -> onnx.ModelProto:
    return _residual_model()


def _set_init(m: onnx.ModelProto, name: str, arr) -> onnx.ModelProto:
    for t in m.graph.initializer:
        if t.name == name:
            t.CopyFrom(numpy_helper.from_array(np.asarray(arr), name))
            return m
    raise KeyError(name)


def _tiny(nodes, inits=(), in_shape=(4,), out="output", opset=17) -> onnx.ModelProto:
    """(N, *in_shape) 'input' -> nodes -> out."""
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", *in_shape])],
        initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def test_initializer_data_shorter_than_its_dims():
    """bench_fuzz: `initializer 3.bias: dims [16]->[3]` crashed numpy_helper.to_array (ValueError)."""
    from adacal.frontends.onnx import read_tensor

    t = numpy_helper.from_array(np.arange(16, dtype=np.float32), "3.bias")
    del t.dims[:]
    t.dims.extend([3])
    with pytest.raises(ModelFileError, match=r"3\.bias.*does not match its shape \[3\]"):
        read_tensor(t, "initializer '3.bias'", "m.onnx")


def test_initializer_of_unknown_data_type():
    """bench_fuzz: a byte overwrite gave data_type 33 -> KeyError in onnx's type table."""
    m = _residual()
    m.graph.initializer[1].data_type = 33
    _load_error(m, "c1_b")


@pytest.mark.parametrize("dtype", [TensorProto.STRING, TensorProto.COMPLEX64, TensorProto.FLOAT8E4M3FN])
def test_initializer_of_non_numeric_type(dtype):
    from adacal.frontends.onnx import read_tensor

    t = helper.make_tensor("w", dtype, [1], [b"abc"] if dtype == TensorProto.STRING else [1.0])
    with pytest.raises(UnsupportedError, match="'w' has data type"):
        read_tensor(t, "initializer 'w'", "m.onnx")


def test_string_constant_used_as_an_operand():
    """bench_fuzz: `initializer mul_k -> Constant value_string` crashed astype(float32) (ValueError)."""
    m = fz_handmade()
    for t in list(m.graph.initializer):
        if t.name == "mul_k":
            m.graph.initializer.remove(t)
    m.graph.node.insert(0, helper.make_node("Constant", [], ["mul_k"], name="k_const", value_string=b"abc"))
    _load_error(m, "k_const", "STRING")


def test_conv_bias_of_the_wrong_size():
    """bench_fuzz: `initializer c1_b -> float32[3]` loaded, then crashed the float run (RuntimeError) and
    BatchNorm folding (ValueError in fold_scalings)."""
    _load_error(_set_init(_residual(), "c1_b", np.zeros(3, np.float32)), "conv1", "bias", "3", "4")
    _load_error(_set_init(_residual(), "c2_b", np.zeros((2, 4), np.float32)), "conv2", "bias")


def test_conv_weight_that_does_not_fit_the_input_channels():
    _load_error(_set_init(_residual(), "c2_w", np.zeros((4, 3, 3, 3), np.float32)), "conv2", "weight")


def test_gemm_bias_that_does_not_broadcast():
    """bench_fuzz: `initializer 0.bias -> float32[4, 1, 0]` crashed np.broadcast_to (ValueError)."""
    _load_error(_set_init(_residual(), "fc_b", np.zeros((4, 1, 0), np.float32)), "fc", "bias C")
    _load_error(_set_init(_residual(), "fc_b", np.zeros(5, np.float32)), "fc", "bias C", "5")


def test_gemm_weight_that_is_a_scalar():
    """bench_fuzz: `initializer 0.weight -> Constant value_float` crashed on w.shape[0] (IndexError)."""
    _load_error(_set_init(_residual(), "fc_w", np.float32(2.0)), "fc", "2-D")


def test_clip_bound_that_is_not_a_scalar():
    """bench_fuzz: `initializer clip_max -> uint8[2]` crashed float(array) (TypeError)."""
    m = fz_handmade()
    _load_error(_set_init(m, "clip_max", np.array([1, 2], np.uint8)), "relu6", "max", "scalar")


def test_pad_mode_that_is_not_utf8():
    """bench_fuzz: `pad: attr mode value changed` to b'\\xff\\xfe' crashed .decode() (UnicodeDecodeError)."""
    m = fz_handmade()
    pad = next(n for n in m.graph.node if n.op_type == "Pad")
    pad.attribute[0].s = b"\xff\xfe"
    _load_error(m, "pad", "mode")


def test_reshape_target_that_is_empty_or_not_integer():
    """bench_fuzz: `initializer flat_shape: replaced by float32[2, 0]` crashed t[0] (IndexError);
    a string target crashed int(b'abc') (ValueError)."""
    _load_error(_set_init(fz_handmade(), "flat_shape", np.zeros(0, np.int64)), "flatten", "empty")
    _load_error(_set_init(fz_handmade(), "flat_shape", np.zeros((2, 0), np.float32)), "flatten")
    _load_error(_set_init(fz_handmade(), "flat_shape", np.array([0.0, -1.0], np.float32)), "flatten", "integer")


@pytest.mark.parametrize("node, attr", [("pool1", "strides"), ("pool1", "kernel_shape"), ("conv1", "strides"),
                                        ("conv1", "dilations")])
def test_huge_strides_and_kernels_are_refused(node, attr):
    """bench_fuzz (200k-case run): `pool1: attr strides value changed` to [2**32, 1] passed the
    meta-device shape inference, then overflowed torch's CPU max_pool2d (RuntimeError)."""
    m = _residual()
    n = next(n for n in m.graph.node if n.name == node)
    for a in list(n.attribute):
        if a.name == attr:
            n.attribute.remove(a)
    n.attribute.append(helper.make_attribute(attr, [2 ** 32, 1]))
    _load_error(m, node, attr, "limit")


def test_names_that_are_not_utf8_or_hold_control_characters():
    """bench_fuzz (1.6M-case run): a byte overwrite in a graph input's name gave
    invalid UTF-8, which protobuf returns as bytes (TypeError in ', '.join);
    another put a newline into a node name (a two-line error message)."""
    data = _residual().SerializeToString()
    i = data.index(b"relu1")
    _load_bytes_error(data[:i] + b"\xffelu1" + data[i + 5:], "not valid UTF-8")
    m = _residual()
    m.graph.node[4].name = "bn\n2"
    _load_error(m, "node name", "control characters")


def _load_bytes_error(data: bytes, *mentions: str) -> None:
    from adacal.frontends.onnx import load_onnx
    with pytest.raises(AdacalError) as info:
        load_onnx(data)
    msg = str(info.value)
    assert "\n" not in msg
    for m in mentions:
        assert m in msg, msg


def test_nan_and_inf_weights_are_refused_naming_the_tensor():
    w = numpy_helper.to_array(_residual().graph.initializer[0]).copy()
    w[0, 0, 0, 0] = np.nan
    _load_error(_set_init(_residual(), "c1_w", w), "c1_w", "NaN")
    m = fz_handmade()
    div = next(n for n in m.graph.node if n.op_type == "Constant")
    div.attribute[0].t.CopyFrom(numpy_helper.from_array(np.array(np.inf, np.float32), "div_k_value"))
    _load_error(m, "div_const_value", "Inf")


def test_batchnorm_with_negative_variance():
    _load_error(_set_init(_residual(), "bn_var", -np.ones(4, np.float32)), "bn2", "var + epsilon")


def test_external_data_is_refused_without_reading_files():
    m = _residual()
    t = m.graph.initializer[0]
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", "/etc/hostname"
    t.ClearField("raw_data")
    _load_error(m, "c1_w", "external")


# ---- sizes: refused before anything is allocated ---------------------------

def test_huge_declared_initializer_is_refused_before_allocation():
    t = onnx.TensorProto()
    t.name, t.data_type = "big", TensorProto.FLOAT
    t.dims.extend([10 ** 6, 10 ** 6])
    from adacal.frontends.onnx import read_tensor
    with pytest.raises(UnsupportedError, match=r"'big' has 1,000,000,000,000 elements.*limit of 268,435,456"):
        read_tensor(t, "initializer 'big'", "m.onnx")


@pytest.mark.parametrize("dims", [[10 ** 6, 10 ** 6], [2 ** 40], [3, 65536, 65536]])
def test_huge_input_is_refused(dims):
    m = _tiny([helper.make_node("Relu", ["input"], ["output"], name="relu")], in_shape=dims)
    _load_error(m, "input", "limit")


def test_huge_padding_is_refused():
    m = _residual()
    conv = m.graph.node[0]
    for a in conv.attribute:
        if a.name == "pads":
            del a.ints[:]
            a.ints.extend([10 ** 6, 10 ** 6, 10 ** 6, 10 ** 6])
    _load_error(m, "conv1", "padded input", "limit")


@pytest.mark.parametrize("case", ["ConstantOfShape", "Expand", "Tile", "Range", "Add", "Gather", "Pad"])
def test_constant_folding_that_would_allocate_is_refused(case):
    """A constant sub-graph whose result is larger than MAX_TENSOR_ELEMENTS is
    refused before onnx's evaluator allocates it (these would need >= 4 TB)."""
    big = 10 ** 6
    i64 = np.int64
    nodes, inits = [], []
    if case == "ConstantOfShape":
        inits = [("shape", np.array([big, big], i64))]
        nodes = [helper.make_node("ConstantOfShape", ["shape"], ["k"], name="blowup")]
    elif case == "Expand":
        inits = [("one", np.ones((1, 1), np.float32)), ("shape", np.array([big, big], i64))]
        nodes = [helper.make_node("Expand", ["one", "shape"], ["k"], name="blowup")]
    elif case == "Tile":
        inits = [("one", np.ones((1, 1), np.float32)), ("reps", np.array([big, big], i64))]
        nodes = [helper.make_node("Tile", ["one", "reps"], ["k"], name="blowup")]
    elif case == "Range":
        inits = [("a", np.array(0, i64)), ("b", np.array(big * big, i64)), ("d", np.array(1, i64))]
        nodes = [helper.make_node("Range", ["a", "b", "d"], ["k"], name="blowup")]
    elif case == "Add":
        inits = [("a", np.ones((2 ** 15, 1), np.float32)), ("b", np.ones((1, 2 ** 15), np.float32))]
        nodes = [helper.make_node("Add", ["a", "b"], ["k"], name="blowup")]
    elif case == "Gather":
        inits = [("a", np.ones((4096, 4096), np.float32)), ("idx", np.zeros((4096, 64), i64))]
        nodes = [helper.make_node("Gather", ["a", "idx"], ["k"], name="blowup")]
    else:
        inits = [("a", np.ones((1, 1), np.float32)), ("p", np.array([0, 0, big, big], i64))]
        nodes = [helper.make_node("Pad", ["a", "p"], ["k"], name="blowup")]
    nodes.append(helper.make_node("Shape", ["k"], ["ks"], name="k_shape"))
    nodes.append(helper.make_node("Relu", ["input"], ["output"], name="relu"))
    _load_error(_tiny(nodes, inits), "blowup", "limit")


def test_unexpected_errors_name_the_file_and_node(monkeypatch, tmp_path):
    """The last-resort guard at the load_onnx boundary: an unforeseen exception
    in a converter becomes one ModelFileError naming the file and the node
    (and STRICT, as in the fuzz tests, lets it through)."""
    from adacal.frontends import onnx as frontend

    def broken(c):
        raise IndexError("tuple index out of range")

    monkeypatch.setitem(frontend._CONVERT, "Gemm", broken)
    path = tmp_path / "m.onnx"
    onnx.save(_residual(), str(path))
    with pytest.raises(ModelFileError, match=r"m\.onnx: malformed model at node 'fc' \(Gemm\): IndexError"):
        frontend.load_onnx(path)
    monkeypatch.setattr(frontend, "STRICT", True)
    with pytest.raises(IndexError):
        frontend.load_onnx(path)


def fz_handmade() -> onnx.ModelProto:
    import onnx_fixtures as fx
    return fx.handmade_model(0)
