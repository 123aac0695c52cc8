"""Old opsets and output heads, before an ONNX graph is converted to the IR.

Models below opset 13 (Model Zoo exports at opset 7-12: axes as attributes,
`broadcast` on binary ops, BatchNormalization `spatial`, Upsample, ...) are
brought to opset 13 by onnx's own version converter rather than by per-opset
code here.  When it cannot, the model is read as it is (the frontend knows the
common old forms) and the reason is kept for the error messages.
"""
from __future__ import annotations

import onnx
from onnx import version_converter

#: The opset older models are converted to.
TARGET_OPSET = 13

#: Ops that may follow an output head without changing its argmax.
_HEAD_TAIL = ("Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Dropout")
HEAD_OPS = ("Softmax", "LogSoftmax")


def default_opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 1)


def upgrade(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    """(model at opset >= TARGET_OPSET if it was older, note on what could not
    be converted or None)."""
    old = default_opset(proto)
    if old >= TARGET_OPSET:
        return proto, None
    try:
        new = version_converter.convert_version(proto, TARGET_OPSET)
        onnx.checker.check_model(new)
    except Exception as e:  # the converter's adapters raise RuntimeError / ValidationError and friends
        msg = str(e).strip().splitlines()
        why = msg[0] if msg else type(e).__name__
        return proto, f"onnx.version_converter could not bring opset {old} to {TARGET_OPSET}: {why}"
    return new, None


def find_head(graph: onnx.GraphProto) -> str | None:
    """The output tensor of a trailing Softmax / LogSoftmax (followed only by
    Identity / Flatten / Reshape / Squeeze / Unsqueeze / Dropout, each read by
    nothing else), or None."""
    if len(graph.output) != 1:
        return None
    producer = {o: n for n in graph.node for o in n.output if o}
    readers: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    name = graph.output[0].name
    while name in producer:
        node = producer[name]
        if node.op_type in HEAD_OPS and node.domain in ("", "ai.onnx"):
            return name
        if node.op_type not in _HEAD_TAIL or not node.input or readers.get(node.input[0], 0) != 1:
            return None
        name = node.input[0]
    return None
