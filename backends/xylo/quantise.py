"""Quantisation: every hidden layer's weights in events per source event,
its thresholds Theta (capped by int16 headroom), one weight shift per matrix
searched for the least input error; and the readout's gain, weights and
biases (docs/xylo.md, "Quantisation" and "Readout")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from adacal.errors import UnsupportedError

__all__ = ["HiddenTerms", "HiddenQuant", "ReadoutQuant", "hidden_terms", "quantise_hidden", "quantise_readout"]

I16_MAX = 2 ** 15 - 1
I16_MIN = -(2 ** 15)


@dataclass(frozen=True, eq=False)
class HiddenTerms:
    """Per hidden layer, in Xylo events: what the integers must realise."""
    event_value: list  # (n,) float value of one event of each neuron
    weights: list  # (n, p) events of the neuron per source event
    bias_total: list  # (n,) bias charge over the T input steps
    start: list  # (n,) start potential: the half-quantum plus v_init
    bias_per_step: list  # (n,) exact: during the T input steps; leaky: spread over the window
    source_steps: list  # (N*T, p) calibration source events per step
    source_totals: list  # (N, p) calibration source events over the T steps


@dataclass(frozen=True, eq=False)
class HiddenQuant:
    """The hidden layers' integers."""
    shift_in: int
    shift_rec: int
    thresholds: list  # per layer (n,) Theta
    weights: list  # per layer (n, p) int8 weights
    resets: Optional[list]  # exact neurons: per layer (n,) self-reset r (Theta = r << shift_rec)


@dataclass(frozen=True, eq=False)
class ReadoutQuant:
    """The readout's integers."""
    gain: float  # G: Vmem LSB per float unit of the T-step summed readout
    shift: int  # weight_shift_out
    weights: np.ndarray  # (K, n_last) int8
    bias: np.ndarray  # (K,) bias_out
    bias_steps: int  # steps over which bias_out acts: 1 (a constant offset) or the run length (a current)


def hidden_terms(layers, encoder, enc_cal: np.ndarray, spikes: list, T: int, event_gain: float, exact: bool,
                 windows) -> HiddenTerms:
    """The layers in events: layer 0 fed by the encoder's channels (its
    offsets folded into the bias), layer l by layer l-1's events.
    ``spikes``: per layer (N, T, n) events implied by the float SNN."""
    A0 = layers[0].weight
    w_eff0 = A0[:, encoder.feature] * (encoder.sign * encoder.scale)[None, :]
    bias0 = layers[0].bias + A0 @ encoder.base
    ev = [l.threshold / event_gain for l in layers]  # float value of one event, per neuron
    Wt, b_tot, start, src_steps, src_tot = [], [], [], [], []
    for i, l in enumerate(layers):
        if i == 0:
            W, b, s = w_eff0 / ev[0][:, None], bias0 / ev[0], enc_cal[:, :T].astype(np.float64)
        else:
            W, b, s = l.weight * ev[i - 1][None, :] / ev[i][:, None], l.bias / ev[i], spikes[i - 1]
        Wt.append(W)
        b_tot.append(b * T)  # bias charge over the T steps, events
        start.append(0.5 + l.v_init / ev[i])  # the half-quantum (half an event) + potential start
        src_steps.append(s.reshape(-1, s.shape[-1]))
        src_tot.append(s.sum(axis=1))
    # bias per step: exact neurons get it during their T input steps, leaky
    # ones (with the start potential) spread over their window
    per_step = [b_tot[i] / T if exact else (b_tot[i] + start[i]) / windows[i] for i in range(len(layers))]
    return HiddenTerms(ev, Wt, b_tot, start, per_step, src_steps, src_tot)


def quantise_hidden(terms: HiddenTerms, neuron: str, headroom: float, v_floor: float, n_steps: int,
                    seed: int) -> HiddenQuant:
    """Thresholds, weights and shifts of every hidden layer (the error
    search runs on at most 256 calibration samples)."""
    caps = [_threshold_cap(W, S, b, neuron, headroom, v_floor)
            for W, S, b in zip(terms.weights, terms.source_steps, terms.bias_per_step)]
    N = len(terms.source_totals[0])
    sub = slice(None) if N <= 256 else np.random.default_rng(seed).permutation(N)[:256]
    S_q = [t[sub] for t in terms.source_totals]
    if neuron == "exact":
        s_in, s_rec, thetas, wq, resets = _quantise_exact(terms.weights, S_q, caps, n_steps)
    else:
        s_in, s_rec, thetas, wq = _quantise_leaky(terms.weights, S_q, caps, n_steps)
        resets = None
    return HiddenQuant(s_in, s_rec, thetas, wq, resets)


def quantise_readout(outputs: np.ndarray, readout, event_value: np.ndarray, T: int, n_samples: int,
                     n_steps: int, mode: str, headroom: float) -> ReadoutQuant:
    """The readout's gain G (the largest that keeps the calibration set's
    running output sums within headroom x 32767), weights and biases.
    ``outputs``: the float SNN's readout per step and calibration sample
    (T, N, K in any shape of that size); ``readout``: the
    :class:`~adacal.backends.xylo.network.DenseReadout`; ``event_value``:
    the last hidden layer's."""
    A_R, b_R = readout.weight, readout.bias
    outs = outputs.reshape(T, n_samples, -1).astype(np.float64)
    if mode == "isyn":
        # Vmem_t = isyn_t + bias_out = G (sum_{tau<=t} A x_tau + T b): both signs
        # (an output pinned at -32768 with dash_mem_out 0 never recovers)
        drive = np.cumsum(outs - b_R[None, None, :], axis=0)
        running = max(np.abs(drive).max(), np.abs(drive + T * b_R).max())
        G = headroom * I16_MAX / max(running, 1e-9)
    else:  # only the positive side must stay clear of threshold_out
        running = np.maximum(np.cumsum(outs, axis=0), 0).max()
        step_max = np.maximum(outs - b_R[None, None, :], 0).max()
        G = headroom * I16_MAX / max(running, 2 * step_max, 1e-9)
    Wout = A_R * event_value[None, :] * G  # (K, n_last) LSB per event
    s_out = int(max(0, np.ceil(np.log2(max(np.abs(Wout).max(), 1e-12) / 127.49))))
    if s_out > 8:
        raise UnsupportedError(f"readout '{readout.name}': output weights need weight_shift_out {s_out} > 8")
    w_out = np.clip(np.round(Wout / 2 ** s_out), -128, 127).astype(np.int64)
    out_bias_steps = 1 if mode == "isyn" else n_steps  # a constant offset / a current per step
    bias_out = np.clip(np.round(G * T * b_R / out_bias_steps), I16_MIN, I16_MAX).astype(np.int64)
    return ReadoutQuant(G, s_out, w_out, bias_out, out_bias_steps)


# ----------------------------------------------------------------------
# the search
# ----------------------------------------------------------------------
def _threshold_cap(Wt: np.ndarray, S_steps: np.ndarray, bias_ev: np.ndarray, neuron: str, headroom: float,
                   v_floor: float) -> np.ndarray:
    """Per neuron the largest Theta keeping isyn / vmem in int16 (docs/xylo.md,
    "Quantisation").  Wt (n, p) events per source event; S_steps
    (N*T, p) source events per step; bias_ev (n,) bias events per step."""
    n = len(Wt)
    P = (S_steps @ np.maximum(Wt, 0).T).max(axis=0) if S_steps.size else np.zeros(n)
    bp = np.maximum(bias_ev, 0)
    if neuron == "exact":  # isyn holds V (< Theta after firing) plus the step's drive
        need = [1.5 + P + bp, np.abs(bias_ev), np.full(n, max(1.0, v_floor))]
    else:  # dash_syn 1: isyn reaches ~2x the drive per step
        Nn = (S_steps @ np.maximum(-Wt, 0).T).max(axis=0) if S_steps.size else np.zeros(n)
        need = [2 * P, 2 * Nn, 1 + P + bp, np.abs(bias_ev), np.full(n, max(1.0, v_floor))]
    return np.maximum(np.floor(headroom * I16_MAX / np.maximum.reduce(need)), 1)


def _best_rows(Wt: np.ndarray, S_tot: np.ndarray, cand: np.ndarray, q: float, n_steps: int):
    """For each row c pick Theta among cand[c] (n, K) with the least error:
    weights w = round(Wt * Theta / q) (int8), error = mean over samples of
    (sum_j (w q / Theta - Wt)[c, j] S_j)^2 + (n_steps / 2 / Theta)^2 (the
    leak).  S_tot (N, p): source events over T steps.  Returns (Theta, w,
    total error); a row whose weights do not fit int8 is infinitely bad."""
    w = np.round(Wt[:, None, :] * cand[:, :, None] / q)  # (n, K, p)
    over = np.abs(w).max(axis=2) > 127.5 if w.size else np.zeros(cand.shape, bool)
    w = np.clip(w, -128, 127)
    delta = w * q / cand[:, :, None] - Wt[:, None, :]
    n, K, p = delta.shape
    if p <= len(S_tot):  # mean_s (delta . S_s)^2 = delta M delta, M = S^T S / N: cheaper
        M = S_tot.T @ S_tot / max(len(S_tot), 1)
        flat = delta.reshape(-1, p)
        err = ((flat @ M) * flat).sum(axis=1).reshape(n, K)
    else:
        err = (np.einsum("nkp,sp->nks", delta, S_tot) ** 2).mean(axis=2)
    err = err + (0.5 * n_steps / cand) ** 2
    err[over] = np.inf
    k = err.argmin(axis=1)
    rows = np.arange(len(Wt))
    return cand[rows, k].astype(np.int64), w[rows, k].astype(np.int64), float(err[rows, k].sum())


def _n_candidates(n, p, N, most=50, work=2e7) -> int:
    # the search costs ~ n * K * p * min(p, N) per shift: fewer candidates for large layers
    return int(np.clip(work / max(1, n * p * min(p, N)), 1, most))


def _quantise_leaky(Wt, S_tots, caps, n_steps):
    """Leaky neurons: weight_shift_in for layer 0, one weight_shift_rec for
    layers 1..; Theta free per neuron (up to its cap, and so that the row's
    weights fit int8).  Returns (s_in, s_rec, [Theta], [w])."""
    def fit(W, S, cap, s):
        q = float(2 ** s)
        rowmax = np.maximum(np.abs(W).max(axis=1), 1e-12)
        K = _n_candidates(*W.shape, len(S))
        th_max = np.clip(np.minimum(cap, np.floor(127.49 * q / rowmax)), 1, I16_MAX)
        cand = np.maximum(np.floor(th_max[:, None] * (1.0 - 0.2 / K * np.arange(K))[None, :]), 1)
        return _best_rows(W, S, cand, q, n_steps)

    def best_shift(idx):
        best = None
        for s in range(9):
            rs = [fit(Wt[i], S_tots[i], caps[i], s) for i in idx]
            tot = sum(r[2] for r in rs)
            if best is None or tot < best[0]:
                best = (tot, s, [r[0] for r in rs], [r[1] for r in rs])
        return best[1:]

    s_in, th0, w0 = best_shift([0])
    s_rec, ths, ws = best_shift(range(1, len(Wt))) if len(Wt) > 1 else (0, [], [])
    return s_in, s_rec, th0 + ths, w0 + ws


def _quantise_exact(Wt, S_tots, caps, n_steps):
    """Exact neurons: Theta_c = r_c * 2**s_rec with the self-reset weight
    -r_c (1 <= r_c <= 128, int8).  Layers >= 1 get weights w = Wt * r_c (in
    units of 2**s_rec); layer 0 w = Wt * Theta / 2**s_in, where r_c is also
    bounded so that the row fits int8 at s_in (rows with small weights get a
    larger Theta, as for leaky neurons).  Searches s_rec and s_in (0..8) and
    per neuron r_c (the largest allowed value or up to 49 below it) for the
    least total error.  Returns (s_in, s_rec, [Theta], [w], [r])."""
    def rows(W, S, r_max, q_theta, q_w):
        r_max = np.maximum(r_max, 1)
        K = _n_candidates(*W.shape, len(S))
        r_cand = np.maximum(r_max[:, None] - np.arange(K)[None, :], 1)
        th, w, err = _best_rows(W, S, r_cand * q_theta, q_w, n_steps)
        return th, w, err, th // int(q_theta)

    best = None
    for s_rec in range(9):
        q = float(2 ** s_rec)
        first = None
        rowmax0 = np.maximum(np.abs(Wt[0]).max(axis=1), 1e-12)
        for s_in in range(9):
            r_max = np.floor(np.minimum.reduce([np.full(len(rowmax0), 128.0 * q), caps[0],
                                                127.49 * 2 ** s_in / rowmax0]) / q)
            r = rows(Wt[0], S_tots[0], r_max, q, float(2 ** s_in))
            if np.isfinite(r[2]) and (first is None or r[2] < first[1][2]):
                first = (s_in, r)
        if first is None:
            continue
        s_in, r0 = first
        out = [r0]
        for W, S, cap in zip(Wt[1:], S_tots[1:], caps[1:]):
            rowmax = np.maximum(np.abs(W).max(axis=1), 1e-12)
            out.append(rows(W, S, np.minimum.reduce([np.full(len(W), 128.0), np.floor(cap / q),
                                                      np.floor(127.49 / rowmax)]), q, q))
        tot = sum(o[2] for o in out)
        if best is None or tot < best[0]:
            best = (tot, s_in, s_rec, [o[0] for o in out], [o[1] for o in out], [o[3] for o in out])
    if best is None:
        raise UnsupportedError("Xylo lowering: no weight shift fits the first layer's weights into int8")
    return best[1:]
