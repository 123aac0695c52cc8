"""Bit-exact accuracy and activity of a lowered Xylo network (adacal's
simulator, batch by batch)."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from adacal.backends.xylo.lowering import XyloLowering
from adacal.runtime_sim import xylo_sim

__all__ = ["evaluate_xylo", "evaluate_part", "evaluate_merge", "Part"]

I16_MAX = 2 ** 15 - 1
I16_MIN = -(2 ** 15)


class _Tally:
    """Activity summed over batches (sums in the order the batches ran)."""

    def __init__(self, lowering: XyloLowering):
        spec = lowering.spec
        self.layers = lowering.layers
        self.fan = np.count_nonzero(spec.weights_rec, axis=(1, 2)) + np.count_nonzero(spec.padded_weights_out(),
                                                                                      axis=1)
        self.fan_in = np.count_nonzero(spec.weights_in, axis=(1, 2))
        self.bias_ids = np.asarray(lowering.bias_neurons, np.int64)
        L = len(lowering.layers)
        self.inp_events = self.inp_syn = self.bias_ev = self.bias_syn = 0.0
        self.layer_ev, self.layer_bursts, self.layer_syn = np.zeros(L), np.zeros(L), np.zeros(L)
        self.layer_max = np.zeros(L, np.int64)
        self.sat_hi = self.sat_lo = self.out_sat = 0

    def add(self, enc: np.ndarray, res: xylo_sim.XyloResult) -> None:
        self.inp_events += float(np.minimum(enc, 15).sum())
        self.inp_syn += float((np.minimum(enc, 15).sum(axis=(0, 1)) * self.fan_in).sum())
        k = res.spikes.astype(np.int64)
        for i, l in enumerate(self.layers):
            kl = k[:, :, l.first:l.stop]
            self.layer_ev[i] += kl.sum()
            self.layer_bursts[i] += np.count_nonzero(kl)
            self.layer_syn[i] += (kl.sum(axis=(0, 1)) * self.fan[l.first:l.stop]).sum()
            self.layer_max[i] = max(self.layer_max[i], int(kl.max()) if kl.size else 0)
        if self.bias_ids.size:
            kb = k[:, :, self.bias_ids].sum(axis=(0, 1))
            self.bias_ev += float(kb.sum())
            self.bias_syn += float((kb * self.fan[self.bias_ids]).sum())
        self.sat_hi += int(np.count_nonzero(res.vmem == I16_MAX))
        self.sat_lo += int(np.count_nonzero(res.vmem == I16_MIN))
        self.out_sat += int(np.count_nonzero(np.abs(res.vmem_out.astype(np.int64)) >= I16_MAX))

    def merge(self, other: "_Tally") -> None:
        """Add the tally of other samples (every sum is of integers, exact in
        float64: the same totals as one tally over all the batches)."""
        for name in ("inp_events", "inp_syn", "bias_ev", "bias_syn", "sat_hi", "sat_lo", "out_sat"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.layer_ev = self.layer_ev + other.layer_ev
        self.layer_bursts = self.layer_bursts + other.layer_bursts
        self.layer_syn = self.layer_syn + other.layer_syn
        self.layer_max = np.maximum(self.layer_max, other.layer_max)

    def per_sample(self, lowering: XyloLowering, n: int) -> dict:
        cells = max(1, n * lowering.steps * lowering.spec.n_hidden)
        return {
            "input_events_per_sample": self.inp_events / n,
            "input_synops_per_sample": self.inp_syn / n,
            "events_per_sample": float(self.layer_ev.sum() / n),
            "spikes_per_sample": float(self.layer_ev.sum() / n),
            "bursts_per_sample": float(self.layer_bursts.sum() / n),
            "bias_events_per_sample": self.bias_ev / n,
            "bias_synops_per_sample": self.bias_syn / n,
            "synops_per_sample": float((self.layer_syn.sum() + self.bias_syn) / n),
            "hidden_vmem_saturation": (self.sat_hi + self.sat_lo) / cells,
            "hidden_vmem_at_max": self.sat_hi / cells,
            "hidden_vmem_at_min": self.sat_lo / cells,
            "output_vmem_saturated_values": self.out_sat,
            "per_layer": [{"name": l.name, "neurons": l.size, "events_per_sample": float(self.layer_ev[i] / n),
                           "bursts_per_sample": float(self.layer_bursts[i] / n),
                           "synops_per_sample": float(self.layer_syn[i] / n),
                           "max_events_per_step": int(self.layer_max[i])} for i, l in enumerate(self.layers)],
        }


def evaluate_xylo(lowering: XyloLowering, x, y=None, *, reference_predictions=None,
                  batch_size: int = 1024) -> dict:
    """Bit-exact Xylo accuracy and activity of ``lowering`` on x (and labels y).

    Counts per sample: input events (sum of input counts) and their synops
    (x the channel's non-zero weights); hidden events of the network's layers
    (sum of k over neurons and steps -- Xylo delivers every event separately
    -- comparable with the float SNN's spikes), bursts (non-zero k), synops
    (events x fan-out incl. an exact neuron's self synapse: the synaptic
    additions), per layer; the bias units' events and synops separately
    (``synops_per_sample`` includes them).  Saturation: the fraction of
    hidden (sample, step, neuron) Vmem values at the int16 limits.
    """
    return evaluate_merge(lowering, [evaluate_part(lowering, x, batch_size)], y,
                          reference_predictions=reference_predictions)


@dataclass
class Part:
    """evaluate_xylo's work on some samples: the activity tally and the
    per-sample predictions and scores (evaluate_merge joins parts)."""
    samples: int
    tally: _Tally
    predictions: list
    predictions_by_step: list
    scores: list


def evaluate_part(lowering: XyloLowering, x, batch_size: int = 1024) -> Part:
    """Simulate x batch by batch: the Part evaluate_merge turns into
    evaluate_xylo's result (parts of consecutive samples, in order)."""
    x = np.asarray(x, np.float32)
    tally = _Tally(lowering)
    preds, step_preds, scores = [], [], []
    for s in range(0, len(x), batch_size):
        enc = lowering.encode(x[s:s + batch_size])
        res = xylo_sim.simulate(lowering.spec, enc, record_isyn=False)
        tally.add(enc, res)
        preds.append(lowering.predict_result(res))
        step_preds.append(lowering.predict_steps(res))
        scores.append(lowering.scores(res))
    return Part(len(x), tally, preds, step_preds, scores)


def evaluate_merge(lowering: XyloLowering, parts: list[Part], y=None, *, reference_predictions=None) -> dict:
    """evaluate_xylo's result on the samples of parts (consecutive, in order)."""
    tally = copy.copy(parts[0].tally)  # merge() replaces the fields it adds to: the parts stay as they are
    for p in parts[1:]:
        tally.merge(p.tally)
    preds = [a for p in parts for a in p.predictions]
    step_preds = [a for p in parts for a in p.predictions_by_step]
    scores = [a for p in parts for a in p.scores]
    n = sum(p.samples for p in parts)
    pred = np.concatenate(preds)
    out = {
        "device": lowering.device,
        "samples": n,
        "timesteps": lowering.timesteps,
        "steps": lowering.steps,
        "readout": lowering.readout.rule,
        "accuracy": None if y is None else float((pred == np.asarray(y)).mean()),
        "predictions": pred,
        "predictions_by_step": (np.concatenate(step_preds, axis=1) if step_preds
                                else np.zeros((lowering.timesteps, 0), np.int64)),
        "scores": np.concatenate(scores),
        **tally.per_sample(lowering, n),
    }
    if reference_predictions is not None:
        out["agreement"] = float((pred == np.asarray(reference_predictions)).mean())
    return out
