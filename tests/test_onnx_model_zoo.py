"""The ONNX Model Zoo classic CNNs onnx ships as backend test data (opset-9
exports, weights from ConstantOfShape, initializers listed among the graph
inputs): the six without LRN load and their float run equals onnxruntime on
the logits (the trailing Softmax is dropped); the three with LRN are refused
in one line naming the node and op."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

import adacal
from adacal.errors import UnsupportedError

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
LOADS = ["densenet121", "inception_v2", "resnet50", "shufflenet", "squeezenet", "vgg19"]
LRN = ["bvlc_alexnet", "inception_v1", "zfnet512"]


def _logits_reference(path: Path, x: np.ndarray, head: bool) -> np.ndarray:
    m = onnx.load(path)
    if head:  # onnxruntime's value of the Softmax input: the logits adacal keeps
        soft = [n for n in m.graph.node if n.op_type == "Softmax"][-1]
        del m.graph.output[:]
        m.graph.output.append(helper.make_tensor_value_info(soft.input[0], onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {_input_name(m): x})[0]


def _input_name(m) -> str:
    inits = {t.name for t in m.graph.initializer}
    return next(i.name for i in m.graph.input if i.name not in inits)


@pytest.mark.parametrize("name", LOADS)
def test_model_zoo_cnn_matches_onnxruntime(name):
    path = LIGHT / f"light_{name}.onnx"
    g = adacal.load_onnx(path)
    assert g.input_shape == (3, 224, 224)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    ref = _logits_reference(path, x, head=g.dropped_head is not None)
    y = g.run(x).reshape(ref.shape)
    assert np.abs(y - ref).max() / np.abs(ref).max() <= 1e-4
    assert (g.dropped_head is None) == (name == "densenet121")  # densenet121 ends without a Softmax


@pytest.mark.parametrize("name", LRN)
def test_model_zoo_lrn_is_refused_in_one_line(name):
    with pytest.raises(UnsupportedError) as e:
        adacal.load_onnx(LIGHT / f"light_{name}.onnx")
    msg = str(e.value)
    assert "\n" not in msg and "(LRN)" in msg and msg.startswith("node '")
