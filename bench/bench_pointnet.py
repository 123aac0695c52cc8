#!/usr/bin/env python3
"""PointNet-style 1-D networks on digits as point clouds.

    python bench/bench_pointnet.py [--points 32] [--epochs 60] [--timesteps 4 8]

Each of scikit-learn's 8x8 digits becomes a point cloud: `--points` ink
pixels (intensity > 0) drawn with replacement (seeded), each point
(x, y, intensity) scaled to [0, 1].  Two nets, trained here deterministically
(about a minute on 2 cores), exported with torch.onnx (opset 17):

  pointnet_max   Conv1d(3,32,1)+BN+ReLU, Conv1d(32,64,1)+BN+ReLU, max over the
                 points (ReduceMax), Linear(64,10) — PointNet's symmetric max;
  pointnet_mean  the same with the mean over the points (ReduceMean), which
                 converts to a burst SNN today (a max over time-varying spikes
                 needs a spiking max, which is still to come).

Printed, side by side in one run: onnxruntime's accuracy, adacal's float run
against onnxruntime (max relative error), and for the convertible net the
float burst SNN's accuracy at each --timesteps with max spikes 4.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from models import export  # noqa: E402


def point_clouds(points: int, seed: int = 0):
    """(x_train, y_train, x_test, y_test): x (N, 3, points) float32, stratified 75/25."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    rng = np.random.default_rng(seed)
    clouds = np.empty((len(d.images), 3, points), np.float32)
    for i, img in enumerate(d.images):
        ys, xs = np.nonzero(img)
        pick = rng.integers(0, len(xs), points)
        clouds[i] = np.stack([xs[pick] / 7.0, ys[pick] / 7.0, img[ys[pick], xs[pick]] / 16.0])
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(clouds, y, test_size=0.25, random_state=seed, stratify=y)
    return xtr, ytr, xte, yte


class PointNet(nn.Module):
    def __init__(self, pool: str):
        super().__init__()
        self.features = nn.Sequential(nn.Conv1d(3, 32, 1), nn.BatchNorm1d(32), nn.ReLU(),
                                      nn.Conv1d(32, 64, 1), nn.BatchNorm1d(64), nn.ReLU())
        self.pool = pool
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        h = self.features(x)
        h = h.amax(dim=2) if self.pool == "max" else h.mean(dim=2)
        return self.head(h)


def train(pool: str, x, y, epochs: int, seed: int = 0) -> nn.Module:
    from models import fit
    torch.manual_seed(seed)
    return fit(PointNet(pool), x, y, epochs, lr=3e-3, batch=64, seed=seed)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--timesteps", type=int, nargs="+", default=[2, 4, 8])
    args = ap.parse_args()
    import onnxruntime as ort

    import adacal

    torch.use_deterministic_algorithms(True)
    xtr, ytr, xte, yte = point_clouds(args.points)
    print(f"digits as point clouds: {len(xtr)} train / {len(xte)} test, {args.points} points each")
    with tempfile.TemporaryDirectory() as tmp:
        for pool in ("max", "mean"):
            t0 = time.perf_counter()
            model = train(pool, xtr, ytr, args.epochs)
            path = Path(tmp) / f"pointnet_{pool}.onnx"
            export(model, xtr, path)  # models.export: torch.onnx, opset 17, dynamic batch
            ref = ort.InferenceSession(str(path)).run(None, {"input": xte})[0]
            ours = adacal.load_onnx(str(path)).run(xte)
            err = float(np.abs(ours - ref).max() / np.abs(ref).max())
            print(f"pointnet_{pool}: trained in {time.perf_counter() - t0:.0f} s; onnxruntime accuracy "
                  f"{100 * (ref.argmax(1) == yte).mean():.2f} %; adacal float run vs onnxruntime: max relative "
                  f"error {err:.1e}")
            if pool == "max":
                continue
            for T in args.timesteps:
                t0 = time.perf_counter()
                conv = adacal.convert(str(path), (xtr, ytr), (xte, yte), timesteps=T, max_spikes=4)
                s = conv.summary
                print(f"  burst SNN T={T} max spikes 4: accuracy {100 * s['snn_accuracy']:.2f} % "
                      f"(ANN {100 * s['ann_accuracy']:.2f} %), spikes/sample {s['spikes_per_sample']:,.0f}, "
                      f"output relative_l2 {s['output_error']['relative_l2']:.3f}, "
                      f"converted in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
