"""What calibration needs from the ANN's activations at the neuron layers,
gathered batch by batch so that memory does not grow with the number of
calibration samples (docs/method.md, "Streamed calibration").

Per neuron layer:
- each channel's mean (light calibration) and, for advanced calibration, each
  neuron's mean over the samples — float64 sums;
- the table of values the threshold search looks at: the positive values
  (magnitudes, for a signed layer) of each channel, at most
  thresholds.MAX_VALUES_PER_CHANNEL of them, chosen exactly as
  thresholds.channel_thresholds chooses them from the whole activation array
  (a first pass counts each channel's positive values, the same seeded draws
  pick which to keep, a second pass collects them), so the thresholds equal
  those from the activations held in memory;
- for --threshold percentile:P, a uniform sample of at most
  MAX_PERCENTILE_VALUES of each channel's values (all of them when they are
  fewer, which gives np.percentile's exact answer).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adacal import ir
from adacal.passes.thresholds import pad_rows, parse_method, picked, thresholds_from_values

#: values per channel a streamed percentile is taken over
MAX_PERCENTILE_VALUES = 1 << 16


@dataclass
class LayerStats:
    channel_sum: np.ndarray  # (C,) float64
    values_per_channel: int  # samples x positions
    samples: int
    neuron_sum: np.ndarray | None  # (C, ...) float64, advanced calibration only
    table: np.ndarray | None = None  # (C, M) float32: what the threshold search sees

    @property
    def channel_mean(self) -> np.ndarray:
        return self.channel_sum / max(self.values_per_channel, 1)

    @property
    def neuron_mean(self) -> np.ndarray:
        return self.neuron_sum / max(self.samples, 1)

    def thresholds(self, T: int, phi: int, method: str) -> np.ndarray:
        return thresholds_from_values(self.table, T, phi, method)


def _channels(a: np.ndarray) -> np.ndarray:
    """(B, C, ...) -> (C, B * positions), in sample-then-position order."""
    return np.moveaxis(np.asarray(a, np.float32), 1, 0).reshape(a.shape[1], -1)


def gather(ann: ir.Graph, batches, names: list[str], signed: dict[str, bool], method: str,
           neuron_means: bool = False, seed: int = 0) -> tuple[dict[str, LayerStats], np.ndarray]:
    """Statistics of the ANN's values at `names` over the samples that
    `batches()` yields (called twice: a fresh iterator of float32 batches
    each time), and the ANN's outputs on them (from the first pass).
    signed[name]: the layer's thresholds come from magnitudes."""
    from adacal.interpret import run_graph

    kind, _ = parse_method(method)
    stats: dict[str, LayerStats] = {}
    counts: dict[str, np.ndarray] = {}
    outputs = []
    # pass 1: sums and, per channel, how many values the search may draw from
    for xb in batches():
        acts = run_graph(ann, xb, keep=tuple(names), batch_size=len(xb))
        outputs.append(acts[ann.output])
        for name in names:
            a = acts[name]
            c = a.shape[1]
            st = stats.get(name)
            if st is None:
                st = stats[name] = LayerStats(np.zeros(c), 0, 0,
                                              np.zeros(a.shape[1:]) if neuron_means else None)
                counts[name] = np.zeros(c, np.int64)
            st.channel_sum += _channels(a).astype(np.float64).sum(axis=1)
            st.values_per_channel += a[0, 0].size * len(a)
            st.samples += len(a)
            if neuron_means:
                st.neuron_sum += a.astype(np.float64).sum(axis=0)
            v = _channels(np.abs(a) if signed[name] else a)
            counts[name] += v.shape[1] if kind == "percentile" else (v > 0).sum(axis=1)
    # which values each channel keeps: the draws thresholds._per_channel makes
    cap = MAX_PERCENTILE_VALUES if kind == "percentile" else None
    picks = {}
    for name in names:
        rng = np.random.default_rng(seed)
        picks[name] = [picked(int(n), rng) if cap is None else picked(int(n), rng, cap) for n in counts[name]]
    # pass 2: collect them
    seen = {name: np.zeros(len(counts[name]), np.int64) for name in names}
    rows = {name: [[] for _ in counts[name]] for name in names}
    for xb in batches():
        acts = run_graph(ann, xb, keep=tuple(names), batch_size=len(xb))
        for name in names:
            v = _channels(np.abs(acts[name]) if signed[name] else acts[name])
            for ch, vals in enumerate(v):
                if kind != "percentile":
                    vals = vals[vals > 0]
                pick, start = picks[name][ch], seen[name][ch]
                if pick is None:
                    rows[name][ch].append(vals)
                else:
                    lo, hi = np.searchsorted(pick, [start, start + len(vals)])
                    rows[name][ch].append(vals[pick[lo:hi] - start])
                seen[name][ch] += len(vals)
    for name in names:
        stats[name].table = pad_rows([np.concatenate(r) if r else np.zeros(0, np.float32) for r in rows[name]])
    return stats, np.concatenate(outputs)
