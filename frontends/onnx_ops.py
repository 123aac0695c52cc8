"""ONNX -> IR converters for data movement and n-ary ops (see frontends/onnx.py).

Transpose, Slice, Split, edge/reflect/wrap Pad, nearest Resize / Upsample
become exact linear maps (ir.Transpose, ir.Take); ConvTranspose becomes
ir.ConvTranspose2d; Sum / Mean become Add chains; a trailing Softmax /
LogSoftmax output head is dropped.  Ops adacal refuses get a reason here.
"""
from __future__ import annotations

import math

import numpy as np

from adacal import ir
from adacal.frontends.onnx import (
    _Ctx, _auto_pad, _axis, _int_list, _node_name_for, _pad, _pair, _per_sample_const, _spatial, _vector,
)

#: Why an op adacal does not convert is refused (the message names the node too).
REFUSED_WHY = {
    "LRN": "local response normalisation divides by a sum of squared neighbouring activations, which "
           "burst neurons cannot compute; retrain without LRN (or with BatchNorm)",
    "HardSwish": "x * relu6(x + 3) / 6 multiplies an activation by a function of itself; use ReLU",
    "HardSigmoid": "sigmoid gating is not a ReLU network; use ReLU",
    "Sigmoid": "sigmoid (and SiLU / swish gating x * sigmoid(x)) is not a ReLU network; use ReLU",
    "Gelu": "GELU is not a ReLU network; use ReLU",
    "Softmax": "a Softmax inside the network is not linear; only a trailing Softmax output head is dropped",
    "LogSoftmax": "a LogSoftmax inside the network is not linear; only a trailing output head is dropped",
    "Tanh": "tanh is not a ReLU network; use ReLU",
}


def _movement(c: _Ctx, x: str, takes: list[tuple[int, np.ndarray]], out_index: int = 0) -> str:
    """Emit one Take per (per-sample axis, indices) that is not the identity;
    the last node is named after the ONNX node (output j > 0: name:j)."""
    shape = c.st.shapes[x]
    steps = [(a, np.ascontiguousarray(i, np.int64)) for a, i in takes
             if not np.array_equal(i, np.arange(shape[a]))]
    final = c.name if out_index == 0 else _node_name_for(c.st, f"{c.name}:{out_index}")
    if not steps:
        return c.st.emit(final, ir.Identity(), (x,), c.node)
    for k, (axis, idx) in enumerate(steps):
        name = final if k == len(steps) - 1 else _node_name_for(c.st, f"{final}/take{axis + 1}")
        x = c.st.emit(name, ir.Take(axis, idx), (x,), c.node)
    return x


def _batch_axis_refused(c: _Ctx, axes, what: str) -> None:
    if 0 in axes:
        c.fail(f"{what} along the batch dimension is not supported")


# ---- n-ary sums --------------------------------------------------------------
def _sum(c: _Ctx, mean: bool = False):
    """Sum / Mean of n inputs: activations added pairwise, constants as a shift."""
    n = len(c.node.input)
    acts = [i for i in range(n) if c.is_act(i)]
    shape = c.shape(acts[0])
    if any(c.shape(i) != shape for i in acts):
        c.fail(f"sums tensors of different shapes {[c.shape(i) for i in acts]}")
    consts = [_per_sample_const(c, c.const(i, "constant operand"), shape) for i in range(n) if i not in acts]
    affine = bool(consts) or mean or len(acts) == 1
    x = c.act(acts[0])
    for k, i in enumerate(acts[1:], 1):
        last = k == len(acts) - 1 and not affine
        name = c.name if last else _node_name_for(c.st, f"{c.name}/add{k}")
        x = c.st.emit(name, ir.Add(), (x, c.act(i)), c.node)
    if affine:
        scale = np.full((), 1.0 / n if mean else 1.0, np.float32)
        shift = sum(consts, np.zeros((), np.float32)) * scale
        x = c.st.emit(c.name, ir.Affine(scale, np.asarray(shift, np.float32)), (x,), c.node)
    return x


# ---- pure data movement --------------------------------------------------------
def _transpose(c: _Ctx):
    rank = len(c.shape()) + 1
    perm = c.ints_attr("perm", list(range(rank))[::-1])
    if sorted(perm) != list(range(rank)):
        c.fail(f"perm {perm} is not a permutation of {rank} axes")
    if perm[0] != 0:
        c.fail(f"perm {perm} moves the batch dimension")
    perm = tuple(p - 1 for p in perm[1:])
    if perm == tuple(range(rank - 1)):
        return c.emit(ir.Identity())
    return c.emit(ir.Transpose(perm))


def _slice(c: _Ctx):
    shape = c.shape()
    rank = len(shape) + 1
    if "starts" in c.attrs:  # opset < 10
        starts, ends = c.ints_attr("starts"), c.ints_attr("ends")
        axes = c.ints_attr("axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = _int_list(c, c.const(1, "starts"), "starts")
        ends = _int_list(c, c.const(2, "ends"), "ends")
        ax = c.const(3, "axes", optional=True)
        axes = list(range(len(starts))) if ax is None else _int_list(c, ax, "axes")
        st = c.const(4, "steps", optional=True)
        steps = [1] * len(starts) if st is None else _int_list(c, st, "steps")
    if not len(starts) == len(ends) == len(axes) == len(steps):
        c.fail("starts, ends, axes and steps differ in length")
    if any(not -rank <= a < rank for a in axes) or 0 in steps:
        c.fail(f"axes {axes} / steps {steps} are out of range")
    axes = [a + rank if a < 0 else a for a in axes]
    if len(set(axes)) != len(axes):
        c.fail(f"axes {axes} repeat an axis")
    takes = []
    for a, s, e, k in zip(axes, starts, ends, steps):
        if a == 0:
            if k == 1 and s in (0, -(2 ** 63)) and e >= 2 ** 31 - 1:
                continue  # the whole batch
            _batch_axis_refused(c, [0], "slicing")
        dim = shape[a - 1]
        s, e = max(min(s, 2 ** 40), -(2 ** 40)), max(min(e, 2 ** 40), -(2 ** 40))
        takes.append((a - 1, np.arange(dim)[slice(s, e, k)]))
    return _movement(c, c.act(0), takes)


def _split(c: _Ctx):
    shape = c.shape()
    rank = len(shape) + 1
    axis = _axis(c, "axis", 0, rank)
    _batch_axis_refused(c, [axis], "splitting")
    dim, n = shape[axis - 1], len(c.node.output)
    sizes = c.ints_attr("split")
    if sizes is None and len(c.node.input) > 1 and c.node.input[1]:
        sizes = _int_list(c, c.const(1, "split"), "split")
    if sizes is None:
        k = c.int_attr("num_outputs", n, lo=1)
        chunk = -(-dim // k)
        sizes = [min(chunk, dim - chunk * i) for i in range(k)]
    if len(sizes) != n or sum(sizes) != dim or min(sizes) < 0:
        c.fail(f"split sizes {sizes} do not divide axis {axis} of size {dim} into {n} outputs")
    first, start = None, 0
    for j, (out, size) in enumerate(zip(c.node.output, sizes)):
        if size == 0:
            c.fail(f"output {j} would be empty")
        x = _movement(c, c.act(0), [(axis - 1, np.arange(start, start + size))], out_index=j)
        start += size
        if out:
            c.st.act[out] = x
        first = x if first is None else first
    return first


def _pad_indices(mode: str, dim: int, before: int, after: int) -> np.ndarray:
    i = np.arange(-before, dim + after)
    if mode == "edge":
        return np.clip(i, 0, dim - 1)
    if mode == "wrap":
        return np.mod(i, dim)
    period = 2 * (dim - 1)  # reflect: mirror without repeating the edge
    i = np.mod(np.abs(i), period) if period else np.zeros_like(i)
    return np.where(i >= dim, period - i, i)


def _pad_movement(c: _Ctx, mode: str, pads: list[int], axes: list[int]):
    shape = c.shape()
    takes = []
    for j, a in enumerate(axes):
        before, after = int(pads[j]), int(pads[j + len(axes)])
        if not (before or after):
            continue
        if a == 0:
            _batch_axis_refused(c, [0], "padding")
        dim = shape[a - 1]
        if mode == "reflect" and (before >= dim or after >= dim):
            c.fail(f"reflect padding of {before}/{after} needs more than {dim} values on axis {a}")
        if dim + before + after <= 0:
            c.fail(f"pads {pads} leave axis {a} empty")
        takes.append((a - 1, _pad_indices(mode, dim, before, after)))
    return _movement(c, c.act(0), takes)


def _pad_any(c: _Ctx):
    mode = c.str_attr("mode", "constant")
    if mode == "constant":
        return _pad(c)
    if mode not in ("reflect", "edge", "wrap"):
        c.fail(f"unknown mode '{mode}'")
    rank = len(c.shape()) + 1
    pads = c.ints_attr("pads")
    if pads is None:
        pads = _int_list(c, c.const(1, "pads"), "pads")
    ax = c.const(3, "axes", optional=True)
    axes = list(range(rank)) if ax is None else _int_list(c, ax, "axes")
    if any(not -rank <= a < rank for a in axes) or len(pads) != 2 * len(axes):
        c.fail(f"pads {pads} do not match axes {axes} of rank {rank}")
    return _pad_movement(c, mode, pads, [a + rank if a < 0 else a for a in axes])


# ---- nearest resize --------------------------------------------------------------
def _nearest_index(out_len: int, in_len: int, scale: float, ctm: str, nearest: str) -> np.ndarray:
    x = np.arange(out_len, dtype=np.float64)
    if ctm == "asymmetric":
        src = x / scale
    elif ctm == "align_corners":
        src = np.zeros_like(x) if out_len == 1 else x * (in_len - 1) / (out_len - 1)
    elif ctm == "pytorch_half_pixel":
        src = (x + 0.5) / scale - 0.5 if out_len > 1 else np.zeros_like(x)
    elif ctm == "tf_half_pixel_for_nn":
        src = (x + 0.5) / scale
    elif ctm == "half_pixel_symmetric":
        adjustment = out_len / (scale * in_len)
        src = in_len / 2 * (1 - adjustment) + (x + 0.5) / scale - 0.5
    else:  # half_pixel
        src = (x + 0.5) / scale - 0.5
    rounding = {"round_prefer_floor": lambda v: np.ceil(v - 0.5), "round_prefer_ceil": lambda v: np.floor(v + 0.5),
                "floor": np.floor, "ceil": np.ceil}[nearest]
    return np.clip(rounding(src), 0, in_len - 1).astype(np.int64)


def _resize_takes(c: _Ctx, scales, sizes, ctm: str, nearest: str):
    shape = (1,) + tuple(c.shape())
    if scales is not None and len(scales) != len(shape) or sizes is not None and len(sizes) != len(shape):
        c.fail(f"scales / sizes do not have one entry per axis of the rank-{len(shape)} input")
    takes = []
    for a, dim in enumerate(shape):
        if sizes is not None:
            out = int(sizes[a])
            scale = out / dim
        else:
            scale = float(scales[a])
            if not (math.isfinite(scale) and scale > 0):
                c.fail(f"scale {scale} on axis {a} must be positive")
            out = int(math.floor(dim * scale))
        if a == 0:
            if out != dim:
                c.fail("resizing the batch dimension is not supported")
            continue
        if out < 1 or out > 2 ** 24:
            c.fail(f"output size {out} on axis {a} is out of range")
        takes.append((a - 1, _nearest_index(out, dim, scale, ctm, nearest)))
    return _movement(c, c.act(0), takes)


def _resize(c: _Ctx):
    mode = c.str_attr("mode", "nearest")
    if mode != "nearest":
        c.fail(f"mode '{mode}' is not supported (only nearest resizing is an exact data movement)")
    if c.int_attr("antialias", 0) or c.attrs.get("axes") is not None:
        c.fail("antialias / axes are not supported")
    if c.str_attr("keep_aspect_ratio_policy", "stretch") != "stretch":
        c.fail("keep_aspect_ratio_policy other than 'stretch' is not supported")
    opset = next((o.version for o in c.st.opsets if o.domain in ("", "ai.onnx")), 13)
    if opset < 11:  # Resize-10: scales is input 1, asymmetric coordinates, floor
        scales = c.const(1, "scales").astype(np.float64).reshape(-1)
        return _resize_takes(c, scales, None, "asymmetric", "floor")
    ctm = c.str_attr("coordinate_transformation_mode", "half_pixel")
    if ctm == "tf_crop_and_resize":
        c.fail("coordinate_transformation_mode 'tf_crop_and_resize' is not supported")
    nearest = c.str_attr("nearest_mode", "round_prefer_floor")
    if nearest not in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"):
        c.fail(f"unknown nearest_mode '{nearest}'")
    scales = c.const(2, "scales", optional=True)
    sizes = c.const(3, "sizes", optional=True)
    scales = None if scales is None or scales.size == 0 else scales.astype(np.float64).reshape(-1)
    sizes = None if sizes is None or sizes.size == 0 else _int_list(c, sizes, "sizes")
    if (scales is None) == (sizes is None):
        c.fail("exactly one of scales and sizes must be given")
    return _resize_takes(c, scales, sizes, ctm, nearest)


def _upsample(c: _Ctx):
    mode = c.str_attr("mode", "nearest")
    if mode != "nearest":
        c.fail(f"mode '{mode}' is not supported (only nearest upsampling is an exact data movement)")
    scales = c.attrs.get("scales")
    scales = (np.asarray(scales, np.float64) if scales is not None
              else c.const(1, "scales").astype(np.float64).reshape(-1))
    return _resize_takes(c, scales, None, "asymmetric", "floor")


# ---- transposed convolution ------------------------------------------------------
def _conv_transpose(c: _Ctx):
    c_in, h, w_in = _spatial(c)
    w = c.const(1, "weight").astype(np.float32)
    groups = c.int_attr("group", 1, lo=1)
    if w.ndim != 4 or w.shape[0] != c_in or c_in % groups:
        c.fail(f"weight of shape {w.shape} with group={groups} does not fit {c_in} input channels")
    c_out = w.shape[1] * groups
    b = c.const(2, "bias", optional=True)
    b = np.zeros(c_out, np.float32) if b is None else _vector(c, b, c_out, "bias")
    stride, dilation = _pair(c, "strides"), _pair(c, "dilations")
    out_pad = tuple(c.ints_attr("output_padding", [0, 0], length=2, lo=0))
    full = [s * (n - 1) + op + (k - 1) * d + 1
            for n, s, op, k, d in zip((h, w_in), stride, out_pad, w.shape[2:], dilation)]
    mode = c.str_attr("auto_pad", "NOTSET")
    target = c.ints_attr("output_shape")
    if target is not None:
        target = list(target)[-2:]
    elif mode in ("SAME_UPPER", "SAME_LOWER"):
        target = [n * s for n, s in zip((h, w_in), stride)]
    if target is not None:
        total = [f - t for f, t in zip(full, target)]
        if min(total) < 0:
            c.fail(f"output_shape {target} is larger than the full transposed convolution {full}")
        upper = mode == "SAME_UPPER"
        begin = [t // 2 if upper else t - t // 2 for t in total]
        pads = (begin[0], begin[1], total[0] - begin[0], total[1] - begin[1])
    elif mode == "VALID" or mode not in ("NOTSET", ""):
        pads = (0, 0, 0, 0) if mode == "VALID" else c.fail(f"unknown auto_pad '{mode}'")
    else:
        pads = _auto_pad(c, (h, w_in), w.shape[2:], stride, dilation)
    return c.emit(ir.ConvTranspose2d(w, b, stride, tuple(pads), out_pad, dilation, groups))


# ---- output heads ------------------------------------------------------------------
def _softmax(c: _Ctx):
    op = c.node.op_type
    if c.node.output[0] != c.st.head:
        c.fail(REFUSED_WHY[op])
    shape = c.shape()
    opset = next((o.version for o in c.st.opsets if o.domain in ("", "ai.onnx")), 13)
    axis = _axis(c, "axis", -1 if opset >= 13 else 1, len(shape) + 1)
    # opset < 13 flattens from `axis` on; opset >= 13 works on one axis: either way it must span the classes
    over_classes = (math.prod(shape) == shape[axis - 1] if opset >= 13 else math.prod(shape[:axis - 1]) == 1)
    if axis == 0 or not over_classes:
        c.fail(f"the output head's {op} over axis {axis} of per-sample shape {shape} is not over the classes")
    c.st.dropped_head = f"{c.name} ({op})"
    return c.act(0)


def _refused(c: _Ctx):
    c.fail(REFUSED_WHY[c.node.op_type])


CONVERT = {
    "Sum": _sum, "Mean": lambda c: _sum(c, mean=True), "Transpose": _transpose, "Slice": _slice,
    "Split": _split, "Pad": _pad_any, "Resize": _resize, "Upsample": _upsample,
    "ConvTranspose": _conv_transpose, "Softmax": _softmax, "LogSoftmax": _softmax,
    **{op: _refused for op in REFUSED_WHY if op not in ("Softmax", "LogSoftmax")},
}
