"""The input encoder: analog features -> Xylo input event counts (0..15 per
channel and step), a deterministic sigma-delta code fitted on calibration
data.  Why the three codes and the margin: docs/xylo.md, "Input encoder"."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from adacal.errors import AdacalError

__all__ = ["InputEncoder", "fit_encoder"]


@dataclass(frozen=True, eq=False)
class InputEncoder:
    """Analog features -> Xylo input event counts (docs/xylo.md, "Input encoder").

    Channel ``c`` carries feature ``feature[c]``: value per step
    ``u = clip(sign[c] * (x - offset[c]), 0, max_count * scale[c]) / scale[c]``
    events; ``x ~ base + sum over the feature's channels of sign * u * scale``.
    """

    n_features: int
    modes: tuple  # per feature: "positive" | "split" | "offset"
    feature: np.ndarray  # (C,) int
    sign: np.ndarray  # (C,) +1 / -1
    offset: np.ndarray  # (C,) float
    scale: np.ndarray  # (C,) float: float value of one event
    max_count: int = 15

    @property
    def n_channels(self) -> int:
        return int(len(self.feature))

    @property
    def base(self) -> np.ndarray:
        """(F,) the constant part of each feature (offset code), else 0."""
        b = np.zeros(self.n_features)
        for c in range(self.n_channels):
            if self.modes[self.feature[c]] == "offset":
                b[self.feature[c]] = self.offset[c]
        return b

    def rates(self, x) -> np.ndarray:
        """(N, C) events per step (real, 0..max_count)."""
        x = np.asarray(x, np.float64).reshape(len(x), -1)
        if x.shape[1] != self.n_features:
            raise AdacalError(f"input has {x.shape[1]} features, the encoder expects {self.n_features}")
        v = self.sign * (x[:, self.feature] - self.offset)
        return np.clip(v / self.scale, 0, self.max_count)

    def encode(self, x, T: int, steps: Optional[int] = None, delay: int = 0) -> np.ndarray:
        """(N, steps, C) uint8 counts: sigma-delta over T steps starting at
        step ``delay``, zeros elsewhere; the sum over t is round(u T) exactly."""
        u = self.rates(x)
        steps = T + delay if steps is None else steps
        if steps < T + delay:
            raise ValueError(f"steps {steps} < delay {delay} + T {T}")
        t = np.arange(T + 1, dtype=np.float64)[None, :, None]
        cum = np.floor(u[:, None, :] * t + 0.5)
        out = np.zeros((len(u), steps, self.n_channels), np.uint8)
        out[:, delay:delay + T] = np.diff(cum, axis=1).astype(np.uint8)
        return out

    def as_dict(self) -> dict:
        return {"n_features": self.n_features, "n_channels": self.n_channels, "modes": list(self.modes),
                "feature": self.feature.tolist(), "sign": self.sign.tolist(),
                "offset": self.offset.tolist(), "scale": self.scale.tolist(), "max_count": self.max_count,
                "code": "sigma-delta: count_t = floor(u(t+1)+1/2) - floor(ut+1/2), t < T"}


def fit_encoder(x_cal, n_channels: int = 16, max_count: int = 15, margin: float = 0.1) -> InputEncoder:
    """Choose each feature's code and scale from calibration data; the
    encoded range extends ``margin`` x the calibration range beyond it on
    each side (unseen data is clipped only beyond that)."""
    x = np.asarray(x_cal, np.float64).reshape(len(x_cal), -1)
    F = x.shape[1]
    lo, hi, mean = x.min(axis=0), x.max(axis=0), x.mean(axis=0)
    ext = margin * (hi - lo)
    signed = [f for f in range(F) if lo[f] < 0]
    n_split = max(0, min(len(signed), n_channels - F))
    # split the features whose both signs carry the most mass
    both = {f: min(np.maximum(x[:, f], 0).mean(), np.maximum(-x[:, f], 0).mean()) for f in signed}
    split = set(sorted(signed, key=lambda f: -both[f])[:n_split])
    modes, feat, sign, off, scale = [], [], [], [], []

    def add(f, s, o, sc):
        feat.append(f)
        sign.append(s)
        off.append(o)
        scale.append(sc if sc > 0 else 1.0)

    for f in range(F):
        if lo[f] >= 0:
            modes.append("positive")
            add(f, 1.0, 0.0, (hi[f] + ext[f]) / max_count)
        elif f in split:
            modes.append("split")
            add(f, 1.0, 0.0, (max(hi[f], 0.0) + ext[f]) / max_count)
            add(f, -1.0, 0.0, (-lo[f] + ext[f]) / max_count)
        else:
            modes.append("offset")
            rng = (hi[f] - lo[f] + 2 * ext[f]) / max_count
            if mean[f] - lo[f] <= hi[f] - mean[f]:
                add(f, 1.0, lo[f] - ext[f], rng)
            else:
                add(f, -1.0, hi[f] + ext[f], rng)
    return InputEncoder(F, tuple(modes), np.array(feat, np.int64), np.array(sign), np.array(off),
                        np.array(scale), int(max_count))
