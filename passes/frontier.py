"""Exact multiple-choice knapsack by a layer-by-layer Pareto frontier
(docs/method.md, Frontier solver), shared by the burst-cap and threshold-ratio
searches.

Choose one option j_l per layer to minimise Σ value[l][j_l] subject to
Σ cost[l][j_l] ≤ budget.  Every partial assignment is expanded by every option,
sorted by cost; a node is kept only if its cost fits the budget and its value
is strictly below the last kept node's.  Dominated partial assignments can
never complete to a better solution, so the result is optimal.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence


class _Node(NamedTuple):
    cost: float
    value: float
    parent: int
    choice: int


def solve(values: Sequence[Sequence[float]], costs: Sequence[Sequence[float]], budget: float) -> list[int] | None:
    """Option index per layer, in layer order; None if nothing fits the budget.

    Costs may be negative: each layer's cheapest option is subtracted from its
    costs (and their sum from the budget) so that partial sums only grow and
    pruning a partial assignment over budget is safe."""
    # slack for float sums in another order, relative to the problem's own magnitudes
    finite = [max((abs(v) for v in c if math.isfinite(v)), default=0.0) for c in costs]
    scale = max(abs(budget), sum(finite)) or 1.0
    offsets = [min(c) for c in costs]
    costs = [[c - o for c in cst] for cst, o in zip(costs, offsets)]
    budget = budget - sum(offsets)
    limit = budget + 1e-9 * scale
    frontier = [_Node(0.0, 0.0, -1, -1)]
    history = []
    for vals, cst in zip(values, costs):
        cand = sorted((_Node(n.cost + c, n.value + v, i, j)
                       for i, n in enumerate(frontier) for j, (v, c) in enumerate(zip(vals, cst))),
                      key=lambda n: (n.cost, n.value))
        kept: list[_Node] = []
        for n in cand:
            if n.cost > limit:
                break
            if not kept or n.value < kept[-1].value:
                kept.append(n)
        if not kept:
            return None
        history.append(kept)
        frontier = kept
    idx = len(frontier) - 1  # values strictly decrease along a frontier: the last is the minimum
    choices = []
    for kept in reversed(history):
        choices.append(kept[idx].choice)
        idx = kept[idx].parent
    return choices[::-1]


def min_cost(costs: Sequence[Sequence[float]]) -> float:
    return float(sum(min(c) for c in costs))
