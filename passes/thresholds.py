"""Per-channel thresholds from ANN activations (docs/method.md, Thresholds).

Methods (θ = clip / φ, where the clip level is the largest value the neuron
can pass on, φ·θ):
  max           clip = channel max of the post-ReLU activations
  percentile:P  clip = P-th percentile of the channel's activations
  mse           clip ∈ {m·(1 − 0.01 i), i = 0..94}, m = channel max, chosen to
                minimise Σ (y − q(y))², q(y) = clamp(round(y·T/θ), 0, φ·T)·θ/T —
                the same rounding as the neuron with its half-threshold start.
Searching the *clip level* (not θ itself) makes the grid reach m/φ for any φ,
which is where the optimum sits for φ ≫ 1.
A dead channel (max ≤ 0) gets the layer's largest θ: any positive value is
valid, and a large one keeps noise spikes rare.
"""
from __future__ import annotations

import numpy as np

from adacal import ir
from adacal.errors import AdacalError
from adacal.passes.to_spiking import neuron_names, set_neuron

#: at most this many non-zero activation values per channel enter the search
MAX_VALUES_PER_CHANNEL = 8192


def parse_method(method: str) -> tuple[str, float | None]:
    if method in ("mse", "max"):
        return method, None
    if method.startswith("percentile:"):
        try:
            p = float(method.split(":", 1)[1])
        except ValueError:
            p = -1.0
        if not 0 < p <= 100:
            raise AdacalError(f"threshold method '{method}': the percentile must be in (0, 100]")
        return "percentile", p
    raise AdacalError(f"unknown threshold method '{method}' (use mse, max or percentile:P)")


def picked(n: int, rng: np.random.Generator, cap: int = MAX_VALUES_PER_CHANNEL) -> np.ndarray | None:
    """Which of a channel's n values enter the search: None for all of them
    (n <= cap), else `cap` of them chosen uniformly (sorted indices).  The
    streamed statistics (passes.ann_statistics) pick with the same calls, so
    they choose the same values."""
    if n <= cap:
        return None
    return np.sort(rng.choice(n, cap, replace=False))


def pad_rows(rows: list[np.ndarray]) -> np.ndarray:
    """Rows of different lengths as one zero-padded (C, M) float32 array."""
    width = max(1, max(len(r) for r in rows))
    out = np.zeros((len(rows), width), np.float32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def _per_channel(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """(S, C, ...) -> (C, M) float32 of each channel's positive values, zero-padded.

    Zeros (most post-ReLU values) cost nothing for any θ and do not move a
    maximum, so only positive values are kept; a channel with more than
    MAX_VALUES_PER_CHANNEL of them is subsampled uniformly (seeded), which
    scales its error sum but not where the minimum is.  Percentiles are taken
    over all values (channel_thresholds)."""
    c = y.shape[1]
    v = np.moveaxis(np.asarray(y, np.float32), 1, 0).reshape(c, -1)
    rng = np.random.default_rng(seed)
    rows = []
    for ch in v:
        pos = ch[ch > 0]
        pick = picked(len(pos), rng)
        rows.append(pos if pick is None else pos[pick])
    return pad_rows(rows)


def quantise(y: np.ndarray, theta, T: int, phi: int) -> np.ndarray:
    """What a burst neuron passes on on average for constant input y:
    clamp(round_half_up(y·T/θ), 0, φ·T)·θ/T."""
    return np.clip(np.floor(np.asarray(y) * T / theta + 0.5), 0, phi * T) * theta / T


def mse_clip(v: np.ndarray, T: int, phi: int) -> np.ndarray:
    """Per-channel clip level minimising the quantisation error (numpy: on
    these small elementwise loops it is several times faster than torch)."""
    m = np.maximum(v.max(axis=1), 0).astype(np.float64)
    best_err = np.full(m.shape, np.inf)
    best = m.copy()
    r = np.empty_like(v)
    k = np.empty_like(v)
    for i in range(95):
        clip = m * (1 - 0.01 * i)
        step = np.maximum(clip / (phi * T), 1e-12)  # θ / T
        # error in units of the step: r - clamp(round(r), 0, φT), r = y / step
        np.divide(v, step[:, None].astype(np.float32), out=r)
        np.add(r, 0.5, out=k)
        np.floor(k, out=k)
        np.clip(k, 0, phi * T, out=k)
        np.subtract(r, k, out=r)
        err = np.einsum("ij,ij->i", r, r).astype(np.float64) * step ** 2
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best = np.where(better, clip, best)
    return best


def channel_thresholds(y: np.ndarray, T: int, phi: int, method: str = "mse") -> np.ndarray:
    """Thresholds (C,) for activations y (S, C, ...) of one neuron layer."""
    kind, _ = parse_method(method)
    if kind == "percentile":
        return thresholds_from_values(np.moveaxis(np.asarray(y, np.float32), 1, 0).reshape(y.shape[1], -1),
                                      T, phi, method)
    return thresholds_from_values(_per_channel(y), T, phi, method)


def thresholds_from_values(v: np.ndarray, T: int, phi: int, method: str = "mse") -> np.ndarray:
    """Thresholds (C,) from a (C, M) table of each channel's values: its
    positive values (as _per_channel gives them) for mse and max, all its
    values for percentile."""
    kind, p = parse_method(method)
    if kind == "percentile":
        clip = np.percentile(v, p, axis=1)
    else:
        clip = v.max(axis=1) if kind == "max" else mse_clip(v, T, phi)
    theta = np.asarray(clip, np.float64) / phi
    alive = theta > 0
    fallback = theta[alive].max() if alive.any() else 1.0
    return np.where(alive, theta, fallback).astype(np.float32)


def set_thresholds(snn: ir.Graph, acts: dict[str, np.ndarray], T: int, method: str = "mse",
                   layers: list[str] | None = None, progress=None) -> ir.Graph:
    """Set every (or the named) neuron layer's thresholds from ANN activations
    `acts[name]` (post-ReLU values of the same node in the ANN; a signed layer's
    linear values, by magnitude), using each layer's own max_spikes.  progress: optional callable, called once per layer."""
    for name in layers or neuron_names(snn):
        op = snn.node(name).op
        y = np.abs(acts[name]) if op.signed else acts[name]  # signed neurons quantise |y| the same way
        snn = set_neuron(snn, name, threshold=channel_thresholds(y, T, op.max_spikes, method))
        if progress:
            progress()
    return snn
