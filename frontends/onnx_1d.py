"""ONNX -> IR for 1-D networks (Conv1d, MaxPool1d / AvgPool1d, BatchNorm1d,
global max / mean over the length axis): PointNet-style point clouds and
temporal CNNs.

Representation: the IR has 2-D spatial ops only, so an ONNX activation of
per-sample shape (C, L) that feeds a 1-D op is *lifted* to (C, 1, L) and stays
lifted while it flows through ops that do not care about the extra unit axis:
a Conv1d becomes an ir.Conv2d with kernel (1, k), pads (0, b, 0, e), a pool
likewise, a ReduceMax / ReduceMean / GlobalAveragePool / GlobalMaxPool over
the length axis an ir.GlobalMaxPool / ir.GlobalAvgPool (giving (C, 1, 1)),
and BatchNormalization, Relu, Clip, Identity, Dropout, Add / Sum of lifted
activations, Concat and Flatten work on the lifted tensor directly.  Any other
op reading a lifted tensor (Reshape, Transpose, Mul by a constant, ...) and
the graph output see it *lowered* back to the ONNX shape by an ir.Reshape, so
the graph's input and output shapes are the ONNX ones and every op keeps its
ONNX semantics.  A (C, L) graph input feeding a Conv1d is lifted by one
ir.Reshape after the Input node (a pass-through in the conversion plan).

`_State.lifted` holds the IR names of lifted nodes; `lift` / `lower` cache
the Reshape they emit so that a tensor read twice is reshaped once.
"""
from __future__ import annotations

import numpy as np

from adacal import ir
from adacal.frontends import onnx as fe
from adacal.frontends.onnx import _Ctx, _State, _auto_pad, _axis, _node_name_for, _vector

#: Ops that take lifted inputs as they are (the rest see them lowered).
AWARE = {"Conv", "MaxPool", "AveragePool", "BatchNormalization", "Relu", "Clip", "Identity", "Dropout",
         "Add", "Sum", "Concat", "ReduceMax", "ReduceMean", "GlobalAveragePool", "GlobalMaxPool", "Flatten",
         "Shape"}
#: Elementwise ops among them: their output is lifted when their input is.
_ELEMENTWISE = {"BatchNormalization", "Relu", "Clip", "Identity", "Dropout", "Add", "Sum"}
#: Aware only when every input is a lifted activation (no constant operand).
_ALL_LIFTED = {"Add", "Sum", "Concat"}


def onnx_shape(st: _State, name: str) -> ir.Shape:
    """The ONNX per-sample shape of IR node `name`."""
    s = st.shapes[name]
    return (s[0], s[2]) if name in st.lifted else s


def lift(st: _State, name: str, onnx_node) -> str:
    """`name` as a lifted (C, 1, L) node (emitting a Reshape once if needed)."""
    if name in st.lifted:
        return name
    if name not in st.lift_cache:
        c, length = st.shapes[name]
        new = st.emit(_node_name_for(st, f"{name}/as2d"), ir.Reshape((c, 1, length)), (name,), onnx_node)
        st.lifted.add(new)
        st.lift_cache[name] = new
    return st.lift_cache[name]


def lower(st: _State, name: str, onnx_node) -> str:
    """`name` with its ONNX shape (emitting a Reshape once if it is lifted)."""
    if name not in st.lifted:
        return name
    if name not in st.lower_cache:
        st.lower_cache[name] = st.emit(_node_name_for(st, f"{name}/as1d"), ir.Reshape(onnx_shape(st, name)),
                                       (name,), onnx_node)
    return st.lower_cache[name]


def lower_inputs(node, st: _State) -> dict[str, str]:
    """Before converting `node`: rebind its lifted inputs to lowered nodes
    unless the op takes them lifted.  Returns the bindings to restore."""
    ins = [i for i in node.input if i]
    lifted = [i for i in ins if st.act.get(i) in st.lifted]
    if not lifted:
        return {}
    if node.op_type in AWARE and not (node.op_type in _ALL_LIFTED and len(lifted) != len(ins)):
        return {}
    saved = {i: st.act[i] for i in lifted}
    for i in lifted:
        st.act[i] = lower(st, st.act[i], node)
    return saved


def after(node, st: _State, produced: str | None, saved: dict[str, str]) -> None:
    """After converting `node`: restore the bindings and mark an elementwise
    op's output lifted when its input was."""
    st.act.update(saved)
    if produced is not None and node.op_type in _ELEMENTWISE and not saved \
            and any(st.act.get(i) in st.lifted for i in node.input if i):
        st.lifted.add(produced)


def lower_output(st: _State, name: str, node) -> str:
    return lower(st, name, node) if name in st.lifted else name


# ---- converters --------------------------------------------------------------
def _is_1d(c: _Ctx) -> bool:
    return len(onnx_shape(c.st, c.act(0))) == 2


def _lifted_input(c: _Ctx) -> str:
    return lift(c.st, c.act(0), c.node)


def _ints1(c: _Ctx, key: str, default: int = 1, required: bool = False) -> int:
    if required and key not in c.attrs:
        c.fail(f"missing attribute {key}")
    v = c.ints_attr(key, [default], lo=1, hi=fe.MAX_SPATIAL)
    if len(v) != 1:
        c.fail(f"attribute {key}={v} must have 1 entry for a 1-D input")
    return v[0]


def _pads1(c: _Ctx, length: int, k: int, s: int, d: int) -> ir.Pads:
    if c.str_attr("auto_pad", "NOTSET") not in ("NOTSET", ""):
        return _auto_pad(c, (1, length), (1, k), (1, s), (1, d))
    p = c.ints_attr("pads", [0, 0], lo=0, hi=fe.MAX_SPATIAL)
    if len(p) != 2:
        c.fail(f"attribute pads={p} must have 2 entries for a 1-D input")
    return (0, p[0], 0, p[1])


def _emit_lifted(c: _Ctx, op, x: str) -> str:
    out = c.st.emit(c.name, op, (x,), c.node)
    c.st.lifted.add(out)
    return out


def _conv1d(c: _Ctx):
    x = _lifted_input(c)
    c_in, _, length = c.st.shapes[x]
    w = c.const(1, "weight").astype(np.float32)
    if w.ndim != 3:
        c.fail(f"a 1-D input needs a rank-3 weight, got shape {w.shape}")
    groups = c.int_attr("group", 1, lo=1)
    c_out, k = w.shape[0], w.shape[2]
    if c_in % groups or c_out % groups or w.shape[1] * groups != c_in:
        c.fail(f"weight of shape {w.shape} with group={groups} does not fit {c_in} input channels")
    kernel = c.ints_attr("kernel_shape", None)
    if kernel is not None and list(kernel) != [k]:
        c.fail(f"kernel_shape {kernel} does not match the weight's {[k]}")
    b = c.const(2, "bias", optional=True)
    b = np.zeros(c_out, np.float32) if b is None else _vector(c, b, c_out, "bias")
    s, d = _ints1(c, "strides"), _ints1(c, "dilations")
    pads = _pads1(c, length, k, s, d)
    return _emit_lifted(c, ir.Conv2d(w.reshape(c_out, w.shape[1], 1, k), b, (1, s), pads, (1, d), groups), x)


def _avgpool1d(c: _Ctx):
    x = _lifted_input(c)
    length = c.st.shapes[x][2]
    k, s = _ints1(c, "kernel_shape", required=True), _ints1(c, "strides")
    if _ints1(c, "dilations") != 1:
        c.fail("dilated average pooling is not supported")
    pads = _pads1(c, length, k, s, 1)
    return _emit_lifted(c, ir.AvgPool((1, k), (1, s), pads, bool(c.int_attr("count_include_pad", 0, 0, 1)),
                                      bool(c.int_attr("ceil_mode", 0, 0, 1))), x)


def _maxpool1d(c: _Ctx):
    x = _lifted_input(c)
    length = c.st.shapes[x][2]
    if len(c.node.output) > 1 and c.node.output[1]:
        c.fail("the Indices output is not supported")
    if c.int_attr("storage_order", 0, 0, 1):
        c.fail("storage_order=1 is not supported")
    k, s, d = _ints1(c, "kernel_shape", required=True), _ints1(c, "strides"), _ints1(c, "dilations")
    pads = _pads1(c, length, k, s, d)
    return _emit_lifted(c, ir.MaxPool((1, k), (1, s), pads, (1, d), bool(c.int_attr("ceil_mode", 0, 0, 1))), x)


def _reduce_axes(c: _Ctx, rank: int) -> list[int]:
    axes = fe.axes_given(c)
    if not axes and c.int_attr("noop_with_empty_axes", 0, 0, 1):
        c.fail("an empty axes list with noop_with_empty_axes=1 is not supported")
    if any(not -rank <= a < rank for a in axes or []):
        c.fail(f"axes {axes} are out of range for rank {rank}")
    return sorted({a + rank if a < 0 else a for a in (axes or range(rank))})


def _global(c: _Ctx, op, reduce: bool):
    """A global pool (ReduceMax / ReduceMean over the spatial axes, or
    GlobalAveragePool / GlobalMaxPool) of a 1-D or 2-D activation."""
    rank = len(onnx_shape(c.st, c.act(0))) + 1
    if rank not in (3, 4):
        c.fail(f"expects a 3-D (batch, channels, length) or 4-D input, got rank {rank}")
    spatial = list(range(2, rank))
    if reduce:
        axes = _reduce_axes(c, rank)
        if axes != spatial:
            c.fail(f"only the reduction over all spatial axes {spatial} (a global pool) is supported, "
                   f"got axes {axes} of rank {rank}")
    x = _lifted_input(c) if rank == 3 else c.act(0)
    keep = c.int_attr("keepdims", 1, 0, 1) if reduce else 1
    if keep:
        out = c.st.emit(c.name, op, (x,), c.node)
        if rank == 3:
            c.st.lifted.add(out)
        return out
    pooled = c.st.emit(_node_name_for(c.st, c.name + "/pool"), op, (x,), c.node)
    return c.st.emit(c.name, ir.Flatten(), (pooled,), c.node)


def _flatten1d(c: _Ctx):
    axis = c.int_attr("axis", 1, -3, 3)  # against the ONNX rank 3
    if axis % 3 != 1:
        c.fail(f"Flatten(axis={axis}) mixes the batch dimension; only axis=1 is supported")
    return c.emit(ir.Flatten())


def _concat1d(c: _Ctx):
    ins = tuple(c.act(i) for i in range(len(c.node.input)))
    axis = _axis(c, "axis", 1, 3)
    if axis == 0:
        c.fail("concatenation along the batch dimension is not supported")
    return _emit_lifted_n(c, ir.Concat(0 if axis == 1 else 2), ins)


def _emit_lifted_n(c: _Ctx, op, ins) -> str:
    out = c.st.emit(c.name, op, ins, c.node)
    c.st.lifted.add(out)
    return out


def _dispatch(one_d, two_d, lifted_only: bool = False):
    """one_d for a 1-D input (lifted, or rank 2 per sample unless lifted_only),
    two_d otherwise."""
    def conv(c: _Ctx):
        x = c.act(0)
        if x in c.st.lifted or (not lifted_only and _is_1d(c)):
            return one_d(c)
        return two_d(c)
    return conv


CONVERT = {
    "Conv": _dispatch(_conv1d, fe._conv),
    "AveragePool": _dispatch(_avgpool1d, fe._avgpool),
    "MaxPool": _dispatch(_maxpool1d, fe._maxpool),
    "ReduceMax": lambda c: _global(c, ir.GlobalMaxPool(), reduce=True),
    "ReduceMean": _dispatch(lambda c: _global(c, ir.GlobalAvgPool(), reduce=True), fe._reduce_mean),
    "GlobalAveragePool": lambda c: _global(c, ir.GlobalAvgPool(), reduce=False),
    "GlobalMaxPool": lambda c: _global(c, ir.GlobalMaxPool(), reduce=False),
    "Flatten": _dispatch(_flatten1d, fe._flatten, lifted_only=True),
    "Concat": _dispatch(_concat1d, fe._concat, lifted_only=True),
    "Shape": lambda c: fe._shape(c, onnx_shape(c.st, c.act(0))),
}
