"""adacal: ONNX -> calibrated burst-spiking networks for Loihi 2 and Xylo."""
from adacal.errors import AdacalError
from adacal.ir import Graph, Node

__version__ = "0.1.0"


def load_onnx(model):
    """Load an ONNX model (path, bytes or ModelProto) into an adacal IR graph."""
    from adacal.frontends.onnx import load_onnx as _load
    return _load(model)


__all__ = ["AdacalError", "Graph", "Node", "load_onnx", "__version__"]
