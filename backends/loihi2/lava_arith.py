"""Lava's Conv layout conversions, and Lava's fixed-point arithmetic (lava-nc
0.10.0) re-exported under Lava's names from runtime_sim/loihi2_arith.py.

Pure numpy, no Lava import.  Each function cites the vendor file it
reproduces (paths relative to site-packages/lava/); the rules are listed in
docs/loihi2.md, "Lava quirks", and tests/test_loihi2_lava.py checks them
against the vendor functions and real Lava runs.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "CONV_WRAP_BITS",
    "sign_mode",
    "lava_dense_weights",
    "dense_shift",
    "wrap_signed",
    "conv_weight_to_lava",
    "conv_weight_from_lava",
    "conv_params_to_lava",
    "chw_to_whc",
    "whc_to_chw",
    "lava_conv_reference",
]

# The arithmetic the integer simulator shares lives in runtime_sim (runtime_sim
# never imports a backend); re-exported here under Lava's names.
from adacal.runtime_sim.loihi2_arith import (EXCITATORY, INHIBITORY, MIXED, WRAP_BITS_CONV as CONV_WRAP_BITS,  # noqa: E402,F401
                                             dense_weights as lava_dense_weights, shift_sum as dense_shift,
                                             sign_mode, wrap as wrap_signed)


def conv_weight_to_lava(weight: np.ndarray) -> np.ndarray:
    """PyTorch cross-correlation weight (C_out, C_in/g, kH, kW) -> Lava Conv
    weight (C_out, kW, kH, C_in/g) for the same result: Lava convolves
    (scipy.signal.convolve2d flips the kernel, proc/conv/utils.py line 290) on
    (W, H, C) inputs, so the spatial axes are flipped and reordered
    (the inverse of what proc/conv/utils.py conv_to_sparse does for NCHW,
    line 401)."""
    w = np.asarray(weight)
    if w.ndim != 4:
        raise ValueError(f"conv weight must be 4-D (C_out, C_in/g, kH, kW), got {w.shape}")
    return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))


def conv_weight_from_lava(weight: np.ndarray) -> np.ndarray:
    """Inverse of conv_weight_to_lava."""
    w = np.asarray(weight)
    return np.ascontiguousarray(w.transpose(0, 3, 2, 1)[:, :, ::-1, ::-1])


def conv_params_to_lava(stride, padding, dilation, name: str = "conv"):
    """(stride (sH, sW), padding (top, left, bottom, right), dilation (dH, dW))
    -> Lava's (X, Y) = (W, H) order: (sW, sH), (pW, pH), (dW, dH).

    Lava pads symmetrically per axis (proc/conv/utils.py lines 268-272): an
    asymmetric padding raises ValueError naming ``name``."""
    top, left, bottom, right = (int(p) for p in padding)
    if top != bottom or left != right:
        raise ValueError(
            f"{name}: asymmetric padding (top, left, bottom, right) = {tuple(padding)} "
            "is not supported by Lava's Conv (symmetric padding per axis only); "
            "fold it into a symmetric padding or pad the input explicitly")
    s_h, s_w = (int(s) for s in stride)
    d_h, d_w = (int(d) for d in dilation)
    return (s_w, s_h), (left, top), (d_w, d_h)


def chw_to_whc(a: np.ndarray) -> np.ndarray:
    """(..., C, H, W) -> (..., W, H, C): PyTorch layout to Lava's (X, Y, Z)."""
    a = np.asarray(a)
    return np.swapaxes(a, -1, -3)


def whc_to_chw(a: np.ndarray) -> np.ndarray:
    """(..., W, H, C) -> (..., C, H, W)."""
    a = np.asarray(a)
    return np.swapaxes(a, -1, -3)


def lava_conv_reference(x_chw: np.ndarray, weight: np.ndarray, stride=(1, 1),
                        padding=(0, 0, 0, 0), dilation=(1, 1), groups: int = 1,
                        wrap_bits: int | None = CONV_WRAP_BITS) -> np.ndarray:
    """Integer cross-correlation of one (C, H, W) sample with a PyTorch-layout
    weight, then (optionally) the 24-bit wrap of PyConvModelFixed.  Plain
    numpy, int64, any (also asymmetric) padding; a reference, not fast."""
    x = np.asarray(x_chw, dtype=np.int64)
    w = np.asarray(weight, dtype=np.int64)
    c_in, h, wd = x.shape
    c_out, cg, kh, kw = w.shape
    top, left, bottom, right = padding
    xp = np.zeros((c_in, h + top + bottom, wd + left + right), np.int64)
    xp[:, top:top + h, left:left + wd] = x
    (sh, sw), (dh, dw) = stride, dilation
    ho = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + left + right - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((c_out, ho, wo), np.int64)
    og = c_out // groups
    for o in range(c_out):
        g = o // og
        for i in range(kh):
            for j in range(kw):
                patch = xp[g * cg:(g + 1) * cg,
                           i * dh:i * dh + sh * (ho - 1) + 1:sh,
                           j * dw:j * dw + sw * (wo - 1) + 1:sw]
                out[o] += np.tensordot(w[o, :, i, j], patch, axes=1)
    return out if wrap_bits is None else wrap_signed(out, wrap_bits)
