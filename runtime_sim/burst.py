"""The burst integrate-and-fire step loop, shared by the float and the
integer simulators (they differ only in dtype and in what θ means).

Per step: v += drive_t; k = clamp(floor(v / θ), 0, φ); v -= k·θ (signed
neurons clamp k to [−φ, φ]; memory neurons to [max(−sent, −φ), φ], sent
being their spikes so far: they take back what they sent, never more).
The loop runs in numpy with in-place ops: on these elementwise loops it is
several times faster than torch on this CPU.
"""
from __future__ import annotations

import numpy as np


def burst_loop(drive: np.ndarray, v: np.ndarray, theta: np.ndarray, max_spikes: int, T: int,
               signed: bool = False, memory: bool = False) -> np.ndarray:
    """drive (T' ∈ {1, T}, N, ...) input plus bias per step; v (N, ...) start
    potential, updated in place; theta broadcastable per channel.  Signed
    neurons clamp k to [-max_spikes, max_spikes], memory neurons to
    [max(-sent, -max_spikes), max_spikes].
    Returns k (T, N, ...) in v's dtype."""
    lo = -max_spikes if signed else 0
    k = np.empty((T,) + v.shape, v.dtype)
    tmp = np.empty_like(v)
    sent = np.zeros_like(v) if memory else None
    static = drive.shape[0] == 1
    for t in range(T):
        v += drive[0] if static else drive[t]
        kt = k[t]
        np.divide(v, theta, out=kt)
        np.floor(kt, out=kt)
        if memory:
            np.negative(sent, out=tmp)
            np.maximum(tmp, -max_spikes, out=tmp)
            np.maximum(kt, tmp, out=kt)
            np.minimum(kt, max_spikes, out=kt)
            sent += kt
        else:
            np.clip(kt, lo, max_spikes, out=kt)
        np.multiply(kt, theta, out=tmp)
        v -= tmp
    return k


def counts(k: np.ndarray, fanout: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per step and sample: spikes Σk, events #(k>0) and, with a fan-out map,
    synops Σ k·fan-out and event_synops Σ [k>0]·fan-out, as (T, N) float64."""
    flat = k.reshape(k.shape[0], k.shape[1], -1)
    if flat.size and flat.min() < 0:  # signed neurons: a burst of -k is k spikes
        flat = np.abs(flat)
    out = {"spikes": flat.sum(axis=2, dtype=np.float64),
           "events": np.count_nonzero(flat, axis=2).astype(np.float64)}
    if fanout is not None:
        fan = np.asarray(fanout, flat.dtype).reshape(-1)
        out["synops"] = (flat @ fan).astype(np.float64)
        out["event_synops"] = (np.minimum(flat, 1) @ fan).astype(np.float64)  # k >= 0: min(k, 1) = fired
    return out
