"""Xylo and issue-16 constructs: each either maps or is refused by the
design-rule check naming the node.

- a pre-activation affine (BN -> ReLU that no layer absorbs) in an MLP becomes
  a diagonal dense synapse: it maps, and the compiled network verifies
  bit-exactly against xylosim;
- a max pool (Xylo's neurons only sum weighted events) and signed neurons
  (Xylo's spikes are unsigned) are refused in one line naming the node, with
  exit code 2 and nothing written."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import torch
from torch import nn

from onnx_fixtures import export_onnx

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def adacal(*args):
    return subprocess.run([sys.executable, "-m", "adacal", *map(str, args)], capture_output=True, text=True, env=ENV)


class PreActMLP(nn.Module):
    """dense -> ReLU -> dense -> ReLU -> BN -> ReLU -> dense: the BN reads
    neurons and feeds a ReLU, so no dense can absorb it."""

    def __init__(self):
        super().__init__()
        self.l1, self.l2, self.out = nn.Linear(16, 24), nn.Linear(24, 24), nn.Linear(24, 10)
        self.bn = nn.BatchNorm1d(24)

    def forward(self, x):
        h = torch.relu(self.l1(x))
        return self.out(torch.relu(self.bn(torch.relu(self.l2(h)))))


def _data(tmp_path, n=96):
    rng = np.random.default_rng(0)
    x = rng.random((n, 16), dtype=np.float32)
    np.savez(tmp_path / "cal.npz", x=x, y=np.arange(n) % 10)
    return tmp_path / "cal.npz"


def _compile_xylo(tmp_path, model, shape, name):
    torch.manual_seed(0)
    path = export_onnx(model.eval(), torch.zeros(shape), tmp_path / f"{name}.onnx", True, opset=17)
    out = tmp_path / f"{name}_out"
    return adacal("compile-xylo", path, "--calib", _data(tmp_path), "-o", out, "--device", "xylo-audio3",
                  "-T", 8, "--quiet"), out


def test_preactivation_affine_maps_on_xylo_and_verifies(tmp_path):
    model = PreActMLP()
    with torch.no_grad():  # a BN with a real effect, after a ReLU: nothing can absorb it
        model.bn.running_mean.uniform_(0.0, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
        model.bn.weight.uniform_(0.5, 1.5)
        model.bn.bias.uniform_(-0.3, 0.3)
    r = adacal("inspect", export_onnx(model.eval(), torch.zeros(1, 16), tmp_path / "p.onnx", True, opset=17),
               "--json")
    layers = json.loads(r.stdout)["layers"]
    assert any(e["op"] == "Dense" and "BatchNormalization" in e["name"] for e in layers), layers
    r, out = _compile_xylo(tmp_path, model, (1, 16), "preact")
    assert r.returncode == 0, r.stderr
    v = adacal("verify", out, "--data", tmp_path / "cal.npz", "--samples", "8", "--json")
    assert v.returncode == 0, v.stderr
    res = json.loads(v.stdout)
    assert res["samples"] == 8 and res["mismatched_samples"] == 0 and res["reference"] == "xylosim"


class PoolNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv1d(1, 4, 3, padding=1)
        self.out = nn.Linear(32, 10)

    def forward(self, x):
        return self.out(nn.functional.max_pool1d(torch.relu(self.c(x.reshape(-1, 1, 16))), 2).flatten(1))


class LinearStream(nn.Module):
    """A dense whose output no ReLU rectifies, read by two layers: signed neurons."""

    def __init__(self):
        super().__init__()
        self.l1, self.l2, self.a, self.b = nn.Linear(16, 12), nn.Linear(12, 12), nn.Linear(12, 8), nn.Linear(12, 8)
        self.out = nn.Linear(16, 10)

    def forward(self, x):
        z = self.l2(torch.relu(self.l1(x)))
        return self.out(torch.cat([torch.relu(self.a(z)), torch.relu(self.b(z))], 1))


def test_max_pool_is_refused_naming_the_node(tmp_path):
    r, out = _compile_xylo(tmp_path, PoolNet(), (1, 16), "pool")
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "MaxPool" in r.stderr and "max pool" in r.stderr
    assert not out.exists()


def test_signed_neurons_are_refused_naming_the_node(tmp_path):
    r, out = _compile_xylo(tmp_path, LinearStream(), (1, 16), "signed")
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "signed" in r.stderr and "/relay" in r.stderr
    assert not out.exists()
