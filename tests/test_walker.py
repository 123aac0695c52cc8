"""The one graph walker (adacal.walker): order, freeing after the last
reader, keep, the before/after hooks and resuming from a snapshot."""
import numpy as np

from adacal import ir
from adacal.walker import last_use, walk

from irbuild import build, dense


def _graph():
    # x -> a -> b; add(a, b) -> out ; "dead" reads x and nobody reads it
    return build((2,), ("a", dense(np.eye(2)), ["x"]), ("b", ir.Relu(), ["a"]),
                 ("dead", ir.Relu(), ["x"]), ("add", ir.Add(), ["a", "b"]), output="add")


def _run(node, xs):
    return ("sum" if isinstance(node.op, ir.Add) else node.name, tuple(xs))


def test_last_use():
    assert last_use(_graph()) == {"x": 3, "a": 4, "b": 4}


def test_walk_runs_in_order_and_frees_after_last_reader():
    g = _graph()
    seen, live_before = [], {}
    live = walk(g, {"x": "X"}, _run, before=lambda n, v: live_before.__setitem__(n.name, sorted(v)),
                after=lambda n, v: seen.append(n.name))
    assert seen == ["x", "a", "b", "dead", "add"]
    assert live_before["dead"] == ["a", "b", "x"]
    assert live_before["add"] == ["a", "b", "dead"]  # x freed after its last reader, "dead"
    assert live["add"] == ("sum", (("a", ("X",)), ("b", (("a", ("X",)),))))
    assert "a" not in live and "b" not in live and "x" not in live


def test_keep_holds_values_alive():
    live = walk(_graph(), {"x": "X"}, _run, keep=("x", "b"))
    assert set(live) >= {"x", "b", "add"} and "a" not in live


def test_resume_from_a_snapshot_equals_the_whole_walk():
    g = _graph()
    snaps = {}
    full = walk(g, {"x": "X"}, _run, before=lambda n, v: snaps.__setitem__(n.name, dict(v)))
    start = g.names().index("dead")
    ran = []
    part = walk(g, snaps["dead"], lambda n, xs: ran.append(n.name) or _run(n, xs), start=start)
    assert ran == ["dead", "add"] and part["add"] == full["add"]
