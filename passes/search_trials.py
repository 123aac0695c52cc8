"""The candidate evaluations both searches make: every layer tried with each
of its candidate neuron ops (the others unchanged) on the calibration
samples, each trial resumed from a snapshot taken before the layer (the
layers before it never change).

Per trial and per sample: the symmetric KL divergence between the SNN's and
the ANN's outputs, and the layer's cost (spikes, events, synops ... : a
SimResult table).  The searches average them over the samples, so the
samples can be sharded: `run` on every shard (adacal.distribute.search_trials
on Dask workers), the per-sample arrays joined in sample order, give exactly
what `run` gives on all of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from adacal import ir
from adacal.passes.sensitivity import symmetric_kl_per_sample
from adacal.runtime_sim.float_sim import simulate


@dataclass(frozen=True)
class Trials:
    """What to try: base network, its neuron layers in order, per layer the
    candidate ops (None: the layer as in base), the cost table to read
    (SimResult attribute: spikes, events, synops, event_synops) and the
    fan-out maps it needs (or None)."""
    base: ir.Graph
    layers: tuple[str, ...]
    candidates: tuple[tuple[object, ...], ...]
    table: str
    fanout: dict | None = None


@dataclass
class TrialTable:
    """Per-sample results: kl and cost (layers, candidates, samples); the
    base network's kl (samples,).  A trial left out (pruned) is NaN."""
    kl: np.ndarray
    cost: np.ndarray
    base_kl: np.ndarray

    @staticmethod
    def join(parts: list["TrialTable"]) -> "TrialTable":
        return TrialTable(np.concatenate([p.kl for p in parts], axis=2),
                          np.concatenate([p.cost for p in parts], axis=2),
                          np.concatenate([p.base_kl for p in parts]))


def run(trials: Trials, x: np.ndarray, ann_out: np.ndarray, T: int, progress=None,
        prune: Callable[[int, int, float, float], bool] | None = None) -> TrialTable:
    """Every trial on the samples x (ann_out: the ANN's outputs on them).
    prune(layer index, candidate index, mean kl, base mean kl) -> True leaves
    that layer's remaining candidates out; progress() after each trial."""
    L, C, n = len(trials.layers), max(len(c) for c in trials.candidates), len(x)
    kl, cost = np.full((L, C, n), np.nan), np.full((L, C, n), np.nan)
    first, _ = simulate(trials.base, x, T, fanout=trials.fanout, snapshot_at=trials.layers)
    base_kl = symmetric_kl_per_sample(first.mean_output(), ann_out)
    for li, name in enumerate(trials.layers):
        for ci, op in enumerate(trials.candidates[li]):
            if op is None:
                res = first
            else:
                res, _ = simulate(trials.base.replace_op(name, op), x, T, fanout=trials.fanout,
                                  resume=(name, first.snapshots[name]))
            kl[li, ci] = symmetric_kl_per_sample(res.mean_output(), ann_out)
            cost[li, ci] = getattr(res, trials.table)[name].sum(axis=0)
            if progress:
                progress()
            if prune is not None and prune(li, ci, float(kl[li, ci].mean()), float(base_kl.mean())):
                break
    return TrialTable(kl, cost, base_kl)


#: the default runner of both searches: the trials in this process, on all samples at once
local = run


def advance_all(trials: Trials, progress) -> None:
    """progress() once per trial: for runners that report the trials when
    all their parts are done (batched, adacal.distribute.trial_runner)."""
    if progress:
        for _ in range(sum(len(c) for c in trials.candidates)):
            progress()


def batched(batch_size: int):
    """A runner over x (adacal.data Samples / Subset) in batches of
    batch_size, memory one batch: every trial on every batch (no pruning:
    the searches prune from the joined table, with the same result)."""
    def runner(trials: Trials, x, ann_out, T: int, progress=None, prune=None) -> TrialTable:
        parts, s = [], 0
        for xb in x.batches(batch_size):
            parts.append(run(trials, xb, ann_out[s:s + len(xb)], T))
            s += len(xb)
        advance_all(trials, progress)
        return TrialTable.join(parts)
    return runner
