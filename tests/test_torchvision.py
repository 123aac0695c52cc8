"""torchvision's classifiers as users export them (random weights, opset 17,
224x224): `adacal inspect` says convertible for the standard architectures,
and MobileNetV3 stays refused (HardSwish).  The rewrites they need — linear
bottlenecks (MobileNetV2), pre-activation blocks (DenseNet), max pools —
keep the float burst SNN equal to the ANN at large T and burst cap."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision.models as tvm

from adacal.pipeline import ConvertOptions, convert_graph, load_model
from adacal.runtime_sim.float_sim import simulate
from onnx_fixtures import export_onnx

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

CONVERTIBLE = {
    "resnet18": {}, "vgg16": {}, "vgg16_bn": {}, "mobilenet_v2": {}, "squeezenet1_0": {}, "alexnet": {},
    "densenet121": {}, "googlenet": {"aux_logits": False, "init_weights": True}, "shufflenet_v2_x0_5": {},
    "mnasnet0_5": {}, "regnet_x_400mf": {}, "resnext50_32x4d": {},
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("tv")
    return d


def _export(d, name: str, **kw) -> str:
    torch.manual_seed(0)
    net = getattr(tvm, name)(weights=None, **kw).eval()
    path = d / f"{name}.onnx"
    torch.onnx.export(net, torch.randn(1, 3, 224, 224), str(path), opset_version=17, dynamo=False)
    return str(path)


def _inspect(path: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adacal", "inspect", path, "--json"], capture_output=True,
                          text=True, env=ENV)


@pytest.mark.parametrize("name", list(CONVERTIBLE))
def test_inspect_says_convertible(exported, name):
    path = _export(exported, name, **CONVERTIBLE[name])
    r = _inspect(path)
    os.remove(path)  # VGG and ResNeXt are hundreds of MB
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["convertible"] is True, out["problems"][:3]
    roles = {e["role"] for e in out["layers"]}
    if name in ("vgg16", "alexnet", "googlenet", "densenet121", "squeezenet1_0"):
        assert "max pool" in roles


def test_mobilenet_v3_stays_refused_naming_hardswish(exported):
    path = _export(exported, "mobilenet_v3_small")
    r = _inspect(path)
    assert r.returncode == 2
    assert "HardSwish" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def _randomise_bn(net: torch.nn.Module) -> None:
    """Non-trivial batch-norm statistics (fresh ones are the identity)."""
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)


SMALL = {
    # linear bottlenecks: projections without ReLU, a residual stream without ReLU
    "mobilenet_v2": lambda: tvm.mobilenet_v2(num_classes=10, width_mult=0.25),
    # pre-activation blocks: BN -> ReLU after a Concat, conv outputs concatenated without ReLU
    "densenet": lambda: tvm.DenseNet(growth_rate=4, block_config=(2, 2), num_init_features=8, bn_size=2,
                                     num_classes=10),
}


@pytest.mark.parametrize("name", list(SMALL))
def test_rewrites_keep_the_float_snn_equal_to_the_ann(tmp_path, name):
    torch.manual_seed(0)
    net = SMALL[name]().eval()
    _randomise_bn(net)
    ann = load_model(export_onnx(net, torch.zeros(1, 3, 32, 32), tmp_path / f"{name}.onnx", True, opset=17))
    kinds = [n.kind for n in ann.nodes]
    if name == "mobilenet_v2":
        # the linear residual streams composed into their readers: no signed neurons, sums of many synapses
        assert "Relay" not in kinds
        assert any(n.kind == "Add" and len(n.inputs) >= 3 for n in ann.nodes)
    else:
        assert "Relay" in kinds and "Affine" not in kinds
        assert any(n.kind == "Conv2d" and n.op.groups == n.shape[0] > 1 and n.op.weight.shape[2:] == (1, 1)
                   for n in ann.nodes)  # the pre-activation BN as a depthwise 1x1 synapse
    x = np.random.default_rng(0).uniform(0, 1, (8, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(ann.run(x), net(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)
    T = 128
    conv = convert_graph(ann, x, None, ConvertOptions(timesteps=T, max_spikes=32, calibration="none"))
    assert any(n.kind == "BurstNeuron" and n.op.signed for n in conv.snn.nodes) == (name == "densenet")
    out = simulate(conv.snn, x, T)[0].mean_output()
    ref = ann.run(x)
    assert np.abs(out - ref).max() / np.abs(ref).max() < 1e-3
