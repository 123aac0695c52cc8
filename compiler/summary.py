"""One typed record of what a network did on a data set: accuracy, activity
(spikes, events, synops per sample) and energy.

Every evaluation builds it the same way — the float SNN in `convert`, the
bit-accurate network in the compile commands and in `simulate` — with
`measure`, from per-layer (T, N) count arrays and the steps each sample ran.
`as_json()` gives the field names the JSON outputs have always used.

Energy convention: E = E_MAC x input-layer MACs per step run + E_AC x synops.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from adacal.runtime_sim import energy

ENERGY_CONVENTION = ("E_ANN = 4.6 pJ x MACs; E_SNN = 4.6 pJ x input-layer MACs per step run + "
                     "0.9 pJ x synops (spikes x fan-out)")


@dataclass(frozen=True)
class LayerActivity:
    """Per sample, one neuron layer."""
    spikes: float
    events: float
    synops: float
    graded_synops: float


@dataclass(frozen=True)
class Activity:
    """Accuracy, activity and energy of one network run on N samples."""
    samples: int
    timesteps: int
    accuracy: float | None
    avg_timesteps: float
    exit_histogram: tuple[int, ...]
    spikes_per_sample: float
    events_per_sample: float
    synops_per_sample: float
    graded_synops_per_sample: float | None
    energy_pj_per_sample: float
    input_layer_macs_per_sample: float
    predictions: np.ndarray = field(repr=False)
    layers: Mapping[str, LayerActivity] = field(default_factory=dict, repr=False)
    #: figures only one target has (Xylo: bursts, input events, ...), as JSON;
    #: graded_synops_per_sample is None where a burst is not one message (Xylo)
    extra: Mapping[str, object] = field(default_factory=dict)

    def as_json(self) -> dict:
        """The fields `simulate --json` prints (and the summaries reuse)."""
        return {"samples": self.samples, "accuracy": self.accuracy, "avg_timesteps": self.avg_timesteps,
                "exit_histogram": list(self.exit_histogram), "spikes_per_sample": self.spikes_per_sample,
                "events_per_sample": self.events_per_sample, "synops_per_sample": self.synops_per_sample,
                **({} if self.graded_synops_per_sample is None
                   else {"graded_synops_per_sample": self.graded_synops_per_sample}),
                "energy_pj_per_sample": self.energy_pj_per_sample, **self.extra}


def has_labels(y) -> bool:
    """Whether y holds class labels (integers), not None or regression
    targets (float, adacal.data keeps targets float and labels int64)."""
    return y is not None and np.asarray(y).dtype.kind in "iu"


def accuracy(pred, y) -> float | None:
    """Share of predictions equal to the labels y (None without labels, and
    for regression targets)."""
    return float((np.asarray(pred) == np.asarray(y)).mean()) if has_labels(y) else None


def accuracy_by_step(pred_by_step, y) -> list | None:
    """(T, N) predictions after each step -> accuracy per step (None without
    labels, and for regression targets)."""
    return [float((p == np.asarray(y)).mean()) for p in pred_by_step] if has_labels(y) else None


def output_error(snn, ann) -> dict:
    """How far the SNN's readout (in the ANN's units) is from the ANN's output
    on the same samples (docs/method.md, "Output error"); both (N, ...) and
    flattened per sample:

    relative_l2 = ||snn - ann||_F / ||ann||_F over the whole set (0 when both are 0,
    None (JSON null) when only the ANN's is), cosine = the mean over samples of the
    cosine similarity (a sample where either vector is 0 counts 1 if both
    are, else 0), max_abs = max |snn - ann|."""
    s = np.asarray(snn, np.float64).reshape(len(snn), -1)
    a = np.asarray(ann, np.float64).reshape(len(ann), -1)
    if s.shape != a.shape:
        raise ValueError(f"output_error: SNN readout {s.shape} vs ANN output {a.shape}")
    diff, norm_a = np.linalg.norm(s - a), np.linalg.norm(a)
    rel = float(diff / norm_a) if norm_a > 0 else (0.0 if diff == 0 else None)
    ns, na = np.linalg.norm(s, axis=1), np.linalg.norm(a, axis=1)
    both = (ns > 0) & (na > 0)
    cos = np.where(both, (s * a).sum(axis=1) / np.where(both, ns * na, 1.0), (ns == 0) & (na == 0))
    return {"relative_l2": rel, "cosine": float(cos.mean()) if len(cos) else None,
            "max_abs": float(np.abs(s - a).max()) if s.size else 0.0}


def measure(run, pred: np.ndarray, y, exit_step: np.ndarray, T: int, input_macs: float) -> Activity:
    """The Activity of a simulation result `run` (anything with per-layer
    (T, N) arrays in .spikes, .events, .synops, .event_synops), each sample
    counted up to its exit step (exit_step (N,), 1..T)."""
    n = len(pred)
    used = np.arange(1, T + 1)[:, None] <= exit_step[None, :]  # (T, N) steps each sample ran

    def per_sample(counts: dict) -> dict[str, float]:
        return {k: float((v * used).sum() / n) for k, v in counts.items()}

    spikes, events = per_sample(run.spikes), per_sample(run.events)
    synops, gsyn = per_sample(run.synops), per_sample(run.event_synops)
    in_macs = input_macs * float(exit_step.mean())
    layers = {k: LayerActivity(spikes[k], events.get(k, 0.0), synops.get(k, 0.0), gsyn.get(k, 0.0)) for k in spikes}
    return Activity(
        samples=n, timesteps=T, accuracy=accuracy(pred, y), avg_timesteps=float(exit_step.mean()),
        exit_histogram=tuple(np.bincount(exit_step, minlength=T + 1)[1:].tolist()),
        spikes_per_sample=float(sum(spikes.values())), events_per_sample=float(sum(events.values())),
        synops_per_sample=float(sum(synops.values())), graded_synops_per_sample=float(sum(gsyn.values())),
        energy_pj_per_sample=energy.E_MAC_PJ * in_macs + energy.E_AC_PJ * sum(synops.values()),
        input_layer_macs_per_sample=in_macs, predictions=np.asarray(pred), layers=layers)
