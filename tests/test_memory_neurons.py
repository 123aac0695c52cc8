"""Memory neurons (`--neuron memory`, ir.BurstNeuron.memory): a ReLU's burst
neurons that may send negative bursts to take back spikes they sent
earlier, never more than they have sent, at most max_spikes per step:
k = clamp(floor(V / θ), max(−sent, −φ), φ); sent += k.

The step against hand-computed trains, the float and integer loops against
the step, Lava's BurstIF(memory=True) against the integer simulator (samples
back to back) and in whole networks, the conversion through the CLI (more
accurate than plain burst neurons on unevenly arriving inputs), the network
file, and Xylo's refusal."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from adacal import int_ir
from adacal.backends.loihi2.lower import lower_loihi2
from adacal.backends.loihi2.network_file import read_network, write_network
from adacal.backends.loihi2.verify import verify
from adacal.errors import AdacalError
from adacal.passes.cleanup import cleanup
from adacal.pipeline import ConvertOptions, convert_graph
from adacal.runtime_sim import loihi2_arith as arith
from adacal.runtime_sim.burst import burst_loop
from adacal.runtime_sim.int_sim import run_int_neuron, simulate_int
from test_linear_stream import stream_ann
from test_loihi2_signed import _lava_neuron


def test_memory_step_takes_back_what_it_sent_and_no_more():
    # θ = 4, φ = 2, v starts at 2 (the half threshold); inputs 10, -9, -9, 3
    v, sent = np.array([2]), np.array([0])
    ks = [int(arith.burst_step(v, np.array([d]), np.array([4]), 2, sent=sent)[0]) for d in (10, -9, -9, 3)]
    # 12 -> k 2 (capped), v 4;  -5 -> k -2 (floor -2), v 3;  -6 -> k 0 (sent 0: nothing to take back), v -6;
    # -3 -> k 0 (floor -1, sent 0), v -3
    assert ks == [2, -2, 0, 0] and int(sent[0]) == 0 and int(v[0]) == -3
    # the plain neuron cannot take the two spikes back
    v = np.array([2])
    assert [int(arith.burst_step(v, np.array([d]), np.array([4]), 2)[0]) for d in (10, -9, -9, 3)] == [2, 0, 0, 0]


def test_memory_loop_equals_the_step_and_never_goes_below_zero():
    rng = np.random.default_rng(1)
    T, n, phi = 12, 200, 3
    theta = rng.integers(2, 30, n).astype(np.float64)
    drive = rng.integers(-60, 60, (T, 1, n)).astype(np.float64)
    v0 = np.floor(theta / 2)
    k = burst_loop(drive, v0.reshape(1, n).copy(), theta, phi, T, memory=True)[:, 0]
    v, sent = v0.astype(np.int64), np.zeros(n, np.int64)
    want = np.stack([arith.burst_step(v, drive[t, 0].astype(np.int64), theta.astype(np.int64), phi, sent=sent)
                     for t in range(T)])
    np.testing.assert_array_equal(k, want)
    assert (np.cumsum(k, axis=0) >= 0).all() and k.min() == -phi and k.max() == phi
    # where the cap does not bind, the spikes sent equal the floor of everything integrated, at least 0
    total = np.floor((v0 + drive[:, 0].sum(axis=0)) / theta)
    ok = np.abs(np.diff(np.concatenate([np.zeros((1, n)), np.cumsum(k, axis=0)]), axis=0)).max(axis=0) < phi
    np.testing.assert_array_equal(k.sum(axis=0)[ok], np.clip(total, 0, None)[ok])


def test_lava_memory_burst_if_equals_int_sim_back_to_back():
    rng = np.random.default_rng(2)
    n, T, hold, samples = 12, 9, 1, 2
    P = T + hold
    op = int_ir.IntBurstNeuron(rng.integers(3, 40, n), rng.integers(-5, 6, n), rng.integers(-20, 20, n), 3, hold,
                               memory=True)
    cur = rng.integers(-150, 150, (samples, T, n))
    cur[:, :4, :4] = 400  # spikes first, then
    cur[:, 4:, :4] = -400  # taken back
    stream = np.zeros((samples * P, n), np.int64)
    for s in range(samples):
        stream[s * P + hold:(s + 1) * P] = cur[s]
        if s:
            stream[s * P:s * P + hold] = -999  # discarded during the hold
    got = _lava_neuron(stream, op, hold, P)
    want, _ = run_int_neuron(op, cur.transpose(1, 0, 2).astype(np.float64), T)  # (T, samples, n)
    for s in range(samples):
        np.testing.assert_array_equal(got[s * P + hold:(s + 1) * P], want[:, s].astype(np.int64), err_msg=f"{s}")
    assert (want < 0).any() and (np.cumsum(want, axis=0) >= 0).all()
    plain, _ = run_int_neuron(replace(op, memory=False), cur.transpose(1, 0, 2).astype(np.float64), T)
    assert plain.min() == 0 and not np.array_equal(plain, want)


def _x(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, 2, 5, 5)).astype(np.float32)


@pytest.fixture(scope="module")
def memory_net():
    T = 6
    conv = convert_graph(cleanup(stream_ann()), _x(32, 4), None, ConvertOptions(timesteps=T, max_spikes=3,
                                                                                neuron="memory"))
    return conv, lower_loihi2(conv.snn, _x(32, 4), T), T


def test_memory_network_is_bit_exact_against_lava(memory_net, tmp_path):
    conv, low, T = memory_net
    assert all(n.op.memory for n in conv.snn.nodes if n.kind == "BurstNeuron")
    x = _x(3, 2)
    res = verify(low, x)
    assert res["mismatched_samples"] == 0 and res["first_mismatch"] is None, res["first_mismatch"]
    ours, _ = simulate_int(low.graph, x, T, record_payloads=True)
    assert any((k < 0).any() for k in ours.payloads.values()), "some layer must take spikes back"
    # the network file keeps the flag; without it the network computes something else
    path = tmp_path / "net.h5"
    write_network(low, path)
    back = read_network(path)
    assert all(n.op.memory for n in back.graph.nodes if isinstance(n.op, int_ir.IntBurstNeuron))
    plain = replace(back, graph=back.graph.with_nodes(
        replace(n, op=replace(n.op, memory=False)) if isinstance(n.op, int_ir.IntBurstNeuron) else n
        for n in back.graph.nodes))
    a, _ = simulate_int(back.graph, _x(16, 3), T)
    b, _ = simulate_int(plain.graph, _x(16, 3), T)
    assert not np.array_equal(a.readout, b.readout)


def test_xylo_refuses_memory_neurons():
    """An MLP converted with memory neurons is refused by the Xylo lowering,
    naming the layer; the same MLP with burst neurons maps."""
    from adacal.backends.xylo.network import extract_chain
    from irbuild import build, dense
    from adacal import ir

    rng = np.random.default_rng(5)
    ann = build((6,), ("d0", dense(rng.normal(size=(8, 6))), ["x"]), ("r0", ir.Relu(), ["d0"]),
                ("d1", dense(rng.normal(size=(3, 8))), ["r0"]))
    x = rng.uniform(0, 1, (32, 6)).astype(np.float32)
    for neuron in ("burst", "memory"):
        conv = convert_graph(ann, x, None, ConvertOptions(timesteps=4, max_spikes=2, neuron=neuron))
        if neuron == "burst":
            extract_chain(conv.snn)
        else:
            with pytest.raises(AdacalError, match="'r0' \\(memory neurons\\)"):
                extract_chain(conv.snn)


ROOT = Path(__file__).resolve().parents[1]


def cli(*args) -> subprocess.CompletedProcess:
    from test_convert_cli import _env
    return subprocess.run([sys.executable, "-m", "adacal", *map(str, args)], capture_output=True, text=True,
                          env=_env(), cwd=ROOT, timeout=600)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from test_convert_cli import _env
    out = tmp_path_factory.mktemp("digits")
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "digits_cnn.py"), "--out", str(out)],
                          capture_output=True, text=True, env=_env(), timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out / "digits_cnn.onnx", out / "digits_calib.npz", out / "digits_test.npz"


def test_memory_neurons_through_the_cli_compile_and_verify_against_lava(digits, tmp_path):
    """The digits CNN at T = 2, φ = 2 for Loihi 2: memory neurons are recorded,
    run a different network about as accurate as burst neurons' (this small
    CNN has little uneven input to correct), and the compiled network
    verifies bit-exactly against Lava."""
    model, calib, test = digits
    common = ("compile-loihi2", model, "--calib", calib, "--val", test, "-T", "2", "--max-spikes", "2", "--json")
    burst = cli(*common, "-o", tmp_path / "burst")
    memory = cli(*common, "--neuron", "memory", "-o", tmp_path / "memory")
    assert burst.returncode == 0 and memory.returncode == 0, burst.stderr + memory.stderr
    sb, sm = json.loads(burst.stdout), json.loads(memory.stdout)
    assert abs(sm["float_snn_accuracy"] - sb["float_snn_accuracy"]) <= 0.01
    assert sm["spikes_per_sample"] != sb["spikes_per_sample"]
    assert abs(sm["snn_accuracy"] - sm["float_snn_accuracy"]) <= 0.01
    man = json.loads((tmp_path / "memory" / "manifest.json").read_text())
    assert man["options"]["neuron"] == "memory"
    net = read_network(tmp_path / "memory" / "network.h5")
    assert all(n.op.memory for n in net.graph.nodes if isinstance(n.op, int_ir.IntBurstNeuron))
    v = cli("verify", tmp_path / "memory", "--data", test, "--samples", "3", "--json")
    assert v.returncode == 0, v.stderr
    res = json.loads(v.stdout)
    assert res["mismatched_samples"] == 0 and res["samples"] == 3
    bad = cli("convert", model, "--calib", calib, "--neuron", "spiky")
    assert bad.returncode == 2 and "--neuron" in bad.stderr


def test_neurons_a_max_pool_reads_stay_plain_also_through_a_concat():
    """A max pool over payloads keeps a running maximum, which a negative
    burst cannot lower: the neurons it reads — directly or through a Concat
    of branches (Inception, Fire) — stay plain burst neurons; the others
    become memory neurons."""
    from adacal import ir
    from irbuild import build, random_conv, random_dense

    rng = np.random.default_rng(6)
    ann = build((2, 8, 8), ("c0", random_conv(rng, 2, 3), ["x"]), ("r0", ir.Relu(), ["c0"]),
                ("ca", random_conv(rng, 3, 2), ["r0"]), ("ra", ir.Relu(), ["ca"]),
                ("cb", random_conv(rng, 3, 2), ["r0"]), ("rb", ir.Relu(), ["cb"]),
                ("cat", ir.Concat(0), ["ra", "rb"]), ("mp", ir.MaxPool((2, 2), (2, 2)), ["cat"]),
                ("c1", random_conv(rng, 4, 3), ["mp"]), ("r1", ir.Relu(), ["c1"]),
                ("c2", random_conv(rng, 3, 3, k=2, pad=0, stride=2), ["r1"]), ("r2", ir.Relu(), ["c2"]),
                ("mp2", ir.MaxPool((2, 2), (2, 2)), ["r2"]), ("fl", ir.Flatten(), ["mp2"]),
                ("fc", random_dense(rng, 3, 2), ["fl"]))
    x = rng.uniform(0, 1, (16, 2, 8, 8)).astype(np.float32)
    conv = convert_graph(ann, x, None, ConvertOptions(timesteps=4, max_spikes=2, neuron="memory",
                                                      calibration="none", maxpool="running"))
    memory = {n.name: n.op.memory for n in conv.snn.nodes if n.kind == "BurstNeuron"}
    assert memory == {"r0": True, "ra": False, "rb": False, "r1": True, "r2": False}
