"""adacal: ONNX -> calibrated burst-spiking networks for Loihi 2 and Xylo."""
from adacal.errors import AdacalError
from adacal.ir import Graph, Node

__version__ = "0.1.0"


def load_onnx(model):
    """Load an ONNX model (path, bytes or ModelProto) into an adacal IR graph."""
    from adacal.frontends.onnx import load_onnx as _load
    return _load(model)


def convert(model, calib, val=None, **options):
    """Convert an ONNX model into a calibrated float burst SNN: (conversion, summary)."""
    from adacal.pipeline import convert as _convert
    return _convert(model, calib, val, **options)


def compile(model, target, calib, out_dir, val=None, force=False, **options):  # noqa: A001 - the API name
    """Compile for a target ('loihi2') into out_dir; returns the Artifact."""
    from adacal.artifact import compile_model
    from adacal.pipeline import ConvertOptions
    art, _ = compile_model(model, target, calib, out_dir, val=val, options=ConvertOptions(**options), force=force,
                           model_path=model if isinstance(model, str) else None)
    return art


def load_artifact(path):
    from adacal.artifact import load_artifact as _load
    return _load(path)


__all__ = ["AdacalError", "Graph", "Node", "compile", "convert", "load_artifact", "load_onnx", "__version__"]
