"""Burst-cap search: choose φ (max spikes per step) per layer under a spike
budget (docs/method.md, Burst-cap search; the paper's "AdaFire").

With every layer at φ_max, each layer l is tried with each φ in the candidate
range (its thresholds re-searched for that φ, the others unchanged): the
sensitivity S_l(φ) is the symmetric KL between SNN and ANN outputs on the
calibration batch, the cost E_l(φ) that layer's spikes per sample (with
price="events", its non-zero bursts per sample: what Loihi 2's graded spikes
send).  The frontier solver then minimises Σ S subject to
Σ E ≤ ratio · Σ_l E_l(φ_ref), with φ_ref the uniform cap the budget is
relative to (looked up by value).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adacal import ir
from adacal.errors import AdacalError
from adacal.passes import frontier, search_trials
from adacal.passes.thresholds import channel_thresholds
from adacal.passes.to_spiking import neuron_names, set_neuron


@dataclass(frozen=True)
class BurstSearchResult:
    layers: tuple[str, ...]
    candidates: tuple[int, ...]
    sensitivity: np.ndarray  # (L, len(candidates))
    cost: np.ndarray  # (L, len(candidates)) per sample, in `price` units: spikes or events
    budget: float
    chosen: tuple[int, ...]  # φ per layer, layer order
    price: str = "spikes"  # what `cost` counts: "spikes" or "events"


def threshold_fit(acts, T: int, method: str, snn: ir.Graph):
    """fit(name, phi) -> thresholds: acts itself when it is such a callable
    (the streamed statistics'), else fitted to the activations acts[name]
    (magnitudes for a signed layer, as set_thresholds does)."""
    if callable(acts):
        return acts

    def fit(name, phi):
        a = acts[name]
        return channel_thresholds(np.abs(a) if snn.node(name).op.signed else a, T, phi, method)
    return fit


def with_max_spikes(snn: ir.Graph, acts, T: int, name: str, phi: int, method: str) -> ir.Graph:
    """snn with layer `name` at burst cap phi and its thresholds fitted for
    it (acts: activations by layer, or a fit(name, phi) callable)."""
    theta = threshold_fit(acts, T, method, snn)(name, phi)
    return set_neuron(snn, name, max_spikes=int(phi), threshold=theta)


def search_max_spikes(snn: ir.Graph, acts: dict, ann_out: np.ndarray, x: np.ndarray, T: int,
                      spike_range: tuple[int, int], reference: int, ratio: float,
                      method: str = "mse", progress=None, price: str = "spikes",
                      runner=search_trials.local) -> BurstSearchResult:
    """acts: the ANN's activations by layer, or a fit(name, phi) ->
    thresholds callable (the streamed statistics').  runner(trials, x,
    ann_out, T, progress): the trials' per-sample table (search_trials.local,
    search_trials.batched, or sharded on Dask: adacal.distribute)."""
    lo, hi = spike_range
    if not 1 <= lo <= hi:
        raise AdacalError(f"spike range {lo}:{hi} is not a range of caps >= 1")
    if not lo <= reference <= hi:
        raise AdacalError(f"the energy budget is relative to --max-spikes {reference}, "
                          f"which is outside the spike range {lo}:{hi}")
    if ratio <= 0:
        raise AdacalError(f"energy budget must be > 0, got {ratio}")
    cands = tuple(range(lo, hi + 1))
    layers = neuron_names(snn)
    base = snn
    for name in layers:
        base = with_max_spikes(base, acts, T, name, hi, method)
    # each layer with each cap, its thresholds re-fitted for that cap on all calibration samples
    ops = tuple(tuple(with_max_spikes(base, acts, T, name, phi, method).node(name).op for phi in cands)
                for name in layers)
    trials = search_trials.Trials(base, tuple(layers), ops, "events" if price == "events" else "spikes")
    table = runner(trials, x, ann_out, T, progress)
    sens, cost = table.kl.mean(axis=2), table.cost.mean(axis=2)
    budget = ratio * cost[:, cands.index(reference)].sum()
    choice = frontier.solve(sens, cost, budget)
    if choice is None:
        raise AdacalError(f"no choice of max spikes in {lo}:{hi} fits the energy budget {ratio:g} x "
                          f"(uniform {reference}): the cheapest needs {frontier.min_cost(cost):.1f} {price} "
                          f"per sample, the budget is {budget:.1f}; raise --energy-budget or lower the range")
    return BurstSearchResult(tuple(layers), cands, sens, cost, float(budget),
                             tuple(cands[j] for j in choice), price)
