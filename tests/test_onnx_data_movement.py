"""Data-movement and n-ary ops as exact linear maps: Transpose (channel
shuffle), Slice, Split, edge/reflect/wrap Pad, nearest Resize / Upsample,
ConvTranspose, Concat on any axis, Sum / Mean, old-opset forms.  Each model's
float run must equal onnxruntime's."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import adacal
from adacal import ir
from adacal.errors import UnsupportedError
from adacal.passes import conversion_plan

F = TensorProto.FLOAT


def _model(nodes, in_shape, inits=(), opset=17, out="y", out_rank=4):
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", F, [1, *in_shape])],
                          [helper.make_tensor_value_info(out, F, [None] * out_rank)],
                          initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8 if opset >= 13 else 7
    return m


def _check(m, in_shape, seed=0):
    x = np.random.default_rng(seed).standard_normal((1, *in_shape)).astype(np.float32)
    g = adacal.load_onnx(m)
    ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    y = g.run(x)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    return g


def test_channel_shuffle_transpose():
    m = _model([helper.make_node("Reshape", ["x", "s1"], ["a"]),
                helper.make_node("Transpose", ["a"], ["b"], perm=[0, 2, 1, 3, 4]),
                helper.make_node("Reshape", ["b", "s2"], ["y"])], (6, 4, 5),
               inits=[("s1", np.array([1, 2, 3, 4, 5], np.int64)), ("s2", np.array([1, 6, 4, 5], np.int64))])
    g = _check(m, (6, 4, 5))
    assert any(isinstance(n.op, ir.Transpose) for n in g.nodes)


def test_transpose_moving_batch_is_refused():
    m = _model([helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0, 2, 3])], (2, 3, 3))
    with pytest.raises(UnsupportedError, match="batch"):
        adacal.load_onnx(m)


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([1], [3], [1], [1]), ([0, 1], [4, 7], [2, 3], [2, 3]), ([-1], [-100], [3], [-2]),
    ([0, 2], [2 ** 62, 5], [0, 1], [1, 1]),
])
def test_slice(starts, ends, axes, steps):
    i = lambda v: np.array(v, np.int64)  # noqa: E731
    m = _model([helper.make_node("Slice", ["x", "s", "e", "a", "k"], ["y"])], (6, 5, 8),
               inits=[("s", i(starts)), ("e", i(ends)), ("a", i(axes)), ("k", i(steps))])
    _check(m, (6, 5, 8))


def test_split_on_channels_then_concat_on_width():
    m = _model([helper.make_node("Split", ["x", "sp"], ["a", "b"], axis=1),
                helper.make_node("Concat", ["b", "a"], ["y"], axis=3)], (6, 3, 4),
               inits=[("sp", np.array([3, 3], np.int64))])
    _check(m, (6, 3, 4))


def test_split_num_outputs_opset18():
    m = _model([helper.make_node("Split", ["x"], ["a", "b", "c"], axis=2, num_outputs=3),
                helper.make_node("Concat", ["c", "a", "b"], ["y"], axis=2)], (2, 7, 3), opset=18)
    _check(m, (2, 7, 3))


@pytest.mark.parametrize("mode", ["reflect", "edge", "wrap"])
def test_pad_modes(mode):
    m = _model([helper.make_node("Pad", ["x", "p"], ["y"], mode=mode)], (2, 5, 6), opset=19,
               inits=[("p", np.array([0, 0, 2, 1, 0, 0, 1, 3], np.int64))])
    _check(m, (2, 5, 6))


def test_pad_reflect_opset9_attribute_form():
    m = _model([helper.make_node("Pad", ["x"], ["y"], mode="reflect", pads=[0, 0, 1, 2, 0, 0, 2, 1])],
               (2, 5, 6), opset=9)
    _check(m, (2, 5, 6))


def test_conv_transpose():
    w = np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = np.arange(3, dtype=np.float32)
    m = _model([helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2], pads=[1, 0, 0, 1],
                                 output_padding=[1, 1])], (4, 5, 6), inits=[("w", w), ("b", b)])
    _check(m, (4, 5, 6))


def test_conv_transpose_grouped_output_shape():
    w = np.random.default_rng(2).standard_normal((4, 1, 3, 3)).astype(np.float32)
    m = _model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], group=2,
                                 output_shape=[10, 12], auto_pad="SAME_UPPER")], (4, 5, 6), inits=[("w", w)])
    _check(m, (4, 5, 6))


@pytest.mark.parametrize("ctm,nearest,scale", [
    ("asymmetric", "floor", [1, 1, 2, 2]), ("half_pixel", "round_prefer_floor", [1, 1, 1.5, 2.5]),
    ("align_corners", "round_prefer_ceil", [1, 1, 0.6, 3]), ("pytorch_half_pixel", "ceil", [1, 1, 2, 0.5]),
    ("tf_half_pixel_for_nn", "floor", [1, 1, 1.7, 1]), ("half_pixel_symmetric", "round_prefer_floor", [1, 1, 1.3, 2]),
])
def test_resize_nearest_scales(ctm, nearest, scale):
    m = _model([helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="nearest",
                                 coordinate_transformation_mode=ctm, nearest_mode=nearest)], (2, 5, 7), opset=19,
               inits=[("sc", np.array(scale, np.float32))])
    _check(m, (2, 5, 7))


def test_resize_nearest_sizes():
    m = _model([helper.make_node("Resize", ["x", "", "", "sz"], ["y"], mode="nearest")], (2, 5, 7),
               inits=[("sz", np.array([1, 2, 9, 4], np.int64))])
    _check(m, (2, 5, 7))


def test_upsample_opset9_and_resize_linear_refused():
    m = _model([helper.make_node("Upsample", ["x", "sc"], ["y"], mode="nearest")], (2, 3, 4), opset=9,
               inits=[("sc", np.array([1, 1, 2, 3], np.float32))])
    g = _check(m, (2, 3, 4))
    assert g.output_shape == (2, 6, 12)
    lin = _model([helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="linear")], (2, 3, 4),
                 inits=[("sc", np.array([1, 1, 2, 2], np.float32))])
    with pytest.raises(UnsupportedError, match="Resize.*nearest"):
        adacal.load_onnx(lin)


def test_sum_and_mean_nary():
    m = _model([helper.make_node("Relu", ["x"], ["r"]),
                helper.make_node("Sum", ["x", "r", "c", "x"], ["s"]),
                helper.make_node("Mean", ["s", "r", "x"], ["y"])], (3, 4, 4),
               inits=[("c", np.full((3, 1, 1), 0.5, np.float32))])
    _check(m, (3, 4, 4))


def test_old_opset_forms():
    """Opset 7 forms: Unsqueeze / ReduceMean axes as attributes, BatchNormalization
    spatial, Dropout is_test, broadcast Add (brought to opset 13 by onnx's converter)."""
    rng = np.random.default_rng(3)
    bn = [(k, rng.random(3).astype(np.float32) + 0.5) for k in ("g", "b", "m", "v")]
    m = _model([helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["n"], spatial=1),
                helper.make_node("Dropout", ["n"], ["d"], ratio=0.3),
                helper.make_node("Unsqueeze", ["c"], ["cu"], axes=[1, 2]),
                helper.make_node("Add", ["d", "cu"], ["a"]),
                helper.make_node("ReduceMean", ["a"], ["y"], axes=[2, 3], keepdims=0)], (3, 4, 4),
               inits=bn + [("c", rng.random(3).astype(np.float32))], opset=7, out_rank=2)
    _check(m, (3, 4, 4))


def test_plan_marks_data_movement_as_payload_routing():
    # converted: tests/test_convert_data_movement.py
    m = _model([helper.make_node("Transpose", ["x"], ["y"], perm=[0, 1, 3, 2])], (2, 3, 4))
    plan = conversion_plan(adacal.load_onnx(m))
    assert plan[-1].op == "Transpose" and plan[-1].role == "linear" and "payload routing" in plan[-1].detail
