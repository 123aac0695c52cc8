"""Max pooling of spike payloads over time: the realisations, in one place
for the float simulator, the integer simulator and Loihi 2's max-pool process
(docs/method.md, "Max pooling").

A max pool is not linear in time: the max of the spike sums is not the sum of
per-step maxima.  Per output unit, over the inputs j of its window, with
p_j(t) the payload a unit receives at step t and S_j(t) = Σ_{u≤t} p_j(u):

  step     out(t) = max_j p_j(t)                 (max of each step's payloads)
  gated    out(t) = p_J(t), J = argmax_j S_j(t)  (the input with the largest
                                                  count so far passes; ties go to
                                                  the first in the window)
  running  out(t) = M(t) − M(t−1), M(t) = max_j S_j(t), M(0) = 0
                                                 (the running max of the counts:
                                                  Σ_t out = max_j S_j(T) exactly)

On an input that is constant in time every realisation is the max itself.
`running` never sends more than one input would: M(t) − M(t−1) ≤ p_J(t) with
J the argmax at t, so its payloads stay within the burst cap and are whole
multiples of the channel's threshold when the inputs are.

The window arithmetic (`window_max`, `window_argmax`, `gather`) works on numpy
arrays of any dtype with the map on the last two axes; ties resolve to the
first window position (numpy's argmax), the same in every engine.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REALISATIONS = ("step", "gated", "running")


@dataclass(frozen=True)
class PoolGeometry:
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False

    @classmethod
    def of(cls, op, in_hw: tuple[int, int]) -> "PoolGeometry":
        """The geometry of an ir.MaxPool, or of an ir.GlobalMaxPool over an
        (H, W) map (one window covering it)."""
        if hasattr(op, "kernel"):
            return cls(tuple(op.kernel), tuple(op.stride), tuple(op.padding), tuple(op.dilation), bool(op.ceil_mode))
        return cls(tuple(int(s) for s in in_hw), (1, 1))

    def out_size(self, in_hw: tuple[int, int]) -> tuple[int, int]:
        """Output (H, W), with PyTorch's / ONNX's ceil_mode rule (a window
        must start inside the input or its leading padding)."""
        out = []
        for n, k, s, p0, p1, d in zip(in_hw, self.kernel, self.stride, self.padding[:2], self.padding[2:],
                                      self.dilation):
            span = n + p0 + p1 - d * (k - 1) - 1
            o = (-(-span // s) if self.ceil_mode else span // s) + 1
            if self.ceil_mode and (o - 1) * s >= n + p0:
                o -= 1
            out.append(int(o))
        return out[0], out[1]


def _sentinel(dtype) -> float | int:
    return -np.inf if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).min


def _taps(x: np.ndarray, geo: PoolGeometry) -> list[np.ndarray]:
    """The K = kH·kW window entries of every output position, one (..., Ho,
    Wo) view per kernel tap (row-major); padding reads as the dtype's lowest
    value, never a max.  Views of one padded copy: memory stays O(input)."""
    h, w = x.shape[-2:]
    ho, wo = geo.out_size((h, w))
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel, geo.stride, geo.dilation
    top, left = geo.padding[:2]
    need_h = (ho - 1) * sh + dh * (kh - 1) + 1
    need_w = (wo - 1) * sw + dw * (kw - 1) + 1
    if (top, left) == (0, 0) and need_h <= h and need_w <= w:
        xp = x
    else:
        xp = np.full(x.shape[:-2] + (max(need_h, top + h), max(need_w, left + w)), _sentinel(x.dtype), x.dtype)
        xp[..., top:top + h, left:left + w] = x
    return [xp[..., i * dh: i * dh + (ho - 1) * sh + 1: sh, j * dw: j * dw + (wo - 1) * sw + 1: sw]
            for i in range(kh) for j in range(kw)]


def window_max(x: np.ndarray, geo: PoolGeometry) -> np.ndarray:
    taps = _taps(x, geo)
    out = taps[0].copy()
    for t in taps[1:]:
        np.maximum(out, t, out=out)
    return out


def window_argmax(x: np.ndarray, geo: PoolGeometry) -> np.ndarray:
    """Index (into the K window entries) of each window's first maximum."""
    taps = _taps(x, geo)
    best, idx = taps[0].copy(), np.zeros(taps[0].shape, np.int64)
    for k, t in enumerate(taps[1:], 1):
        better = t > best  # strictly: ties keep the first
        best[better] = t[better]
        idx[better] = k
    return idx


def gather(x: np.ndarray, idx: np.ndarray, geo: PoolGeometry) -> np.ndarray:
    """The window entry idx (from window_argmax) of every output position."""
    taps = _taps(x, geo)
    out = np.zeros(taps[0].shape, x.dtype)
    for k, t in enumerate(taps):
        np.copyto(out, t, where=idx == k)
    return out


def run(x: np.ndarray, geo: PoolGeometry, how: str) -> np.ndarray:
    """Payloads x (T', N, C, H, W) -> output payloads (T', N, C, Ho, Wo).

    T' = 1 means the input is constant in time, where every realisation is
    the plain max.  Sums are taken in float64 for float payloads (exact for
    integer payloads in any dtype that holds them)."""
    if how not in REALISATIONS:
        raise ValueError(f"unknown max-pool realisation '{how}' (use {', '.join(REALISATIONS)})")
    if x.shape[0] == 1 or how == "step":
        return window_max(x, geo)
    acc = np.float64 if np.issubdtype(x.dtype, np.floating) else x.dtype
    s = np.cumsum(x, axis=0, dtype=acc)
    if how == "gated":
        return gather(x, window_argmax(s, geo), geo)
    m = window_max(s, geo)
    out = np.diff(m, axis=0, prepend=np.zeros((1,) + m.shape[1:], m.dtype))
    return out.astype(x.dtype)


class Stream:
    """The same realisations one step at a time (a hardware process's view):
    `step(p)` takes one step's payloads (..., H, W) and returns the output."""

    def __init__(self, geo: PoolGeometry, how: str, in_shape: tuple[int, ...], dtype=np.int64):
        if how not in REALISATIONS:
            raise ValueError(f"unknown max-pool realisation '{how}' (use {', '.join(REALISATIONS)})")
        self.geo, self.how = geo, how
        self.sums = np.zeros(in_shape, dtype)
        self.level = np.zeros(in_shape[:-2] + geo.out_size(in_shape[-2:]), dtype)

    def reset(self) -> None:
        self.sums[...] = 0
        self.level[...] = 0

    def step(self, p: np.ndarray) -> np.ndarray:
        if self.how == "step":
            return window_max(p, self.geo)
        self.sums += p
        if self.how == "gated":
            return gather(p, window_argmax(self.sums, self.geo), self.geo)
        m = window_max(self.sums, self.geo)
        out = m - self.level
        self.level[...] = m
        return out
