"""Input-aware adaptive timesteps (docs/method.md, Adaptive timesteps): stop a
sample early once the accumulated readout is confident.

Scores of the cumulative logits z_t = Σ_{τ≤t} o_τ:
  confidence  c_t = max softmax(z_t)
  entropy     c_t = 1 − H(softmax(z_t)) / log K
Exit at the first t with c_t > τ_t (else at T) and predict argmax z_t.
Calibration (on the calibration data, with the same score used at test time):
e_t = mean score of the samples classified correctly at step t,
τ_t = a + (1 − a)·exp(e_min − e_t).  `a` (the exit level, 0..1) is the single
knob: higher waits longer and is more accurate; a = 1 never exits early.
Without labels, "correct" means agreeing with the ANN's prediction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from adacal.errors import AdacalError

METRICS = ("confidence", "entropy")


@dataclass(frozen=True)
class ExitPolicy:
    metric: str
    level: float
    thresholds: tuple[float, ...]  # τ_t for t = 1..T

    def as_dict(self) -> dict:
        return {"metric": self.metric, "level": self.level, "thresholds": list(self.thresholds)}


def scores(outputs: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-step scores (T, N) and predictions (T, N) of per-step readouts (T, N, K)."""
    if metric not in METRICS:
        raise AdacalError(f"unknown exit metric '{metric}' (use {' or '.join(METRICS)})")
    z = torch.as_tensor(outputs, dtype=torch.float64).reshape(outputs.shape[0], outputs.shape[1], -1).cumsum(dim=0)
    logp = torch.log_softmax(z, dim=2)
    if metric == "confidence":
        s = logp.exp().max(dim=2).values
    else:
        k = z.shape[2]
        h = -(logp.exp() * logp).sum(dim=2)
        s = 1 - h / np.log(k) if k > 1 else torch.ones_like(h)
    return s.numpy(), z.argmax(dim=2).numpy()


def calibrate(outputs: np.ndarray, reference: np.ndarray, metric: str, level: float) -> ExitPolicy:
    """Exit thresholds from calibration readouts (T, N, K) and reference labels (N,)."""
    if not 0.0 <= level <= 1.0:
        raise AdacalError(f"exit level must be in [0, 1], got {level}")
    s, pred = scores(outputs, metric)
    correct = pred == reference[None, :]
    e = np.array([s[t][correct[t]].mean() if correct[t].any() else 0.0 for t in range(len(s))])
    tau = level + (1.0 - level) * np.exp(e.min() - e)
    return ExitPolicy(metric, float(level), tuple(float(v) for v in tau))


def decide(outputs: np.ndarray, policy: ExitPolicy) -> tuple[np.ndarray, np.ndarray]:
    """(exit step 1..T, prediction) per sample."""
    s, pred = scores(outputs, policy.metric)
    T = len(s)
    tau = np.asarray(policy.thresholds[:T])[:, None]
    over = s > tau
    over[-1] = True
    step = over.argmax(axis=0)  # first step over the threshold (0-based)
    return step + 1, pred[step, np.arange(s.shape[1])]
