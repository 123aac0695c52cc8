"""Tiny helpers to build adacal IR graphs by hand in tests.

`build(input_shape, (name, op, inputs), ...)` infers every per-sample shape with
the interpreter.
"""
from __future__ import annotations

import numpy as np

from adacal import ir
from adacal.interpret import infer_shape


def build(input_shape, *specs, output=None) -> ir.Graph:
    """specs: (name, op, inputs) in topological order; shapes are inferred.
    The input node is called "x"."""
    nodes = [ir.Node("x", ir.Input(), (), tuple(input_shape))]
    shapes = {"x": tuple(input_shape)}
    for name, op, inputs in specs:
        shape = infer_shape(op, [shapes[i] for i in inputs])
        nodes.append(ir.Node(name, op, tuple(inputs), shape))
        shapes[name] = shape
    return ir.Graph(tuple(nodes), output or nodes[-1].name)


def f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def dense(weight, bias=None) -> ir.Dense:
    w = f32(weight)
    return ir.Dense(w, f32(np.zeros(w.shape[0]) if bias is None else bias))


def conv(weight, bias=None, pad=0, stride=1) -> ir.Conv2d:
    w = f32(weight)
    return ir.Conv2d(w, f32(np.zeros(w.shape[0]) if bias is None else bias), (stride, stride), (pad,) * 4)


def neuron(threshold, max_spikes, bias=None, v_init=None) -> ir.BurstNeuron:
    th = f32(np.atleast_1d(threshold))
    return ir.BurstNeuron(th, int(max_spikes), f32(np.zeros_like(th) if bias is None else bias),
                          None if v_init is None else f32(v_init))


def random_conv(rng, cin, cout, k=3, pad=1, stride=1) -> ir.Conv2d:
    return conv(rng.normal(size=(cout, cin, k, k)), rng.normal(size=cout), pad, stride)


def random_dense(rng, nin, nout) -> ir.Dense:
    return dense(rng.normal(size=(nout, nin)), rng.normal(size=nout))


def kinds(g: ir.Graph) -> list[str]:
    return [n.kind for n in g.nodes]
