"""Frontends: model formats -> adacal IR."""
from adacal.frontends.onnx import SUPPORTED_OPS, load_onnx

__all__ = ["SUPPORTED_OPS", "load_onnx"]
