"""One model, every exporter: the digits CNN of examples/digits_cnn.py exported
by torch's classic exporter at opsets 9, 11, 13 and 17 and by the dynamo
exporter converts to the same spiking network (issue 15)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import adacal
import onnx_fixtures as fx
from adacal import ir
from adacal.passes import cleanup

ROOT = Path(__file__).resolve().parents[1]
EXPORTS = ("opset9", "opset11", "opset13", "opset17", "dynamo")


def _example():
    spec = importlib.util.spec_from_file_location("digits_cnn", ROOT / "examples" / "digits_cnn.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import torch
    ex = _example()
    data = ex.load_data(0)
    torch.manual_seed(0)
    model = ex.build_model()
    fx.randomise_batchnorm(model, 1)
    model.eval()
    d = tmp_path_factory.mktemp("exporters")
    x = torch.from_numpy(data[0][:2])
    paths = {f"opset{o}": fx.export_onnx(model, x, d / f"op{o}.onnx", do_constant_folding=False, opset=o)
             for o in (9, 11, 13, 17)}
    paths["dynamo"] = fx.export_onnx_dynamo(model, x, d / "dynamo.onnx")
    return paths, data


def test_every_export_converts_to_the_same_network(exported):
    paths, (x_tr, _, x_te, y_te) = exported
    x_cal, val = x_tr[:128], (x_te[:128], y_te[:128])
    results = {k: adacal.convert(str(p), x_cal, val, timesteps=4).summary for k, p in paths.items()}
    ref = results["opset17"]
    for k, s in results.items():
        for key in ("snn_accuracy", "spikes_per_sample", "synops_per_sample"):
            assert s[key] == pytest.approx(ref[key], rel=1e-6), (k, key, s[key], ref[key])


def test_every_export_gives_the_same_ir_weights(exported):
    paths, (x_tr, *_) = exported
    graphs = {k: cleanup(adacal.load_onnx(p)) for k, p in paths.items()}
    ref = [n.op for n in graphs["opset17"].nodes if isinstance(n.op, ir.LINEAR_LAYERS)]
    for k, g in graphs.items():
        ops = [n.op for n in g.nodes if isinstance(n.op, ir.LINEAR_LAYERS)]
        assert [type(o) for o in ops] == [type(o) for o in ref], k
        for a, b in zip(ops, ref):
            np.testing.assert_allclose(a.weight, b.weight, rtol=1e-5, atol=1e-6, err_msg=k)
            np.testing.assert_allclose(a.bias, b.bias, rtol=1e-5, atol=1e-6, err_msg=k)
        np.testing.assert_allclose(g.run(x_tr[:32]), graphs["opset17"].run(x_tr[:32]), rtol=1e-5, atol=1e-5)
