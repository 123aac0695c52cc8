"""The one graph walker (in the manner of torch.fx's Interpreter): evaluate an
IR graph node by node in order, each node by a `run_node` hook, and free
every value after its last reader.

The float interpreter (adacal.interpret), the float SNN simulator and the
integer simulator (adacal.runtime_sim) differ only in their run_node.
"""
from __future__ import annotations

from typing import Callable, TypeVar

from adacal import ir

V = TypeVar("V")
RunNode = Callable[[ir.Node, list], object]


def last_use(graph: ir.Graph) -> dict[str, int]:
    """node name -> index of the last node that reads it."""
    last = {}
    for i, n in enumerate(graph.nodes):
        for src in n.inputs:
            last[src] = i
    return last


def walk(graph: ir.Graph, values: dict[str, V], run_node: RunNode, *, start: int = 0, stop: int | None = None,
         keep=(),
         before: Callable[[ir.Node, dict], None] | None = None,
         after: Callable[[ir.Node, V], None] | None = None) -> dict[str, V]:
    """Visit graph's nodes from index `start` on: the input node (index 0) is
    not run, `values` holds its value; start > 0 resumes from a snapshot of
    the live values taken before node `start`.  With stop, the walk ends
    before node `stop` and returns the live values there (a snapshot to
    resume from).

    run_node(node, input values) -> the node's value.  before(node, live
    values) is called before a node is visited, after(node, value) once it
    has its value.  Values are freed after
    their last reader unless named in keep or the graph's output.  Returns the
    live values at the end (the output and the kept ones among them).
    """
    last = last_use(graph)
    values = dict(values)
    keep = set(keep) | {graph.output}
    for i, node in enumerate(graph.nodes):
        if i < start:
            continue
        if stop is not None and i >= stop:
            break
        if before is not None:
            before(node, values)
        if i > 0:
            values[node.name] = run_node(node, [values[s] for s in node.inputs])
        if after is not None:
            after(node, values[node.name])
        for src in node.inputs:
            if last.get(src) == i and src not in keep:
                values.pop(src, None)
    return values
