"""The float reference interpreter: runs an IR graph with torch (on the CPU,
or the device adacal.device.using chose).

The same op functions run on torch's 'meta' device to infer output shapes, so
there is one definition of every op's semantics.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from adacal import ir
from adacal.device import to_device
from adacal.walker import walk


def _t(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a), dtype=like.dtype, device=like.device)


def _pad(x: torch.Tensor, pads: ir.Pads, value: float = 0.0) -> torch.Tensor:
    top, left, bottom, right = pads
    if not any(pads):
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


def _conv(op: ir.Conv2d, x):
    x = _pad(x, op.padding)
    return F.conv2d(x, _t(op.weight, x), _t(op.bias, x), op.stride, 0, op.dilation, op.groups)


def _dense(op: ir.Dense, x):
    return F.linear(x, _t(op.weight, x), _t(op.bias, x))


def _bn(op: ir.BatchNorm, x):
    scale, shift = op.scale_shift()
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return x * _t(scale, x).reshape(shape) + _t(shift, x).reshape(shape)


def _affine(op: ir.Affine, x):
    return x * _t(op.scale, x) + _t(op.shift, x)


def _relu(op: ir.Relu, x):
    y = F.relu(x)
    return y if op.cap is None else torch.clamp(y, max=op.cap)


def channel_view(a: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    """A per-channel vector shaped to broadcast over a batched tensor x."""
    return _t(a, x).reshape((-1,) + (1,) * (x.dim() - 2))


def _burst_rate_limit(op: ir.BurstNeuron, x):
    # the T -> infinity limit of the burst neuron: a ReLU clipped at max_spikes * threshold
    # (signed neurons: clipped at -max_spikes * threshold below instead of 0)
    top = channel_view(op.threshold, x) * op.max_spikes
    v = x + channel_view(op.bias, x)
    return torch.clamp(v, -top, top) if op.signed else torch.minimum(F.relu(v), top)


def _clip(op: ir.Clip, x):
    return torch.clamp(x, min=op.lo, max=op.hi)


def _avgpool(op: ir.AvgPool, x):
    kw = dict(kernel_size=op.kernel, stride=op.stride, ceil_mode=op.ceil_mode)
    if not any(op.padding):
        return F.avg_pool2d(x, **kw)
    xp = _pad(x, op.padding)
    total = F.avg_pool2d(xp, **kw)
    if op.count_include_pad:
        return total
    ones = _pad(torch.ones_like(x[:1, :1]), op.padding)
    return total / F.avg_pool2d(ones, **kw)


def _maxpool(op: ir.MaxPool, x):
    x = _pad(x, op.padding, value=float("-inf"))
    return F.max_pool2d(x, op.kernel, op.stride, 0, op.dilation, ceil_mode=op.ceil_mode)


def _take(op: ir.Take, x):
    idx = torch.as_tensor(np.ascontiguousarray(op.indices, np.int64), device=x.device)
    return torch.index_select(x, op.axis + 1, idx)


def _conv_transpose(op: ir.ConvTranspose2d, x):
    # the full transposed convolution, zeros appended (output_padding), then cropped by the pads
    y = F.conv_transpose2d(x, _t(op.weight, x), None, op.stride, 0, 0, op.groups, op.dilation)
    oh, ow = op.output_padding
    if oh or ow:
        y = F.pad(y, (0, ow, 0, oh))
    top, left, bottom, right = op.padding
    y = y[:, :, top:y.shape[2] - bottom, left:y.shape[3] - right]
    return y + channel_view(op.bias, y)


_RUN = {
    ir.Conv2d: lambda op, xs: _conv(op, xs[0]),
    ir.Dense: lambda op, xs: _dense(op, xs[0]),
    ir.BatchNorm: lambda op, xs: _bn(op, xs[0]),
    ir.Affine: lambda op, xs: _affine(op, xs[0]),
    ir.Relu: lambda op, xs: _relu(op, xs[0]),
    ir.Clip: lambda op, xs: _clip(op, xs[0]),
    ir.BurstNeuron: lambda op, xs: _burst_rate_limit(op, xs[0]),
    ir.Pad: lambda op, xs: _pad(xs[0], op.pads, op.value),
    ir.AvgPool: lambda op, xs: _avgpool(op, xs[0]),
    ir.GlobalAvgPool: lambda op, xs: xs[0].mean(dim=(2, 3), keepdim=True),
    ir.GlobalMaxPool: lambda op, xs: xs[0].amax(dim=(2, 3), keepdim=True),
    ir.MaxPool: lambda op, xs: _maxpool(op, xs[0]),
    ir.Add: lambda op, xs: sum(xs[1:], xs[0]),
    ir.Concat: lambda op, xs: torch.cat(xs, dim=op.axis + 1),
    ir.Flatten: lambda op, xs: xs[0].reshape(xs[0].shape[0], -1),
    ir.Reshape: lambda op, xs: xs[0].reshape((xs[0].shape[0],) + tuple(op.shape)),
    ir.Identity: lambda op, xs: xs[0],
    ir.Relay: lambda op, xs: xs[0],
    ir.SpikingMaxPool: lambda op, xs: apply_op(op.pool, xs),
    ir.Transpose: lambda op, xs: xs[0].permute((0,) + tuple(a + 1 for a in op.perm)),
    ir.Take: lambda op, xs: _take(op, xs[0]),
    ir.ConvTranspose2d: lambda op, xs: _conv_transpose(op, xs[0]),
}


def apply_op(op, inputs: list[torch.Tensor]) -> torch.Tensor:
    """Run one op on batched torch tensors."""
    return _RUN[type(op)](op, inputs)


def _check_params(op, in_shapes: list[ir.Shape]) -> None:
    """Parameter shapes the meta device does not check (a conv's bias, a batch
    norm's vectors, ...): raise ValueError naming what does not fit."""
    x = tuple(in_shapes[0]) if in_shapes else ()
    if isinstance(op, (ir.Conv2d, ir.Dense)):
        w, b = np.asarray(op.weight), np.asarray(op.bias)
        if w.ndim != (4 if isinstance(op, ir.Conv2d) else 2):
            raise ValueError(f"weight has shape {w.shape}")
        if b.shape != (w.shape[0],):
            raise ValueError(f"bias of shape {b.shape} does not match {w.shape[0]} output channels")
        if isinstance(op, ir.Dense) and x != (w.shape[1],):
            raise ValueError(f"weight of shape {w.shape} does not fit input shape {x}")
        if isinstance(op, ir.Conv2d):
            g = int(op.groups)
            if g < 1 or len(x) != 3 or w.shape[1] * g != x[0] or w.shape[0] % g:
                raise ValueError(f"weight of shape {w.shape} with groups={g} does not fit input shape {x}")
            if min(op.stride) < 1 or min(op.dilation) < 1 or min(op.padding) < 0:
                raise ValueError(f"stride {op.stride}, dilation {op.dilation}, padding {op.padding}")
    elif isinstance(op, ir.BatchNorm):
        for name in ("gamma", "beta", "mean", "var"):
            if np.asarray(getattr(op, name)).shape != (x[0],):
                raise ValueError(f"{name} has shape {np.asarray(getattr(op, name)).shape}, expected ({x[0]},)")
    elif isinstance(op, ir.Affine):
        for name in ("scale", "shift"):
            if np.broadcast_shapes(np.shape(getattr(op, name)), x) != x:
                raise ValueError(f"{name} of shape {np.shape(getattr(op, name))} does not broadcast to {x}")
    elif isinstance(op, (ir.AvgPool, ir.MaxPool)):
        if min(op.kernel) < 1 or min(op.stride) < 1 or min(op.padding) < 0:
            raise ValueError(f"kernel {op.kernel}, stride {op.stride}, padding {op.padding}")
    elif isinstance(op, ir.Pad):
        if min(op.pads) < 0:
            raise ValueError(f"negative pads {op.pads}")
    elif isinstance(op, ir.Take):
        idx = np.asarray(op.indices)
        if not 0 <= op.axis < len(x) or idx.ndim != 1 or idx.dtype.kind not in "iu" or (
                idx.size and (idx.min() < 0 or idx.max() >= x[op.axis])):
            raise ValueError(f"indices along axis {op.axis} do not fit input shape {x}")
    elif isinstance(op, ir.Transpose):
        if sorted(op.perm) != list(range(len(x))):
            raise ValueError(f"perm {op.perm} does not fit input shape {x}")
    elif isinstance(op, ir.ConvTranspose2d):
        w, b, g = np.asarray(op.weight), np.asarray(op.bias), int(op.groups)
        if w.ndim != 4 or len(x) != 3 or g < 1 or w.shape[0] != x[0] or w.shape[0] % g \
                or b.shape != (w.shape[1] * g,) or min(op.padding) < 0 or min(op.output_padding) < 0:
            raise ValueError(f"weight {w.shape}, bias {b.shape}, groups {g} do not fit input shape {x}")


def infer_shape(op, in_shapes: list[ir.Shape]) -> ir.Shape:
    """Per-sample output shape of op, computed on torch's meta device (after
    checking the parameter shapes the meta device does not)."""
    _check_params(op, in_shapes)
    xs = [torch.empty((1,) + tuple(s), device="meta") for s in in_shapes]
    return tuple(int(d) for d in apply_op(op, xs).shape[1:])


@torch.no_grad()
def _run_batch(graph: ir.Graph, x: torch.Tensor, keep: tuple[str, ...]) -> dict[str, torch.Tensor]:
    live = walk(graph, {graph.input.name: x}, lambda node, xs: apply_op(node.op, xs), keep=keep)
    return {k: live[k] for k in (*keep, graph.output) if k in live}


def run_graph(graph: ir.Graph, x: np.ndarray, keep: tuple[str, ...] | None = None,
              batch_size: int = 256):
    """Run the float graph on x (N, *input_shape).

    Returns the output array, or with `keep` a dict name -> array of those nodes.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.shape[1:] != tuple(graph.input_shape):
        from adacal.errors import AdacalError
        raise AdacalError(f"input has per-sample shape {x.shape[1:]}, the model expects "
                          f"{tuple(graph.input_shape)}")
    names = tuple(keep) if keep is not None else ()
    chunks: dict[str, list[np.ndarray]] = {}
    for start in range(0, max(len(x), 1), batch_size):
        res = _run_batch(graph, to_device(torch.from_numpy(x[start:start + batch_size])), names)
        for k, v in res.items():
            chunks.setdefault(k, []).append(v.cpu().numpy())
    joined = {k: np.concatenate(v) for k, v in chunks.items()}
    return joined if keep is not None else joined[graph.output]
