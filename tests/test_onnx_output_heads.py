"""Output heads and refusals: a trailing Softmax / LogSoftmax (possibly
followed by Identity / Flatten / Reshape) is dropped and recorded on the graph
and in the conversion plan; a Softmax inside the network, LRN, HardSwish,
Sigmoid / SiLU gating, GELU and MatMul of two activations are refused in one
line naming the node and the op (CLI exit 2)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import adacal
from adacal.errors import UnsupportedError
from adacal.passes import cleanup, conversion_plan
from adacal.report import format_plan, inspect_model

F = TensorProto.FLOAT


def _mlp(tail, opset=17, out_rank=2):
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32), "w")
    w2 = numpy_helper.from_array(np.random.default_rng(1).standard_normal((8, 3)).astype(np.float32), "w2")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc1"), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["logits"], name="fc2")] + tail
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", F, [1, 4])],
                          [helper.make_tensor_value_info(nodes[-1].output[0], F, [None] * out_rank)],
                          initializer=[w, w2])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("tail", [
    [helper.make_node("Softmax", ["logits"], ["p"], name="head", axis=1)],
    [helper.make_node("LogSoftmax", ["logits"], ["s"], name="head"), helper.make_node("Identity", ["s"], ["p"])],
    [helper.make_node("Softmax", ["logits"], ["s"], name="head"), helper.make_node("Flatten", ["s"], ["p"])],
])
def test_trailing_head_is_dropped_and_planned(tail, tmp_path):
    m = _mlp(tail)
    g = adacal.load_onnx(m)
    assert g.dropped_head == f"head ({tail[0].op_type})"
    x = np.random.default_rng(2).standard_normal((5, 4)).astype(np.float32)
    w, w2 = (numpy_helper.to_array(t) for t in m.graph.initializer)
    np.testing.assert_allclose(g.run(x), np.maximum(x @ w, 0) @ w2, rtol=1e-5, atol=1e-5)
    assert cleanup(g).dropped_head == g.dropped_head
    last = conversion_plan(cleanup(g))[-1]
    assert (last.name, last.op, last.role, last.detail) == ("head", tail[0].op_type, "output head",
                                                            "dropped: keeps the argmax")
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    assert "output head: dropped: keeps the argmax" in format_plan(inspect_model(path))


def test_softmax_over_a_non_class_axis_is_refused():
    m = _mlp([helper.make_node("Reshape", ["logits", "s"], ["l3"]),
              helper.make_node("Softmax", ["l3"], ["p"], name="head", axis=1)], out_rank=3)
    m.graph.initializer.append(numpy_helper.from_array(np.array([1, 3, 1], np.int64), "s"))
    m2 = _mlp([helper.make_node("Softmax", ["logits"], ["p"], name="head")])  # fine
    adacal.load_onnx(m2)
    adacal.load_onnx(m)  # axis 1 of (3, 1) spans the classes: accepted
    m.graph.node[-1].attribute[0].i = 2
    with pytest.raises(UnsupportedError, match="not over the classes"):
        adacal.load_onnx(m)


def _refused(tail, opset=17, out_rank=2):
    with pytest.raises(UnsupportedError) as e:
        adacal.load_onnx(_mlp(tail, opset, out_rank))
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_softmax_inside_the_network_is_refused():
    msg = _refused([helper.make_node("Softmax", ["logits"], ["s"], name="sm"),
                    helper.make_node("Relu", ["s"], ["p"])])
    assert msg.startswith("node 'sm' (Softmax): a Softmax inside the network")


@pytest.mark.parametrize("op,opset", [("LRN", 17), ("HardSwish", 17), ("Sigmoid", 17), ("Gelu", 20)])
def test_activation_refusals_name_node_op_and_why(op, opset):
    kw = {"size": 3} if op == "LRN" else {}
    msg = _refused([helper.make_node(op, ["logits"], ["p"], name="bad", **kw)], opset)
    assert msg.startswith(f"node 'bad' ({op}): ") and len(msg) > len(f"node 'bad' ({op}): ") + 10


def test_silu_gating_is_refused_at_the_sigmoid():
    msg = _refused([helper.make_node("Sigmoid", ["logits"], ["sg"], name="gate"),
                    helper.make_node("Mul", ["logits", "sg"], ["p"])])
    assert msg.startswith("node 'gate' (Sigmoid)") and "SiLU" in msg


def test_matmul_of_two_activations_is_refused():
    msg = _refused([helper.make_node("Transpose", ["logits"], ["t"], perm=[1, 0]),
                    helper.make_node("MatMul", ["logits", "t"], ["p"], name="attn")])
    assert "batch" in msg or "two activations" in msg
    msg = _refused([helper.make_node("MatMul", ["logits", "logits"], ["p"], name="attn")])
    assert msg.startswith("node 'attn' (MatMul): MatMul of two activations")


def test_cli_refuses_softmax_inside_with_exit_2(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_mlp([helper.make_node("Softmax", ["logits"], ["s"], name="sm"),
                    helper.make_node("Relu", ["s"], ["p"])]), path)
    proc = subprocess.run([sys.executable, "-m", "adacal", "inspect", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "node 'sm' (Softmax)" in proc.stderr and "Traceback" not in proc.stderr
