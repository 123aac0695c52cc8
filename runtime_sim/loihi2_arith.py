"""Loihi 2 arithmetic as Lava's bit-accurate models compute it (lava-nc 0.10.0).
The integer simulator and the Lava backend both use these functions, so the
vendor rules live in one place; each cites the vendor file it reproduces.
"""
from __future__ import annotations

import numpy as np

WRAP_BITS_CONV = 24


def sign_mode(w: np.ndarray) -> str:
    """lava/utils/weightutils.py determine_sign_mode."""
    if np.min(w) >= 0:
        return "excitatory"
    if np.max(w) <= 0:
        return "inhibitory"
    return "mixed"


def dense_weights(weight: np.ndarray, num_weight_bits: int = 8) -> np.ndarray:
    """The weights PyDenseModelBitAcc really multiplies with
    (lava/proc/dense/models.py run_spk -> lava/utils/weightutils.py
    clip_weights(num_bits=8) then truncate_weights(num_weight_bits)):
    clip by sign mode (mixed [-256, 255], excitatory [0, 255], inhibitory
    [-255, 0]), then drop 8 - num_weight_bits (+1 if mixed) LSBs with an
    arithmetic shift (a floor: -7 -> -8 for mixed 8-bit)."""
    w = np.asarray(weight).astype(np.int64)
    mode = sign_mode(w)
    neg = mode == "inhibitory"
    if neg:
        w = -w
    mixed = int(mode == "mixed")
    w = np.clip(w, -(2 ** 8) * mixed, 2 ** 8 - 1)
    drop = 8 - num_weight_bits + mixed
    w = (w >> drop) << drop
    return -w if neg else w


def shift_sum(a: np.ndarray, weight_exp: int) -> np.ndarray:
    """Dense's exponent on the accumulated sum: a << e, or a >> -e (floor)."""
    return a << weight_exp if weight_exp >= 0 else a >> (-weight_exp)


def wrap(a: np.ndarray, bits: int = WRAP_BITS_CONV) -> np.ndarray:
    """Two's-complement wrap to `bits` (lava/proc/conv/models.py
    PyConvModelFixed: the float64 result is cast to int32 and wrapped to 24 bits)."""
    half = 1 << (bits - 1)
    return ((a + half) & ((1 << bits) - 1)) - half


def burst_step(v: np.ndarray, drive: np.ndarray, threshold: np.ndarray, max_spikes: int):
    """adacal's BurstIF neuron, one step, in place on v (int64):
    v += drive; k = clamp(floor(v / threshold), 0, max_spikes); v -= k * threshold."""
    v += drive
    k = np.clip(np.floor_divide(v, threshold), 0, max_spikes)
    v -= k * threshold
    return k
