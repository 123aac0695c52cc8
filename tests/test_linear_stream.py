"""A linear residual stream (MobileNetV2's: projections with no ReLU, summed by
Adds with no ReLU, read by the next blocks' pointwise expand convs) composed
into its readers' synapses (passes/linear_bottleneck.py): the rewrite's
structure and exactness, the float SNN against the ANN, and the Loihi 2
network — neurons fed by a sum of many synapses from layers at different
depths — bit-exact against Lava."""
from __future__ import annotations

import numpy as np

from adacal import ir
from adacal.backends.loihi2.lower import lower_loihi2
from adacal.backends.loihi2.verify import verify
from adacal.passes.linear_bottleneck import carry_linear_values
from adacal.pipeline import ConvertOptions, convert_graph
from adacal.runtime_sim.float_sim import simulate
from adacal.runtime_sim.int_sim import simulate_int
from irbuild import build, conv, kinds


def _conv(rng, cin, cout, k=1, pad=0, scale=1.0):
    return conv(rng.normal(0, scale * 1.5 / np.sqrt(cin * k * k), (cout, cin, k, k)), rng.normal(0, 0.1, cout), pad)


def stream_ann() -> ir.Graph:
    """stem -> block 1 (expand 3x3, project 1x1: s1) -> block 2 (expand
    from s1, project, s2 = s1 + p2) -> block 3 (expand from s2, project,
    s3 = s2 + p3) -> a pointwise head conv on s3 with a ReLU -> dense."""
    rng = np.random.default_rng(3)
    return build(
        (2, 5, 5),
        ("stem", _conv(rng, 2, 6, 3, 1), ["x"]), ("h0", ir.Relu(6.0), ["stem"]),
        ("p1", _conv(rng, 6, 3), ["h0"]),
        ("e2", _conv(rng, 3, 6), ["p1"]), ("h2", ir.Relu(6.0), ["e2"]),
        ("d2", _conv(rng, 6, 6, 3, 1), ["h2"]), ("h2b", ir.Relu(6.0), ["d2"]),
        ("p2", _conv(rng, 6, 3), ["h2b"]), ("s2", ir.Add(), ["p1", "p2"]),
        ("e3", _conv(rng, 3, 6), ["s2"]), ("h3", ir.Relu(6.0), ["e3"]),
        ("p3", _conv(rng, 6, 3), ["h3"]), ("s3", ir.Add(), ["s2", "p3"]),
        ("head", _conv(rng, 3, 8), ["s3"]), ("hh", ir.Relu(), ["head"]),
        ("fl", ir.Flatten(), ["hh"]),
        ("fc", ir.Dense(rng.normal(0, 0.2, (4, 200)).astype(np.float32), np.zeros(4, np.float32)), ["fl"]))


def _x(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, 2, 5, 5)).astype(np.float32)


def test_the_stream_is_composed_into_every_pointwise_reader():
    from adacal.interpret import run_graph

    g = stream_ann()
    c = carry_linear_values(g)
    assert "Relay" not in kinds(c)
    # no projection and no residual sum is left: every reader sums synapses from spiking layers
    assert not {"p1", "p2", "p3", "s2", "s3"} & set(c.names())
    assert c.node("e2").kind == "Conv2d" and c.node("e2").inputs == ("h0",)  # e2∘p1: one term
    assert c.node("e3").kind == "Add" and len(c.node("e3").inputs) == 2  # e3∘p1 + e3∘p2
    assert c.node("head").kind == "Add" and len(c.node("head").inputs) == 3  # head∘(p1 + p2 + p3)
    assert sorted(c.node(i).inputs[0] for i in c.node("head").inputs) == ["h0", "h2b", "h3"]
    x = _x(16, 0)
    np.testing.assert_allclose(run_graph(c, x), run_graph(g, x), rtol=1e-4, atol=1e-5)


def test_float_snn_of_the_composed_stream_equals_the_ann_at_large_T():
    from adacal.interpret import run_graph
    from adacal.passes.cleanup import cleanup

    ann = cleanup(stream_ann())
    x = _x(8, 1)
    conv = convert_graph(ann, x, None, ConvertOptions(timesteps=256, max_spikes=32, calibration="none"))
    assert not any(n.kind == "BurstNeuron" and n.op.signed for n in conv.snn.nodes)
    out = simulate(conv.snn, x, 256)[0].mean_output()
    ref = run_graph(ann, x)
    assert np.abs(out - ref).max() / np.abs(ref).max() < 2e-3


def test_composed_stream_on_loihi2_is_bit_exact_against_lava():
    from adacal.passes.cleanup import cleanup

    T = 6
    ann = cleanup(stream_ann())
    x = _x(3, 2)
    conv = convert_graph(ann, _x(32, 4), None, ConvertOptions(timesteps=T, max_spikes=3))
    low = lower_loihi2(conv.snn, _x(32, 4), T)
    res = verify(low, x)
    assert res["mismatched_samples"] == 0 and res["first_mismatch"] is None, res["first_mismatch"]
    ours, _ = simulate_int(low.graph, x, T, record_payloads=True)
    assert set(ours.payloads) >= {"h0", "h2", "h2b", "h3", "hh"}
    for layer, k in ours.payloads.items():
        assert k.any(), layer  # every layer spikes: the sums carry something
    # the head's neurons sum synapses from layers 1, 3 and 4 deep: the shorter paths are delayed
    assert any(n.kind == "Delay" for n in low.graph.nodes)


def test_a_term_counted_twice_is_relayed_not_composed():
    """s = p + p read by a pointwise conv: composing would name two synapses
    alike; the sum is carried by signed neurons instead, and the function
    is unchanged."""
    from adacal.interpret import run_graph

    rng = np.random.default_rng(8)
    g = build((2, 4, 4), ("c0", _conv(rng, 2, 4, 3, 1), ["x"]), ("h0", ir.Relu(), ["c0"]),
              ("p", _conv(rng, 4, 3), ["h0"]), ("s", ir.Add(), ["p", "p"]),
              ("e", _conv(rng, 3, 5), ["s"]), ("h1", ir.Relu(), ["e"]), ("fl", ir.Flatten(), ["h1"]),
              ("fc", ir.Dense(rng.normal(0, 0.2, (3, 80)).astype(np.float32), np.zeros(3, np.float32)), ["fl"]))
    c = carry_linear_values(g)
    assert "Relay" in kinds(c) and len(set(c.names())) == len(c.names())
    x = rng.uniform(0, 1, (4, 2, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(run_graph(c, x), run_graph(g, x), rtol=1e-4, atol=1e-5)
