"""1-D networks (issue 15): Conv1d, BatchNorm1d, MaxPool1d / AvgPool1d and a
global max / mean over the length axis, as torch's classic exporter writes
them, load onto the IR (as (C, 1, L), frontends/onnx_1d.py), run equal to
onnxruntime, and a temporal CNN with AvgPool converts to burst neurons."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import adacal
import onnx_fixtures as fx
from adacal import ir
from adacal.passes import cleanup
from adacal.passes.plan import conversion_plan


def _export(model, shape, path, opset=17, cf=False):
    return fx.export_onnx(model, fx._example(shape), path, do_constant_folding=cf, opset=opset)


def _check_equal(path, shape, n=16):
    x = np.random.default_rng(0).standard_normal((n, *shape)).astype(np.float32)
    g = adacal.load_onnx(path)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    got = g.run(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # the graph keeps the ONNX input / output shapes
    assert tuple(g.input_shape) == shape and (len(x), *g.output_shape) == want.shape
    return g


@pytest.mark.parametrize("maxpool", [True, False])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("cf", [False, True])
def test_pointnet_equals_onnxruntime(tmp_path, maxpool, keepdim, cf):
    path = _export(fx.pointnet_1d(0, maxpool, keepdim), fx.POINTNET_INPUT, tmp_path / "pn.onnx", cf=cf)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "ReduceMax" in ops and "Conv" in ops
    g = _check_equal(path, fx.POINTNET_INPUT)
    assert any(isinstance(n.op, ir.GlobalMaxPool) for n in g.nodes)
    convs = [n for n in g.nodes if isinstance(n.op, ir.Conv2d)]
    assert len(convs) == 3 and all(n.op.weight.shape[2] == 1 for n in convs)
    roles = {e.op: e.role for e in conversion_plan(cleanup(g))}
    assert roles["GlobalMaxPool"] == "max pool"  # a spiking stage over the neurons before it


def test_temporal_cnn_equals_onnxruntime_and_converts(tmp_path):
    path = _export(fx.temporal_cnn(0), fx.TEMPORAL_INPUT, tmp_path / "tcn.onnx")
    _check_equal(path, fx.TEMPORAL_INPUT)
    plan = conversion_plan(cleanup(adacal.load_onnx(path)))
    assert [e.role for e in plan if e.op == "Conv2d"] == ["spiking", "spiking"]
    assert not [e for e in plan if e.role == "unsupported"]
    x = np.random.default_rng(1).standard_normal((64, *fx.TEMPORAL_INPUT)).astype(np.float32)
    y = adacal.load_onnx(path).run(x).argmax(1)
    res = adacal.convert(str(path), x, (x, y), timesteps=16)
    assert res.summary["snn_accuracy"] >= 0.5


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_temporal_cnn_other_opsets(tmp_path, opset):
    _check_equal(_export(fx.temporal_cnn(1), fx.TEMPORAL_INPUT, tmp_path / "t.onnx", opset=opset),
                 fx.TEMPORAL_INPUT)


def _tiny(node, in_shape, out_rank, inits=()):
    from onnx import TensorProto, helper
    out = [f"d{i}" for i in range(out_rank)]
    g = helper.make_graph([node], "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, *in_shape])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)], initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[3], strides=[2], pads=[1, 1]),
    dict(kernel_shape=[3], auto_pad="SAME_UPPER"),
    dict(kernel_shape=[2], ceil_mode=1),
    dict(kernel_shape=[3], dilations=[2], pads=[2, 0]),
])
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "Conv"])
def test_1d_attributes_equal_onnxruntime(tmp_path, op, attrs):
    from onnx import helper, numpy_helper
    inits, inputs = [], ["x"]
    if op == "Conv":
        attrs = {k: v for k, v in attrs.items() if k != "ceil_mode"}
        w = np.random.default_rng(2).standard_normal((4, 3, attrs["kernel_shape"][0])).astype(np.float32)
        inits, inputs = [numpy_helper.from_array(w, "w")], ["x", "w"]
    m = _tiny(helper.make_node(op, inputs, ["y"], **attrs), (3, 11), 3, inits)
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    if op == "AveragePool" and "dilations" in attrs:  # not an opset-17 attribute: one line naming it
        with pytest.raises(adacal.AdacalError, match=r"m.onnx: invalid ONNX model .*dilations for operator AveragePool"):
            adacal.load_onnx(path)
        return
    x = np.random.default_rng(0).standard_normal((2, 3, 11)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(adacal.load_onnx(path).run(x), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op, axes, keep", [("ReduceMax", [2], 1), ("ReduceMax", [-1], 0), ("ReduceMean", [2], 0),
                                            ("ReduceMax", [2, 3], 1), ("GlobalMaxPool", None, 1)])
def test_global_reductions(tmp_path, op, axes, keep):
    from onnx import helper
    shape = (3, 5, 6) if axes == [2, 3] or op == "GlobalMaxPool" else (3, 7)
    kw = {} if axes is None else dict(axes=axes, keepdims=keep)
    path = tmp_path / "m.onnx"
    onnx.save(_tiny(helper.make_node(op, ["x"], ["y"], **kw), shape, len(shape) + 1 - (0 if keep else len(axes))),
              str(path))
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = adacal.load_onnx(path).run(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_reduce_over_the_channels_is_refused(tmp_path):
    from onnx import helper
    m = _tiny(helper.make_node("ReduceMax", ["x"], ["y"], axes=[1], keepdims=0), (3, 7), 2)
    with pytest.raises(adacal.errors.UnsupportedError, match="global pool"):
        adacal.load_onnx(m)
