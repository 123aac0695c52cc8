"""Unit tests of the clean-up passes and the conversion plan on hand-built IR."""
import numpy as np
import pytest

from adacal import ir
from adacal.interpret import infer_shape
from irbuild import build
from adacal.passes import (cleanup, conversion_plan, drop_identity, fold_batchnorm, fold_pad,
                           fold_scalings, recognise_relu)

RNG = np.random.default_rng(0)


def conv(cin, cout, k=3, pad=1, stride=1, groups=1):
    w = RNG.normal(size=(cout, cin // groups, k, k)).astype(np.float32)
    return ir.Conv2d(w, RNG.normal(size=cout).astype(np.float32), (stride, stride), (pad,) * 4, (1, 1), groups)


def dense(nin, nout):
    return ir.Dense(RNG.normal(size=(nout, nin)).astype(np.float32), RNG.normal(size=nout).astype(np.float32))


def bn(c):
    return ir.BatchNorm(RNG.uniform(0.5, 1.5, c).astype(np.float32), RNG.normal(size=c).astype(np.float32),
                        RNG.normal(size=c).astype(np.float32), RNG.uniform(0.5, 2, c).astype(np.float32), 1e-5)


def kinds(g):
    return [n.kind for n in g.nodes]


def assert_same(g1, g2, x):
    y1, y2 = g1.run(x), g2.run(x)
    np.testing.assert_allclose(y2, y1, rtol=1e-4, atol=1e-4 * np.abs(y1).max())


X4 = RNG.normal(size=(5, 3, 8, 8)).astype(np.float32)


def test_fold_batchnorm_after_conv_and_standalone():
    g = build((3, 8, 8), ("bn0", bn(3), ["x"]), ("c1", conv(3, 4, pad=0), ["bn0"]), ("bn1", bn(4), ["c1"]),
              ("r", ir.Relu(), ["bn1"]))
    f = fold_batchnorm(g)
    assert "BatchNorm" not in kinds(f)
    assert kinds(f) == ["Input", "Affine", "Conv2d", "Relu"]  # standalone BN became an Affine
    assert_same(g, f, X4)
    c = cleanup(g)  # ... which folds into the unpadded conv
    assert kinds(c) == ["Input", "Conv2d", "Relu"]
    assert_same(g, c, X4)


def test_batchnorm_not_folded_when_conv_output_is_shared():
    g = build((3, 8, 8), ("c1", conv(3, 4), ["x"]), ("bn1", bn(4), ["c1"]), ("add", ir.Add(), ["bn1", "c1"]))
    f = fold_batchnorm(g)
    assert kinds(f) == ["Input", "Conv2d", "Affine", "Add"]
    assert_same(g, f, X4)


def test_affine_before_padded_conv_keeps_shift_unfolded():
    aff = ir.Affine(np.full((3, 1, 1), 2.0, np.float32), np.array([[[0.5]], [[-1.0]], [[0.0]]], np.float32))
    g = build((3, 8, 8), ("a", aff, ["x"]), ("c", conv(3, 4, pad=1), ["a"]))
    f = fold_scalings(g)
    assert kinds(f) == ["Input", "Affine", "Conv2d"]  # a shift before zero padding is not foldable
    assert_same(g, f, X4)
    g0 = build((3, 8, 8), ("a", ir.Affine(aff.scale, np.zeros((1,), np.float32)), ["x"]), ("c", conv(3, 4), ["a"]))
    f0 = fold_scalings(g0)
    assert kinds(f0) == ["Input", "Conv2d"]
    assert_same(g0, f0, X4)


def test_affine_before_grouped_conv_and_through_flatten_into_dense():
    aff = ir.Affine(RNG.uniform(0.5, 2, (4, 1, 1)).astype(np.float32), RNG.normal(size=(4, 1, 1)).astype(np.float32))
    g = build((4, 6, 6), ("a", aff, ["x"]), ("c", conv(4, 8, pad=0, groups=2), ["a"]))
    f = fold_scalings(g)
    assert kinds(f) == ["Input", "Conv2d"]
    x = RNG.normal(size=(3, 4, 6, 6)).astype(np.float32)
    assert_same(g, f, x)
    aff2 = ir.Affine(RNG.normal(size=(4, 6, 6)).astype(np.float32), RNG.normal(size=(6,)).astype(np.float32))
    g2 = build((4, 6, 6), ("a", aff2, ["x"]), ("fl", ir.Flatten(), ["a"]), ("d", dense(144, 5), ["fl"]))
    f2 = fold_scalings(g2)
    assert kinds(f2) == ["Input", "Flatten", "Dense"]
    assert_same(g2, f2, x)


def test_affine_after_dense_and_merge_and_spatially_varying_kept():
    g = build((6,), ("d", dense(6, 4), ["x"]), ("a", ir.Affine(np.float32(3.0) * np.ones(4, np.float32),
                                                                   np.arange(4, dtype=np.float32)), ["d"]),
              ("b", ir.Affine(np.array(0.5, np.float32), np.array(1.0, np.float32)), ["a"]))
    f = fold_scalings(g)
    assert kinds(f) == ["Input", "Dense"]
    assert_same(g, f, RNG.normal(size=(7, 6)).astype(np.float32))
    varying = ir.Affine(RNG.normal(size=(1, 8, 8)).astype(np.float32), np.zeros((), np.float32))
    g2 = build((3, 8, 8), ("c", conv(3, 2), ["x"]), ("a", varying, ["c"]), ("r", ir.Relu(), ["a"]))
    assert kinds(fold_scalings(g2)) == ["Input", "Conv2d", "Affine", "Relu"]


def test_fold_pad_and_drop_identity_and_relu_forms():
    g = build((3, 8, 8), ("p", ir.Pad((1, 2, 0, 1)), ["x"]), ("i", ir.Identity(), ["p"]),
              ("c", conv(3, 4, pad=0), ["i"]), ("clip", ir.Clip(0.0, 6.0), ["c"]),
              ("p2", ir.Pad((1, 1, 1, 1), value=1.0), ["clip"]), ("c2", conv(4, 2, pad=0), ["p2"]),
              ("clip2", ir.Clip(-1.0, 1.0), ["c2"]))
    f = recognise_relu(fold_pad(drop_identity(g)))
    assert kinds(f) == ["Input", "Conv2d", "Relu", "Pad", "Conv2d", "Clip"]
    assert f.nodes[1].op.padding == (1, 2, 0, 1)
    assert f.nodes[2].op.cap == 6.0
    assert_same(g, f, X4)
    r = recognise_relu(build((4,), ("c", ir.Clip(0.0, None), ["x"])))
    assert isinstance(r.nodes[1].op, ir.Relu) and r.nodes[1].op.cap is None


def roles(g):
    return {e.name: e.role for e in conversion_plan(cleanup(g))}


def test_plan_roles():
    g = build((3, 8, 8),
              ("c1", conv(3, 4), ["x"]), ("r1", ir.Relu(), ["c1"]),
              ("c2", conv(4, 4), ["r1"]), ("ds", conv(4, 4, k=1, pad=0), ["r1"]), ("add", ir.Add(), ["c2", "ds"]),
              ("r2", ir.Relu(), ["add"]), ("pool", ir.AvgPool((2, 2), (2, 2)), ["r2"]),
              ("fl", ir.Flatten(), ["pool"]), ("d1", dense(64, 10), ["fl"]), ("d2", dense(10, 3), ["d1"]))
    r = roles(g)
    assert r == {"x": "input", "c1": "spiking", "r1": "neuron", "c2": "spiking", "ds": "synapse",
                 "add": "residual", "r2": "neuron", "pool": "linear", "fl": "linear", "d1": "linear",
                 "d2": "accumulator"}


def test_plan_max_pool_over_neurons_is_a_stage_of_its_own():
    g = build((3, 8, 8), ("c1", conv(3, 4), ["x"]), ("r1", ir.Relu(), ["c1"]),
              ("mp", ir.MaxPool((2, 2), (2, 2)), ["r1"]), ("c2", conv(4, 4), ["mp"]), ("r2", ir.Relu(), ["c2"]),
              ("gm", ir.GlobalMaxPool(), ["r2"]), ("fl", ir.Flatten(), ["gm"]), ("d", dense(4, 2), ["fl"]))
    r = roles(g)
    assert r["mp"] == r["gm"] == "max pool" and r["r2"] == "neuron" and r["d"] == "accumulator"


@pytest.mark.parametrize("bad,reason", [
    (ir.Clip(-1.0, 1.0), "not a ReLU"),
])
def test_plan_unsupported(bad, reason):
    g = build((3, 8, 8), ("c1", conv(3, 4), ["x"]), ("r1", ir.Relu(), ["c1"]), ("bad", bad, ["r1"]),
              ("fl", ir.Flatten(), ["bad"]), ("d", dense(int(np.prod(infer_shape(bad, [(4, 8, 8)]))), 2), ["fl"]))
    plan = {e.name: e for e in conversion_plan(cleanup(g))}
    assert plan["bad"].role == "unsupported" and reason in plan["bad"].detail


def test_plan_add_without_relu_and_conv_without_relu_into_conv_become_signed_neurons():
    g = build((3, 8, 8), ("c1", conv(3, 3), ["x"]), ("c2", conv(3, 3), ["c1"]), ("r", ir.Relu(), ["c2"]),
              ("add", ir.Add(), ["r", "x"]), ("fl", ir.Flatten(), ["add"]), ("d", dense(192, 2), ["fl"]))
    r = roles(g)
    assert r["c1"] == "spiking" and r["c1/relay"] == r["add/relay"] == "neuron" and r["add"] == "residual"
    assert r["c2"] == "spiking" and "unsupported" not in r.values()


def test_conv_without_relu_into_a_pointwise_conv_is_composed_exactly():
    g = build((3, 8, 8), ("c1", conv(3, 4), ["x"]), ("c2", conv(4, 5, k=1, pad=0), ["c1"]), ("r", ir.Relu(), ["c2"]),
              ("fl", ir.Flatten(), ["r"]), ("d", dense(320, 2), ["fl"]))
    clean = cleanup(g)
    assert "c1" not in clean.names() and clean.node("c2").op.weight.shape == (5, 3, 3, 3)
    x = np.random.default_rng(0).normal(size=(4, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(clean.run(x), g.run(x), rtol=1e-5, atol=1e-5)
