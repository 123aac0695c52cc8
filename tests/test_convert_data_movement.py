"""Data movement in the burst SNN: Transpose and Take route spike
payloads exactly, a ConvTranspose2d is a synapse.  At large T and burst cap
the float SNN equals the ANN; fan-out counts follow copies; Loihi 2 refuses
them by name until its lowering places them; Xylo unrolls them exactly."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from adacal import ir
from adacal.pipeline import ConvertOptions, convert_graph, load_model
from adacal.runtime_sim.energy import fanout_maps
from adacal.runtime_sim.float_sim import simulate
from onnx_fixtures import export_onnx
from irbuild import build, conv, dense, f32, neuron

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
T, PHI = 256, 64


class ShuffleBlocks(nn.Module):
    """Two ShuffleNetV2-style blocks: split (chunk -> Split, slicing -> Slice),
    a branch of 1x1 and depthwise convs, concat, channel shuffle."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.b1 = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.ReLU())
        self.b2 = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.ReLU())
        self.head = nn.Linear(8, 5)

    @staticmethod
    def shuffle(x):
        return x.reshape(-1, 2, 4, 6, 6).transpose(1, 2).reshape(-1, 8, 6, 6)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        a, b = x.chunk(2, dim=1)
        x = self.shuffle(torch.cat([a, self.b1(b)], 1))
        x = self.shuffle(torch.cat([x[:, :4], self.b2(x[:, 4:])], 1))
        return self.head(x.mean(dim=(2, 3)))


class ReflectPad(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1, padding_mode="reflect")
        self.c2 = nn.Conv2d(6, 6, 3)
        self.head = nn.Linear(6 * 3 * 3, 5)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        x = torch.relu(self.c2(nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")))
        return self.head(nn.functional.avg_pool2d(x, 2).flatten(1))


class UpsampleDeconv(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.c2 = nn.Conv2d(6, 6, 3, stride=2, padding=1)
        self.ct = nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1)
        self.head = nn.Linear(4, 5)

    def forward(self, x):
        x = torch.relu(self.up(self.c1(x)))  # conv -> Take -> ReLU: burst neurons after routing
        x = torch.relu(self.c2(x))
        x = torch.relu(self.ct(x))
        return self.head(x.mean(dim=(2, 3)))


NETS = {"shuffle": ShuffleBlocks, "reflect_pad": ReflectPad, "upsample_deconv": UpsampleDeconv}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("dm")
    out = {}
    for key, cls in NETS.items():
        torch.manual_seed(0)
        out[key] = export_onnx(cls(), torch.zeros(1, 3, 6, 6), d / f"{key}.onnx", True, opset=17)
    return out


def _x(n=32, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, 3, 6, 6)).astype(np.float32)


@pytest.mark.parametrize("key", list(NETS))
def test_float_snn_equals_the_ann_at_large_T(models, key):
    ann = load_model(models[key])
    kinds = {n.kind for n in ann.nodes}
    want = {"shuffle": {"Transpose", "Take"}, "reflect_pad": {"Take"},
            "upsample_deconv": {"Take", "ConvTranspose2d"}}[key]
    assert want <= kinds
    x = _x()
    conv = convert_graph(ann, x, None, ConvertOptions(timesteps=T, max_spikes=PHI, calibration="none"))
    snn_out = simulate(conv.snn, x, T)[0].mean_output()
    ref = ann.run(x)
    rel = np.abs(snn_out - ref).max() / np.abs(ref).max()
    print(f"{key}: max relative error {rel:.2e}")
    assert rel < 1e-3


@pytest.mark.parametrize("key", list(NETS))
def test_inspect_says_convertible(models, key):
    r = subprocess.run([sys.executable, "-m", "adacal", "inspect", models[key], "--json"], capture_output=True,
                       text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["convertible"] is True


def test_fanout_counts_copies_through_take_and_not_through_transpose():
    g = build((2, 1, 3),
              ("c", conv(np.eye(2).reshape(2, 2, 1, 1)), ("x",)),
              ("n", neuron([1, 1], 4), ("c",)),
              ("t", ir.Take(2, np.array([0, 0, 1, 2, 2], np.int64)), ("n",)),  # edge pad of width 1
              ("p", ir.Transpose((0, 2, 1)), ("t",)),
              ("f", ir.Flatten(), ("p",)),
              ("d", dense(np.ones((3, 10))), ("f",)))
    np.testing.assert_array_equal(fanout_maps(g)["n"], f32([[[6, 3, 6]], [[6, 3, 6]]]))


@pytest.mark.parametrize("pad,per_neuron", [(0, 3 * 2 * 2), (1, 3)])
def test_fanout_of_a_transposed_conv_is_its_outgoing_weights(pad, per_neuron):
    ct = ir.ConvTranspose2d(f32(np.ones((1, 3, 2, 2))), f32(np.zeros(3)), (2, 2), (pad,) * 4)
    g = build((1, 2, 2),
              ("c", conv(np.ones((1, 1, 1, 1))), ("x",)),
              ("n", neuron([1], 4), ("c",)),
              ("ct", ct, ("n",)),
              ("m", neuron([1, 1, 1], 4), ("ct",)),
              ("f", ir.Flatten(), ("m",)),
              ("d", dense(np.ones((2, 3 * (4 - 2 * pad) ** 2))), ("f",)))
    np.testing.assert_array_equal(fanout_maps(g)["n"], np.full((1, 2, 2), per_neuron, np.float32))
    assert ir.macs(g.node("ct")) == 12 * 4  # every input value times C_out*kH*kW weights


def test_compile_loihi2_refuses_them_by_name(models, tmp_path):
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=_x(16))
    out = tmp_path / "art"
    r = subprocess.run([sys.executable, "-m", "adacal", "compile-loihi2", models["upsample_deconv"], "--calib",
                        calib, "-o", out, "-T", "8", "--max-spikes", "4", "--quiet"], capture_output=True, text=True, env=ENV)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("adacal: error: ") and "not supported on Loihi 2 yet" in lines[0]
    assert "Traceback" not in r.stderr
    assert "(Take)" in lines[0] and "(ConvTranspose2d)" in lines[0]
    assert not out.exists()


def test_xylo_unrolls_routing_and_transposed_conv_exactly():
    from adacal.backends.xylo.network import extract_chain

    rng = np.random.default_rng(0)
    ct = ir.ConvTranspose2d(f32(rng.normal(size=(2, 2, 3, 3))), f32(rng.normal(size=2)), (2, 2), (1, 1, 1, 1),
                            (1, 1))
    g = build((2, 2, 2),
              ("t", ir.Take(2, np.array([0, 0, 1, 1], np.int64)), ("x",)),
              ("ct", ct, ("t",)),
              ("n", neuron([0.5, 0.5], 4), ("ct",)),
              ("p", ir.Transpose((0, 2, 1)), ("n",)),
              ("f", ir.Flatten(), ("p",)),
              ("d", dense(rng.normal(size=(3, 2 * 4 * 8))), ("f",)))
    layers, readout = extract_chain(g)
    x = rng.normal(size=(4, 2, 2, 2)).astype(np.float32)
    cur = g.activations(x, ["ct"])["ct"].reshape(4, -1)
    np.testing.assert_allclose(x.reshape(4, -1) @ layers[0].weight.T + layers[0].bias
                               - np.repeat(f32(neuron([0.5, 0.5], 4).bias), 32), cur, rtol=1e-5, atol=1e-5)
    spikes = rng.uniform(size=(4, 2, 4, 8))
    want = g.node("d").op.weight @ spikes.transpose(0, 1, 3, 2).reshape(4, -1).T + g.node("d").op.bias[:, None]
    np.testing.assert_allclose(spikes.reshape(4, -1) @ readout.weight.T + readout.bias, want.T, rtol=1e-5)
