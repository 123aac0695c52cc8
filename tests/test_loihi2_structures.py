"""Network structures of torchvision size on Lava (backends/loihi2): wide
feature maps and what happens when a Lava process model fails.

Lava 0.10's fixed-point Conv model keeps kernel size, stride, padding,
dilation and groups as int8 and mixes them with Python ints; under numpy 2
that raises OverflowError from 128 input or output channels (or a padded map
128 wide) on, and a failed Lava run then hung forever instead of raising:
`adacal verify` on a torchvision ResNet-18 sat idle.  run_lava now runs Conv
through conv_model.PyConvModelFixedInt32 (Lava's arithmetic, int32
parameters) and ends a failed run itself (lava_run._run_steps, _abort);
docs/loihi2.md,
"Lava quirks".

Every Lava run here happens in a subprocess with a timeout, so a hang fails
the test instead of blocking the suite.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(TESTS)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
#: seconds one subprocess may take (a hang becomes a failure); the slowest
#: (the ResNet through the CLI) takes about 45 s on a loaded 2-core machine
TIMEOUT = 300


def _run(cmd: list, timeout: int, what: str) -> subprocess.CompletedProcess:
    """Run cmd in a session of its own; past timeout kill the whole session
    (Lava's model processes too) and fail: a hang becomes a failure."""
    p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=ENV, cwd=TESTS, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"{what}: no result within {timeout} s (a Lava hang?)\n{err[-3000:]}")
    if p.returncode != 0:
        raise AssertionError(f"{what}: exit {p.returncode}:\n{err[-4000:]}")
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def _python(code: str, timeout: int = TIMEOUT) -> dict:
    """Run code in a fresh interpreter; it prints one JSON line last."""
    r = _run([sys.executable, "-c", textwrap.dedent(code)], timeout, "python")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _adacal(*args, timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "adacal", *args], timeout, f"adacal {args[0]}")


# ===========================================================================
# integer networks with 128+ channels, against the lock-step reference
# ===========================================================================
#: builds (g, x, T) with test_loihi2_lava.Net; imported in the subprocess
_WIDE_NETS = '''
import numpy as np
from adacal import ir
from test_loihi2_lava import Net


def wide_residual(rng, T, n):
    """ResNet-like at 128+ channels: a stride-2 conv to 128 channels, a
    block with an identity skip (depthwise 1x1, groups=128) read through
    Delay(1) (an identity relay, groups=128), a 3x3 depthwise conv
    (groups=128), a stride-2 1x1 downsample to 130 channels, a Dense readout."""
    net = Net(rng, (3, 6, 6))
    x = rng.normal(0.6, 1.2, size=(n, 3, 6, 6))
    c = 128
    n1 = net.neuron(net.conv("x", c, k=3, stride=2, pad=1, w=net.weights((c, 3, 3, 3), "mixed")), x, T)
    n2 = net.neuron(net.conv(n1, c, k=3, pad=1, w=net.weights((c, c, 3, 3), "mixed", lo=-6, hi=6)), x, T)
    main = net.conv(n2, c, k=3, pad=1, w=net.weights((c, c, 3, 3), "mixed", lo=-6, hi=6))
    eye = np.full((c, 1, 1, 1), 2, np.int64)
    skip = net.conv(net.delay(n1, 1), c, k=1, pad=0, groups=c, w=eye)
    n3 = net.neuron(net.add(main, skip), x, T)
    n4 = net.neuron(net.conv(n3, c, k=3, pad=1, groups=c, w=net.weights((c, 1, 3, 3), "mixed")), x, T)
    w5 = net.weights((130, c, 1, 1), "mixed", lo=-6, hi=6)
    n5 = net.neuron(net.conv(n4, 130, k=1, stride=2, pad=0, w=w5), x, T)
    return net.graph(net.dense(net.flatten(n5), 3, weight_exp=0)), x


def wide_map(rng, T, n):
    """A padded map 130 wide: Lava's output_shape adds the width to an int8
    padding."""
    net = Net(rng, (2, 1, 130))
    x = rng.normal(0.6, 1.2, size=(n, 2, 1, 130))
    h = net.neuron(net.conv("x", 3, k=3, pad=1, w=net.weights((3, 2, 3, 3), "mixed")), x, T)
    return net.graph(net.dense(net.flatten(h), 2, weight_exp=-2)), x


def case(kind):
    rng = np.random.default_rng([7, len(kind)])
    T = 3
    g, x = {"wide_residual": wide_residual, "wide_map": wide_map}[kind](rng, T, 2)
    return g, x, T
'''


@pytest.mark.parametrize("kind", ["wide_residual", "wide_map"])
def test_wide_network_is_bit_exact_against_lava(kind):
    """run_lava against the independent lock-step reference of
    test_loihi2_lava and against adacal's integer simulator: every payload
    at every step."""
    res = _python(_WIDE_NETS + f'''
import json
from adacal.backends.loihi2.lava_plan import plan_lava
from adacal.backends.loihi2.lava_run import run_lava
from adacal.runtime_sim.int_sim import simulate_int
from test_loihi2_lava import reference

g, x, T = case({kind!r})
plan = plan_lava(g)
lava = run_lava(g, x, T)
pay, out = reference(g, x, T)
ours, _ = simulate_int(g, x, T, record_payloads=True)
bad = [n for n in pay if not np.array_equal(lava["payloads"][n], pay[n])]
bad_sim = [n for n in pay if not np.array_equal(ours.payloads[n], pay[n])]
widest = max(int(n.shape[0]) for n in g.nodes if len(n.shape) == 3)
widest_map = max(int(n.shape[2]) for n in g.nodes if len(n.shape) == 3)
groups = max(int(getattr(n.op, "groups", 1)) for n in g.nodes)
spiking = [n for n in pay if pay[n].any()]
print(json.dumps(dict(bad=bad, bad_sim=bad_sim, readout=bool(np.array_equal(lava["readout"], out)),
                      readout_sim=bool(np.array_equal(ours.readout, out)), layers=len(pay), spiking=len(spiking),
                      widest=widest, widest_map=widest_map, groups=groups, relays=sum(plan.relays.values()))))
''')
    assert res["bad"] == [] and res["readout"], res
    assert res["bad_sim"] == [] and res["readout_sim"], res
    assert res["spiking"] == res["layers"]  # every layer carries payloads: the comparison means something
    if kind == "wide_residual":
        assert res["widest"] >= 128 and res["groups"] == 128 and res["relays"] == 1
    else:
        assert res["widest_map"] >= 128


# ===========================================================================
# the vendor behaviour, and a failed run raising instead of hanging
# ===========================================================================
_ONE_CONV = '''
import json, numpy as np
from adacal import int_ir, ir
from adacal.backends.loihi2 import conv_model, lava_run

def one_conv(c=128, groups=1):
    w = np.ones((c, c // groups, 1, 1), np.int64)
    nodes = (ir.Node("x", int_ir.GradedInput(1.0, -4, 4), (), (c, 2, 2)),
             ir.Node("conv", int_ir.IntConv(w, (1, 1), (0, 0, 0, 0), (1, 1), groups, 8, 1), ("x",), (c, 2, 2)))
    return ir.Graph(nodes, "conv"), np.ones((1, c, 2, 2))

def outcome(model, g, x):
    """run_lava with `model` (a process model class or None: Lava's own) for Conv."""
    from lava.proc.conv.process import Conv
    conv_model.conv_run_config_map = lambda: ({} if model is None else {Conv: model})
    try:
        r = lava_run.run_lava(g, x, 2)
    except Exception as e:
        return dict(raised=type(e).__name__, message=str(e)[-2000:])
    return dict(raised=None, readout=r["readout"].ravel()[:4].tolist())
'''


def test_vendor_conv_model_overflows_from_128_channels():
    """Why conv_model exists: Lava's own PyConvModelFixed fails on a 1x1 Conv
    of 128 channels (int8 groups under numpy 2) and, at groups=128, already
    when it is built; with PyConvModelFixedInt32 both run.  Each failure
    arrives as a RuntimeError carrying the model's traceback, within seconds."""
    res = _python(_ONE_CONV + '''
from adacal.backends.loihi2.conv_model import PyConvModelFixedInt32
print(json.dumps(dict(vendor=outcome(None, *one_conv()), vendor_groups=outcome(None, *one_conv(groups=128)),
                      ours=outcome(PyConvModelFixedInt32, *one_conv()),
                      ours_groups=outcome(PyConvModelFixedInt32, *one_conv(groups=128)))))
''')
    assert res["ours"]["raised"] is None and res["ours"]["readout"] == [128] * 4, res["ours"]
    assert res["ours_groups"]["raised"] is None and res["ours_groups"]["readout"] == [1] * 4, res["ours_groups"]
    if res["vendor"]["raised"] is None:
        pytest.skip("this Lava / numpy no longer overflows: conv_model.PyConvModelFixedInt32 may be dropped")
    for key in ("vendor", "vendor_groups"):
        assert res[key]["raised"] == "RuntimeError" and "OverflowError" in res[key]["message"], res[key]


def test_failing_process_model_raises_instead_of_hanging():
    """A process model raising in a step, or while it is built: Lava alone
    would wait forever in stop(); run_lava ends the run and raises with the
    model's own error, and a second run in the same interpreter works."""
    res = _python(_ONE_CONV + '''
from adacal.backends.loihi2.conv_model import PyConvModelFixedInt32

class FailsInStep(PyConvModelFixedInt32):
    def run_spk(self):
        if self.time_step == 2:
            raise ValueError("deliberate failure in step 2")
        super().run_spk()

class FailsInBuild(PyConvModelFixedInt32):
    def __init__(self, proc_params):
        raise ValueError("deliberate failure while built")

g, x = one_conv(c=4)
print(json.dumps(dict(step=outcome(FailsInStep, g, x), build=outcome(FailsInBuild, g, x),
                      after=outcome(PyConvModelFixedInt32, g, x))))
''', timeout=300)
    assert res["step"]["raised"] == "RuntimeError" and "deliberate failure in step 2" in res["step"]["message"]
    assert res["build"]["raised"] == "RuntimeError" and "deliberate failure while built" in res["build"]["message"]
    assert res["after"]["raised"] is None and res["after"]["readout"] == [4] * 4


# ===========================================================================
# a torchvision ResNet, narrowed, through the CLI
# ===========================================================================
_TINY_RESNET = '''
import sys, numpy as np, torch
from torch import nn
from torchvision.models.resnet import BasicBlock
from onnx_fixtures import export_onnx, randomise_batchnorm


class TinyResNet(nn.Module):
    """torchvision's ResNet, narrowed: stem conv + BN + ReLU + MaxPool (hoisted
    onto the conv currents), a BasicBlock, a stride-2 BasicBlock to 128
    channels with the 1x1 stride-2 downsample on its skip, an identity
    BasicBlock at 128 channels, global average pool, fc."""

    def __init__(self, wide=128, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(16, 16))
        ds = nn.Sequential(nn.Conv2d(16, wide, 1, 2, bias=False), nn.BatchNorm2d(wide))
        self.layer2 = nn.Sequential(BasicBlock(16, wide, 2, ds), BasicBlock(wide, wide))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(wide, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


torch.manual_seed(0)
model = TinyResNet().eval()
randomise_batchnorm(model, 1)
export_onnx(model, torch.randn(2, 3, 16, 16), sys.argv[1], do_constant_folding=True)
rng = np.random.default_rng(0)
np.savez(sys.argv[2], x=rng.uniform(0, 1, (32, 3, 16, 16)).astype(np.float32), y=rng.integers(0, 10, 32))
'''


def test_torchvision_resnet_structure_verifies_against_lava(tmp_path):
    """The structure that hung `adacal verify` on ResNet-18 (layers of 128
    channels, their identity skips and relays at groups=128, a downsample),
    small enough for CI: compile-loihi2 -T 2, then verify 2 samples, bit-exact."""
    onnx_path, data = tmp_path / "tiny_resnet.onnx", tmp_path / "data.npz"
    _run([sys.executable, "-c", _TINY_RESNET, onnx_path, data], TIMEOUT, "export")
    art = tmp_path / "art"
    _adacal("compile-loihi2", onnx_path, "--calib", data, "-T", 2, "-o", art, "--quiet")
    from adacal.backends.loihi2.network_file import read_network
    g = read_network(art / "network.h5").graph
    kinds = {n.kind for n in g.nodes}
    assert {"IntMaxPool", "Delay", "Add"} <= kinds
    assert max(int(n.shape[0]) for n in g.nodes if len(n.shape) == 3) == 128
    downsample = [n for n in g.nodes if n.kind == "IntConv" and tuple(n.op.stride) == (2, 2)
                  and n.op.weight.shape[2:] == (1, 1)]
    assert downsample
    res = json.loads(_adacal("verify", art, "--data", data, "--samples", 2, "--json", "--quiet").stdout)
    assert res["samples"] == 2 and res["mismatched_samples"] == 0 and res["first_mismatch"] is None, res
    assert res["layers_compared"] == 8

