"""Threshold-ratio search: raise thresholds per layer where the network is
insensitive, to cut synaptic operations (docs/method.md, Threshold-ratio
search; the paper's "Sensitivity Spike Compression").

Each layer l is tried with θ_l ← r·θ_l for r ∈ {1.0, 1.5, ..., 10.0}, one
layer at a time: sensitivity S_l(r) = symmetric KL to the ANN output, cost
E_l(r) = that layer's synaptic operations per sample (spikes × fan-out; with
price="events", events × fan-out, what Loihi 2's graded spikes cost).  The
frontier solver, with cost and value exchanged, minimises Σ E subject to

    Σ_l [S_l(r_l) − S_0] ≤ λ · max(S_0, MIN_REFERENCE_KL),

S_0 being the divergence of the unscaled network and λ the sensitivity budget
(the extra divergence allowed).  Why the budget reads λ this way and why S_0
has a floor: docs/method.md, Threshold-ratio search.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adacal import ir
from adacal.errors import AdacalError
from adacal.passes import frontier, search_trials
from adacal.passes.to_spiking import neuron_names, set_neuron
from adacal.runtime_sim import energy

RATIOS = tuple(1.0 + 0.5 * i for i in range(19))
#: a layer whose divergence alone exceeds this many budgets is not raised further
PRUNE_FACTOR = 3.0
#: the reference divergence S_0 is at least this (nats) when the allowance is set
MIN_REFERENCE_KL = 1e-4


@dataclass(frozen=True)
class RatioSearchResult:
    layers: tuple[str, ...]
    ratios: tuple[float, ...]
    sensitivity: np.ndarray  # (L, R)
    cost: np.ndarray  # (L, R) per sample: spikes x fan-out, or events x fan-out with price="events"
    budget: float
    chosen: tuple[float, ...]  # ratio per layer, layer order
    price: str = "spikes"


def scale_thresholds(snn: ir.Graph, ratios: dict[str, float]) -> ir.Graph:
    for name, r in ratios.items():
        op = snn.node(name).op
        snn = set_neuron(snn, name, threshold=(op.threshold * np.float32(r)).astype(np.float32))
    return snn


def search_threshold_ratios(snn: ir.Graph, ann_out: np.ndarray, x: np.ndarray, T: int, budget_ratio: float,
                            fanout: dict, progress=None, price: str = "spikes",
                            runner=search_trials.local) -> RatioSearchResult:
    """runner(trials, x, ann_out, T, progress, prune): the trials'
    per-sample table (search_trials.local, or sharded on Dask:
    adacal.distribute, which runs every trial and leaves the pruning to the
    table, with the same result)."""
    if budget_ratio < 0:
        raise AdacalError(f"sensitivity budget must be >= 0, got {budget_ratio}")
    layers = neuron_names(snn)
    ops = tuple((None,) + tuple(scale_thresholds(snn, {name: r}).node(name).op for r in RATIOS[1:])
                for name in layers)
    trials = search_trials.Trials(snn, tuple(layers), ops, energy.SYNOPS_TABLE[price], fanout)

    def prune(li, ri, kl, base):
        # this layer alone is far over the whole budget: higher ratios only
        # diverge more, so they are left out (infinite divergence)
        return ri > 0 and kl - base > PRUNE_FACTOR * budget_ratio * max(base, MIN_REFERENCE_KL)

    table = runner(trials, x, ann_out, T, progress, prune)
    base = float(table.base_kl.mean())  # S_0
    allowance = budget_ratio * max(base, MIN_REFERENCE_KL)
    sens, cost = table.kl.mean(axis=2), table.cost.mean(axis=2)
    for li in range(len(layers)):
        for ri in range(1, len(RATIOS)):
            if prune(li, ri, sens[li, ri], base):
                sens[li, ri + 1:], cost[li, ri + 1:] = np.inf, cost[li, ri]
                break
    budget = len(layers) * base + allowance
    choice = frontier.solve(cost, sens, budget)
    if choice is None:
        raise AdacalError(f"no threshold ratios fit the sensitivity budget {budget_ratio:g}: "
                          f"the least sensitive choice needs {frontier.min_cost(sens):.4g}, the budget is "
                          f"{budget:.4g}; raise --sensitivity-budget")
    return RatioSearchResult(tuple(layers), RATIOS, sens, cost, float(budget),
                             tuple(RATIOS[j] for j in choice), price)
