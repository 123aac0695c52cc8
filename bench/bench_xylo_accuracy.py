#!/usr/bin/env python3
"""Bit-accurate Xylo accuracy against the ANN and the float burst SNN.

    python bench/bench_xylo_accuracy.py                  # T = 8, 16, 32
    python bench/bench_xylo_accuracy.py --timesteps 16 --max-spikes 4
    python bench/bench_xylo_accuracy.py --neuron exact leaky --devices xylo-imu

Models (trained deterministically on data that ships with scikit-learn):

  wine_mlp      bench/models.py: 13-32-16-3 MLP on standardised wine features
                (13 signed features -> 13 offset-coded input channels)
  digits16_mlp  sklearn digits 8x8 average-pooled 2x2 to 4x4 = 16 features in
                [0, 1] (16 positive-coded channels), MLP 16-64-10 trained here
                (:func:`digits16_mlp`)
  digits16_deep the same 16 features standardised (signed: 16 offset-coded
                channels), MLP 16-96-64-32-10 (three hidden layers)

For every model and T: convert with adacal.pipeline.convert (light
calibration, max_spikes phi), then for each device (and --neuron realisation)
lower_xylo + evaluate_xylo (adacal.runtime_sim.xylo_sim: bit-exact with
XyloSim; design notes in docs/xylo.md).  Prints one row per
(model, T, device): ANN / float SNN / Xylo test accuracy, Xylo agreement with
the ANN's class, the logit error of the float SNN and of Xylo against the
ANN, hidden events per sample (float SNN spikes for comparison),
input events per sample, run length in steps, and the compile time.  A device
the network does not fit prints the design-rule message instead.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

DEVICES = ("xylo-audio2", "xylo-audio3", "xylo-imu")


def digits16_mlp(seed: int = 0, hidden=(64,), epochs: int = 200, test_size: int = 450,
                 standardise: bool = False):
    """sklearn digits reduced to 16 features (4x4 average pooling of the 8x8
    image, values in [0, 1]; with ``standardise`` shifted and scaled by the
    training statistics, so signed) and an MLP 16-hidden...-10 trained on it
    (full-batch Adam, about 1 s per 200 epochs and 64 hidden).
    Returns (ir.Graph of the ANN, (x_train, y_train), (x_test, y_test))."""
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    from adacal import ir

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32).reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16)
    y = d.target.astype(np.int64)
    idx = np.random.default_rng(seed).permutation(len(x))
    te, tr = np.sort(idx[:test_size]), np.sort(idx[test_size:])
    if standardise:
        mu, sd = x[tr].mean(axis=0), x[tr].std(axis=0) + 1e-6
        x = ((x - mu) / sd).astype(np.float32)
    sizes = [16, *hidden, 10]
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)  # the same weights whatever ran before in this process
    try:
        torch.manual_seed(seed)
        mods = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            mods += [nn.Linear(a, b), nn.ReLU()]
        model = nn.Sequential(*mods[:-1])
        opt = torch.optim.Adam(model.parameters(), lr=1e-2 if len(hidden) == 1 else 5e-3)
        xt, yt = torch.from_numpy(x[tr]), torch.from_numpy(y[tr])
        for _ in range(epochs):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt), yt).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    nodes, prev = [ir.Node("input", ir.Input(), (), (16,))], "input"
    linear = [m for m in model if isinstance(m, nn.Linear)]
    for i, m in enumerate(linear, 1):
        w, b = m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()
        nodes.append(ir.Node(f"fc{i}", ir.Dense(w, b), (prev,), (m.out_features,)))
        prev = f"fc{i}"
        if i < len(linear):
            nodes.append(ir.Node(f"relu{i}", ir.Relu(), (prev,), (m.out_features,)))
            prev = f"relu{i}"
    return ir.Graph(tuple(nodes), prev), (x[tr], y[tr]), (x[te], y[te])


def wine_mlp():
    import models
    p = models.get("wine_mlp")
    with np.load(p["calib"]) as c, np.load(p["test"]) as t:
        return str(p["onnx"]), (c["x"], c["y"]), (t["x"], t["y"])


MODELS = {
    "wine_mlp": wine_mlp,
    "digits16_mlp": digits16_mlp,
    "digits16_deep": lambda: digits16_mlp(hidden=(96, 64, 32), epochs=300, standardise=True),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--timesteps", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--max-spikes", type=int, default=4)
    ap.add_argument("--devices", nargs="+", default=list(DEVICES), choices=DEVICES)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--neuron", nargs="+", default=["exact"], choices=["exact", "leaky"],
                    help="Xylo hidden neuron realisation(s) to measure (lower_xylo's neuron=)")
    args = ap.parse_args(argv)

    from adacal.errors import UnsupportedError
    from adacal.backends.xylo.evaluate import evaluate_xylo
    from adacal.backends.xylo.lower import lower_xylo
    from adacal.pipeline import convert
    from adacal.runtime_sim.float_sim import simulate

    def rmse(a, b):
        return float(np.sqrt(((a - b) ** 2).mean()))

    head = (f"{'model':<14} {'T':>3} {'device':<12} {'neuron':<6} {'ANN':>6} {'SNN':>6} {'Xylo':>6} {'agree':>6} "
            f"{'eSNN':>6} {'eXylo':>6} {'xy ev':>7} {'snn sp':>7} {'bias ev':>7} {'in ev':>7} {'steps':>5} "
            f"{'compile':>7}")
    print(head)
    print("-" * len(head))
    for name in args.models:
        model, cal, test = MODELS[name]()
        for T in args.timesteps:
            conv, summ = convert(model, cal, test, timesteps=T, max_spikes=args.max_spikes)
            ann_out = conv.ann.run(test[0]).reshape(len(test[0]), -1)
            sim, _ = simulate(conv.snn, test[0], T)
            e_snn = rmse(sim.mean_output().reshape(len(test[0]), -1), ann_out)
            for dev in args.devices:
                for neuron in args.neuron:
                    t0 = time.perf_counter()
                    try:
                        low = lower_xylo(conv.snn, cal[0], dev, T, ann=conv.ann, neuron=neuron)
                    except UnsupportedError as exc:
                        print(f"{name:<14} {T:>3} {dev:<12} {neuron:<6} does not fit: {exc}")
                        continue
                    dt = time.perf_counter() - t0
                    r = evaluate_xylo(low, test[0], test[1], reference_predictions=ann_out.argmax(axis=1))
                    print(f"{name:<14} {T:>3} {dev:<12} {neuron:<6} {summ['ann_accuracy']:>6.3f} "
                          f"{summ['snn_accuracy']:>6.3f} {r['accuracy']:>6.3f} {r['agreement']:>6.3f} {e_snn:>6.3f} "
                          f"{rmse(r['scores'], ann_out):>6.3f} {r['events_per_sample']:>7.0f} "
                          f"{summ['spikes_per_sample']:>7.0f} {r['bias_events_per_sample']:>7.0f} "
                          f"{r['input_events_per_sample']:>7.0f} {low.steps:>5} {dt:>6.2f}s")
    print("\nANN / SNN / Xylo: test accuracy of the ANN, the float burst SNN, the bit-accurate Xylo network; "
          "agree: Xylo class = ANN class;\neSNN / eXylo: RMSE of the float SNN's mean readout / of Xylo's "
          "Vmem / (G T) against the ANN's logits;\nxy ev: Xylo hidden events per sample (a burst of k counts k); "
          "snn sp: float SNN spikes per sample;\nbias ev: events of the bias units (exact neurons) per sample; "
          "in ev: input events per sample;\nsteps: run length (input delay + T + drain + one per hidden layer); "
          "compile: lower_xylo incl. the Xylo-exact calibration.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
