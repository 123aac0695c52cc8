"""Loihi 2 arithmetic as Lava's bit-accurate models compute it (lava-nc 0.10.0).
The integer simulator and the Lava backend both use these functions, so the
vendor rules live in one place; each cites the vendor file it reproduces.
"""
from __future__ import annotations

import numpy as np

WRAP_BITS_CONV = 24


MIXED, EXCITATORY, INHIBITORY = "mixed", "excitatory", "inhibitory"


def sign_mode(weight: np.ndarray) -> str:
    """lava/utils/weightutils.py determine_sign_mode (lines 21-43):
    'excitatory' if min >= 0 (so also all-zero), 'inhibitory' if max <= 0,
    else 'mixed'."""
    w = np.asarray(weight)
    if np.min(w) >= 0:
        return EXCITATORY
    if np.max(w) <= 0:
        return INHIBITORY
    return MIXED


def dense_weights(weight: np.ndarray, num_weight_bits: int = 8, mode: str | None = None) -> np.ndarray:
    """The weights Lava's PyDenseModelBitAcc really multiplies with (int64).

    lava/proc/dense/models.py lines 82-91: ``clip_weights(w, sign_mode, num_bits=8)``
    then ``truncate_weights(w, sign_mode, num_weight_bits)``, where
    lava/utils/weightutils.py
    * clip_weights (lines 275-295): inhibitory weights are negated first, then
      clipped to [-256 * mixed, 255] and negated back -- mixed [-256, 255],
      excitatory [0, 255], inhibitory [-255, 0];
    * truncate_weights (lines 230-247): (w >> n) << n with
      n = 8 - num_weight_bits + mixed, on the negated weights for inhibitory
      -- so with mixed signs and 8 bits every odd weight goes DOWN by one
      (floor: 7 -> 6, -7 -> -8).
    ``mode`` is Lava's sign_mode proc param; None = determine_sign_mode of this
    very matrix, as Lava does.
    """
    w = np.asarray(weight).astype(np.int64)
    if w.size == 0:
        return w
    mode = sign_mode(w) if mode is None else mode
    if mode not in (MIXED, EXCITATORY, INHIBITORY):
        raise ValueError(f"unknown sign mode {mode!r}")
    n = 8 - int(num_weight_bits) + (mode == MIXED)
    if n < 0:
        raise ValueError(f"num_weight_bits={num_weight_bits} > 8 (+mixed) is not supported by Lava")
    neg = mode == INHIBITORY
    if neg:
        w = -w
    w = np.clip(w, -256 if mode == MIXED else 0, 255)
    w = (w >> n) << n
    return -w if neg else w


def shift_sum(a: np.ndarray, weight_exp: int) -> np.ndarray:
    """Dense's exponent on the accumulated sum (lava/proc/dense/models.py lines
    103-107): a << e for e > 0, else a >> -e (arithmetic: floor)."""
    a = np.asarray(a, dtype=np.int64)
    e = int(weight_exp)
    return np.left_shift(a, e) if e > 0 else np.right_shift(a, -e)


def wrap(a: np.ndarray, bits: int = WRAP_BITS_CONV) -> np.ndarray:
    """lava/proc/conv/utils.py signed_clamp (lines 67-84): the two's-complement
    wrap to `bits` bits, in int64.  Lava computes it in int32 after casting the
    float64 convolution to int32 (utils.py line 218), so it equals this only
    while |a| < 2**31 - 2**23."""
    a = np.asarray(a, dtype=np.int64)
    half = 1 << (bits - 1)
    return ((a + half) & ((1 << bits) - 1)) - half


def burst_step(v: np.ndarray, drive: np.ndarray, threshold: np.ndarray, max_spikes: int, signed: bool = False,
               sent: np.ndarray | None = None):
    """adacal's BurstIF neuron, one step, in place on v (int64):
    v += drive; k = clamp(floor(v / threshold), lo, max_spikes); v -= k * threshold,
    lo = -max_spikes for a signed neuron, else 0; for a memory neuron
    (sent given: its spikes so far, updated in place) lo = max(-sent, -max_spikes)."""
    v += drive
    lo = np.maximum(-sent, -max_spikes) if sent is not None else (-max_spikes if signed else 0)
    k = np.clip(np.floor_divide(v, threshold), lo, max_spikes)
    v -= k * threshold
    if sent is not None:
        sent += k
    return k
